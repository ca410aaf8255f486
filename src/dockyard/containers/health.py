"""Health checks (``HEALTHCHECK``, ``--health-*``) as Docker 20.10 runs them.

- Config: ``from_flags`` is the docker CLI's parse of the flags (its checks and messages),
  ``merge`` lays the image's HEALTHCHECK under the container's as the daemon does, and
  ``check`` holds the daemon's limits.
- The monitor: once a container with a probe runs, its shim forks a ``Monitor``. Every
  interval (the first one counted from the start) it runs the probe in the container through
  the runtime's exec, as ``exec`` does (``CMD`` as given, ``CMD-SHELL`` through the shell),
  kills it past the timeout, and records the result. A process of its own keeps the shim's
  loop and memory as they are, and it dies with the shim (parent-death signal).
- State: Docker's ``State.Health`` (``Status``, ``FailingStreak``, the last 5 results) in
  ``<container dir>/health.json``, replaced whole by a rename so readers (``inspect``, ``ps``)
  never see half of it. Each change of status is a ``health_status: <status>`` event.

Imported by the shim only for a container that has a probe; standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATE_FILE = "health.json"
STARTING, HEALTHY, UNHEALTHY, NONE = "starting", "healthy", "unhealthy", "none"
STATUSES = (STARTING, HEALTHY, UNHEALTHY, NONE)
SECOND = 1_000_000_000
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_PERIOD = 0
DEFAULT_RETRIES = 3
MIN_DURATION = 1_000_000        # 1ms: the daemon refuses anything shorter (but 0, "the default")
MAX_LOG = 5                     # results kept
MAX_OUTPUT = 4096               # bytes of a probe's output kept, "..." marks the cut
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


# ------------------------------------------------------------------ config


class HealthError(Exception):
    """A flag or setting Docker refuses; ``flag`` errors are the CLI's (exit 125)."""

    def __init__(self, message: str, flag: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.flag = flag


_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000, "s": SECOND,
          "m": 60 * SECOND, "h": 3600 * SECOND}


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration in nanoseconds; ValueError with Go's words."""
    quoted = json.dumps(text, ensure_ascii=False)
    s = text
    negative = False
    if s[:1] in ("-", "+"):
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0
    while s:
        i = 0
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        number = s[:i]
        if not number or number == "." or number.count(".") > 1:
            raise ValueError(f"time: invalid duration {quoted}")
        s = s[i:]
        j = 0
        while j < len(s) and not (s[j].isdigit() or s[j] == "."):
            j += 1
        unit = s[:j]
        s = s[j:]
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _UNITS:
            raise ValueError(f"time: unknown unit {json.dumps(unit, ensure_ascii=False)} in duration {quoted}")
        whole, _, frac = number.partition(".")
        total += int(whole or 0) * _UNITS[unit]
        if frac:
            total += int(frac) * _UNITS[unit] // 10 ** len(frac)
    return -total if negative else total


