"""pyrunc as a runc drop-in (issue 13): bundles engines other than dockyard write (``runc
spec``), configs without a process or a mount namespace, namespaces joined by path, the OCI
hooks, oomScoreAdj and AppArmor, and the verbs engines call (update, events, list, spec,
features). Each test runs on pyrunc, crun and runc where they agree; where runc or crun
differ from the OCI spec, the test says so and holds pyrunc to the spec.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from dockyard.runtime.oci import OCIRuntime
from tests.integration.test_runtime_harness import (  # noqa: F401 - fixtures
    Bundles, bundles, busybox_rootfs, cgroup_parent, get_runtime, runtime, runtime_roots)

HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def cli(rt: OCIRuntime, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """The runtime's command line; its output through files, not pipes: a created or detached
    container inherits them, and a pipe would see no EOF until it exits."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        result = subprocess.run(rt.argv(*args), input=input, stdout=out, stderr=err, env=rt._env, timeout=timeout,
                                stdin=None if input is not None else subprocess.DEVNULL)
        out.seek(0)
        err.seek(0)
        result.stdout, result.stderr = out.read(), err.read()
    return result


def delete(rt: OCIRuntime, cid: str) -> None:
    cli(rt, "delete", "--force", cid)


def text(result: subprocess.CompletedProcess) -> str:
    return result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")


def runc_default_spec(tmp_path: Path) -> dict[str, Any]:
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed (apt-get install runc)")
    where = tmp_path / "runc-spec"
    where.mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(where)], check=True)
    return json.loads((where / "config.json").read_text())


def write_bundle(tmp_path: Path, rootfs: Path, cid: str, spec: dict[str, Any], cgroup_parent: str) -> Path:
    """``spec`` as config.json in a bundle whose root is the session's busybox rootfs (by its
    absolute path: runc refuses a symlink); the cgroup goes under the session's parent
    (removed at the end)."""
    bundle = tmp_path / cid
    bundle.mkdir()
    spec["root"]["path"] = str(rootfs)
    spec.setdefault("linux", {})["cgroupsPath"] = f"/{cgroup_parent}/{cid}"
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def unique(rt: OCIRuntime, what: str) -> str:
    return f"compat-{what}-{rt.name}-{os.getpid()}-{time.monotonic_ns() % 10**9}"


# ------------------------------------------------------------------ 1. runc spec bundles


def test_runc_spec_bundle_runs(runtime, tmp_path, busybox_rootfs, cgroup_parent) -> None:
    """`runc spec`, terminal off: every runtime prints the output. pyrunc used to fail with
    "pyrunc: Operation not permitted" (its ambient capabilities, not inheritable, aborted it;
    the default devices rule did the rest)."""
    spec = runc_default_spec(tmp_path)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["sh", "-c", "echo hello; grep -E '^Cap(Eff|Amb):' /proc/self/status; id -u"]
    cid = unique(runtime, "runcspec")
    bundle = write_bundle(tmp_path, busybox_rootfs, cid, spec, cgroup_parent)
    try:
        result = cli(runtime, "run", "--bundle", str(bundle), cid)
    finally:
        delete(runtime, cid)
    assert result.returncode == 0, text(result)
    # CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE; none ambient (not inheritable)
    assert result.stdout.decode().splitlines() == ["hello", "CapEff:\t0000000020000420", "CapAmb:\t0000000000000000",
                                                   "0"]
    if runtime.name == "pyrunc":
        assert "can't raise ambient capabilities CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE" in text(result)


@pytest.mark.parametrize("inheritable", [False, True], ids=["not-inheritable", "inheritable"])
def test_ambient_capabilities(runtime, bundles, inheritable) -> None:
    """Ambient capabilities that are not inheritable are skipped, as runc does; inheritable
    ones are raised."""
    def edit(spec: dict[str, Any]) -> None:
        caps = spec["process"]["capabilities"]
        caps["ambient"] = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
        caps["inheritable"] = ["CAP_KILL", "CAP_NET_BIND_SERVICE"] if inheritable else []

    cid, bundle = bundles.make(runtime.name, ["sh", "-c", "grep -E '^Cap(Inh|Amb):' /proc/self/status"],
                               spec_edit=edit)
    try:
        result = cli(runtime, "run", "--bundle", str(bundle), cid)
    finally:
        delete(runtime, cid)
    assert result.returncode == 0, text(result)
    expected = "0000000000000420" if inheritable else "0000000000000000"  # bits 5 (KILL) and 10 (NET_BIND)
    assert f"CapAmb:\t{expected}" in result.stdout.decode()
    if runtime.name == "pyrunc":
        assert ("can't raise ambient" in text(result)) is not inheritable


