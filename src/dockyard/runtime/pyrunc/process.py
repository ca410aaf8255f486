"""The last steps before execve, shared by a container's init and ``exec``: the binary
lookup, rlimits, user and groups, capabilities, no_new_privs, seccomp.

Failures become ``SetupError`` with the exit code Docker gives them (127: not found,
126: not executable) and a message in crun's words.
"""

from __future__ import annotations

import _signal
import os
import resource

from dockyard import linux, saferoot
from dockyard.runtime.pyrunc import caps
from dockyard.runtime.pyrunc.state import SetupError  # defined with StateError: see there

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

_RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
_INFINITY = 2**64 - 1


def env_path(env: "list[str]") -> str:
    for item in env:
        if item.startswith("PATH="):
            return item[5:]
    return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def find_executable(name: str, env: "list[str]") -> str:
    """The path execve will get, checked the way crun checks it (in the container's root)."""
    if "/" in name:
        candidates = [name]
    else:
        candidates = [(d or ".") + "/" + name for d in env_path(env).split(":")]
    denied = None
    for path in candidates:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if (st.st_mode & 0o170000) != 0o100000:
            denied = path
            continue
        if not os.access(path, os.X_OK):
            denied = path
            continue
        return path
    if denied is not None:
        raise SetupError(f"exec `{name}`: Permission denied", 126)
    if "/" in name:
        raise SetupError(f"executable file `{name}` not found: No such file or directory", 127)
    raise SetupError(f"executable file `{name}` not found in $PATH: No such file or directory", 127)


def set_rlimits(rlimits: "list[dict[str, Any]]") -> None:
    for r in rlimits:
        kind = _RLIMITS.get(r["type"])
        if kind is None:
            raise SetupError(f"unknown rlimit {r['type']}")
        soft = resource.RLIM_INFINITY if r["soft"] >= _INFINITY else r["soft"]
        hard = resource.RLIM_INFINITY if r["hard"] >= _INFINITY else r["hard"]
        try:
            resource.setrlimit(kind, (soft, hard))
        except (OSError, ValueError) as e:
            raise SetupError(f"setrlimit `{r['type']}`: {e}") from None


def mark_cloexec(keep_below: int, proc_fds: int = -1) -> None:
    """Inherited descriptors must not reach the container (they may be host files).
    ``proc_fds``: an open /proc/self/fd, for a process chrooted where /proc is missing."""
    for name in os.listdir(proc_fds if proc_fds >= 0 else "/proc/self/fd"):
        fd = int(name)
        if fd >= keep_below:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass


def reset_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ; ignored signals survive execve."""
    for sig in (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP,
                _signal.SIGQUIT, _signal.SIGUSR1, _signal.SIGUSR2, _signal.SIGCHLD):
        _signal.signal(sig, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


def set_oom_score_adj(value: int) -> None:
    """process.oomScoreAdj, for this process and what it execs and forks."""
    path = "/proc/self/oom_score_adj"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise SetupError(f"setting oom_score_adj to {value}: write {path}: {e.strerror}") from None


def apply_apparmor(profile: str) -> None:
    """The AppArmor profile the next execve enters (libapparmor's aa_change_onexec, as runc
    does it). Callers have checked that AppArmor is enabled (container.check_process)."""
    data = f"exec {profile}".encode()
    for path in ("/proc/thread-self/attr/apparmor/exec", "/proc/thread-self/attr/exec"):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise SetupError(f"applying the apparmor profile {profile}: open {path}: {e.strerror}") from None
        try:
            os.write(fd, data)
            return
        except OSError as e:
            raise SetupError(f"applying the apparmor profile {profile}: write {path}: {e.strerror}") from None
        finally:
            os.close(fd)
    raise SetupError(f"applying the apparmor profile {profile}: no /proc/thread-self/attr/apparmor/exec")


def finalize(process: "dict[str, Any]", seccomp_program: "bytes | None", path: str,
             before_exec: "Callable[[], None] | None" = None) -> None:
    """From root with every capability to the configured process, then execve(path).

    Order as runc: bounding set, (seccomp here if no_new_privs is off, while we still
    hold CAP_SYS_ADMIN), user switch with KEEPCAPS, chdir, capset, no_new_privs, seccomp,
    ``before_exec`` (the startContainer hooks), execve.
    """
    last = caps.last_cap()
    capabilities = process.get("capabilities")
    nnp = bool(process.get("noNewPrivileges"))
    if capabilities is not None:
        try:
            caps.drop_bounding(caps.mask(capabilities.get("bounding"), last), last)
        except OSError as e:
            raise SetupError(f"dropping capabilities from the bounding set: {_strerror(e)}") from None
    if seccomp_program is not None and not nnp:
        _load_seccomp(seccomp_program)
    user = process.get("user") or {}
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    linux.prctl(linux.PR_SET_KEEPCAPS, 1)
    try:
        os.setgroups(user.get("additionalGids") or [])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise SetupError(f"setting user {uid}:{gid}: {e.strerror}") from None
    linux.prctl(linux.PR_SET_KEEPCAPS, 0)
    cwd = process.get("cwd") or "/"
    try:
        os.chdir(cwd)
        saferoot.check_cwd()  # not through a leaked host directory fd (CVE-2024-21626)
    except OSError as e:
        raise SetupError(f"chdir `{cwd}`: {e.strerror}", 127 if e.errno == 2 else 126) from None
    if capabilities is not None:
        try:
            caps.apply(capabilities, last)
        except OSError as e:
            raise SetupError(f"setting capabilities: {_strerror(e)}") from None
    if nnp:
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
        if seccomp_program is not None:
            _load_seccomp(seccomp_program)
    if before_exec is not None:
        before_exec()
    reset_signals()
    try:
        os.execve(path, process["args"], _env_dict(process.get("env") or []))
    except OSError as e:
        code = 127 if e.errno == 2 else 126
        raise SetupError(f"exec container process `{path}`: {e.strerror}", code) from None


def prepare_seccomp(profile: "dict[str, Any] | None", cache_dir: "str | None") -> "bytes | None":
    """The compiled filter, made while the host's files (libseccomp, the cache) are
    still reachable: call before pivot_root or setns into the mount namespace."""
    if profile is None:
        return None
    from dockyard.runtime.pyrunc import seccomp

    try:
        return seccomp.prepare(profile, cache_dir)
    except (OSError, ValueError, KeyError) as e:
        raise SetupError(f"seccomp: compiling linux.seccomp: {e}") from None


def _load_seccomp(program: bytes) -> None:
    from dockyard.runtime.pyrunc import seccomp

    try:
        seccomp.install(program)
    except OSError as e:
        raise SetupError(f"seccomp: loading the filter: {e}") from None


def _strerror(e: OSError) -> str:
    return e.strerror or str(e)


def _env_dict(env: "list[str]") -> "dict[str, str]":
    result = {}
    for item in env:
        key, _, value = item.partition("=")
        result[key] = value
    return result
