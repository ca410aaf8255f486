"""How Docker turns an OCI runtime's start or exec failure into an exit code.

Kept apart from oci.py so the shim, which imports as little as it can, shares it.
"""

from __future__ import annotations


def docker_exit_code(message: str) -> int:
    """Docker's reading of a runtime's error text: 127 not found, 126 cannot invoke, 125 else."""
    text = message.lower()
    if "executable file not found" in text or "no such file or directory" in text or "not found in $path" in text:
        return 127
    if "permission denied" in text or "exec format error" in text or "not a directory" in text:
        return 126
    return 125


def runtime_exit_code(code: int, message: str) -> int:
    """A runtime that already exited 126/127 (pyrunc does) is taken at its word."""
    return code if code in (126, 127) else docker_exit_code(message)