def format_duration(ns: int) -> str:
    """Go's time.Duration.String(): ``1s``, ``1.5s``, ``500ms``, ``1m30s``, ``2h0m0s``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < SECOND:
        for unit, size in (("ms", 1_000_000), ("\u00b5s", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _decimal(ns, size) + unit
    hours, rest = divmod(ns, 3600 * SECOND)
    minutes, rest = divmod(rest, 60 * SECOND)
    text = _decimal(rest, SECOND) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _decimal(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")


def from_flags(kw: "dict[str, Any]") -> "dict[str, Any] | None":
    """``--health-*`` and ``--no-healthcheck`` into Config.Healthcheck (zero fields left out,
    as Docker's JSON omits them); None when no flag was given."""
    durations = {}
    for flag, key in (("health_interval", "Interval"), ("health_timeout", "Timeout"),
                      ("health_start_period", "StartPeriod")):
        value = kw.get(flag)
        if value is None or value == "":
            durations[key] = 0
            continue
        try:
            durations[key] = parse_duration(str(value))
        except ValueError as e:
            raise HealthError(f'invalid argument "{value}" for "--{flag.replace("_", "-")}" flag: {e}') from None
    retries = int(kw.get("health_retries") or 0)
    cmd = kw.get("health_cmd") or ""
    have = bool(cmd) or retries != 0 or any(durations.values())
    if kw.get("no_healthcheck"):
        if have:
            raise HealthError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not have:
        return None
    for key, flag in (("Interval", "interval"), ("Timeout", "timeout")):
        if durations[key] < 0:
            raise HealthError(f"--health-{flag} cannot be negative")
    if retries < 0:
        raise HealthError("--health-retries cannot be negative")
    if durations["StartPeriod"] < 0:
        raise HealthError("--health-start-period cannot be negative")
    check: "dict[str, Any]" = {}
    if cmd:
        check["Test"] = ["CMD-SHELL", cmd]
    for key in ("Interval", "Timeout", "StartPeriod"):
        if durations[key]:
            check[key] = durations[key]
    if retries:
        check["Retries"] = retries
    return check


def merge(user: "dict[str, Any] | None", image: "dict[str, Any] | None") -> "dict[str, Any] | None":
    """The daemon's merge (daemon/commit.go): the container's settings win, field by field;
    what it leaves empty comes from the image's HEALTHCHECK."""
    if not user:
        return dict(image) if image else None
    merged = dict(user)
    if image:
        for key in ("Test", "Interval", "Timeout", "StartPeriod", "Retries"):
            if not merged.get(key) and image.get(key):
                merged[key] = image[key]
    return merged


def check(health: "dict[str, Any] | None") -> None:
    """The daemon's limits (daemon/container.go); HealthError(flag=False)."""
    if not health:
        return
    for key, name in (("Interval", "Interval"), ("Timeout", "Timeout")):
        value = int(health.get(key) or 0)
        if value and value < MIN_DURATION:
            raise HealthError(f"{name} in Healthcheck cannot be less than 1ms", flag=False)
    if int(health.get("Retries") or 0) < 0:
        raise HealthError("Retries in Healthcheck cannot be negative", flag=False)
    value = int(health.get("StartPeriod") or 0)
    if value and value < MIN_DURATION:
        raise HealthError("StartPeriod in Healthcheck cannot be less than 1ms", flag=False)


def probe_command(health: "dict[str, Any] | None", shell: "list[str] | None" = None) -> "list[str] | None":
    """The argv the probe runs; None when there is nothing to run (no test, ``NONE``)."""
    test = list((health or {}).get("Test") or [])
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return test[1:] or None
    if test[0] == "CMD-SHELL":
        return list(shell or ["/bin/sh", "-c"]) + [" ".join(test[1:])]
    return None   # Docker: an unknown test type runs nothing


def shim_config(config: "dict[str, Any]") -> "dict[str, Any] | None":
    """What the shim needs to run the container's probe (None: no probe)."""
    health = config.get("Healthcheck")
    argv = probe_command(health, config.get("Shell"))
    if argv is None:
        return None
    return {"argv": argv,
            "interval": int(health.get("Interval") or 0) or DEFAULT_INTERVAL,
            "timeout": int(health.get("Timeout") or 0) or DEFAULT_TIMEOUT,
            "start_period": int(health.get("StartPeriod") or 0) or DEFAULT_START_PERIOD,
            "retries": int(health.get("Retries") or 0) if int(health.get("Retries") or 0) > 0 else DEFAULT_RETRIES}


# ------------------------------------------------------------------ state


def state_path(container_dir: str) -> str:
    return os.path.join(container_dir, STATE_FILE)


def read_state(container_dir: str) -> "dict[str, Any] | None":
    try:
        with open(state_path(container_dir), "rb") as f:
            state = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def write_state(container_dir: str, state: "dict[str, Any]") -> None:
    """Replace the state file whole (a reader sees the old state or the new one)."""
    path = state_path(container_dir)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(json.dumps({"Status": state["Status"], "FailingStreak": state["FailingStreak"],
                            "Log": state["Log"]}, separators=(",", ":")).encode())
    os.replace(tmp, path)


def has_probe(config: "dict[str, Any]") -> bool:
    return probe_command(config.get("Healthcheck"), config.get("Shell")) is not None


def state_of(config: "dict[str, Any]", container_dir: str, running: bool) -> "dict[str, Any] | None":
    """``State.Health`` as inspect shows it: None for a container never started with a probe."""
    state = read_state(container_dir)
    if state is None and running and has_probe(config):
        return {"Status": STARTING, "FailingStreak": 0, "Log": []}   # its shim is writing the first one
    return state


def status_of(config: "dict[str, Any]", container_dir: str, running: bool) -> str:
    """What ``ps --filter health=`` matches: starting, healthy, unhealthy or none."""
    state = state_of(config, container_dir, running) if config.get("Healthcheck") else None
    return str(state.get("Status") or NONE) if state else NONE


def label(status: str) -> str:
    """The words ``ps`` puts after ``Up ...``."""
    return "health: starting" if status == STARTING else status


def timestamp(ns: int) -> str:
    """Go's JSON of a UTC time: RFC 3339 with nanoseconds, trailing zeros dropped."""
    secs, frac = divmod(ns, SECOND)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        text += ("." + f"{frac:09d}").rstrip("0")
    return text + "Z"


def mark_stopped(container_dir: str) -> None:
    """The container stopped: Docker 20.10 shows its health as unhealthy from then on."""
    state = read_state(container_dir)
    if state is not None and state.get("Status") != UNHEALTHY:
        state["Status"] = UNHEALTHY
        try:
            write_state(container_dir, state)
        except OSError:
            pass


# ------------------------------------------------------------------ the monitor


class Monitor:
    """The shim's handle on the monitor process of one run of the container."""

    def __init__(self, pid: int, pidfd: int, container_dir: str) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.container_dir = container_dir

    @classmethod
    def start(cls, cfg: "dict[str, Any]", runtime: "Any", started_at: float) -> "Monitor":
        """Reset the state to ``starting`` (the log is kept) and fork the monitor."""
        cdir = cfg["container_dir"]
        state = read_state(cdir) or {"Log": []}
        state.update(Status=STARTING, FailingStreak=0)
        state["Log"] = list(state.get("Log") or [])[-MAX_LOG:]
        write_state(cdir, state)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _Checker(cfg, runtime, started_at, state).run()
            except BaseException:  # noqa: BLE001 - a child of the shim never returns into it
                import traceback

                traceback.print_exc()
                code = 1
            os._exit(code)
        return cls(pid, os.pidfd_open(pid), cdir)

    def stop(self, wait: float = 2.0) -> None:
        """End the monitor (it kills a probe still running), then mark the container stopped."""
        import select

        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                signal.pidfd_send_signal(self.pidfd, sig)
            except ProcessLookupError:
                break
            if select.select([self.pidfd], [], [], wait)[0]:
                break
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass   # the shim's reaper was first
        os.close(self.pidfd)
        mark_stopped(self.container_dir)


class _Checker:
    """The monitor process's loop."""

    def __init__(self, cfg: "dict[str, Any]", runtime: "Any", started_at: float, state: "dict[str, Any]") -> None:
        self.cfg = cfg
        self.health = cfg["health"]
        self.rt = runtime
        self.started_at = started_at
        self.state = state

    def _detach_from_shim(self) -> None:
        """Nothing of the shim's: its signal handlers, wake-up pipe, sockets and the container's
        stdio (a held stdin pipe would keep the container from seeing EOF)."""
        from dockyard import linux

        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGUSR1, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, self._on_term)
        os.closerange(3, 65536)
        linux.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the shim died before the line above
            os._exit(0)
        # Whatever a probe leaves behind (its runtime's grandchildren) stays below us, to be killed.
        linux.prctl(PR_SET_CHILD_SUBREAPER, 1)

    def _on_term(self, *_: "Any") -> None:
        _kill_descendants(os.getpid())
        os._exit(0)

    def run(self) -> None:
        self._detach_from_shim()
        interval = self.health["interval"] / SECOND
        next_at = self.started_at + interval
        while True:
            delay = next_at - time.time()
            if delay > 0:
                time.sleep(delay)
            if _frozen(self.cfg.get("cgroup")):   # Docker: no probes while paused
                next_at = time.time() + interval
                continue
            self._record(self._probe())
            next_at = time.time() + interval

    def _probe(self) -> "dict[str, Any]":
        import selectors

        argv = self.health["argv"]
        timeout = self.health["timeout"]
        # Docker runs each probe as an exec of the container, and says so: exec_create,
        # exec_start, then exec_die with its code (before any health_status the result brings).
        exec_id = os.urandom(32).hex()
        action = _exec_action(argv)
        _event(self.cfg, "exec_create: " + action, execID=exec_id)
        _event(self.cfg, "exec_start: " + action, execID=exec_id)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        start = time.time_ns()
        pid = os.fork()
        if pid == 0:
            os.close(out_r)
            os.close(err_r)
            _exec_probe(self.rt, self.cfg["id"], argv, out_w, err_w)
        os.close(out_w)
        os.close(err_w)
        pidfd = os.pidfd_open(pid)
        output = bytearray()
        cut: "list[bool]" = []   # non-empty once output was cut at MAX_OUTPUT
        sel = selectors.DefaultSelector()
        sel.register(out_r, selectors.EVENT_READ, "out")
        sel.register(pidfd, selectors.EVENT_READ, "exit")
        deadline = time.monotonic() + timeout / SECOND
        exited = False
        try:
            while not exited:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    end = time.time_ns()
                    _kill_descendants(os.getpid())
                    _event(self.cfg, "exec_die", execID=exec_id, exitCode=str(_exit_code(_reap(pid))))
                    return {"Start": timestamp(start), "End": timestamp(end), "ExitCode": -1,
                            "Output": f"Health check exceeded timeout ({format_duration(timeout)})", "_start": start}
                for key, _ in sel.select(remaining):
                    if key.data == "exit":
                        exited = True
                    elif _read_into(out_r, output, cut):
                        sel.unregister(out_r)   # EOF: only the exit is left to wait for
            os.set_blocking(out_r, False)
            _read_into(out_r, output, cut, drain=True)
        finally:
            sel.close()
            os.close(out_r)
            os.close(pidfd)
        status = _reap(pid)
        end = time.time_ns()
        _event(self.cfg, "exec_die", execID=exec_id, exitCode=str(_exit_code(status)))
        os.set_blocking(err_r, False)
        try:
            error = os.read(err_r, 65536).decode(errors="replace")
        except BlockingIOError:
            error = ""
        os.close(err_r)
        if error:   # the runtime could not run it: Docker records its error
            return {"Start": timestamp(start), "End": timestamp(end), "ExitCode": -1, "Output": error,
                    "_start": start}
        code = os.waitstatus_to_exitcode(status) if status is not None else -1
        text = bytes(output).decode("utf-8", "replace") + ("..." if cut else "")
        return {"Start": timestamp(start), "End": timestamp(end), "ExitCode": code if code >= 0 else -1,
                "Output": text, "_start": start}

    def _record(self, result: "dict[str, Any]") -> None:
        """Docker's handleProbeResult: the log, the streak, the status, an event on a change."""
        state = self.state
        old = state["Status"]
        start_ns = result.pop("_start")
        state["Log"] = (state["Log"] + [result])[-MAX_LOG:]
        if result["ExitCode"] == 0:
            state["FailingStreak"] = 0
            state["Status"] = HEALTHY
        else:
            counts = True
            if state["Status"] == STARTING:
                # A failure within the start period does not count until a check has passed.
                counts = start_ns - int(self.started_at * SECOND) >= self.health["start_period"]
            if counts:
                state["FailingStreak"] += 1
                if state["FailingStreak"] >= self.health["retries"]:
                    state["Status"] = UNHEALTHY
        try:
            write_state(self.cfg["container_dir"], state)
        except OSError as e:
            _note(f"health: cannot write the state: {e}")
        if state["Status"] != old:
            _event(self.cfg, f"health_status: {state['Status']}")


