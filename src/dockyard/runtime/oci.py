"""The runtime interface (``adapter.Runtime``) over a runc-compatible command: crun, runc,
or pyrunc's own CLI. Only the command prefix differs between them.

A failure becomes ``OCIRuntimeError`` carrying the exit code Docker would report: 127
when the command or cwd is missing, 126 when it cannot be executed, 125 for any other
runtime failure. Besides the interface's verbs, ``run`` (create+start+wait+delete in the
foreground) serves the runtime tests and benchmarks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from dockyard.runtime import RUNTIMES  # noqa: F401 - re-exported
from dockyard.runtime.adapter import OCIRuntimeError, Runtime, RuntimeState
from dockyard.runtime.exitcodes import runtime_exit_code

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import IO, Any, Sequence

_Stream = "int | IO[Any] | None"
ContainerState = RuntimeState  # the name the runtime tests know

_PYRUNC_MAIN = "import sys; sys.path.insert(0, {path!r}); from dockyard.runtime.pyrunc.cli import entry; entry()"


def pyrunc_command() -> list[str]:
    """What ``python -m dockyard.runtime.pyrunc`` does, minus its cost: -S skips site (and
    every .pth file it runs) and -c skips runpy; together most of the start-up here.

    -I (isolated) ignores the PYTHON* variables: above all PYTHONDONTWRITEBYTECODE, which
    would make every run compile pyrunc from source again (~30 ms); and it keeps the
    working directory off sys.path. The package's own parent goes on sys.path instead."""
    package_parent = str(Path(__file__).resolve().parents[2])
    return [sys.executable, "-I", "-S", "-c", _PYRUNC_MAIN.format(path=package_parent)]


