"""create / start / run / kill / delete: the container's life, runc-style.

``create`` forks the container's init after unshare(CLONE_NEWPID), so the init is PID 1
of its namespace. The init sets up namespaces, mounts and the root, reports "ready"
through a pipe, then blocks opening ``exec.fifo`` for writing; ``start`` opens it for
reading, which releases the init into the final steps and execve. The init keeps the
fifo open (close-on-exec) so ``start`` learns whether execve worked: EOF means it did,
an error record means it did not.

Records on both channels: ``R`` ready; ``H`` the init waits, its mounts made and before
pivot_root, for the runtime's prestart and createRuntime hooks (the parent answers on the
go pipe); ``E<code> <message>`` a failure; ``D<code> <message>`` a failure that destroys
the container (a hook's, as the OCI lifecycle says).

With a user namespace the parent cannot make the PID namespace up front (it must belong to
the new user namespace): the first child unshares the user namespace, waits for the parent
to write its ID maps, unshares the PID namespace and forks the init, reports the init's
PID (``P<pid>``) and exits; the parent, a child subreaper, inherits the init.

Every failure names its step and the path it concerns ("creating device nodes: mknod
/dev/null: Operation not permitted"); warnings (what is ignored or skipped) go to stderr,
or to the --log file, as "pyrunc warning: ...".
"""

from __future__ import annotations

import os

from dockyard.runtime.pyrunc import fastjson, warmup
from dockyard.runtime.pyrunc.cgroups import Cgroup
from dockyard.runtime.pyrunc.state import (Container, SetupError, StateError, process_alive, starttime_of, timestamp,
                                           warn)

# linux, mounts and process (ctypes, ~4 ms to import) are imported by the functions that
# create a container: start, kill and delete do without them. hooks (subprocess) only when
# a spec has hooks.

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SIGKILL = 9
NO_PROCESS = "process property must not be empty"
_PAUSE_HOOKS = ("prestart", "createRuntime")       # run by the parent while the init waits
_RUNTIME_HOOKS = ("prestart", "createRuntime", "poststart", "poststop")  # forked by pyrunc itself


class Options:
    """Per-invocation options of create/run."""

    def __init__(self, bundle: str = ".", pid_file: str | None = None, console_socket: str | None = None,
                 preserve_fds: int = 0) -> None:
        self.bundle = os.path.realpath(bundle)
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.preserve_fds = preserve_fds
        self.cache_dir: str | None = None  # compiled seccomp filters, under the state root


class step:
    """``with step("creating the cgroup /x"):`` turns an OSError (or another unexpected
    error) inside into a SetupError naming the step; SetupError and StateError pass as they
    are (they name theirs)."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> "step":
        return self

    def __exit__(self, kind, error, tb) -> bool:  # noqa: ANN001
        if error is None or isinstance(error, (SetupError, StateError)) or not isinstance(error, Exception):
            return False
        raise SetupError(f"{self.what}: {describe(error)}") from None


# ------------------------------------------------------------------ create / run

def create(root: str, container_id: str, options: Options) -> int:
    _launch(root, container_id, options, wait_for_start=True)
    return 0


def run(root: str, container_id: str, options: Options, detach: bool = False) -> int:
    container, pid, sync_r, cgroup = _launch(root, container_id, options, wait_for_start=False)
    failure = _read_records(sync_r)  # EOF once execve succeeded (the pipe is close-on-exec)
    os.close(sync_r)
    if failure is not None:
        _reap(pid)
        _destroy(container, cgroup)
        raise SetupError(failure[2], failure[1])
    if container.state.get("poststart"):
        _poststart(container, cgroup)
    if detach:
        return 0
    _forward_signals(pid)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            status = 0
            break
    _destroy(container, cgroup)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _read_spec(bundle: str) -> "tuple[bytes, dict[str, Any]]":
    path = bundle + "/config.json"
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SetupError(f"reading the bundle's config: open {path}: {e.strerror}") from None
    try:
        spec = fastjson.loads(raw)
    except ValueError as e:
        raise SetupError(f"parsing {path}: {e}") from None
    if not isinstance(spec, dict):
        raise SetupError(f"parsing {path}: not a JSON object")
    return raw, spec


def check_spec(spec: "dict[str, Any]", starting: bool) -> None:
    """Refuse what cannot work before anything is created, as runc does; warn (never
    silently) about what is skipped."""
    root = spec.get("root")
    if not isinstance(root, dict) or not root.get("path"):
        raise SetupError("config.json: root.path must be set")
    proc = spec.get("process")
    if proc is None:
        if starting:
            raise SetupError(NO_PROCESS)
    elif not isinstance(proc, dict):
        raise SetupError("config.json: process must be an object")
    linux_spec = spec.get("linux") or {}
    types = [ns.get("type") for ns in linux_spec.get("namespaces") or []]
    if "mount" not in types:
        if linux_spec.get("maskedPaths") or linux_spec.get("readonlyPaths"):
            raise SetupError("unable to restrict sys entries without a private MNT namespace "
                             "(linux.maskedPaths, linux.readonlyPaths)")
        if spec.get("mounts"):
            warn(f"no mount namespace: the {len(spec['mounts'])} mounts of config.json are not made (they would "
                 "land in this host's mount namespace); the container is only chrooted into its rootfs")
        if root.get("readonly"):
            warn("no mount namespace: root.readonly is ignored (it would remount the rootfs for the host too)")
    if "user" in types:
        _check_user_namespace(linux_spec, types)
    elif linux_spec.get("uidMappings") or linux_spec.get("gidMappings"):
        raise SetupError("user namespace mappings specified, but user namespace isn't enabled in the config")
    if proc:
        check_process(proc)
    if spec.get("hooks"):
        from dockyard.runtime.pyrunc import hooks

        hooks.validate(spec)


def check_process(proc: "dict[str, Any]") -> None:
    """The parts of a process object checked before its container (or exec) starts."""
    profile = proc.get("apparmorProfile")
    if profile and not apparmor_enabled():
        raise SetupError(f"apparmor profile `{profile}` is set in the config, but AppArmor is not enabled on this "
                         "host (/sys/module/apparmor/parameters/enabled)")
    oom = proc.get("oomScoreAdj")
    if oom is not None and (not isinstance(oom, int) or isinstance(oom, bool) or not -1000 <= oom <= 1000):
        raise SetupError(f"process.oomScoreAdj must be an integer from -1000 to 1000, not {oom!r}")
    capabilities = proc.get("capabilities")
    if capabilities and capabilities.get("ambient"):
        from dockyard.runtime.pyrunc import caps

        skipped = caps.unraisable_ambient(capabilities)
        if skipped:
            warn(f"can't raise ambient capabilities {', '.join(skipped)}: an ambient capability must also be "
                 "permitted and inheritable (skipped, as runc does)")


def apparmor_enabled() -> bool:
    """runc's test: securityfs has apparmor and the module says it is enabled."""
    if not os.path.exists("/sys/kernel/security/apparmor"):
        return False
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read(1) == "Y"
    except OSError:
        return False


