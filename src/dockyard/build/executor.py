"""RUN: one process in a snapshot's rootfs, through the engine's runtime adapter.

The step is an OCI bundle like a container's (Docker's default capabilities, seccomp, masked
paths), but no container record: its ID is ``dyb-<snapshot name>``, its runtime state lives
under ``<runroot>/build/runtime/<runtime>``, and it is deleted when the process ends. The
builder is the children's subreaper, so it waits for the step's init itself (only that pid:
stages may run steps concurrently, and a wait for any child would take another's); output comes
through a pipe, line by line, to the progress printer. When the init exits the PID namespace
goes with it, so a daemon the step left cannot hold the build.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from dockyard.engine import Engine

ID_PREFIX = "dyb-"
HOSTNAME = "buildkitsandbox"   # what BuildKit names the host of a RUN step


def runtime_root(engine: "Engine", name: str) -> str:
    return os.path.join(engine.settings.runroot, "build", "runtime", name)


class StepProcess:
    """What RUN executes and where."""

    def __init__(self, args: "list[str]", env: "list[str]", workdir: str, user: str, network: str,
                 mounts: "list[dict[str, Any]]", etc_dir: str) -> None:
        self.args = args
        self.env = env
        self.workdir = workdir
        self.user = user
        self.network = network          # "host" | "none" | a netns path
        self.mounts = mounts            # extra OCI mounts (RUN --mount)
        self.etc_dir = etc_dir          # holds hosts and resolv.conf for the step


def run(engine: "Engine", runtime_name: str, snapshot_name: str, rootfs: str, bundle_dir: str,
        process: StepProcess, output: "Callable[[bytes], None]") -> int:
    """Run ``process`` in ``rootfs`` to its end; its exit code (128+n for a signal)."""
    from dockyard import linux
    from dockyard.runtime import spec as specs
    from dockyard.runtime.adapter import open_runtime

    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    cid = ID_PREFIX + snapshot_name
    mounts = [_bind(os.path.join(process.etc_dir, name), f"/etc/{name}") for name in ("hosts", "resolv.conf")]
    created = _missing_mountpoints(rootfs, [m["destination"] for m in mounts + process.mounts])
    options = specs.RunOptions(command=process.args, entrypoint=[], env=process.env, workdir=process.workdir,
                               user=process.user, hostname=HOSTNAME, network=process.network,
                               mounts=mounts + process.mounts,
                               cgroups_path=f"/{os.environ.get('DOCKYARD_CGROUP_PARENT', 'dockyard')}/{cid}")
    spec = specs.build({}, rootfs, options, cid)
    specs.write_bundle(bundle_dir, spec)
    runtime = open_runtime(runtime_name, runtime_root(engine, runtime_name))
    pid_file = os.path.join(bundle_dir, "pid")
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            runtime.create(cid, bundle_dir, stdio=(devnull, write_end, write_end), pid_file=pid_file)
        finally:
            os.close(write_end)
            os.close(devnull)
        try:
            runtime.start(cid)
            with open(pid_file) as f:
                pid = int(f.read().strip())
            code = _pump_until_exit(read_end, pid, output)
        finally:
            try:
                runtime.delete(cid, force=True)
            except Exception:  # noqa: BLE001 - the step's result matters more than its clean-up
                pass
    finally:
        os.close(read_end)
    _remove_created(rootfs, created)
    return code


def _bind(source: str, destination: str) -> "dict[str, Any]":
    return {"destination": destination, "type": "bind", "source": source, "options": ["rbind", "ro"]}


def _missing_mountpoints(rootfs: str, destinations: "list[str]") -> "list[str]":
    """The mount targets the runtime will have to create in the snapshot (they do not belong
    in the layer: BuildKit removes them too)."""
    from dockyard.fsutil import in_root

    missing = []
    for dest in destinations:
        path = in_root(rootfs, dest)
        if not os.path.lexists(path):
            missing.append(path)
    return missing


def _remove_created(rootfs: str, paths: "list[str]") -> None:
    for path in sorted(paths, key=len, reverse=True):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)   # only if the step left it empty
            elif os.path.isfile(path) and os.path.getsize(path) == 0:
                os.unlink(path)
        except OSError:
            pass


def _pump_until_exit(fd: int, pid: int, output: "Callable[[bytes], None]") -> int:
    """Copy the step's output to ``output`` until its init exits (then what is left in the
    pipe); its exit code."""
    import select

    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        done = False
        while not done:
            for ready, _ in poller.poll():
                if ready == pidfd:
                    done = True
                elif not _copy(fd, output):
                    done = True
        os.set_blocking(fd, False)
        while _copy(fd, output):   # what the init wrote just before it exited
            pass
    finally:
        os.close(pidfd)
    return _wait(pid)


def _copy(fd: int, output: "Callable[[bytes], None]") -> bool:
    try:
        data = os.read(fd, 65536)
    except BlockingIOError:
        return False
    if data:
        output(data)
    return bool(data)


def _wait(pid: int) -> int:
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return 0 if not os.path.exists(f"/proc/{pid}") else 1
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def reclaim(engine: "Engine", alive: "Callable[[str], bool]") -> list[str]:
    """Delete the runtime state of steps whose build is gone (killed -9 mid-RUN)."""
    from dockyard.runtime import RUNTIMES
    from dockyard.runtime.adapter import OCIRuntimeError, open_runtime

    gone = []
    for name in RUNTIMES:
        root = runtime_root(engine, name)
        try:
            ids = [i for i in os.listdir(root) if i.startswith(ID_PREFIX)]
        except FileNotFoundError:
            continue
        for cid in ids:
            if alive(cid[len(ID_PREFIX):]):
                continue
            try:
                open_runtime(name, root).delete(cid, force=True)
            except OSError:
                pass
            except OCIRuntimeError:
                pass
            # whatever the runtime's delete could not stop (its state half written when the
            # build died): the step's cgroup holds it
            from dockyard.fsutil import kill_cgroup

            kill_cgroup(f"{os.environ.get('DOCKYARD_CGROUP_PARENT', 'dockyard')}/{cid}")
            gone.append(cid)
    return gone