def test_create_without_process(runtime_roots, bundles, cgroup_parent) -> None:
    """The spec makes process optional until start: create works, start refuses (runc 1.1
    refuses at create and crun fails outright: pyrunc follows the spec here)."""
    rt = get_runtime(runtime_roots, "pyrunc")
    cid, bundle = bundles.make(rt.name, ["true"], spec_edit=lambda spec: spec.pop("process"))
    try:
        created = cli(rt, "create", "--bundle", str(bundle), cid)
        assert created.returncode == 0, text(created)
        assert rt.state(cid).status == "created"
        started = cli(rt, "start", cid)
        assert started.returncode != 0
        assert "process property must not be empty" in text(started)
        assert rt.state(cid).status == "created"
        ran = cli(rt, "run", "--bundle", str(bundle), cid + "-run")
        assert ran.returncode != 0 and "process property must not be empty" in text(ran)
        assert cid + "-run" not in {c["id"] for c in rt.list()}
    finally:
        delete(rt, cid)
    assert cid not in {c["id"] for c in rt.list()}


@pytest.mark.parametrize("case", ["missing-bind-source", "device-under-a-file", "bad-cgroup-value", "bad-bundle"])
def test_errors_name_step_and_path(runtime_roots, bundles, tmp_path, case) -> None:
    """runc says which step failed and on which path; so does pyrunc, for every error."""
    rt = get_runtime(runtime_roots, "pyrunc")
    missing = str(tmp_path / "no-such-source")
    edits = {
        "missing-bind-source": lambda s: s["mounts"].append(
            {"destination": "/mnt/vol", "type": "bind", "source": missing, "options": ["rbind"]}),
        "device-under-a-file": lambda s: s["linux"].setdefault("devices", []).append(
            {"path": "/etc/passwd/dev0", "type": "c", "major": 1, "minor": 3}),
        "bad-cgroup-value": lambda s: s["linux"].setdefault("resources", {}).update({"pids": {"limit": -5}, "cpu": {
            "cpus": "not-a-cpu-list"}}),
        "bad-bundle": None,
    }
    expected = {
        "missing-bind-source": [f"mounting {missing} to rootfs at /mnt/vol", missing, "No such file or directory"],
        "device-under-a-file": ["creating device nodes", "etc/passwd", "Not a directory"],
        "bad-cgroup-value": ["cpuset.cpus", "not-a-cpu-list"],  # the setting's words come from cgroups.py
        "bad-bundle": ["reading the bundle's config", str(tmp_path / "nowhere" / "config.json"),
                       "No such file or directory"],
    }
    if case == "bad-bundle":
        cid, bundle = f"compat-badbundle-{os.getpid()}", tmp_path / "nowhere"
    else:
        cid, bundle = bundles.make(rt.name, ["true"], spec_edit=edits[case])
    try:
        result = cli(rt, "run", "--bundle", str(bundle), cid)
    finally:
        delete(rt, cid)
    assert result.returncode != 0
    message = result.stderr.decode().strip().splitlines()[-1]
    assert message.startswith("pyrunc: ")
    for part in expected[case]:
        assert part in message, message
    if case == "bad-cgroup-value":
        assert "applying the resources of cgroup" in message or "linux.resources.cpu.cpus" in message, message


# ------------------------------------------------------------------ 2. namespaces


def _no_mount_namespace(spec: dict[str, Any]) -> None:
    linux = spec["linux"]
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] not in ("mount", "cgroup")]
    linux["maskedPaths"] = []
    linux["readonlyPaths"] = []
    spec["mounts"] = []


def _host_mounts() -> set[str]:
    return {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}


def test_no_mount_namespace_chroots(runtime, bundles) -> None:
    """Without a mount namespace the container shares the caller's mounts and is chrooted into
    its rootfs (runc 1.1 fails here: it closes its fds through a /proc the rootfs lacks)."""
    if runtime.name == "runc":
        pytest.skip('runc 1.1 fails without a mount namespace: "error closing exec fds: open /proc/self/fd"')
    before = _host_mounts()
    cid, bundle = bundles.make(runtime.name, ["sh", "-c", "echo ran; ls /notexec /badformat; hostname"],
                               spec_edit=_no_mount_namespace)
    try:
        result = cli(runtime, "run", "--bundle", str(bundle), cid)
    finally:
        delete(runtime, cid)
    assert result.returncode == 0, text(result)
    assert result.stdout.decode().splitlines() == ["ran", "/badformat", "/notexec", "parity"]
    assert _host_mounts() == before


def test_no_mount_namespace_rules(runtime_roots, bundles) -> None:
    """As runc: masked or read-only paths need a mount namespace (refused); mounts are not made
    in the host's namespace, and pyrunc says so."""
    rt = get_runtime(runtime_roots, "pyrunc")

    def keep_masks(spec: dict[str, Any]) -> None:
        masked = spec["linux"]["maskedPaths"]
        _no_mount_namespace(spec)
        spec["linux"]["maskedPaths"] = masked

    cid, bundle = bundles.make(rt.name, ["true"], spec_edit=keep_masks)
    try:
        refused = cli(rt, "run", "--bundle", str(bundle), cid)
    finally:
        delete(rt, cid)
    assert refused.returncode != 0
    assert "unable to restrict sys entries without a private MNT namespace" in text(refused)

    def keep_mounts(spec: dict[str, Any]) -> None:
        mounts = spec["mounts"]
        _no_mount_namespace(spec)
        spec["mounts"] = mounts

    before = _host_mounts()
    cid, bundle = bundles.make(rt.name, ["sh", "-c", "echo ran"], spec_edit=keep_mounts)
    try:
        ran = cli(rt, "run", "--bundle", str(bundle), cid)
    finally:
        delete(rt, cid)
    assert ran.returncode == 0, text(ran)
    assert "pyrunc warning: no mount namespace: the" in text(ran)
    assert _host_mounts() == before