def _check_user_namespace(linux_spec: "dict[str, Any]", types: "list[Any]") -> None:
    user = next(ns for ns in linux_spec["namespaces"] if ns.get("type") == "user")
    mappings = linux_spec.get("uidMappings") or linux_spec.get("gidMappings")
    if user.get("path"):
        return  # joined: its maps are whatever its owner wrote
    if not mappings:
        raise SetupError("user namespaces enabled, but no namespace path to join nor mappings to apply specified")
    if not linux_spec.get("uidMappings") or not linux_spec.get("gidMappings"):
        raise SetupError("a new user namespace needs both linux.uidMappings and linux.gidMappings")
    for kind in ("uidMappings", "gidMappings"):
        for m in linux_spec[kind]:
            if not all(isinstance(m.get(k), int) and m.get(k) >= 0 for k in ("containerID", "hostID", "size")):
                raise SetupError(f"linux.{kind}: containerID, hostID and size must be non-negative integers: {m}")
    pid = next((ns for ns in linux_spec["namespaces"] if ns.get("type") == "pid"), None)
    if pid is not None and pid.get("path"):
        raise SetupError("a new user namespace with a PID namespace joined by path is not supported by pyrunc")


def _launch(root: str, container_id: str, options: Options,
            wait_for_start: bool) -> "tuple[Container, int, int, Cgroup]":
    # What the init needs too: loaded here, while the cgroup lock warms up, not after the fork.
    from dockyard.runtime.pyrunc import mounts, process  # noqa: F401

    raw, spec = _read_spec(options.bundle)
    check_spec(spec, starting=not wait_for_start)
    hook_kinds = {kind for kind, entries in (spec.get("hooks") or {}).items() if entries}
    if hook_kinds:
        from dockyard.runtime.pyrunc import hooks  # noqa: F401 - the init needs it before pivot_root
    container = Container(root, container_id)
    with step(f"creating the state directory {root}"):
        os.makedirs(root, 0o711, exist_ok=True)
    options.cache_dir = root + "/.seccomp"  # not a container ID: "." is refused there
    try:
        os.mkdir(container.dir, 0o711)
    except FileExistsError:
        raise StateError(f"container `{container_id}` already exists") from None
    except OSError as e:
        raise SetupError(f"creating the state directory {container.dir}: {e.strerror}") from None
    pid = 0
    first = 0  # with a user namespace: the child that makes the namespaces and forks the init
    cgroup = None
    try:
        with step(f"writing {container.dir}/config.json"), open(container.dir + "/config.json", "wb") as f:
            f.write(raw)
        linux_spec = spec.get("linux") or {}
        namespaces = linux_spec.get("namespaces") or []
        new_user = any(ns.get("type") == "user" and not ns.get("path") for ns in namespaces)
        cgroup_path = linux_spec.get("cgroupsPath") or "/pyrunc/" + container_id
        if ":" in cgroup_path:
            raise SetupError(f"systemd cgroup paths are not supported: {cgroup_path}")
        # Compiled (or read from the cache) here, before the cgroup: creating it waits for
        # the cgroup lock, and this work fills the wait instead of delaying the init.
        seccomp_program = process.prepare_seccomp(linux_spec.get("seccomp"), options.cache_dir)
        cgroup = Cgroup(cgroup_path)
        with step(f"creating the cgroup {cgroup.path}"):
            cgroup.create()
        with step(f"applying the resources of cgroup {cgroup.path}"):
            cgroup.apply(linux_spec.get("resources") or {})
        if wait_for_start:
            with step(f"creating the exec fifo {container.fifo}"):
                os.mkfifo(container.fifo, 0o600)
                # In a user namespace the init is its root's host uid: it must open the fifo (runc's chown)
                uid, gid = _host_id(linux_spec.get("uidMappings")), _host_id(linux_spec.get("gidMappings"))
                if uid or gid:
                    os.chown(container.fifo, uid, gid)
        fifo_fd = os.open(container.fifo, os.O_PATH | os.O_CLOEXEC) if wait_for_start else -1
        go_r, go_w = os.pipe()
        sync_r, sync_w = os.pipe()
        own_pidns = -1
        if hook_kinds & set(_RUNTIME_HOOKS) and not new_user:
            own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        if new_user:
            from dockyard import linux

            with step("becoming a child subreaper (for the init a user namespace's set-up forks)"):
                linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
        else:
            _enter_pid_namespace(namespaces)
        warmup.stop()
        with step("forking the container's init"):
            pid = os.fork()
        if pid == 0:
            os.close(go_w)
            os.close(sync_r)
            _init(spec, options, container_id, go_r, sync_w, fifo_fd, seccomp_program)  # never returns
        os.close(go_r)
        os.close(sync_w)
        if fifo_fd >= 0:
            os.close(fifo_fd)
        if own_pidns >= 0:  # the hooks pyrunc forks run in the runtime's PID namespace
            from dockyard import linux

            linux.setns(own_pidns, linux.CLONE_NEWPID)
            os.close(own_pidns)
        with step(f"adding the init to cgroup {cgroup.path}"):
            cgroup.add(pid)
        os.write(go_w, b"g")
        if new_user:
            first, pid = pid, _map_user_namespace(spec, pid, go_w, sync_r)
        record = _read_record(sync_r)
        if record is not None and record[0] == "H":
            from dockyard.runtime.pyrunc import hooks

            for kind in _PAUSE_HOOKS:
                # prestart predates the "creating" status: runtimes (and runtime-tools) give it
                # "created"; createRuntime sees the container still being created.
                status = "created" if kind == "prestart" else "creating"
                hooks.run(kind, hooks.of(spec, kind), _hook_state(container_id, status, pid, options.bundle, spec))
            os.write(go_w, b"g")
            record = _read_record(sync_r)
        os.close(go_w)
        if record is None or record[0] != "R":
            kind, code, message = record or ("E", 1, "container init exited during set-up")
            raise SetupError(message, code)
        state = {
            "id": container_id, "pid": pid, "starttime": starttime_of(pid), "bundle": options.bundle,
            "rootfs": _rootfs(spec, options.bundle), "created": timestamp(), "cgroup": cgroup.path,
            "annotations": spec.get("annotations") or {},
        }
        if spec.get("process") is None:
            state["noProcess"] = True
        for kind in ("poststart", "poststop"):
            if kind in hook_kinds:
                state[kind] = spec["hooks"][kind]
        with step(f"writing {container.dir}/state.json"):
            container.save(state)
        if options.pid_file:
            with step(f"writing the pid file {options.pid_file}"):
                _write_pid_file(options.pid_file, pid)
        if wait_for_start:
            os.close(sync_r)
        return container, pid, sync_r, cgroup
    except BaseException:
        for child in (pid, first):
            if child:
                _kill_and_wait(child)
                _reap(child)
        if cgroup is not None:
            try:
                cgroup.destroy()
            except OSError:
                pass
        _remove_dir(container.dir)
        if "poststop" in hook_kinds:
            _poststop(container.id, options.bundle, spec.get("annotations"), spec["hooks"]["poststop"])
        raise


