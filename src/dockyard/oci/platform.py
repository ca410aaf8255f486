"""Platforms (os/architecture/variant): the host's, parsing ``--platform``, matching index entries."""

from __future__ import annotations

import os

from dockyard.errors import DockyardError
from dockyard.records import record

# uname machine -> GOARCH, as the OCI spec names architectures.
_ARCH = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
    "armv7l": "arm", "armv6l": "arm", "i386": "386", "i686": "386",
    "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
}


@record(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")

    def matches(self, entry: dict) -> bool:
        """Does an index entry's ``platform`` object run here?"""
        if entry.get("os") != self.os:
            return False
        if normalize_arch(entry.get("architecture", "")) != self.architecture:
            return False
        variant = entry.get("variant", "")
        if self.variant and variant and variant != self.variant:
            return False
        return True


def normalize_arch(arch: str) -> str:
    return _ARCH.get(arch, arch)


def host() -> Platform:
    machine = os.uname().machine
    arch = normalize_arch(machine)
    variant = ""
    if arch == "arm64":
        variant = "v8"
    elif machine.startswith("armv7"):
        variant = "v7"
    elif machine.startswith("armv6"):
        variant = "v6"
    return Platform("linux", arch, variant)


def parse(value: str) -> Platform:
    """``os/arch[/variant]`` or ``arch`` (linux implied), as ``--platform`` takes it."""
    parts = value.strip().lower().split("/")
    if len(parts) == 1 and parts[0]:
        return Platform("linux", normalize_arch(parts[0]))
    if 2 <= len(parts) <= 3 and all(parts):
        return Platform(parts[0], normalize_arch(parts[1]), parts[2] if len(parts) == 3 else "")
    raise DockyardError(f"invalid platform {value!r}: expected os/arch[/variant], e.g. linux/amd64")
