"""dockyard's own version and build (the git commit it runs from), and ``dockyard version``'s facts.

``banner()`` serves ``dockyard --version`` before click loads, so this module imports only
``os`` and ``sys`` at the top: the build is read from the checkout's ``.git`` files, not
from ``git`` (a process) nor ``importlib.metadata`` (~10 ms of imports).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

API_VERSION = "1.41"         # the Engine API version dockyard follows (Docker 20.10's)
MIN_API_VERSION = "1.12"


def version() -> str:
    from dockyard import __version__

    return __version__


def _git_dir() -> str | None:
    """The .git directory of the checkout this package runs from (editable installs), if any."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # .../src
    for top in (os.path.dirname(here), here):
        path = os.path.join(top, ".git")
        if os.path.isdir(path):
            return path
        if os.path.isfile(path):   # a worktree: "gitdir: <path>"
            try:
                with open(path) as f:
                    text = f.read().strip()
            except OSError:
                return None
            if text.startswith("gitdir:"):
                return os.path.join(top, text[len("gitdir:"):].strip())
    return None


def git_commit() -> str:
    """The full commit ID of HEAD ("" outside a checkout): HEAD, its ref file or packed-refs."""
    git = _git_dir()
    if git is None:
        return ""
    try:
        with open(os.path.join(git, "HEAD")) as f:
            head = f.read().strip()
        if not head.startswith("ref:"):
            return head
        ref = head[4:].strip()
        for base in (git, _common_dir(git)):
            try:
                with open(os.path.join(base, ref)) as f:
                    return f.read().strip()
            except FileNotFoundError:
                pass
            try:
                with open(os.path.join(base, "packed-refs")) as f:
                    for line in f:
                        commit, _, name = line.strip().partition(" ")
                        if name == ref:
                            return commit
            except FileNotFoundError:
                pass
    except OSError:
        return ""
    return ""


def _common_dir(git: str) -> str:
    try:
        with open(os.path.join(git, "commondir")) as f:
            return os.path.join(git, f.read().strip())
    except OSError:
        return git


def build() -> str:
    """The short commit, as Docker's ``build 297e128`` ("unknown" outside a checkout)."""
    return git_commit()[:7] or "unknown"


def banner() -> str:
    """``dockyard --version``: as ``Docker version 20.10.24+dfsg1, build 297e128``."""
    return f"Dockyard version {version()}, build {build()}"


def python_version() -> str:
    """What takes the place of Docker's "Go version": go1.19.8 -> python3.11.7."""
    return "python" + ".".join(str(n) for n in sys.version_info[:3])


def os_arch() -> tuple[str, str]:
    """(OS, architecture) in Go's words (linux, amd64)."""
    from dockyard.oci.platform import host

    platform = host()
    return platform.os, platform.architecture


def build_time() -> str:
    """When the running commit was made (Docker's "Built"), in Go's time format; "" if unknown."""
    commit = git_commit()
    if not commit:
        return ""
    import subprocess

    try:
        out = subprocess.run(["git", "--git-dir", _git_dir() or "", "show", "-s", "--format=%ct", commit],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    if out.returncode != 0 or not out.stdout.strip().isdigit():
        return ""
    import time

    return time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(int(out.stdout.strip())))


def runtime_version(name: str) -> tuple[str, str]:
    """(version, commit) of an OCI runtime, from its ``--version`` (pyrunc: dockyard's own)."""
    if name == "pyrunc":
        return version(), build()
    import shutil
    import subprocess

    path = shutil.which(name)
    if path is None:
        return "", ""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "", ""
    ver = commit = ""
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 3 and words[1] == "version" and not ver:   # "runc version 1.1.5+ds1", "crun version 1.8"
            ver = words[2]
        elif line.lower().startswith("commit:"):
            commit = line.split(":", 1)[1].strip()
    return ver, commit


def version_info(default_runtime: str, context: str = "default") -> dict[str, Any]:
    """``docker version``'s object (types.Version under Server, with Client beside it)."""
    os_name, arch = os_arch()
    commit = build()
    built = build_time()
    kernel = os.uname().release
    rt_version, rt_commit = runtime_version(default_runtime)
    client = {"Platform": {"Name": "Dockyard"}, "Version": version(), "ApiVersion": API_VERSION,
              "DefaultAPIVersion": API_VERSION, "GitCommit": commit, "GoVersion": python_version(),
              "Os": os_name, "Arch": arch, "BuildTime": built, "Context": context, "Experimental": True}
    components = [
        {"Name": "Engine", "Version": version(),
         "Details": {"ApiVersion": API_VERSION, "Arch": arch, "BuildTime": built, "Experimental": "false",
                     "GitCommit": commit, "GoVersion": python_version(), "KernelVersion": kernel,
                     "MinAPIVersion": MIN_API_VERSION, "Os": os_name}},
        {"Name": default_runtime, "Version": rt_version, "Details": {"GitCommit": rt_commit}},
    ]
    server = {"Platform": {"Name": "Dockyard"}, "Components": components, "Version": version(),
              "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": commit,
              "GoVersion": python_version(), "Os": os_name, "Arch": arch, "KernelVersion": kernel,
              "BuildTime": built}
    return {"Client": client, "Server": server}