def _hook_state(container_id: str, status: str, pid: int, bundle: str, spec: "dict[str, Any]") -> "dict[str, Any]":
    from dockyard.runtime.pyrunc import hooks

    return hooks.state(container_id, status, pid, bundle, spec.get("annotations"))


def _enter_pid_namespace(namespaces: "list[dict[str, Any]]") -> None:
    """The next fork lands in this namespace, as its PID 1 when the namespace is new."""
    from dockyard import linux

    for ns in namespaces:
        if ns.get("type") != "pid":
            continue
        if ns.get("path"):
            with step(f"joining the pid namespace {ns['path']}"):
                fd = os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)
                try:
                    linux.setns(fd, linux.CLONE_NEWPID)
                finally:
                    os.close(fd)
        else:
            with step("creating the pid namespace"):
                linux.unshare(linux.CLONE_NEWPID)


def _host_id(mappings: "list[dict[str, Any]] | None") -> int:
    """The host ID container ID 0 maps to (0 without mappings or when 0 is unmapped)."""
    for m in mappings or []:
        if m.get("containerID", 0) <= 0 < m.get("containerID", 0) + m.get("size", 0):
            return m.get("hostID", 0) - m.get("containerID", 0)
    return 0


def _map_user_namespace(spec: "dict[str, Any]", first: int, go_w: int, sync_r: int) -> int:
    """The parent's half of a new user namespace: once the first child has unshared it, write
    its uid_map and gid_map (as root: directly, no newuidmap), let it go on, and learn the
    host PID of the init it forks; that child is reaped."""
    record = _read_record(sync_r)
    if record is None or record[0] != "U":
        kind, code, message = record or ("E", 1, "container init exited during set-up")
        raise SetupError(message, code)
    linux_spec = spec.get("linux") or {}
    for kind, name in (("uidMappings", "uid_map"), ("gidMappings", "gid_map")):
        text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in linux_spec[kind])
        path = f"/proc/{first}/{name}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)
        except OSError as e:
            raise SetupError(f"writing the user namespace's {kind} to {path}: {e.strerror} "
                             f"({text.strip()!r})") from None
    os.write(go_w, b"g")
    record = _read_record(sync_r)
    if record is None or record[0] != "P":
        kind, code, message = record or ("E", 1, "container init exited during set-up")
        raise SetupError(message, code)
    _reap(first)
    return record[1]