def _event(cfg: "dict[str, Any]", action: str, **extra: str) -> None:
    """A container event, with the name it has now (shim.py's ``event``: a rename while it runs
    leaves the new name beside the shim's socket)."""
    from dockyard import events

    attrs = {**(cfg.get("event_attrs") or {}), **extra}
    try:
        with open(os.path.join(os.path.dirname(cfg["socket"]), "name")) as f:
            attrs["name"] = f.read()
    except (OSError, KeyError):
        pass
    events.record(cfg["root"], "container", action, cfg["id"], attrs)


def _exec_action(argv: "list[str]") -> str:
    from dockyard.containers.execute import exec_action

    return exec_action(argv)


def _exit_code(status: "int | None") -> int:
    """The probe process's exit code as Docker reports an exec's (128 + signal if killed)."""
    if status is None:
        return -1
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _exec_probe(runtime: "Any", cid: str, argv: "list[str]", out_w: int, err_w: int) -> None:
    """In the probe's own process: run ``argv`` in the container; exit with its code."""
    from dockyard import linux

    code = 255
    try:
        linux.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        code = runtime.exec(cid, argv, stdio=(devnull, out_w, out_w)) & 0xFF
    except BaseException as e:  # noqa: BLE001 - the monitor records what went wrong
        detail = getattr(e, "detail", "") or getattr(e, "message", "") or str(e)
        message = f"OCI runtime exec failed: {detail.strip()}" if type(e).__name__ == "OCIRuntimeError" else \
            f"{type(e).__name__}: {e}"
        try:
            os.write(err_w, message.encode())
        except OSError:
            pass
    os._exit(code)


