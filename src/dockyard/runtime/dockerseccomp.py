"""Docker's JSON seccomp profile format (``--security-opt seccomp=profile.json``) as the OCI
``linux.seccomp`` object the runtimes take: ``archMap`` narrowed to the host's
architecture, rules kept or dropped by their ``includes``/``excludes`` (capabilities,
architectures, minimum kernel), ``name`` folded into ``names``.
"""

from __future__ import annotations

import os

from dockyard.errors import DockyardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable

_HOST_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64", "armv7l": "SCMP_ARCH_ARM",
              "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X", "riscv64": "SCMP_ARCH_RISCV64"}


class ProfileError(DockyardError):
    exit_code = 125


def _kernel() -> tuple[int, int]:
    release = os.uname().release.split("-")[0].split(".")
    return int(release[0]), int(release[1]) if len(release) > 1 and release[1].isdigit() else 0


def _applies(rule: dict[str, Any], caps: set[str], arch: str) -> bool:
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("arches") and arch not in [_arch_name(a) for a in inc["arches"]]:
        return False
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return False
    if inc.get("minKernel"):
        want = tuple(int(p) for p in str(inc["minKernel"]).split(".")[:2])
        if _kernel() < want:
            return False
    if exc.get("arches") and arch in [_arch_name(a) for a in exc["arches"]]:
        return False
    if exc.get("caps") and set(exc["caps"]) & caps:
        return False
    return True


def _arch_name(name: str) -> str:
    """Docker's profiles name arches both ways ("amd64" in includes, SCMP_ARCH_X86_64 in archMap)."""
    short = {"amd64": "SCMP_ARCH_X86_64", "x86_64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64",
             "386": "SCMP_ARCH_X86", "x86": "SCMP_ARCH_X86", "arm": "SCMP_ARCH_ARM", "x32": "SCMP_ARCH_X32",
             "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X", "riscv64": "SCMP_ARCH_RISCV64"}
    return short.get(name, name if name.startswith("SCMP_ARCH_") else "SCMP_ARCH_" + name.upper())


def to_oci(profile: dict[str, Any], capabilities: Iterable[str]) -> dict[str, Any]:
    """The OCI object for a Docker profile, for a container holding ``capabilities``."""
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise ProfileError("decoding seccomp profile failed: the profile has no defaultAction")
    if profile.get("architectures") and profile.get("archMap"):
        raise ProfileError("'architectures' and 'archMap' were specified in the seccomp profile, use either "
                           "'architectures' or 'archMap'")
    arch = _HOST_ARCH.get(os.uname().machine, "")
    caps = set(capabilities)
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == arch:
            arches = [arch, *(entry.get("subArchitectures") or [])]
    if arches:
        out["architectures"] = arches
    for key in ("flags", "listenerPath", "listenerMetadata"):
        if profile.get(key):
            out[key] = profile[key]
    syscalls = []
    for rule in profile.get("syscalls") or []:
        if not _applies(rule, caps, arch):
            continue
        names = list(rule.get("names") or []) + ([rule["name"]] if rule.get("name") else [])
        if not names:
            raise ProfileError("decoding seccomp profile failed: a syscall rule has no names")
        oci: dict[str, Any] = {"names": names, "action": rule.get("action") or profile["defaultAction"]}
        if rule.get("errnoRet") is not None:
            oci["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            oci["args"] = rule["args"]
        syscalls.append(oci)
    out["syscalls"] = syscalls
    return out