@pytest.fixture
def holder():
    """A process in namespaces of its own (``unshare``), to be joined by path; killed after."""
    procs = []

    def start(*flags: str, hostname: str = "") -> int:
        script = (f"hostname {hostname}; " if hostname else "") + "echo ready; exec sleep 120"
        proc = subprocess.Popen(["unshare", *flags, "sh", "-c", script], stdout=subprocess.PIPE)
        procs.append(proc)
        assert proc.stdout.readline() == b"ready\n"
        return proc.pid

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_namespaces_joined_by_path_without_mount_namespace(runtime, bundles, holder) -> None:
    """UTS and network namespaces joined by path, no mount namespace of the container's own."""
    if runtime.name == "runc":
        pytest.skip('runc 1.1 fails without a mount namespace: "error closing exec fds: open /proc/self/fd"')
    pid = holder("--uts", "--net", hostname="joined-uts")

    def edit(spec: dict[str, Any]) -> None:
        _no_mount_namespace(spec)
        spec.pop("hostname", None)
        spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"] if ns["type"] not in ("uts", "network")]
        spec["linux"]["namespaces"] += [{"type": "uts", "path": f"/proc/{pid}/ns/uts"},
                                        {"type": "network", "path": f"/proc/{pid}/ns/net"}]

    cid, bundle = bundles.make(runtime.name, ["sh", "-c", "hostname; cat /sys/class/net/*/ifindex 2>&1 | head -1"],
                               spec_edit=edit)
    try:
        result = cli(runtime, "run", "--bundle", str(bundle), cid)
    finally:
        delete(runtime, cid)
    assert result.returncode == 0, text(result)
    assert result.stdout.decode().splitlines()[0] == "joined-uts"


def test_mount_namespace_joined_by_path(runtime, bundles, holder) -> None:
    """A mount namespace joined by path is set up as a new one would be (runc's way): the
    rootfs mounts and pivot_root happen in it, the host's namespace stays as it was."""
    pid = holder("--mount", "--propagation", "private")
    before = _host_mounts()

    def edit(spec: dict[str, Any]) -> None:
        spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"] if ns["type"] != "mount"]
        spec["linux"]["namespaces"].append({"type": "mount", "path": f"/proc/{pid}/ns/mnt"})

    cid, bundle = bundles.make(runtime.name, ["sh", "-c", "readlink /proc/self/ns/mnt; ls /notexec"], spec_edit=edit)
    try:
        result = cli(runtime, "run", "--bundle", str(bundle), cid)
    finally:
        delete(runtime, cid)
    assert result.returncode == 0, text(result)
    lines = result.stdout.decode().splitlines()
    assert lines == [os.readlink(f"/proc/{pid}/ns/mnt"), "/notexec"]
    assert _host_mounts() == before


# ------------------------------------------------------------------ 3. hooks

_HOOK_SCRIPT = """#!/bin/sh
# hook LOG KIND EXIT [SLEEP]
log=$1 kind=$2 code=$3
[ -n "$4" ] && sleep "$4"
state=$(cat)
env=$(env | grep -v -e '^PWD=' -e '^SHLVL=' -e '^_=' | sort | tr '\\n' ',')
printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "$kind" "$*" "$(readlink /proc/self/ns/mnt)" "$(readlink /proc/self/ns/pid)" \
    "$env" "$state" >> "$log"
exit "$code"
"""


