"""``RUN --mount``: BuildKit's mount types, as OCI mounts for one step.

- ``type=cache,target=T[,id=][,sharing=shared|private|locked][,mode=][,uid=][,gid=][,ro]``:
  a directory under ``<root>/build/cache-mounts`` kept between builds (an apt or pip cache
  that survives); never part of a layer. ``locked`` serialises steps on one cache by flock.
- ``type=bind,target=T[,source=S][,from=stage|image][,rw]``: a path of the context (or of a
  stage's or image's rootfs), read-only; with ``rw`` a throw-away copy the step may change.
- ``type=secret,id=X[,target=][,required][,mode=][,uid=][,gid=]``: the ``--secret`` file,
  read-only, at ``/run/secrets/<id>`` by default; never in a layer, the history or the cache key
  (only its id is).
- ``type=tmpfs,target=T[,size=]``.
"""

from __future__ import annotations

import contextlib
import os

from dockyard.build.dockerfile import DockerfileError, process_word
from dockyard.digest import small_sha256
from dockyard.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

    from dockyard.build.builder import Builder

TYPES = ("bind", "cache", "secret", "tmpfs")


@record
class MountSpec:
    type: str
    target: str
    source: str = ""
    source_from: str = ""
    id: str = ""
    sharing: str = "shared"
    readonly: bool = False
    required: bool = False
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: str = ""


def parse(values: "list[str]", env: "dict[str, str]") -> "list[MountSpec]":
    return [_parse_one(process_word(v, env), env) for v in values]


def _parse_one(text: str, env: "dict[str, str]") -> MountSpec:
    fields: dict[str, str] = {}
    flags: set[str] = set()
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep:
            flags.add(key)
        else:
            fields[key] = value
    kind = fields.pop("type", "bind")
    if kind not in TYPES:
        raise DockerfileError(f"unsupported mount type {kind!r}" + (" (ssh is not supported)" if kind == "ssh" else ""))
    target = fields.pop("target", fields.pop("dst", fields.pop("destination", "")))
    spec = MountSpec(type=kind, target=target)
    spec.source = fields.pop("source", fields.pop("src", ""))
    spec.source_from = fields.pop("from", "")
    spec.id = fields.pop("id", "")
    spec.sharing = fields.pop("sharing", "shared")
    spec.size = fields.pop("size", "")
    for key in ("mode", "uid", "gid"):
        if key in fields:
            raw = fields.pop(key)
            try:
                setattr(spec, key, int(raw, 8) if key == "mode" else int(raw))
            except ValueError:
                raise DockerfileError(f"invalid {key} {raw!r} in --mount={text}") from None
    if "readonly" in fields or "ro" in fields or "rw" in fields or "readwrite" in fields:
        for key in ("readonly", "ro"):
            if key in fields:
                spec.readonly = fields.pop(key).lower() in ("true", "1", "")
        for key in ("rw", "readwrite"):
            if key in fields:
                spec.readonly = fields.pop(key).lower() not in ("true", "1", "")
    if "required" in fields:
        spec.required = fields.pop("required").lower() in ("true", "1", "")
    spec.readonly = spec.readonly or bool(flags & {"readonly", "ro"})
    spec.required = spec.required or "required" in flags
    rw = bool(flags & {"rw", "readwrite"})
    if kind == "bind":
        spec.readonly = not rw
    unknown = (set(fields) | (flags - {"readonly", "ro", "rw", "readwrite", "required"}))
    if unknown:
        raise DockerfileError(f"unexpected key {sorted(unknown)[0]!r} in --mount={text}")
    if kind == "secret":
        if not spec.id:
            spec.id = os.path.basename(spec.target) if spec.target else ""
        if not spec.id:
            raise DockerfileError(f"secret mount needs an id: --mount={text}")
        spec.target = spec.target or f"/run/secrets/{spec.id}"
    if kind == "cache" and spec.sharing not in ("shared", "private", "locked"):
        raise DockerfileError(f"unsupported sharing value {spec.sharing!r}")
    if not spec.target:
        raise DockerfileError(f"mount target is required: --mount={text}")
    if not spec.target.startswith("/"):
        spec.target = "/" + spec.target
    return spec


def cache_input(spec: MountSpec, builder: "Builder") -> "list[Any]":
    """What of a mount goes into the step's cache key: never a secret's content; a bind
    mount's source by content."""
    key: list[Any] = [spec.type, spec.target, spec.id, spec.source_from, spec.source, spec.readonly]
    if spec.type == "bind" and not spec.source_from and builder.ctx.root is not None:
        from dockyard.build import copying

        tree = copying.SourceTree(builder.ctx.root, builder.ctx.excluded)
        key.append(copying.checksum(tree, copying.expand_sources(tree, [spec.source or "."]), builder.memo))
    return key


@contextlib.contextmanager
def prepared(specs: "list[MountSpec]", builder: "Builder", rootfs: str) -> "Iterator[list[dict[str, Any]]]":
    mounts: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        for spec in specs:
            mount = _one(spec, builder, stack)
            if mount is not None:
                mounts.append(mount)
        yield mounts


