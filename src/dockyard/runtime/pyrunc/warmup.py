"""Warm the kernel's cgroup migration lock while pyrunc starts up.

The first cgroup migration after a quiet spell waits for an RCU grace period (8-20 ms
here) while the kernel switches its global cgroup_threadgroup_rwsem to writer mode;
migrations within about a grace period of the last one do not wait. ``start`` moves this
process, from a thread, into the cgroup it is already in: a no-op for every controller
(the kernel skips tasks already in the target) that still takes the lock. The wait then
overlaps our imports and set-up instead of following the fork, and repeating the move
every few milliseconds until ``stop`` keeps the lock ready for the container's own
migration (``Cgroup.add``) right after the fork.

Imported before os: only built-in modules here (posix is what os wraps).
"""

import _thread
import posix
import time

_threads = None  # (lock the thread holds while it runs, lock held until it must stop)


def start() -> None:
    global _threads
    running = _thread.allocate_lock()
    stopping = _thread.allocate_lock()
    running.acquire()
    stopping.acquire()
    _threads = (running, stopping)
    try:
        _thread.start_new_thread(_work, (running, stopping))
    except RuntimeError:
        running.release()


def stop(wait: bool = True) -> None:
    """Stop the thread; with ``wait``, also wait for it, as pyrunc does before it forks the
    container's init. Without, a move still in the kernel (it can wait out a whole grace
    period) finishes on its own: the shim forks meanwhile, and the thread, holding no
    lock but blocked in write(2), simply does not exist in the child."""
    global _threads
    if _threads is not None:
        running, stopping = _threads
        _threads = None
        stopping.release()
        if wait:
            running.acquire()


def _work(running, stopping) -> None:
    try:
        found = _own_procs_file()
        if found is None:
            return
        path, own = found
        pid = str(posix.getpid()).encode()
        with open(path, "rb") as f:  # our own cgroup, surely: then the write moves nothing
            if pid not in f.read().split():
                return
        deadline = time.monotonic() + 2.0
        last = False
        while True:
            with open("/proc/self/cgroup", "rb") as f:
                if f.read() != own:  # moved by someone else meanwhile: never move back
                    return
            fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
            try:
                posix.write(fd, pid)
            finally:
                posix.close(fd)
            if last or time.monotonic() > deadline:
                return
            last = stopping.acquire(True, 0.002)  # a sleep that ``stop`` cuts short
    except (OSError, ValueError):
        pass  # only an optimisation
    finally:
        running.release()


def _own_procs_file() -> "tuple[str, bytes] | None":
    """cgroup.procs of this process's own cgroup in one hierarchy (cgroup2 preferred), and
    /proc/self/cgroup as read."""
    with open("/proc/self/cgroup", "rb") as f:
        raw = f.read()
    own = {}  # controllers ("" for cgroup2) -> path
    for line in raw.decode().splitlines():
        _, controllers, path = line.split(":", 2)
        own[controllers] = path
    candidates = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype = fields[sep + 1]
            if fstype == "cgroup2":
                key = ""
            elif fstype == "cgroup":  # super options "rw,cpu,cpuacct" / "rw,name=systemd"
                key = ",".join(o for o in fields[sep + 3].split(",")
                               if o not in ("rw", "ro") and "=" not in o or o.startswith("name="))
            else:
                continue
            path = own.get(key)
            if path is None:
                continue
            mount_root, point = fields[3], fields[4]
            if mount_root != "/":
                if path != mount_root and not path.startswith(mount_root + "/"):
                    continue
                path = path[len(mount_root):]
            candidates.append((key != "", point + path.rstrip("/") + "/cgroup.procs"))
    return (min(candidates)[1], raw) if candidates else None