class Hooks:
    """Every kind of hook, logging (kind, args, mount ns, pid ns, env, state) to a file;
    ``fail`` makes one kind exit 3; startContainer's runs in the container (its path too)."""

    def __init__(self, tmp_path: Path, rootfs: Path, rt: OCIRuntime) -> None:
        self.script = tmp_path / "hook.sh"
        self.script.write_text(_HOOK_SCRIPT)
        self.script.chmod(0o755)
        self.log = tmp_path / "hooks.log"
        self.inside = f"/tmp/{unique(rt, 'start-hook')}.log"  # in the shared rootfs
        self.inside_host = rootfs / self.inside.lstrip("/")

    def spec(self, fail: str = "", sleep: str = "", timeout: int | None = None) -> dict[str, Any]:
        hooks: dict[str, Any] = {}
        for kind in HOOK_KINDS:
            code = "3" if kind == fail else "0"
            if kind == "startContainer":
                hook = {"path": "/bin/sh", "args": ["sh", "-c", f'echo "$HOOKVAR $(cat)" >> {self.inside}; exit {code}'],
                        "env": [f"HOOKVAR={kind}"]}
            else:
                hook = {"path": str(self.script), "args": ["hook.sh", str(self.log), kind, code]
                        + ([sleep] if sleep and kind == fail else []), "env": [f"HOOKVAR={kind}", "OTHER=x y"]}
            if timeout is not None and kind == fail:
                hook["timeout"] = timeout
            hooks[kind] = [hook]
        return hooks

    def entries(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        rows = []
        for line in self.log.read_text().splitlines():
            kind, args, mnt, pid, env, state = line.split("\t")
            rows.append({"kind": kind, "args": args, "mnt": mnt, "pid": pid, "env": env, "state": json.loads(state)})
        return rows

    def started(self) -> list[str]:
        if not self.inside_host.exists():
            return []
        return self.inside_host.read_text().splitlines()

    def cleanup(self) -> None:
        self.inside_host.unlink(missing_ok=True)


def _run_lifecycle(rt: OCIRuntime, bundle: Path, cid: str) -> tuple[subprocess.CompletedProcess, ...]:
    created = cli(rt, "create", "--bundle", str(bundle), cid)
    started = cli(rt, "start", cid) if created.returncode == 0 else None
    deadline = time.monotonic() + 10
    while started is not None and started.returncode == 0 and time.monotonic() < deadline:
        state = cli(rt, "state", cid)
        if state.returncode != 0 or json.loads(state.stdout)["status"] == "stopped":
            break
        time.sleep(0.05)
    deleted = cli(rt, "delete", cid)
    delete(rt, cid)
    return created, started, deleted


def test_hooks_order_namespaces_and_state(runtime, bundles, tmp_path, busybox_rootfs) -> None:
    hooks = Hooks(tmp_path, busybox_rootfs, runtime)
    cid, bundle = bundles.make(runtime.name, ["sh", "-c", "echo container ran"], annotations={"org.test": "yes"},
                               spec_edit=lambda s: s.update(hooks=hooks.spec()))
    try:
        created, started, deleted = _run_lifecycle(runtime, bundle, cid)
        assert created.returncode == 0, text(created)
        assert started.returncode == 0, text(started)
        assert deleted.returncode == 0, text(deleted)
        rows = hooks.entries()
        inside = hooks.started()
    finally:
        hooks.cleanup()
    kinds = [row["kind"] for row in rows]
    host_mnt, host_pid = os.readlink("/proc/self/ns/mnt"), os.readlink("/proc/self/ns/pid")
    # runc 1.1 runs poststart at create (its state then says "created"): only the order of the rest is common.
    assert [k for k in kinds if k != "poststart"] == ["prestart", "createRuntime", "createContainer", "poststop"]
    assert "poststart" in kinds
    if runtime.name != "runc":
        assert kinds == ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]
    by_kind = {row["kind"]: row for row in rows}
    for kind, row in by_kind.items():
        assert row["args"] == f"{hooks.log} {kind} 0"  # args[0] is argv[0], the rest as given
        assert row["env"] == f"HOOKVAR={kind},OTHER=x y,"  # exactly the hook's env
        assert row["state"]["id"] == cid and row["state"]["bundle"] == str(bundle)
        assert row["state"]["annotations"]["org.test"] == "yes"
        in_container = kind == "createContainer"
        assert (row["mnt"] != host_mnt) is in_container, kind
        assert (row["pid"] != host_pid) is in_container, kind
    assert by_kind["poststop"]["state"]["status"] == "stopped"
    assert len(inside) == 1 and inside[0].startswith("startContainer {")  # run in the container's root
    if runtime.name in ("pyrunc", "crun"):
        assert by_kind["prestart"]["state"]["status"] == "created"  # as runtime-tools' hooks_stdin wants
    if runtime.name == "pyrunc":
        assert by_kind["createRuntime"]["state"]["status"] == "creating"
        assert by_kind["createRuntime"]["state"]["pid"] == by_kind["poststart"]["state"]["pid"] > 1
        assert by_kind["poststart"]["state"]["status"] == "running"
        assert json.loads(inside[0].split(" ", 1)[1])["status"] == "created"