def _read_into(fd: int, output: bytearray, cut: "list[bool]", drain: bool = False) -> bool:
    """Read what the probe wrote, keeping at most MAX_OUTPUT bytes (``cut`` notes a cut);
    True at EOF."""
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if not data:
            return True
        room = MAX_OUTPUT - len(output)
        if room > 0:
            output += data[:room]
        if len(data) > max(room, 0) and not cut:
            cut.append(True)
        if not drain:
            return False


def _reap(pid: int) -> "int | None":
    """Wait for the probe's process (and any orphan that came to us); its wait status."""
    status = None
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    while True:
        try:
            other, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if other == 0:
            break
    return status


def _kill_descendants(top: int) -> None:
    """SIGKILL every process below ``top`` (the probe, its runtime and what it ran in the
    container: as a subreaper we keep them all below us), until none is left."""
    for _ in range(20):
        children: "dict[int, list[int]]" = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    data = f.read()
            except OSError:
                continue
            fields = data[data.rindex(b")") + 2:].split()
            if fields[0] in (b"Z", b"X"):
                continue
            children.setdefault(int(fields[1]), []).append(int(name))
        found, todo = [], list(children.get(top, []))
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += children.get(pid, [])
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def _frozen(cgroup: "str | None") -> bool:
    """Whether the container's cgroup is frozen (paused)."""
    if not cgroup:
        return False
    try:
        from dockyard.runtime.cgroupfs import CgroupPaths

        paths = CgroupPaths(cgroup)
        v2 = paths.v2_dir()
        if v2:
            with open(os.path.join(v2, "cgroup.freeze")) as f:
                return f.read().strip() == "1"
        freezer = paths.dir("freezer")
        if freezer:
            with open(os.path.join(freezer, "freezer.state")) as f:
                return f.read().strip() != "THAWED"
    except OSError:
        return False
    return False


def _note(text: str) -> None:
    """A line in shim.log (the monitor is the shim's child and shares its stderr)."""
    from dockyard.containers.shim import _note as shim_note   # loaded already in the monitor

    shim_note(text)
