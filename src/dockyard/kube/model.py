"""What generate and play share: Kubernetes names, quantities, labels and the YAML dump/load."""

from __future__ import annotations

import re
from typing import Any, Iterable

from dockyard.errors import DockyardError

# Labels kube play puts on what it creates: --down finds exactly that again.
LABEL_FILE = "io.dockyard.kube.file"        # the played file's absolute path ("-" for stdin)
LABEL_POD = "io.dockyard.kube.pod"          # the Pod (or Deployment replica) name
LABEL_KIND = "io.dockyard.kube.kind"        # what a volume stands for: pvc, configmap, secret, emptydir
NETWORK = "dockyard-kube"                   # the pods' network (podman's is podman-kube): DNS by name

# Docker's (and containerd's) default capability set: a securityContext lists only the change.
DEFAULT_CAPS = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
                "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE")


class KubeError(DockyardError):
    """A YAML document that cannot be generated or run; nothing was made."""

    exit_code = 125


_INVALID = re.compile(r"[^a-z0-9-]+")


def dns1123(name: str, limit: int = 63) -> str:
    """``name`` as a DNS-1123 label: lower case, runs of other characters as one ``-``,
    alphanumeric at both ends, at most ``limit`` characters."""
    out = _INVALID.sub("-", name.lower()).strip("-")[:limit].rstrip("-")
    return out or "x"


def unique(name: str, taken: set[str], limit: int = 63) -> str:
    """``name`` or ``name-2``, ``name-3``... whichever is not taken yet (then taken)."""
    out, n = name, 1
    while out in taken:
        n += 1
        suffix = f"-{n}"
        out = name[:limit - len(suffix)].rstrip("-") + suffix
    taken.add(out)
    return out


def memory_quantity(n: int) -> str:
    """Bytes as a Kubernetes quantity, in the largest binary unit that divides them."""
    for unit, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def cpu_quantity(nano: int) -> str:
    """Docker's NanoCpus as a Kubernetes cpu quantity (millicores; whole cores as a number)."""
    milli = max(1, round(nano / 1_000_000))
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


_QUANTITY = re.compile(r"^([0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_FACTORS = {None: 1, "m": 0.001, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
            "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}


def parse_quantity(value: Any, where: str) -> float:
    """A Kubernetes quantity (``64Mi``, ``500m``, ``1``) as a number."""
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise KubeError(f"{where}: invalid quantity {value!r}")
    return float(match[1]) * _FACTORS[match[2]]


def dump(documents: Iterable[dict[str, Any]]) -> str:
    """Documents as multi-document YAML, ``---`` between them, keys in the order built."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:   # a cluster's tools read anchors; people do not
            return True

    def strings(dumper: yaml.SafeDumper, value: str) -> yaml.Node:   # multi-line text as a block
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, strings)
    return "---\n".join(yaml.dump(doc, Dumper=Dumper, sort_keys=False, default_flow_style=False)
                        for doc in documents)


def load(text: str, where: str) -> list[dict[str, Any]]:
    """The documents of a YAML stream (empty ones skipped); a syntax error names the file."""
    import yaml

    try:
        # libyaml's loader where PyYAML has it: the pure-Python one costs ~20 ms on a small file
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        docs = [d for d in yaml.load_all(text, Loader=loader) if d is not None]
    except yaml.YAMLError as e:
        raise KubeError(f"{where}: invalid YAML: {str(e).splitlines()[0]}") from None
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise KubeError(f"{where}: document {i + 1} is not a mapping")
    return docs