@pytest.mark.parametrize("kind", HOOK_KINDS)
def test_hook_failure(runtime, bundles, tmp_path, busybox_rootfs, kind) -> None:
    """A failing prestart/createRuntime/createContainer hook fails create on every runtime.
    pyrunc follows runtime.md's lifecycle for the others too: a failing startContainer or
    poststart hook fails start and destroys the container (runc and crun start it anyway,
    or fail at create: runc 1.1 runs poststart there); poststop failures are warnings."""
    hooks = Hooks(tmp_path, busybox_rootfs, runtime)
    cid, bundle = bundles.make(runtime.name, ["sh", "-c", "echo container ran"],
                               spec_edit=lambda s: s.update(hooks=hooks.spec(fail=kind)))
    try:
        created, started, deleted = _run_lifecycle(runtime, bundle, cid)
        kinds = [row["kind"] for row in hooks.entries()]
        listed = {c["id"] for c in runtime.list()}
    finally:
        hooks.cleanup()
    assert cid not in listed
    if kind in ("prestart", "createRuntime", "createContainer"):
        assert created.returncode != 0
        assert "container ran" not in text(created)
        if runtime.name == "pyrunc":
            assert f"error running {kind} hook #0 ({hooks.script}): exit status 3" in text(created)
        if runtime.name != "crun":  # crun runs no poststop hook after a failed create
            assert kinds[-1] == "poststop"
        return
    if runtime.name != "pyrunc":
        if kind == "poststop":
            assert created.returncode == 0 and started.returncode == 0 and deleted.returncode == 0
        return
    assert created.returncode == 0, text(created)
    if kind == "poststop":
        assert started.returncode == 0 and deleted.returncode == 0, text(deleted)
        assert "pyrunc warning: error running poststop hook #0" in text(deleted)
        return
    assert started.returncode != 0
    assert f"error running {kind} hook #0" in text(started)
    assert kinds[-1] == "poststop"  # destroyed: the poststop hooks ran
    if kind == "startContainer":
        assert "container ran" not in text(started) and "poststart" not in kinds


def test_hook_timeout(runtime, bundles, tmp_path, busybox_rootfs) -> None:
    hooks = Hooks(tmp_path, busybox_rootfs, runtime)
    cid, bundle = bundles.make(runtime.name, ["true"],
                               spec_edit=lambda s: s.update(hooks=hooks.spec(fail="createRuntime", sleep="30",
                                                                             timeout=1)))
    began = time.monotonic()
    try:
        created = cli(runtime, "create", "--bundle", str(bundle), cid)
    finally:
        delete(runtime, cid)
        hooks.cleanup()
    assert created.returncode != 0
    if runtime.name != "runc":  # runc 1.1 waits for the hook's own end (30 s) before it fails
        assert time.monotonic() - began < 15
    if runtime.name == "pyrunc":
        assert "createRuntime hook #0" in text(created) and "timeout" in text(created)


def test_hooks_refused_when_malformed(runtime_roots, bundles) -> None:
    rt = get_runtime(runtime_roots, "pyrunc")
    cid, bundle = bundles.make(rt.name, ["true"], spec_edit=lambda s: s.update(
        hooks={"prestart": [{"path": "relative/hook"}]}))
    try:
        result = cli(rt, "run", "--bundle", str(bundle), cid)
    finally:
        delete(rt, cid)
    assert result.returncode != 0 and "hooks.prestart[0]: path must be absolute" in text(result)


# ------------------------------------------------------------------ 4. fields once ignored


def test_oom_score_adj(runtime, bundles) -> None:
    cid, bundle = bundles.make(runtime.name, ["cat", "/proc/self/oom_score_adj"],
                               spec_edit=lambda s: s["process"].update(oomScoreAdj=321))
    try:
        result = cli(runtime, "run", "--bundle", str(bundle), cid)
    finally:
        delete(runtime, cid)
    assert result.returncode == 0, text(result)
    assert result.stdout.decode().strip() == "321"


def test_apparmor_profile_refused_without_apparmor(runtime, bundles) -> None:
    """No runtime may silently run a container without the profile it asks for."""
    from dockyard.runtime.pyrunc.container import apparmor_enabled

    if apparmor_enabled():
        pytest.skip("AppArmor is enabled on this host")
    cid, bundle = bundles.make(runtime.name, ["echo", "ran"],
                               spec_edit=lambda s: s["process"].update(apparmorProfile="docker-default"))
    try:
        result = cli(runtime, "run", "--bundle", str(bundle), cid)
    finally:
        delete(runtime, cid)
    assert result.returncode != 0 and b"ran" not in result.stdout
    if runtime.name == "pyrunc":
        assert "apparmor profile `docker-default`" in text(result) and "AppArmor is not enabled" in text(result)


# ------------------------------------------------------------------ 5. the CLI engines call