class OCIRuntime(Runtime):
    def __init__(self, name: str = "pyrunc", root: str | os.PathLike | None = None,
                 command: Sequence[str] | None = None) -> None:
        super().__init__(str(root) if root is not None else "/run/" + name)
        self.name = name
        if command is not None:
            self.command = list(command)
        elif name == "pyrunc":
            self.command = pyrunc_command()
        else:
            path = shutil.which(name)
            if path is None:
                raise OCIRuntimeError(f"OCI runtime {name!r} not found in PATH")
            self.command = [path]
        self._root_given = root is not None
        self._env = None
        if name == "pyrunc":
            # -S drops site-packages from sys.path: point at the package we are part of
            # (pyrunc_command's -I ignores this and sets sys.path itself; a custom
            # ``command`` such as ``python -S -m dockyard.runtime.pyrunc`` relies on it).
            package_parent = str(Path(__file__).resolve().parents[2])
            self._env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)}

    # ------------------------------------------------------------------ plumbing

    def argv(self, *args: str) -> list[str]:
        base = list(self.command)
        if self._root_given:
            base += ["--root", self.root]
        return base + [str(a) for a in args]

    def _run(self, args: Sequence[str], *, stdin: _Stream = subprocess.DEVNULL, stdout: _Stream = subprocess.PIPE,
             stderr: _Stream = subprocess.PIPE, timeout: float | None = 60, check: bool = True,
             pass_fds: Sequence[int] = ()) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(self.argv(*args), stdin=stdin, stdout=stdout, stderr=stderr, timeout=timeout,
                                env=self._env, pass_fds=tuple(pass_fds))
        if check and result.returncode != 0:
            raise self._error(args[0], result)
        return result

    def _error(self, verb: str, result: subprocess.CompletedProcess[bytes]) -> OCIRuntimeError:
        detail = _last_message(result.stderr) or _last_message(result.stdout)
        message = detail or f"exit status {result.returncode}"
        code = runtime_exit_code(result.returncode, message)
        return OCIRuntimeError(f"{self.name} {verb} failed: {message}", exit_code=code, detail=detail,
                               status=result.returncode)

    # ------------------------------------------------------------------ verbs

    def create(self, container_id: str, bundle: str | os.PathLike, *, stdio: "tuple[int, int, int] | None" = None,
               pid_file: str | None = None, console_socket: str | None = None,
               stdin: _Stream = subprocess.DEVNULL, stdout: _Stream = None, stderr: _Stream = None,
               timeout: float | None = 60) -> None:
        """Create the container; its process inherits ``stdio`` (or ``stdin``/``stdout``/
        ``stderr``). The runtime's own errors are read from a file of ours unless a
        stderr is given (then they went there, with the container's own)."""
        if stdio is not None:
            stdin, stdout, stderr = stdio
        args = ["create", "--bundle", str(bundle)]
        if pid_file:
            args += ["--pid-file", pid_file]
        if console_socket:
            args += ["--console-socket", console_socket]
        args.append(container_id)
        self._run_container_verb(args, stdin, stdout, stderr, timeout)

    def start(self, container_id: str, timeout: float | None = 60) -> None:
        self._run(["start", container_id], timeout=timeout)

    def run(self, container_id: str, bundle: str | os.PathLike, *, stdin: _Stream = subprocess.DEVNULL,
            stdout: _Stream = subprocess.PIPE, stderr: _Stream = subprocess.PIPE,
            timeout: float | None = 120) -> subprocess.CompletedProcess[bytes]:
        """Run in the foreground and delete; returns the completed process (the container's
        exit code, 128+n for a signal). Start failures raise OCIRuntimeError."""
        result = self._run(["run", "--bundle", str(bundle), container_id], stdin=stdin, stdout=stdout,
                           stderr=stderr, timeout=timeout, check=False)
        if result.returncode != 0 and _is_runtime_failure(self.name, result.stderr):
            raise self._error("run", result)
        return result

    def state(self, container_id: str) -> RuntimeState:
        out = self._run(["state", container_id]).stdout
        raw = json.loads(out)
        return RuntimeState(raw["id"], raw["status"], int(raw.get("pid") or 0), raw.get("bundle", ""), raw)

    def kill(self, container_id: str, signal: int | str = "SIGTERM", all_processes: bool = False) -> None:
        sig = str(int(signal)) if isinstance(signal, int) else signal
        args = ["kill"] + (["--all"] if all_processes else []) + [container_id, sig]
        self._run(args)

    def delete(self, container_id: str, force: bool = False) -> None:
        self._run(["delete"] + (["--force"] if force else []) + [container_id])

    def pause(self, container_id: str) -> None:
        self._run(["pause", container_id])

    def resume(self, container_id: str) -> None:
        self._run(["resume", container_id])

    def exec(self, container_id: str, args: Sequence[str], *, stdio: "tuple[int, int, int] | None" = None,
             env: Sequence[str] = (), cwd: str | None = None, user: str | None = None,
             process: dict[str, Any] | None = None, detach: bool = False, console_socket: str | None = None,
             timeout: float | None = None, additional_gids: Sequence[int] | None = None) -> int:
        """Run a process in a running container (``process`` is a full OCI process object;
        otherwise the container's own, with ``args``/``env``/``cwd``/``user`` changed); its
        exit code. ``console_socket``: the process gets a terminal, whose master comes to
        that socket.

        The runtime's error output shares the process's stderr, so it is told apart by the
        pid file: every runtime writes it once the process started, and only then. A
        failure without one is the runtime's, in the words its stderr carried (copied
        through to ``stdio[2]`` as it came, the tail kept)."""
        import tempfile

        stdin, stdout, stderr = stdio if stdio is not None else (subprocess.DEVNULL, None, None)
        workdir = tempfile.mkdtemp(prefix="dockyard-exec-")
        pid_file = os.path.join(workdir, "pid")
        cmd = ["exec", "--pid-file", pid_file]
        if process is not None:
            process_path = os.path.join(workdir, "process.json")
            with open(process_path, "w") as f:
                json.dump(process, f)
            cmd += ["--process", process_path]
        for item in self._exec_env(container_id, env) if env else ():
            cmd += ["--env", item]
        if cwd:
            cmd += ["--cwd", cwd]
        if user:
            cmd += ["--user", user]
        if additional_gids is not None and process is None:
            # crun exec has no --additional-gids and runc's adds to the container's groups: both
            # are given the whole process (as containerd gives runc); pyrunc's -g replaces them
            if self.name != "pyrunc":
                process_path = os.path.join(workdir, "process.json")
                with open(process_path, "w") as f:
                    json.dump(self._exec_process(container_id, args, env, cwd, user, additional_gids,
                                                 bool(console_socket)), f)
                cmd = ["exec", "--pid-file", pid_file, "--process", process_path]
                args = ()
            else:
                for gid in additional_gids:
                    cmd += ["--additional-gids", str(gid)]
        # runc hands a terminal's master to a console socket only when it detaches: the
        # process is then waited for here, as its subreaper (containerd's shim does the same).
        waits_itself = bool(console_socket) and not detach
        if detach or waits_itself:
            cmd.append("--detach")
        if console_socket:
            cmd += ["--tty", "--console-socket", console_socket]
        cmd.append(container_id)
        if "--process" not in cmd:
            cmd += list(args)
        if waits_itself:
            _become_subreaper()
        try:
            if waits_itself:
                result = self._run(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, timeout=timeout,
                                   check=False)
                if result.returncode == 0 and os.path.exists(pid_file):
                    with open(pid_file) as f:
                        return _wait_exit(int(f.read().strip()))
                code, tail, started = result.returncode or 1, result.stderr or b"", False
            elif detach:
                # The process keeps the stdio it is given: a pipe of ours would not see EOF
                # until it exits. The runtime returns once it started it.
                result = self._run(cmd, stdin=stdin, stdout=stdout, stderr=stderr, timeout=timeout, check=False)
                code, tail = result.returncode, b""
            else:
                code, tail = self._run_teeing_stderr(cmd, stdin, stdout, stderr, timeout)
            started = started if waits_itself else os.path.exists(pid_file)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if code != 0 and not started:
            raise self._error("exec", subprocess.CompletedProcess(cmd, code, b"", tail))
        return 0 if detach else code

    def _run_teeing_stderr(self, cmd: list[str], stdin: _Stream, stdout: _Stream, stderr: _Stream,
                           timeout: float | None) -> "tuple[int, bytes]":
        """Run with stderr through a pipe of ours, copied to ``stderr`` (ours when None) as
        it comes; (exit code, the last 4 KiB of it)."""
        target = stderr if isinstance(stderr, int) else (stderr.fileno() if stderr is not None else 2)
        proc = subprocess.Popen(self.argv(*cmd), stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=self._env)
        tail = b""
        assert proc.stderr is not None
        with proc.stderr:
            while True:
                chunk = proc.stderr.read1(65536)
                if not chunk:
                    break
                tail = (tail + chunk)[-4096:]
                view = memoryview(chunk)
                while view:
                    try:
                        view = view[os.write(target, view):]
                    except OSError:  # the caller's stderr went away: keep draining
                        break
        return proc.wait(timeout=timeout), tail

    def ps(self, container_id: str) -> list[int]:
        """Host PIDs of the container's processes."""
        return [int(p) for p in json.loads(self._run(["ps", "--format", "json", container_id]).stdout or b"[]")]

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        """``update --resources -``: the OCI linux.resources object on stdin."""
        result = subprocess.run(self.argv("update", "--resources", "-", container_id), input=json.dumps(resources).encode(),
                                capture_output=True, timeout=60, env=self._env)
        if result.returncode != 0:
            raise self._error("update", result)

    def list(self) -> list[dict[str, Any]]:
        out = self._run(["list", "--format", "json"]).stdout
        return json.loads(out) if out.strip() and out.strip() != b"null" else []

    # ------------------------------------------------------------------ helpers

    def _exec_env(self, container_id: str, env: Sequence[str]) -> list[str]:
        """The container's env with ``env`` on top: crun replaces the env with --env where
        runc and pyrunc add to it, so the adapter always passes the whole of it."""
        bundle = self.state(container_id).bundle
        try:
            base = json.loads((Path(bundle) / "config.json").read_text())["process"].get("env") or []
        except (OSError, ValueError, KeyError):
            base = []
        merged: dict[str, str] = {}
        for item in [*base, *env]:
            key, _, value = item.partition("=")
            merged[key] = value
        return [f"{k}={v}" for k, v in merged.items()]

    def _exec_process(self, container_id: str, args: Sequence[str], env: Sequence[str], cwd: str | None,
                      user: str | None, additional_gids: Sequence[int], terminal: bool) -> dict[str, Any]:
        """The container's process with an exec's changes, for a runtime told by ``--process``."""
        bundle = self.state(container_id).bundle
        process = dict(json.loads((Path(bundle) / "config.json").read_text())["process"])
        process["args"] = list(args)
        process["env"] = self._exec_env(container_id, env)
        process["terminal"] = terminal
        process.pop("consoleSize", None)
        if cwd:
            process["cwd"] = cwd
        ids = dict(process.get("user") or {})
        if user:
            uid, _, gid = user.partition(":")
            ids["uid"], ids["gid"] = int(uid), int(gid or 0)
        ids["additionalGids"] = list(additional_gids)
        process["user"] = ids
        return process

    def _run_container_verb(self, args: list[str], stdin: _Stream, stdout: _Stream, stderr: _Stream,
                            timeout: float | None) -> None:
        # The container inherits the runtime's stdio; its errors come on stderr. Capture
        # them in a file (a pipe would be held open by the container and never reach EOF).
        import tempfile

        with tempfile.TemporaryFile() as errors:
            result = self._run(args, stdin=stdin, stdout=stdout, stderr=stderr if stderr is not None else errors,
                               timeout=timeout, check=False)
            if result.returncode != 0:
                errors.seek(0)
                result.stderr = errors.read()
                result.stdout = b""  # the container's, if anything
                raise self._error(args[0], result)


def _become_subreaper() -> None:
    """Orphans below this process come to it (PR_SET_CHILD_SUBREAPER), not to init."""
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _wait_exit(pid: int) -> int:
    """The exit code of an adopted child (128+n for a signal)."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _last_message(data: bytes | None) -> str:
    if not data:
        return ""
    lines = [line.strip() for line in data.decode(errors="replace").splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1]
    if 'msg="' in line:  # runc's logrus format
        line = line.split('msg="', 1)[1].rsplit('"', 1)[0].replace('\\"', '"')
    return line


def _is_runtime_failure(name: str, err: bytes | None) -> bool:
    """``run``/``exec`` exit with the container's code; tell it from the runtime's own
    failure by the runtime's error line on stderr."""
    text = (err or b"").decode(errors="replace")
    if name == "pyrunc":
        return "pyrunc: " in text
    if name == "runc":
        return "level=error" in text or text.startswith("exec ") and ("exec format error" in text or
                                                                      "unable to start container process" in text)
    if name == "crun":
        return any(s in text for s in ("not found in $PATH", "open executable", "exec container process",
                                        "chdir `", "crun: ", "Permission denied", "cannot "))
    return False