def _rootfs(spec: "dict[str, Any]", bundle: str) -> str:
    path = spec["root"]["path"]
    return path if path.startswith("/") else bundle + "/" + path


# ------------------------------------------------------------------ the init

class _Steps:
    """Where the init is, for its error message."""

    __slots__ = ("now", "root")

    def __init__(self) -> None:
        self.now = "starting the container's init"
        self.root = ""

    def describe(self, e: BaseException) -> str:
        return f"{_refined_step(e) or self.now}: {describe(e, self.root)}"


def _init(spec: "dict[str, Any]", options: Options, container_id: str, go_r: int, sync_w: int, fifo_fd: int,
          seccomp_program: "bytes | None") -> None:
    """The container's PID 1 until execve; reports through ``sync_w`` then the fifo."""
    from dockyard import linux
    from dockyard.runtime.pyrunc import caps, mounts, process

    report_fd = sync_w
    steps = _Steps()
    try:
        # Until execve, /proc/<pid>/exe is the host's python: keep container processes
        # from opening it (CVE-2019-5736); execve makes the process dumpable again.
        linux.prctl(linux.PR_SET_DUMPABLE, 0)
        os.read(go_r, 1)  # the parent has put us in the cgroup: a new cgroup ns roots there
        linux_spec = spec.get("linux") or {}
        proc = spec.get("process")
        if proc is not None and proc.get("oomScoreAdj") is not None:
            steps.now = "setting oom_score_adj"  # first: lowering it needs the host's CAP_SYS_RESOURCE
            process.set_oom_score_adj(proc["oomScoreAdj"])
        namespaces = linux_spec.get("namespaces") or []
        steps.now = "joining the namespaces"
        mount_ns = _join_namespaces(namespaces)  # by path: before a new user namespace, as runc
        if any(ns.get("type") == "user" and not ns.get("path") for ns in namespaces):
            steps.now = "creating the user namespace"
            _enter_user_namespace(namespaces, go_r, sync_w)
        steps.now = "creating the namespaces"
        new = _unshare_namespaces(namespaces)
        if new & linux.CLONE_NEWUTS:
            steps.now = "setting the hostname"
            if spec.get("hostname"):
                linux.sethostname(spec["hostname"])
            if spec.get("domainname"):
                linux.setdomainname(spec["domainname"])
        if proc is not None and proc.get("apparmorProfile"):
            steps.now = f"applying the apparmor profile {proc['apparmorProfile']}"
            process.apply_apparmor(proc["apparmorProfile"])
        console = None
        if proc is not None and proc.get("terminal"):
            steps.now = f"connecting to the console socket {options.console_socket}"
            console = _connect_console(options.console_socket)
        root = steps.root = os.path.realpath(_rootfs(spec, options.bundle))
        before_jail = _before_jail(spec, options, container_id, go_r, sync_w, root)
        # The host's /proc/self/fd and cap_last_cap, kept for after the jail: the rootfs may
        # have no /proc (no mount namespace, or a spec without a proc mount). Close-on-exec,
        # and closed before the container's process runs anything.
        proc_fds = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        caps.last_cap()
        if mount_ns:
            steps.now = "preparing the rootfs"
            if before_jail is not None:
                _run_before_pivot(mounts, before_jail)
            mounts.prepare_rootfs(spec, options.bundle)
        else:
            steps.now = f"jailing the process inside the rootfs {root} (chroot)"
            if before_jail is not None:
                before_jail()
            os.chdir(root)
            os.chroot(".")
            os.chdir("/")
        os.close(go_r)
        if console is not None:
            steps.now = "setting up the terminal"
            open_terminal(console, bind_console=mount_ns)
        if mount_ns:
            steps.now = "finishing the rootfs"
            mounts.finish_rootfs(spec)
        if console is None:
            os.setsid()
        if proc is None:  # created to be joined or killed: `start` refuses it
            os.write(sync_w, b"R")
            if fifo_fd >= 0:
                report_fd = _reopen_fifo(fifo_fd, proc_fds)
            raise SetupError(NO_PROCESS)
        steps.now = "setting rlimits"
        process.set_rlimits(proc.get("rlimits") or [])
        cwd = proc.get("cwd") or "/"
        _ensure_cwd(cwd)
        os.chdir(cwd)
        args = proc.get("args") or []
        if not args:
            raise SetupError("process.args must not be empty")
        path = process.find_executable(args[0], proc.get("env") or [])
        steps.now = "closing inherited file descriptors"
        process.mark_cloexec(3 + options.preserve_fds, proc_fds)
        os.write(sync_w, b"R")
        if fifo_fd >= 0:
            steps.now = "waiting for start on the exec fifo"
            report_fd = _reopen_fifo(fifo_fd, proc_fds)  # blocks until `start`
        os.close(proc_fds)
        steps.now = "starting the container process"
        process.finalize(proc, seccomp_program, path, before_exec=_start_container_hooks(spec, container_id,
                                                                                          options.bundle))
    except SetupError as e:
        _report(report_fd, e.code, str(e), destroy=getattr(e, "destroys", False))
        os._exit(e.code)
    except BaseException as e:  # noqa: BLE001 - everything must reach the caller, then exit
        _report(report_fd, 1, steps.describe(e))
        os._exit(1)
    os._exit(1)