def test_help_and_version() -> None:
    pyrunc = Path(os.path.dirname(os.path.realpath(__import__("sys").executable))) / "pyrunc"
    venv_pyrunc = Path(__import__("sys").executable).parent / "pyrunc"
    assert venv_pyrunc.exists() or pyrunc.exists(), "pip install -e . makes the pyrunc console script"
    exe = str(venv_pyrunc if venv_pyrunc.exists() else pyrunc)
    for flag in ("--help", "-h"):
        result = subprocess.run([exe, flag], capture_output=True, text=True)
        assert result.returncode == 0 and "USAGE:" in result.stdout and "update" in result.stdout
    for flag in ("--version", "-v"):
        result = subprocess.run([exe, flag], capture_output=True, text=True)
        lines = result.stdout.splitlines()
        assert result.returncode == 0
        assert lines[0].startswith("pyrunc version ") and lines[1].startswith("commit: ")
        assert lines[2].startswith("spec: 1.") and lines[3].startswith("python: ") and lines[4].startswith("libseccomp: ")
    result = subprocess.run([exe, "update", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--memory" in result.stdout


def _detached(rt: OCIRuntime, bundles: Bundles, **options: Any) -> str:
    cid, bundle = bundles.make(rt.name, ["sleep", "60"], **options)
    result = cli(rt, "run", "--detach", "--bundle", str(bundle), cid)
    assert result.returncode == 0, text(result)
    return cid


def _cgroup_file(cid: str, cgroup_parent: str, controller: str, name: str) -> str:
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    base = Path("/sys/fs/cgroup") if v2 else Path("/sys/fs/cgroup") / controller
    return (base / cgroup_parent / cid / name).read_text().strip()


def test_update(runtime, bundles, cgroup_parent) -> None:
    if runtime.name == "crun":
        pytest.skip("crun 1.8 has no events verb, and its update cannot parse what its own flags make")
    cid = _detached(runtime, bundles, memory=64 << 20, pids_limit=40)
    try:
        flags = cli(runtime, "update", "--memory", "96m", "--pids-limit", "50", "--cpu-share", "512", cid)
        assert flags.returncode == 0, text(flags)
        stats = json.loads(cli(runtime, "events", "--stats", cid).stdout)["data"]
        assert stats["pids"]["limit"] == 50
        assert stats["memory"]["usage"]["limit"] == 96 << 20
        resources = json.dumps({"memory": {"limit": 128 << 20}, "pids": {"limit": 60}}).encode()
        piped = cli(runtime, "update", "--resources", "-", cid, input=resources)
        assert piped.returncode == 0, text(piped)
        stats = json.loads(cli(runtime, "events", "--stats", cid).stdout)["data"]
        assert stats["pids"]["limit"] == 60 and stats["memory"]["usage"]["limit"] == 128 << 20
    finally:
        delete(runtime, cid)


def test_events_stats_shape(runtime, runtime_roots, bundles) -> None:
    """One JSON stats object with runc's keys."""
    if runtime.name == "crun":
        pytest.skip("crun 1.8 has no events verb")
    cid = _detached(runtime, bundles, memory=64 << 20, pids_limit=40)
    try:
        result = cli(runtime, "events", "--stats", cid)
    finally:
        delete(runtime, cid)
    assert result.returncode == 0, text(result)
    event = json.loads(result.stdout)
    assert event["type"] == "stats" and event["id"] == cid
    data = event["data"]
    assert {"cpu", "memory", "pids", "blkio", "hugetlb"} <= set(data)
    assert data["pids"]["current"] >= 1 and data["pids"]["limit"] == 40
    assert data["memory"]["usage"]["limit"] == 64 << 20 and data["memory"]["usage"]["usage"] > 0
    assert {"kernel", "user"} <= set(data["cpu"]["usage"])


def test_list_formats(runtime, bundles) -> None:
    cid = _detached(runtime, bundles)
    try:
        table = cli(runtime, "list").stdout.decode().splitlines()
        listed = json.loads(cli(runtime, "list", "--format", "json").stdout)
        quiet = cli(runtime, "list", "-q").stdout.decode().split()
    finally:
        delete(runtime, cid)
    entry = next(e for e in listed if e["id"] == cid)
    assert entry["status"] == "running" and entry["pid"] > 0
    assert cid in quiet
    if runtime.name == "crun":
        return  # crun's own table (NAME, no OWNER) and no owner in its JSON
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    # runc's tabwriter: a column is its widest cell plus 3, at least 12
    width = max(12, max(len(line.split()[0]) for line in table) + 3)
    assert table[0].startswith("ID".ljust(width) + "PID ")
    row = next(line for line in table if line.startswith(cid + " "))
    assert row.split()[2] == "running" and row.split()[-1] == "root"
    entry = next(e for e in listed if e["id"] == cid)
    assert entry["status"] == "running" and entry["owner"] == "root" and entry["pid"] > 0
    assert cid in quiet


def test_spec_like_runc(runtime_roots, tmp_path) -> None:
    expected = runc_default_spec(tmp_path)
    rt = get_runtime(runtime_roots, "pyrunc")
    bundle = tmp_path / "pyrunc-spec"
    bundle.mkdir()
    result = cli(rt, "spec", "--bundle", str(bundle))
    assert result.returncode == 0, text(result)
    written = json.loads((bundle / "config.json").read_text())
    assert written.pop("ociVersion").startswith("1.0")
    expected.pop("ociVersion")
    assert written == expected
    again = cli(rt, "spec", "--bundle", str(bundle))
    assert again.returncode != 0 and "config.json exists" in text(again)
    rootless = cli(rt, "spec", "--rootless", "--bundle", str(tmp_path))
    assert rootless.returncode != 0 and "rootless" in text(rootless)


def test_features_like_runc(runtime_roots) -> None:
    rt = get_runtime(runtime_roots, "pyrunc")
    ours = json.loads(cli(rt, "features").stdout)
    assert set(HOOK_KINDS) == set(ours["hooks"])
    assert {"mount", "pid", "network", "ipc", "uts", "user", "cgroup"} <= set(ours["linux"]["namespaces"])
    assert "CAP_SYS_ADMIN" in ours["linux"]["capabilities"]
    assert {"rbind", "ro", "nosuid", "rprivate"} <= set(ours["mountOptions"])
    if shutil.which("runc"):
        theirs = json.loads(subprocess.run(["runc", "features"], capture_output=True, check=True).stdout)
        assert set(ours) == set(theirs)
        assert set(ours["linux"]) <= set(theirs["linux"]) | {"intelRdt"}
        assert set(ours["linux"]["seccomp"]) == set(theirs["linux"]["seccomp"])


# ------------------------------------------------------------------ 6. user namespaces


def _user_namespace(host_id: int, rootfs: str | None = None):  # noqa: ANN202
    """A user namespace mapping 0..65535 to ``host_id``.., with only the mounts that work in
    one without runc's special cases (no /dev tmpfs, cgroup v1 or masked-path remounts)."""
    def edit(spec: dict[str, Any]) -> None:
        linux = spec["linux"]
        linux["namespaces"].append({"type": "user"})
        linux["uidMappings"] = [{"containerID": 0, "hostID": host_id, "size": 65536}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": host_id, "size": 65536}]
        spec["mounts"] = [m for m in spec["mounts"] if m["destination"] in ("/proc", "/sys")]
        linux["maskedPaths"] = []
        linux["readonlyPaths"] = []
        linux.pop("devices", None)
        if rootfs is not None:
            spec["root"]["path"] = rootfs

    return edit


def test_user_namespace_identity_mapping(runtime, bundles) -> None:
    if runtime.name == "runc":
        pytest.skip("runc 1.1 fails without a /dev tmpfs: \"error creating device nodes: open .../dev/tty\"")
    cid, bundle = bundles.make(runtime.name, ["sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/gid_map; "
                                                          "readlink /proc/self/ns/user; echo $$"],
                               spec_edit=_user_namespace(0))
    try:
        result = cli(runtime, "run", "--bundle", str(bundle), cid)
    finally:
        delete(runtime, cid)
    assert result.returncode == 0, text(result)
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "0"
    assert [line.split() for line in lines[1:3]] == [["0", "0", "65536"]] * 2
    assert lines[3] != os.readlink("/proc/self/ns/user")
    assert lines[4] == "1"  # PID 1 of a PID namespace owned by the new user namespace


@pytest.fixture
def shifted_rootfs(busybox_rootfs):  # noqa: ANN201
    """A copy of the rootfs owned by host uid/gid 100000 (runc does not chown: the mapped root
    must own it), in a directory that uid can reach."""
    import tempfile

    base = tempfile.mkdtemp(prefix="pyrunc-userns-", dir="/tmp")
    os.chmod(base, 0o755)
    rootfs = os.path.join(base, "rootfs")
    subprocess.run(["cp", "-a", str(busybox_rootfs), rootfs], check=True)
    subprocess.run(["chown", "-R", "100000:100000", rootfs], check=True)
    yield rootfs
    shutil.rmtree(base)


def test_user_namespace_shifted_root(runtime, bundles, shifted_rootfs) -> None:
    """Root in the container is host uid 100000: what it creates belongs to that uid."""
    if runtime.name == "runc":
        pytest.skip("runc 1.1 fails without a /dev tmpfs: \"error creating device nodes: open .../dev/tty\"")
    cid, bundle = bundles.make(runtime.name, ["sh", "-c", "id -u; cat /proc/self/uid_map; touch /made-inside"],
                               spec_edit=_user_namespace(100000, shifted_rootfs))
    try:
        result = cli(runtime, "run", "--bundle", str(bundle), cid)
    finally:
        delete(runtime, cid)
    assert result.returncode == 0, text(result)
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "0" and lines[1].split() == ["0", "100000", "65536"]
    made = os.stat(os.path.join(shifted_rootfs, "made-inside"))
    assert (made.st_uid, made.st_gid) == (100000, 100000)


def test_user_namespace_shifted_root_create_start(runtime, bundles, shifted_rootfs) -> None:
    """create then start: the init, host uid 100000, can open the exec fifo (runc chowns it
    to the container's root)."""
    if runtime.name == "runc":
        pytest.skip("runc 1.1 fails without a /dev tmpfs: \"error creating device nodes: open .../dev/tty\"")
    cid, bundle = bundles.make(runtime.name, ["sh", "-c", "touch /started"],
                               spec_edit=_user_namespace(100000, shifted_rootfs))
    try:
        created = cli(runtime, "create", "--bundle", str(bundle), cid)
        assert created.returncode == 0, text(created)
        started = cli(runtime, "start", cid)
        assert started.returncode == 0, text(started)
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(shifted_rootfs, "started")) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        delete(runtime, cid)
    assert os.stat(os.path.join(shifted_rootfs, "started")).st_uid == 100000


def test_user_namespace_maps_refused_when_unmappable(runtime_roots, bundles) -> None:
    rt = get_runtime(runtime_roots, "pyrunc")

    def edit(spec: dict[str, Any]) -> None:
        _user_namespace(0)(spec)
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 10}, {"containerID": 5, "hostID": 50,
                                                                                       "size": 10}]  # overlapping

    cid, bundle = bundles.make(rt.name, ["true"], spec_edit=edit)
    try:
        result = cli(rt, "run", "--bundle", str(bundle), cid)
    finally:
        delete(rt, cid)
    assert result.returncode != 0
    assert "writing the user namespace's uidMappings to /proc/" in text(result)