def _one(spec: MountSpec, builder: "Builder", stack: contextlib.ExitStack) -> "dict[str, Any] | None":
    from dockyard.build.builder import BuildError

    if spec.type == "tmpfs":
        options = ["nosuid", "nodev"] + ([f"size={spec.size}"] if spec.size else [])
        return {"destination": spec.target, "type": "tmpfs", "source": "tmpfs", "options": options}
    if spec.type == "secret":
        source = builder.options.secrets.get(spec.id)
        if source is None:
            if spec.required:
                raise BuildError(f"secret {spec.id} not found: it is required (pass --secret id={spec.id},src=FILE)")
            return None
        copy = _secret_copy(builder, spec, source)
        return {"destination": spec.target, "type": "bind", "source": copy, "options": ["rbind", "ro"]}
    if spec.type == "cache":
        directory = _cache_dir(builder, spec)
        if spec.sharing == "locked":
            import fcntl

            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            stack.callback(os.close, fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        return {"destination": spec.target, "type": "bind", "source": directory,
                "options": ["rbind", "ro" if spec.readonly else "rw"]}
    # bind
    if spec.source_from:
        from dockyard.build.dockerfile import Instruction

        view = stack.enter_context(builder.state_view(spec.source_from, Instruction(
            keyword="RUN", args=[], flags=[], json=False, line=0, end_line=0, original="")))
        root = view
        source = _inside(view, spec.source or "/")
    else:
        if builder.ctx.root is None:
            raise BuildError("a bind mount from the context needs a build context")
        root = builder.ctx.root
        source = _inside(root, spec.source or "/")
        if builder.ctx.ignore and os.path.lexists(source):
            # What .dockerignore leaves out is not in the context: bind a copy of the rest.
            return {"destination": spec.target, "type": "bind", "source": _visible_copy(builder, spec, stack),
                    "options": ["rbind", "ro" if spec.readonly else "rw"]}
    if not os.path.lexists(source):
        raise BuildError(f"failed to compute cache key: \"/{(spec.source or '').lstrip('/')}\": not found")
    if not spec.readonly:
        source = _scratch_copy(builder, source, stack)
    return {"destination": spec.target, "type": "bind", "source": source,
            "options": ["rbind", "ro" if spec.readonly else "rw"]}


def _inside(root: str, path: str) -> str:
    from dockyard.fsutil import in_root

    return in_root(root, path)


def _cache_dir(builder: "Builder", spec: MountSpec) -> str:
    """One directory per cache id (the target when no id), made with the asked owner and mode."""
    ident = spec.id or spec.target
    name = small_sha256(ident.encode())[:32]
    directory = os.path.join(builder.engine.root, "build", "cache-mounts", name)
    if not os.path.isdir(directory):
        os.makedirs(os.path.dirname(directory), exist_ok=True)
        tmp = directory + f".{os.getpid()}.tmp"
        os.makedirs(tmp, mode=0o755, exist_ok=True)
        os.chmod(tmp, spec.mode if spec.mode is not None else 0o755)
        os.chown(tmp, spec.uid or 0, spec.gid or 0)
        try:
            os.rename(tmp, directory)
        except OSError:   # another build made it first
            os.rmdir(tmp)
    return directory


def _secret_copy(builder: "Builder", spec: MountSpec, source: str) -> str:
    """The secret in the build's own work dir with the asked owner and mode (0400 by default):
    the user's file is never bound itself."""
    directory = os.path.join(builder.work, "secrets")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    target = os.path.join(directory, small_sha256(spec.id.encode())[:16])
    with open(source, "rb") as f:
        data = f.read((1 << 20) + 1)
    if len(data) > 1 << 20:
        raise DockerfileError(f"secret {spec.id} is larger than 1 MiB")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o400)
    with open(fd, "wb") as f:
        f.write(data)
    os.chmod(target, spec.mode if spec.mode is not None else 0o400)
    os.chown(target, spec.uid or 0, spec.gid or 0)
    return target


def _visible_copy(builder: "Builder", spec: MountSpec, stack: contextlib.ExitStack) -> str:
    """The context's ``spec.source`` as COPY sees it (ignored paths left out), in the build's
    work dir; the path to bind (the directory, or the file)."""
    from dockyard.build import copying
    from dockyard.build.builder import BuildError
    from dockyard.store.owned import remove_tree

    tree = copying.SourceTree(builder.ctx.root, builder.ctx.excluded)
    try:
        paths = copying.expand_sources(tree, [spec.source or "."])
    except copying.CopyError as e:
        raise BuildError(f"failed to compute cache key: {e.message}") from None
    target = os.path.join(builder.work, "bind-" + os.urandom(6).hex())
    os.mkdir(target, 0o755)
    stack.callback(remove_tree, target)
    copying.copy(tree, paths, target, "/", dest_is_dir=True)
    if len(paths) == 1 and not os.path.isdir(os.path.join(builder.ctx.root, paths[0])):
        return os.path.join(target, os.path.basename(paths[0]))
    return target


def _scratch_copy(builder: "Builder", source: str, stack: contextlib.ExitStack) -> str:
    import shutil

    target = os.path.join(builder.work, "rw-" + os.urandom(6).hex())
    if os.path.isdir(source):
        shutil.copytree(source, target, symlinks=True)
    else:
        shutil.copy2(source, target)
    from dockyard.store.owned import remove_tree

    stack.callback(remove_tree, target)
    return target
