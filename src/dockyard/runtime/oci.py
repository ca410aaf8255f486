"""One adapter for every runc-compatible runtime CLI: pyrunc, crun, runc.

The engine (and the shim) drive all three with the same calls; only the command
prefix differs. A failure becomes ``OCIRuntimeError`` carrying the exit code Docker
would report: 127 when the command or cwd is missing, 126 when it cannot be
executed, 125 for any other runtime failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal as signals
import subprocess
import sys
from pathlib import Path

from dockyard.errors import DockyardError
from dockyard.records import record
from dockyard.runtime.exitcodes import runtime_exit_code

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    from typing import IO, Any, Sequence, Union

from dockyard.runtime import RUNTIMES  # noqa: F401 - re-exported

_Stream = "int | IO[Any] | None"


class OCIRuntimeError(DockyardError):
    """The runtime refused or failed; ``exit_code`` follows Docker's 125/126/127."""

    exit_code = 125


@record
class ContainerState:
    id: str
    status: str          # created | running | stopped | paused
    pid: int
    bundle: str
    raw: dict[str, Any]


_PYRUNC_MAIN = "import sys; sys.path.insert(0, {path!r}); from dockyard.runtime.pyrunc.cli import entry; entry()"


def pyrunc_command() -> list[str]:
    """What ``python -m dockyard.runtime.pyrunc`` does, minus its cost: -S skips site (and
    every .pth file it runs) and -c skips runpy; together most of the start-up here.

    -I (isolated) ignores the PYTHON* variables: above all PYTHONDONTWRITEBYTECODE, which
    would make every run compile pyrunc from source again (~30 ms); and it keeps the
    working directory off sys.path. The package's own parent goes on sys.path instead."""
    package_parent = str(Path(__file__).resolve().parents[2])
    return [sys.executable, "-I", "-S", "-c", _PYRUNC_MAIN.format(path=package_parent)]


class OCIRuntime:
    def __init__(self, name: str = "pyrunc", root: str | os.PathLike | None = None,
                 command: Sequence[str] | None = None) -> None:
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
        self.root = str(root) if root is not None else None
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
        if self.root is not None:
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
        message = _last_message(result.stderr) or _last_message(result.stdout) or f"exit status {result.returncode}"
        code = runtime_exit_code(result.returncode, message)
        return OCIRuntimeError(f"{self.name} {verb} failed: {message}", exit_code=code)

    # ------------------------------------------------------------------ verbs

    def create(self, container_id: str, bundle: str | os.PathLike, *, pid_file: str | None = None,
               console_socket: str | None = None, stdin: _Stream = subprocess.DEVNULL,
               stdout: _Stream = None, stderr: _Stream = None, timeout: float | None = 60) -> None:
        """Create the container; its process inherits ``stdin``/``stdout``/``stderr``.

        The runtime's own errors are read from a pipe of ours unless ``stderr`` is given."""
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
        if result.returncode != 0 and _is_runtime_failure(self.name, result):
            raise self._error("run", result)
        return result

    def state(self, container_id: str) -> ContainerState:
        out = self._run(["state", container_id]).stdout
        raw = json.loads(out)
        return ContainerState(raw["id"], raw["status"], int(raw.get("pid") or 0), raw.get("bundle", ""), raw)

    def kill(self, container_id: str, signal: int | str = "SIGTERM", all_processes: bool = False) -> None:
        sig = str(int(signal)) if isinstance(signal, int) else signal
        args = ["kill"] + (["--all"] if all_processes else []) + [container_id, sig]
        self._run(args)

    def delete(self, container_id: str, force: bool = False) -> None:
        self._run(["delete"] + (["--force"] if force else []) + [container_id])

    def exec(self, container_id: str, args: Sequence[str], *, env: Sequence[str] = (), cwd: str | None = None,
             user: str | None = None, process: dict[str, Any] | None = None, detach: bool = False,
             stdin: _Stream = subprocess.DEVNULL, stdout: _Stream = subprocess.PIPE,
             stderr: _Stream = subprocess.PIPE, timeout: float | None = 120,
             console_socket: str | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run a process in a running container (``process`` is a full OCI process object;
        otherwise the container's own, with ``args``/``env``/``cwd``/``user`` changed).
        ``console_socket``: the process gets a terminal, whose master comes to that socket."""
        cmd = ["exec"]
        tmp_path = None
        if process is not None:
            import tempfile

            fd, tmp_path = tempfile.mkstemp(prefix="dockyard-process-", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump(process, f)
            cmd += ["--process", tmp_path]
        for item in self._exec_env(container_id, env) if env else ():
            cmd += ["--env", item]
        if cwd:
            cmd += ["--cwd", cwd]
        if user:
            cmd += ["--user", user]
        if detach:
            cmd.append("--detach")
        if console_socket:
            cmd += ["--tty", "--console-socket", console_socket]
        cmd.append(container_id)
        if process is None:
            cmd += list(args)
        try:
            result = self._run(cmd, stdin=stdin, stdout=stdout, stderr=stderr, timeout=timeout, check=False)
        finally:
            if tmp_path:
                os.unlink(tmp_path)
        if result.returncode != 0 and _is_runtime_failure(self.name, result):
            raise self._error("exec", result)
        return result

    def ps(self, container_id: str) -> list[int]:
        """Host PIDs of the container's processes."""
        return [int(p) for p in json.loads(self._run(["ps", "--format", "json", container_id]).stdout or b"[]")]

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
                raise self._error(args[0], result)


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


def _is_runtime_failure(name: str, result: subprocess.CompletedProcess[bytes]) -> bool:
    """``run``/``exec`` exit with the container's code; tell it from the runtime's own
    failure by the runtime's error line on stderr."""
    err = (result.stderr or b"").decode(errors="replace")
    if name == "pyrunc":
        return "pyrunc: " in err
    if name == "runc":
        return "level=error" in err or err.startswith("exec ") and "exec format error" in err
    if name == "crun":
        return any(s in err for s in ("not found in $PATH", "open executable", "exec container process",
                                       "chdir `", "crun: ", "Permission denied", "cannot "))
    return False


def signal_number(sig: int | str) -> int:
    if isinstance(sig, int):
        return sig
    name = sig.upper()
    return int(getattr(signals, name if name.startswith("SIG") else "SIG" + name))