def test_user_namespace_with_docker_mounts(runtime_roots, bundles) -> None:
    """Docker's mounts, /dev tmpfs, cgroups, masked and read-only paths in a user namespace:
    mknod and a new cgroup v1 mount are refused there, so the host's device nodes and cgroups
    are bound, and remounts keep the binds' locked flags (runc's special cases)."""
    rt = get_runtime(runtime_roots, "pyrunc")

    def edit(spec: dict[str, Any]) -> None:
        linux = spec["linux"]
        linux["namespaces"].append({"type": "user"})
        linux["uidMappings"] = linux["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]

    script = "echo ran; ls /dev/null; ls /sys/fs/cgroup/memory/tasks 2>/dev/null || ls /sys/fs/cgroup/cgroup.procs"
    cid, bundle = bundles.make(rt.name, ["sh", "-c", script], spec_edit=edit)
    try:
        result = cli(rt, "run", "--bundle", str(bundle), cid)
    finally:
        delete(rt, cid)
    assert result.returncode == 0, text(result)
    assert result.stdout.decode().splitlines()[:2] == ["ran", "/dev/null"]


# runc's default devices (libcontainer/specconv AllowedDevices with a path), as linux.devices
RUNC_DEFAULT_DEVICES = [{"path": f"/dev/{name}", "type": "c", "major": major, "minor": minor, "fileMode": 0o666,
                         "uid": 0, "gid": 0}
                        for name, major, minor in (("null", 1, 3), ("random", 1, 8), ("full", 1, 7), ("tty", 5, 0),
                                                   ("zero", 1, 5), ("urandom", 1, 9))]


@pytest.mark.parametrize("name", ["pyrunc", "crun"])
def test_user_namespace_devices_bound(runtime_roots, bundles, name: str) -> None:
    """With a user namespace the device nodes (runc's default list, with a /dev tmpfs) are the
    host's, bind-mounted, and work: /dev/null swallows, /dev/zero reads zeros, /dev/urandom
    reads bytes."""
    rt = get_runtime(runtime_roots, name)

    def edit(spec: dict[str, Any]) -> None:
        linux = spec["linux"]
        linux["namespaces"].append({"type": "user"})
        linux["uidMappings"] = linux["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
        linux["devices"] = RUNC_DEFAULT_DEVICES

    script = ("echo gone > /dev/null && cat /dev/null | wc -c; head -c 4 /dev/zero | od -An -tx1; "
              "head -c 16 /dev/urandom | wc -c; stat -c '%t:%T' /dev/null /dev/zero /dev/urandom; "
              "grep -c -E ' /dev/(null|zero|urandom) ' /proc/self/mountinfo")
    cid, bundle = bundles.make(rt.name, ["sh", "-c", script], spec_edit=edit)
    try:
        result = cli(rt, "run", "--bundle", str(bundle), cid)
    finally:
        delete(rt, cid)
    assert result.returncode == 0, text(result)
    lines = [line.strip() for line in result.stdout.decode().splitlines()]
    assert lines[0] == "0"
    assert lines[1].split() == ["00"] * 4
    assert lines[2] == "16"
    assert lines[3:6] == ["1:3", "1:5", "1:9"]
    assert int(lines[6]) >= 3  # each a mount point: bound, not made by mknod


def test_user_namespace_exec(runtime, bundles) -> None:
    if runtime.name == "runc":
        pytest.skip("runc 1.1 fails without a /dev tmpfs: \"error creating device nodes: open .../dev/tty\"")
    cid, bundle = bundles.make(runtime.name, ["sleep", "60"], spec_edit=_user_namespace(0))
    try:
        started = cli(runtime, "run", "--detach", "--bundle", str(bundle), cid)
        assert started.returncode == 0, text(started)
        user_ns = os.readlink(f"/proc/{runtime.state(cid).pid}/ns/user")
        result = cli(runtime, "exec", cid, "sh", "-c", "id -u; readlink /proc/self/ns/user")
    finally:
        delete(runtime, cid)
    assert result.returncode == 0, text(result)
    assert result.stdout.decode().splitlines() == ["0", user_ns]
    assert user_ns != os.readlink("/proc/self/ns/user")
