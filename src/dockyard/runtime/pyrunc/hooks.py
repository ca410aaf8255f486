"""OCI hooks (config.md "POSIX-platform Hooks"): programs run at points of the lifecycle,
each given the container's state JSON on stdin.

Where each kind runs, and what its failure does (runtime.md "Lifecycle"):

=================  ==========================================  ============================
kind               where (run by)                              a failure
=================  ==========================================  ============================
prestart           runtime namespaces (the ``create`` parent)  fails create; destroyed
createRuntime      runtime namespaces (the ``create`` parent)  fails create; destroyed
createContainer    container namespaces, before pivot_root     fails create; destroyed
                   (the container's init)
startContainer     container namespaces, after pivot_root,     fails start; destroyed
                   just before execve (the init)
poststart          runtime namespaces (``start``)              fails start; destroyed
poststop           runtime namespaces (``delete``)             a warning only
=================  ==========================================  ============================

Only loaded when a spec has hooks: ``subprocess`` is no start-up cost the hot path pays.
The init imports this module before pivot_root (the host's files are out of reach after).
"""

from __future__ import annotations

import os
import subprocess

from dockyard.runtime.pyrunc import fastjson
from dockyard.runtime.pyrunc.state import OCI_VERSION, SetupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
_OUTPUT_LIMIT = 4096  # of a failed hook's stdout and stderr, quoted in the error


class HookError(SetupError):
    """A hook that could not run, exited non-zero or timed out."""

    destroys = True  # the container goes with it (runtime.md, lifecycle)


def of(spec: "dict[str, Any]", kind: str) -> "list[dict[str, Any]]":
    return list((spec.get("hooks") or {}).get(kind) or [])


def any_in(spec: "dict[str, Any]") -> bool:
    hooks = spec.get("hooks") or {}
    return any(hooks.get(kind) for kind in KINDS)


def validate(spec: "dict[str, Any]") -> None:
    """Refuse what the spec forbids before anything is created: an unknown kind, a relative
    path, a timeout that is not a positive integer."""
    hooks = spec.get("hooks")
    if not hooks:
        return
    if not isinstance(hooks, dict):
        raise SetupError("hooks: must be an object")
    for kind, entries in hooks.items():
        if kind not in KINDS:
            raise SetupError(f"hooks: unknown hook kind {kind!r} (known: {', '.join(KINDS)})")
        for i, hook in enumerate(entries or []):
            where = f"hooks.{kind}[{i}]"
            path = hook.get("path") if isinstance(hook, dict) else None
            if not isinstance(path, str) or not path.startswith("/"):
                raise SetupError(f"{where}: path must be absolute, not {path!r}")
            timeout = hook.get("timeout")
            if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0):
                raise SetupError(f"{where} ({path}): timeout must be a positive number of seconds, not {timeout!r}")


def state(container_id: str, status: str, pid: int, bundle: str,
          annotations: "dict[str, str] | None") -> "dict[str, Any]":
    """The state hooks get on stdin: runtime.md's state (runc's fields; no pid once stopped)."""
    result: "dict[str, Any]" = {"ociVersion": OCI_VERSION, "id": container_id, "status": status}
    if pid:
        result["pid"] = pid
    result["bundle"] = bundle
    if annotations:
        result["annotations"] = annotations
    return result


def run(kind: str, hooks: "list[dict[str, Any]]", state: "dict[str, Any]",
        default_env: "list[str] | None" = None) -> None:
    """Run ``hooks`` in order; the first failure raises HookError naming the kind, the
    hook's index and path. ``default_env``: the environment of a hook that sets none (runc
    gives startContainer hooks the container's)."""
    data = fastjson.dumps(state).encode()
    for i, hook in enumerate(hooks):
        _run_one(kind, i, hook, data, default_env)


def run_warning(kind: str, hooks: "list[dict[str, Any]]", state: "dict[str, Any]", warn) -> None:  # noqa: ANN001
    """Run every hook; failures are passed to ``warn`` and the rest still run (poststop)."""
    data = fastjson.dumps(state).encode()
    for i, hook in enumerate(hooks):
        try:
            _run_one(kind, i, hook, data, None)
        except SetupError as e:
            warn(str(e))


def _run_one(kind: str, index: int, hook: "dict[str, Any]", data: bytes, default_env: "list[str] | None") -> None:
    path = hook["path"]
    args = list(hook.get("args") or []) or [path]
    env_list = hook.get("env")
    if env_list is None:
        env_list = default_env or []
    env = {}
    for item in env_list:
        key, _, value = item.partition("=")
        env[key] = value
    timeout = hook.get("timeout")
    where = f"{kind} hook #{index} ({path})"
    try:
        proc = subprocess.Popen(args, executable=path, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, close_fds=True)
    except OSError as e:
        raise HookError(f"error running {where}: exec {path}: {e.strerror or e}") from None
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()  # not its output: a child of the hook may hold the pipes open
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        raise HookError(f"error running {where}: timeout: the hook ran past its timeout of {timeout}s") from None
    if proc.returncode != 0:
        code = proc.returncode
        status = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        raise HookError(f"error running {where}: {status}, stdout: {_text(out)}, stderr: {_text(err)}")


def _text(data: bytes) -> str:
    text = data[-_OUTPUT_LIMIT:].decode(errors="replace").strip()
    return text.replace("\n", "\\n")