def _reopen_fifo(fifo_fd: int, proc_fds: int) -> int:
    """The exec fifo opened for writing through the O_PATH descriptor: blocks until `start`."""
    if proc_fds >= 0:
        fd = os.open(str(fifo_fd), os.O_WRONLY | os.O_CLOEXEC, dir_fd=proc_fds)
    else:
        fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(fd, b"0")
    return fd


def _before_jail(spec: "dict[str, Any]", options: Options, container_id: str, go_r: int, sync_w: int,
                 root: str):  # noqa: ANN202
    """What runs between the mounts and pivot_root (or chroot): the parent's prestart and
    createRuntime hooks, then the createContainer hooks here, in the container's
    namespaces (the host's paths still reachable). None when the spec has none."""
    hooks_spec = spec.get("hooks") or {}
    pause = any(hooks_spec.get(kind) for kind in _PAUSE_HOOKS)
    in_container = hooks_spec.get("createContainer")
    if not pause and not in_container:
        return None

    def run() -> None:
        if pause:
            os.write(sync_w, b"H")
            if os.read(go_r, 1) != b"g":  # the parent failed (and says why): just go
                os._exit(1)
        if in_container:
            from dockyard.runtime.pyrunc import hooks

            cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            os.chdir(root)  # runc runs them from the rootfs
            try:
                hooks.run("createContainer", in_container,
                          _hook_state(container_id, "creating", os.getpid(), options.bundle, spec))
            finally:
                os.fchdir(cwd)
                os.close(cwd)

    return run


def _run_before_pivot(mounts, before: "Any") -> None:  # noqa: ANN001
    """Have ``before`` run inside mounts.prepare_rootfs once every mount is made, right
    before pivot_root: this process is the container's init and never returns into the
    caller, so the module's pivot step is wrapped here, in this process only."""
    pivot = getattr(mounts, "_pivot", None)
    if pivot is None:  # no such step to wrap: run them before the mounts (still before pivot_root)
        before()
        return

    def pivot_after_hooks(root: str) -> None:
        before()
        pivot(root)

    mounts._pivot = pivot_after_hooks


