"""``exec``: a new process in a running container, in every one of its namespaces and its
cgroup, with the same kind of process fields (user, caps, no_new_privs, seccomp, rlimits)."""

from __future__ import annotations

import os

from dockyard.runtime.pyrunc import container as containers
from dockyard import linux
from dockyard.runtime.pyrunc import caps, fastjson, process, warmup
from dockyard.runtime.pyrunc.cgroups import Cgroup
from dockyard.runtime.pyrunc.process import SetupError
from dockyard.runtime.pyrunc.state import Container, StateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# setns order: the mount namespace last (after it the host's /proc is out of reach).
_ORDER = ("user", "ipc", "uts", "network", "cgroup", "time", "mount")


def main(root: str, container_id: str, options: "dict[str, list[str]]", args: "list[str]") -> int:
    container = Container(root, container_id)
    status = container.status()
    if status not in ("running", "created"):
        raise StateError(f"cannot exec in a {status} container `{container_id}`")
    spec = container.config()
    proc = build_process(spec.get("process") or {}, options, args)
    containers.check_process(proc)
    console_socket = (options.get("--console-socket") or [None])[-1]
    if proc.get("terminal") and not console_socket:
        raise SetupError("terminal is set but no --console-socket was given")
    state = container.state
    pid = state["pid"]
    types = [ns["type"] for ns in (spec.get("linux") or {}).get("namespaces") or []]
    with containers.step(f"opening the namespaces of the container's init (PID {pid})"):
        ns_fds = {t: os.open(f"/proc/{pid}/ns/{linux.NAMESPACES[t][1]}", os.O_RDONLY | os.O_CLOEXEC)
                  for t in types if t in linux.NAMESPACES}
    if "mount" not in types:  # the init is only chrooted (no mount namespace): so are we
        with containers.step(f"opening the root of the container's init (PID {pid})"):
            ns_fds["root"] = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    seccomp_profile = (spec.get("linux") or {}).get("seccomp")
    cgroup = Cgroup(state["cgroup"])
    sync_r, sync_w = os.pipe()
    if "pid" in ns_fds:
        with containers.step(f"joining the pid namespace of the container's init (PID {pid})"):
            linux.setns(ns_fds.pop("pid"), linux.CLONE_NEWPID)  # the child is born in it
    preserve = int((options.get("--preserve-fds") or ["0"])[-1])
    warmup.stop()
    child = os.fork()
    if child == 0:
        os.close(sync_r)
        _child(proc, ns_fds, cgroup, seccomp_profile, sync_w, preserve, root + "/.seccomp", console_socket)
    os.close(sync_w)
    for fd in ns_fds.values():
        os.close(fd)
    failure = containers._read_records(sync_r)
    os.close(sync_r)
    if failure is not None:
        containers._reap(child)
        raise SetupError(failure[2], failure[1])
    pid_file = (options.get("--pid-file") or [None])[-1]
    if pid_file:
        containers._write_pid_file(pid_file, child)
    if "--detach" in options or "-d" in options:
        return 0
    containers._forward_signals(child)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def build_process(base: "dict[str, Any]", options: "dict[str, list[str]]", args: "list[str]") -> "dict[str, Any]":
    path = (options.get("--process") or options.get("-p") or [None])[-1]
    if path:
        with open(path, "rb") as f:
            return fastjson.loads(f.read())
    if not args:
        raise SetupError("exec needs a command (or --process)")
    proc = dict(base)
    proc["args"] = list(args)
    proc["terminal"] = "--tty" in options or "-t" in options
    env = {}
    for item in list(base.get("env") or []) + options.get("--env", []) + options.get("-e", []):
        key, _, value = item.partition("=")
        env[key] = value
    proc["env"] = [f"{k}={v}" for k, v in env.items()]
    cwd = (options.get("--cwd") or [None])[-1]
    if cwd:
        proc["cwd"] = cwd
    user = (options.get("--user") or options.get("-u") or [None])[-1]
    if user:
        uid, _, gid = user.partition(":")
        proc["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    gids = options.get("--additional-gids", []) + options.get("-g", [])
    if gids:
        proc.setdefault("user", {})["additionalGids"] = [int(g) for item in gids for g in item.split(",")]
    extra_caps = options.get("--cap", []) + options.get("-c", [])
    if extra_caps:
        caps = {k: list(v) for k, v in (base.get("capabilities") or {}).items()}
        for cap in extra_caps:
            for kind in ("bounding", "effective", "permitted"):
                if cap not in caps.setdefault(kind, []):
                    caps[kind].append(cap)
        proc["capabilities"] = caps
    if "--no-new-privs" in options:
        proc["noNewPrivileges"] = True
    profile = (options.get("--apparmor") or [None])[-1]
    if profile:
        proc["apparmorProfile"] = profile
    return proc


def _child(proc: "dict[str, Any]", ns_fds: "dict[str, int]", cgroup: Cgroup, seccomp_profile, sync_w: int,
           preserve: int, cache_dir: str, console_socket: "str | None") -> None:
    steps = containers._Steps()
    try:
        linux.prctl(linux.PR_SET_DUMPABLE, 0)  # see container._init: the host's python is our exe
        steps.now = "joining the container's cgroup"
        for path in cgroup.dirs.values():
            with open(path + "/cgroup.procs", "w") as f:
                f.write("0")  # "0" is the writer itself; getpid() here is a container PID
        if proc.get("oomScoreAdj") is not None:
            process.set_oom_score_adj(proc["oomScoreAdj"])
        if proc.get("apparmorProfile"):
            process.apply_apparmor(proc["apparmorProfile"])
        seccomp_program = process.prepare_seccomp(seccomp_profile, cache_dir)
        # The console socket is a host path: connected before the container's mount namespace.
        console = containers._connect_console(console_socket) if proc.get("terminal") else None
        proc_fds = -1
        if "root" in ns_fds:
            proc_fds = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            caps.last_cap()  # read while /proc is there
        steps.now = "joining the container's namespaces"
        for kind in _ORDER:
            if kind in ns_fds:
                linux.setns(ns_fds[kind], linux.NAMESPACES[kind][0])
        if "root" in ns_fds:
            steps.now = "entering the container's root (chroot)"
            os.fchdir(ns_fds["root"])
            os.chroot(".")
        os.chdir("/")
        if console is not None:
            # A pty of the container's own devpts (a host pty's slave has no name in there,
            # so `tty` would say "not a tty"); it also makes the session and sets it up.
            containers.open_terminal(console, bind_console=False)
        steps.now = "setting rlimits"
        process.set_rlimits(proc.get("rlimits") or [])
        cwd = proc.get("cwd") or "/"
        try:
            os.chdir(cwd)
        except OSError as e:
            raise SetupError(f"chdir `{cwd}`: {e.strerror}", 127 if e.errno == 2 else 126) from None
        path = process.find_executable(proc["args"][0], proc.get("env") or [])
        steps.now = "closing inherited file descriptors"
        process.mark_cloexec(3 + preserve, proc_fds)
        if proc_fds >= 0:
            os.close(proc_fds)
        steps.now = "starting the process"
        if console is None:
            os.setsid()
        process.finalize(proc, seccomp_program, path)
    except SetupError as e:
        containers._report(sync_w, e.code, str(e))
        os._exit(e.code)
    except BaseException as e:  # noqa: BLE001
        containers._report(sync_w, 1, steps.describe(e))
        os._exit(1)
    os._exit(1)