def _start_container_hooks(spec: "dict[str, Any]", container_id: str, bundle: str):  # noqa: ANN202
    entries = (spec.get("hooks") or {}).get("startContainer")
    if not entries:
        return None

    def run() -> None:
        from dockyard.runtime.pyrunc import hooks

        hooks.run("startContainer", entries, _hook_state(container_id, "created", os.getpid(), bundle, spec),
                  default_env=(spec.get("process") or {}).get("env") or [])

    return run


def _enter_user_namespace(namespaces: "list[dict[str, Any]]", go_r: int, sync_w: int) -> None:
    """The first child's part of a new user namespace (see the module's docstring): returns
    in the init, PID 1 of its PID namespace, as root of the user namespace."""
    from dockyard import linux

    linux.unshare(linux.CLONE_NEWUSER)
    os.write(sync_w, b"U")
    if os.read(go_r, 1) != b"g":
        os._exit(1)
    os.setresgid(0, 0, 0)  # the mapped root, every capability within the namespace
    os.setresuid(0, 0, 0)
    os.setgroups([])
    for ns in namespaces:
        if ns.get("type") == "pid" and not ns.get("path"):
            linux.unshare(linux.CLONE_NEWPID)
    pid = os.fork()
    if pid:
        os.write(sync_w, f"P{pid}\n".encode())
        os._exit(0)


def _join_namespaces(namespaces: "list[dict[str, Any]]") -> bool:
    """setns into the namespaces given by path (all opened first, the user namespace joined
    first and the mount namespace last); whether the container has a mount namespace at
    all, new or joined. The PID namespace is the parent's business (``_enter_pid_namespace``)."""
    from dockyard import linux

    joined: "list[tuple[str, str, int]]" = []
    mount_ns = False
    try:
        for ns in namespaces:
            kind = ns.get("type")
            if kind not in linux.NAMESPACES:
                raise SetupError(f"unknown namespace type {kind!r}")
            if kind == "mount":
                mount_ns = True
            if kind == "pid" or not ns.get("path"):
                continue
            try:
                fd = os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise SetupError(f"joining the {kind} namespace: open {ns['path']}: {e.strerror}") from None
            joined.append((kind, ns["path"], fd))
        joined.sort(key=lambda item: (item[0] != "user", item[0] == "mount"))
        for kind, path, fd in joined:
            try:
                linux.setns(fd, linux.NAMESPACES[kind][0])
            except OSError as e:
                raise SetupError(f"joining the {kind} namespace {path}: setns: {os.strerror(e.errno)}") from None
    finally:
        for _, _, fd in joined:
            os.close(fd)
    return mount_ns


def _unshare_namespaces(namespaces: "list[dict[str, Any]]") -> int:
    """unshare the new namespaces (not the PID and user ones: made before); their flags."""
    from dockyard import linux

    new = 0
    for ns in namespaces:
        kind = ns.get("type")
        if kind not in ("pid", "user") and not ns.get("path"):
            new |= linux.NAMESPACES[kind][0]
    if new:
        try:
            linux.unshare(new)
        except OSError as e:
            names = ",".join(k for k, (flag, _) in linux.NAMESPACES.items() if new & flag)
            raise SetupError(f"creating the namespaces ({names}): unshare: {os.strerror(e.errno)}") from None
    return new


# ------------------------------------------------------------------ error messages

# Steps of the set-up by the function (of mounts.py or process.py) the error came from.
_STEP_OF = {
    "create_devices": "creating device nodes", "_mknod": "creating device nodes",
    "mount_cgroups": "mounting the cgroup filesystems", "mask_path": "masking paths",
    "readonly_path": "making paths read-only", "_pivot": "jailing the process inside the rootfs (pivot_root)",
    "finish_rootfs": "making the rootfs read-only", "set_rlimits": "setting rlimits",
    "open_terminal": "setting up the terminal", "_connect_console": "connecting to the console socket",
}
_OPERATION_OF = {"_mknod": "mknod", "_mkdirs": "mkdir", "mask_path": "mask", "readonly_path": "remount read-only"}
_PATH_NAMES = ("path", "dest", "target", "source", "slave_path")


def _frames(e: BaseException) -> "list[tuple[str, dict[str, Any]]]":
    """(function, locals) of the traceback's frames, innermost first."""
    found = []
    tb = e.__traceback__
    while tb is not None:
        found.append((tb.tb_frame.f_code.co_name, tb.tb_frame.f_locals))
        tb = tb.tb_next
    found.reverse()
    return found


def _refined_step(e: BaseException) -> "str | None":
    for name, local in _frames(e):
        if name == "mount_one" and isinstance(local.get("m"), dict):
            m = local["m"]
            return f"mounting {m.get('source') or m.get('type')} to rootfs at {m.get('destination')}"
        if name == "prepare_rootfs" and "key" in local and "value" in local:
            return f"writing sysctl {local['key']}"
        if name in _STEP_OF:
            return _STEP_OF[name]
    return None


def describe(e: BaseException, root: str = "") -> str:
    """An error's words with the operation and path it concerns ("mknod /dev/null:
    Operation not permitted"); paths inside ``root`` are shown as the container sees them."""
    if isinstance(e, SetupError):
        return str(e)
    if isinstance(e, OSError):
        strerror = e.strerror or (os.strerror(e.errno) if e.errno else str(e))
        if e.errno and strerror != os.strerror(e.errno):
            return strerror  # dockyard.linux's: "mount X on Y: Operation not permitted"
        frames = _frames(e)
        path = e.filename
        if path is None:
            for _, local in frames:
                path = next((local[n] for n in _PATH_NAMES if isinstance(local.get(n), str)), None)
                if path is not None:
                    break
        operation = next((_OPERATION_OF[name] for name, _ in frames if name in _OPERATION_OF), "")
        where = _container_path(str(path), root) if path is not None else ""
        if e.filename2:
            where += f" -> {_container_path(str(e.filename2), root)}"
        return " ".join(p for p in (operation, where) if p) + f": {strerror}" if (operation or where) else strerror
    return f"{type(e).__name__}: {e}"


def _container_path(path: str, root: str) -> str:
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root):] or "/"
    return path


def _ensure_cwd(cwd: str) -> None:
    """A missing cwd is created (runc and crun do); one that is not a directory fails."""
    try:
        os.makedirs(cwd, 0o755, exist_ok=True)
    except FileExistsError:
        pass
    except OSError as e:
        raise SetupError(f"chdir `{cwd}`: {e.strerror}", 126) from None
    if not os.path.isdir(cwd):
        raise SetupError(f"chdir `{cwd}`: Not a directory", 126)


def _connect_console(path: str | None):
    if not path:
        raise SetupError("terminal is set but no --console-socket was given")
    import fcntl  # noqa: F401 - imported before pivot_root, used by open_terminal
    import socket
    import struct  # noqa: F401

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise SetupError(f"connecting to the console socket {path}: {e.strerror}") from None
    return sock


def open_terminal(sock, bind_console: bool = True) -> None:
    """A pty from the container's own devpts: slave on 0-2 as controlling terminal of a new
    session, master to the console socket (SCM_RIGHTS); for the init (``bind_console``),
    /dev/console bound to the slave."""
    import fcntl
    import socket
    import struct

    from dockyard import linux

    master = os.open("/dev/pts/ptmx" if os.path.exists("/dev/pts/ptmx") else "/dev/ptmx",
                     os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, 0x40045431, struct.pack("i", 0))  # TIOCSPTLCK: unlock
    number = struct.unpack("I", fcntl.ioctl(master, 0x80045430, b"\0\0\0\0"))[0]  # TIOCGPTN
    slave_path = f"/dev/pts/{number}"
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
    if bind_console:
        if not os.path.exists("/dev/console"):
            os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        linux.mount(slave_path, "/dev/console", None, linux.MS_BIND)
    socket.send_fds(sock, [slave_path.encode()], [master])
    sock.close()
    os.close(master)
    os.setsid()
    fcntl.ioctl(slave, 0x540E, 0)  # TIOCSCTTY
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def _report(fd: int, code: int, message: str, destroy: bool = False) -> None:
    try:
        os.write(fd, f"{'D' if destroy else 'E'}{code} {message}".encode())
    except OSError:
        pass


def _read_record(fd: int) -> "tuple[str, int, str] | None":
    """(kind, code, message): ("R", 0, "") ready, ("H", 0, "") waiting for the hooks,
    ("U", 0, "") waiting for the user namespace's maps, ("P", pid, "") the init's PID,
    ("E"|"D", code, message) a failure; None for EOF."""
    first = os.read(fd, 1)
    if not first:
        return None
    if first in (b"R", b"H", b"U"):
        return first.decode(), 0, ""
    if first == b"P":  # "P<pid>\n": more records may follow
        digits = b""
        while True:
            c = os.read(fd, 1)
            if c in (b"\n", b""):
                return "P", int(digits or b"0"), ""
            digits += c
    return _parse_failure(first + _read_all(fd))


def _read_records(fd: int) -> "tuple[str, int, str] | None":
    data = _read_all(fd)
    return _parse_failure(data) if data else None


def _parse_failure(data: bytes) -> "tuple[str, int, str]":
    text = data.decode(errors="replace")
    if text[:1] in ("E", "D"):
        code, _, message = text[1:].partition(" ")
        return text[0], (int(code) if code.isdigit() else 1), message
    return "E", 1, f"unexpected message from the container init: {text!r}"


def _read_all(fd: int) -> bytes:
    parts = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def _write_pid_file(path: str, pid: int) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def _forward_signals(pid: int) -> None:
    import _signal

    def forward(signum: int, frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1,
                _signal.SIGUSR2, _signal.SIGWINCH):
        _signal.signal(sig, forward)


# ------------------------------------------------------------------ start / kill / delete

def start(root: str, container_id: str) -> int:
    import select

    container = Container(root, container_id)
    status = container.status()
    if status != "created":
        raise StateError(f"cannot start container `{container_id}`: it is {status}, not created")
    state = container.state
    if state.get("noProcess"):
        raise SetupError(f"cannot start container `{container_id}`: {NO_PROCESS}")
    fd = os.open(container.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        while not poller.poll(50):
            if not process_alive(state["pid"], state.get("starttime")):
                raise StateError(f"container `{container_id}` init died before start")
        os.set_blocking(fd, True)
        data = _read_all(fd)
    finally:
        os.close(fd)
        try:
            os.unlink(container.fifo)
        except FileNotFoundError:
            pass
    if data[:1] != b"0":
        raise StateError(f"container `{container_id}` init did not start")
    if len(data) > 1:
        kind, code, message = _parse_failure(data[1:])
        if kind == "D":  # a startContainer hook failed: the container goes (runtime.md, lifecycle)
            _destroy(container)
        raise SetupError(message, code)
    if state.get("poststart"):
        _poststart(container)
    return 0


def _poststart(container: Container, cgroup: "Cgroup | None" = None) -> None:
    """The poststart hooks, the process started; one failing stops and destroys the
    container and fails the operation (runtime.md, lifecycle step 9)."""
    from dockyard.runtime.pyrunc import hooks

    state = container.state
    try:
        hooks.run("poststart", state["poststart"], hooks.state(container.id, "running", state["pid"],
                                                                state["bundle"], state.get("annotations")))
    except SetupError:
        _destroy(container, cgroup)
        raise


def _poststop(container_id: str, bundle: str, annotations: "dict[str, str] | None",
              entries: "list[dict[str, Any]]") -> None:
    """The poststop hooks: each failure is a warning, the rest still run."""
    from dockyard.runtime.pyrunc import hooks

    hooks.run_warning("poststop", entries, hooks.state(container_id, "stopped", 0, bundle, annotations), warn)


def kill(root: str, container_id: str, signal: int, all_processes: bool = False) -> int:
    container = Container(root, container_id)
    if not container.alive():
        raise StateError(f"container `{container_id}` is not running")
    pids = Cgroup(container.state["cgroup"]).pids() if all_processes else [container.state["pid"]]
    for pid in pids:
        try:
            os.kill(pid, signal)
        except ProcessLookupError:
            pass
    return 0


def pause(root: str, container_id: str) -> int:
    return _freeze(root, container_id, True)


def resume(root: str, container_id: str) -> int:
    return _freeze(root, container_id, False)


def _freeze(root: str, container_id: str, frozen: bool) -> int:
    """Freeze a running container's cgroup, or thaw a paused one."""
    container = Container(root, container_id)
    status = container.status()
    needed = "running" if frozen else "paused"
    if status != needed:
        raise StateError(f"container `{container_id}` is {status}, not {needed}")
    with step(f"{'freezing' if frozen else 'thawing'} cgroup {container.state['cgroup']}"):
        Cgroup(container.state["cgroup"]).freeze(frozen)
    return 0


def delete(root: str, container_id: str, force: bool = False) -> int:
    container = Container(root, container_id)
    if not container.exists():
        if force:
            _remove_dir(container.dir)
            return 0
        raise StateError(f"container `{container_id}` does not exist")
    status = container.status()
    if status in ("running", "paused") and not force:
        raise StateError(f"cannot delete container `{container_id}` that is not stopped: {status}")
    _destroy(container)
    return 0


def _destroy(container: Container, cgroup: "Cgroup | None" = None) -> None:
    """Kill what is left, remove the cgroup and the state, then run the poststop hooks."""
    state = container.state
    cgroup = cgroup or Cgroup(state["cgroup"])
    if process_alive(state["pid"], state.get("starttime")):
        cgroup.thaw()  # a frozen process does not die of SIGKILL until it is thawed
        _kill_and_wait(state["pid"])
    with step(f"removing cgroup {cgroup.path}"):
        cgroup.destroy()
    _remove_dir(container.dir)
    if state.get("poststop"):
        _poststop(container.id, state["bundle"], state.get("annotations"), state["poststop"])


def _kill_and_wait(pid: int, timeout: float = 10.0) -> None:
    import time

    try:
        os.kill(pid, SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while process_alive(pid, None) and time.monotonic() < deadline:
        time.sleep(0.002)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _remove_dir(path: str) -> None:
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(f"{path}/{name}")
        except FileNotFoundError:
            pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
