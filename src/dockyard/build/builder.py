"""The builder: a Dockerfile's stages, step by step, each step taken from the cache when its
inputs match (build/cache.py), else executed on a snapshot (store/snapshots.py).

- FROM: an earlier stage's state, ``scratch``, or an image (pulled when missing or with
  ``--pull``); the base image's ONBUILD triggers run first.
- RUN: a process in a snapshot of the state (build/executor.py), on the default bridge
  through one network sandbox per build (network/sandbox.py), ``host`` or ``none``; BuildKit's
  ``--mount`` types (build/mounts.py); the changed upper dir becomes a layer.
- COPY/ADD: build/copying.py on a snapshot; the cache key holds the sources' content digest.
- The rest change only the image config and add a history entry, as BuildKit does.

Stages the target does not need are skipped. Everything a build holds (snapshots, the
sandbox, the work dir with bundles) is flocked by the build, so a build killed -9 leaves only
what the next build or ``builder prune`` recognises as dead and reclaims (``reclaim``).
"""

from __future__ import annotations

import contextlib
import json
import os
import time

from dockyard.build import cache as caching
from dockyard.build import dockerfile as dfile
from dockyard.build.cache import State
from dockyard.errors import DockyardError
from dockyard.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

    from dockyard.build.context import BuildContext
    from dockyard.build.progress import Progress, Vertex
    from dockyard.engine import Engine
    from dockyard.store.images import Image
    from dockyard.store.snapshots import Snapshot

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]
COMMENT = "buildkit.dockerfile.v0"
METADATA = ("ENV", "LABEL", "EXPOSE", "VOLUME", "STOPSIGNAL", "USER", "WORKDIR", "CMD", "ENTRYPOINT", "ONBUILD",
            "MAINTAINER", "HEALTHCHECK", "SHELL")


class BuildError(DockyardError):
    """A build that failed: one line, ``Dockerfile:LINE`` first when a line is to blame."""

    exit_code = 1


@record
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    network: str = "default"                  # default | host | none
    labels: dict[str, str] = field(default_factory=dict)
    platform: str | None = None
    secrets: dict[str, str] = field(default_factory=dict)   # id -> file
    runtime: str = ""
    # Registry credentials by config.json key (the API's X-Registry-Config); none: config.json's.
    registry_auth: dict = field(default_factory=dict)


@record
class _StageResult:
    state: State
    key: str


class Builder:
    def __init__(self, engine: "Engine", ctx: "BuildContext", options: BuildOptions, progress: "Progress") -> None:
        from dockyard.oci.platform import host
        from dockyard.runtime.adapter import DEFAULT_RUNTIME

        self.engine = engine
        self.ctx = ctx
        self.options = options
        self.progress = progress
        self.cache = caching.BuildCache(engine)
        self.runtime = options.runtime or DEFAULT_RUNTIME
        self.platform = host()
        if options.platform:
            from dockyard.oci.platform import parse as parse_platform

            if parse_platform(options.platform.split(",")[0]).architecture != self.platform.architecture:
                raise BuildError(f"platform {options.platform} cannot be built on this {self.platform} machine")
        self.base_dir = os.path.join(engine.root, "build")
        os.makedirs(self.base_dir, exist_ok=True)
        self._memo: Any = None
        self.results: dict[int, _StageResult] = {}
        self.work = ""             # this build's work dir (flocked): bundles, /etc files, downloads
        self.root_builder = self   # the builder the per-stage copies share results and the sandbox with
        self.sandbox: Any = None   # the network sandbox, opened by the first RUN on the bridge

    @property
    def memo(self) -> "Any":
        """Content digests of context files, kept across builds by stat identity."""
        owner = self.root_builder
        if owner._memo is None:
            from dockyard.build.copying import HashMemo

            # One memo per context directory: a cached build loads only its own context's entries.
            from dockyard.digest import small_sha256

            name = small_sha256((self.ctx.root or "-").encode())[:16]
            owner._memo = HashMemo(os.path.join(self.base_dir, "hashes", f"{name}.json"))
        return owner._memo

    # ------------------------------------------------------------------ the build

    def run(self) -> "Image":
        from dockyard.store.owned import image_lease

        df = self._parse()
        platform_args = self._platform_args()
        self.scope = dfile.global_scope(df, self.options.build_args, platform_args)
        self.df = df
        needed = dfile.needed_stages(df, self.options.target, self.scope)
        for name in dfile.unused_build_args(df, self.options.build_args):
            self.progress.warning(f"[Warning] One or more build-args [{name}] were not consumed")
        reclaim(self.engine)
        with image_lease(self.engine.root), self._work_dir():
            try:
                self._stages(needed)
                self.cache.touch()
            finally:
                if self.sandbox is not None:
                    from dockyard.network.sandbox import close_sandbox

                    close_sandbox(self.engine, os.path.basename(self.work))
                if self._memo is not None:
                    self._memo.save()
            final = self.results[needed[-1]].state
            return self._export(final)

    def _stages(self, needed: list[int]) -> None:
        """Build the needed stages, each once its dependencies are built; stages that are
        ready together build concurrently (a thread and a DB connection each), as BuildKit
        runs independent stages in parallel."""
        import _thread   # threading itself only when stages run side by side

        deps = {i: set(dfile.stage_refs(self.df, self.df.stages[i], self.scope)) & set(needed) for i in needed}
        self._lock = _thread.allocate_lock()
        pending = list(needed)
        failures: list[BaseException] = []
        while pending and not failures:
            ready = [i for i in pending if deps[i] <= set(self.results)]
            for i in ready:
                pending.remove(i)
            if len(ready) == 1:
                self.results[ready[0]] = self._for_stage()._stage(self.df.stages[ready[0]])
                continue
            import threading

            threads = [threading.Thread(target=self._stage_thread, args=(i, failures), daemon=True) for i in ready]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if failures:
            raise failures[0]

    def _for_stage(self) -> "Builder":
        """A shallow copy for one stage: its per-stage fields its own, the rest shared."""
        runner = object.__new__(Builder)
        runner.__dict__.update(self.__dict__)
        return runner

    def _stage_thread(self, index: int, failures: "list[BaseException]") -> None:
        from dockyard.engine import Engine

        runner = self._for_stage()
        runner.engine = Engine(self.engine.settings)   # sqlite: one connection per thread
        runner.cache = caching.BuildCache(runner.engine)
        try:
            result = runner._stage(self.df.stages[index])
            runner.cache.touch()
            with self._lock:
                self.results[index] = result
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            with self._lock:
                failures.append(e)
        finally:
            runner.engine.close()

    def _parse(self) -> dfile.Dockerfile:
        vertex = self.progress.vertex(f"[internal] load build definition from {self.ctx.dockerfile_name}")
        df = dfile.parse(self.ctx.dockerfile_text, self.ctx.dockerfile_name, os.path.join(self.base_dir, "parsed"))
        vertex.done()
        return df

    def _platform_args(self) -> dict[str, str]:
        p = self.platform
        values = {"PLATFORM": str(p), "OS": p.os, "ARCH": p.architecture, "VARIANT": p.variant}
        return {f"{side}{k}": v for side in ("TARGET", "BUILD") for k, v in values.items()}

    @contextlib.contextmanager
    def _work_dir(self) -> "Iterator[None]":
        with work_area(self.engine).new_dir() as path:
            self.work = path
            yield

    def _etc_dir(self) -> str:
        """The /etc files every RUN step binds, written by the build's first RUN."""
        etc = os.path.join(self.work, "etc")
        with self.root_builder._lock:
            if not os.path.isdir(etc):
                from dockyard.build.executor import HOSTNAME

                os.mkdir(etc)
                with open(os.path.join(etc, "resolv.conf"), "w") as f:
                    f.write(_host_resolv())   # the host's servers (less loopback), on every network mode
                with open(os.path.join(etc, "hosts"), "w") as f:
                    f.write(f"127.0.0.1\tlocalhost {HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        return etc

    # ------------------------------------------------------------------ stages

    def _stage(self, stage: dfile.Stage) -> _StageResult:
        """Build one stage (on a copy of the builder: the per-stage fields are its own)."""
        label = stage.name or f"stage-{stage.index}"
        steps = 1 + sum(1 for i in stage.instructions if i.keyword in ("RUN", "COPY", "ADD"))
        self.step_no = 0
        self.step_total = steps
        self.label = label
        base = dfile.process_word(stage.base, self.scope, self.df.escape)
        state, key = self._from(stage, base)
        self.args: dict[str, str] = {}       # ARGs declared in this stage, with their values
        self.stage = stage
        triggers = list(state.config.get("config", {}).get("OnBuild") or [])
        if triggers:
            state.config.setdefault("config", {})["OnBuild"] = None
            for text in triggers:
                for instruction in self._trigger(text, stage.line):
                    state, key = self._step(instruction, state, key)
        for instruction in stage.instructions:
            state, key = self._step(instruction, state, key)
        return _StageResult(state=state, key=key)

    def _from(self, stage: dfile.Stage, base: str) -> tuple[State, str]:
        self.step_no = 1
        shown = f"[{self.label} 1/{self.step_total}] FROM {base}"
        earlier = self.df.stage(base, before=stage.index) if base else None
        if earlier is not None:
            result = self.results[earlier.index]
            self.progress.vertex(shown).done()
            return result.state.copy(), result.key
        if not base:
            raise BuildError(f"{self.df.name}:{stage.line}: base name ({stage.base}) should not be blank")
        if base == "scratch":
            config = {"architecture": self.platform.architecture, "os": self.platform.os,
                      "config": {"Env": [DEFAULT_PATH]}, "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
            return State(config=config, chains=[]), caching.key("scratch", str(self.platform))
        image = self._base_image(base, stage.line)
        from dockyard import reference

        vertex = self.progress.vertex(f"[{self.label} 1/{self.step_total}] FROM {reference.parse(base)}")
        config = self.engine.image_store.config(image)
        config = {k: v for k, v in config.items() if k not in ("container", "container_config", "docker_version")}
        inner = config.setdefault("config", {}) or {}
        config["config"] = inner
        if not any(e.startswith("PATH=") for e in inner.get("Env") or []):
            inner["Env"] = [DEFAULT_PATH] + list(inner.get("Env") or [])
        config.setdefault("history", [])
        vertex.done()
        return State(config=config, chains=list(image.layers)), image.id

    def _base_image(self, name: str, line: int) -> "Image":
        from dockyard import reference
        from dockyard.errors import InvalidReferenceError

        try:
            ref = reference.parse(name)
        except InvalidReferenceError as e:
            raise BuildError(f"{self.df.name}:{line}: {e.message}") from None
        found = None if self.options.pull else self.engine.image_store.find(str(ref))
        if found is not None:
            return found
        vertex = self.progress.vertex(f"[internal] load metadata for {ref}")
        try:
            image = self.engine.images.pull(ref, creds=self._credentials(ref))
        except DockyardError as e:
            local = self.engine.image_store.find(str(ref)) if self.options.pull else None
            if local is not None:
                vertex.done()
                self.progress.warning(f"could not pull {ref} ({e.message}): using the local image")
                return local
            vertex.error(e.message)
            raise BuildError(f"{self.df.name}:{line}: failed to resolve source metadata for {ref}: "
                             f"{e.message}") from None
        vertex.done()
        return image

    def _credentials(self, ref: "Any") -> "Any":
        if not self.options.registry_auth:
            return None
        from dockyard.distribution.credentials import server_key

        return self.options.registry_auth.get(server_key(ref.registry_host))

    def _trigger(self, text: str, line: int) -> list[dfile.Instruction]:
        parsed = dfile.parse(f"FROM scratch\n{text}\n", self.df.name)
        out = parsed.stages[0].instructions
        for i in out:
            i.line = i.end_line = line
        return out

    # ------------------------------------------------------------------ steps

    def _step(self, i: dfile.Instruction, state: State, key: str) -> tuple[State, str]:
        if i.keyword == "ARG":
            self._arg(i, state)
            return state, key
        try:
            if i.keyword in METADATA:
                return self._metadata(i, state, key)
            if i.keyword == "RUN":
                return self._run(i, state, key)
            if i.keyword in ("COPY", "ADD"):
                return self._copy(i, state, key)
        except BuildError:
            raise
        except DockyardError as e:
            message = e.message
            if not message.startswith(f"{self.df.name}:"):
                message = f"{self.df.name}:{i.line}: {message}"
            raise BuildError(message) from None
        raise BuildError(f"{self.df.name}:{i.line}: unknown instruction: {i.keyword}")

    def _env(self, state: State) -> dict[str, str]:
        """What ``$VAR`` expands from: the stage's ARGs under the config's ENV (ENV wins)."""
        env = dict(self.args)
        env.update(dfile.env_map(state.config.get("config", {}).get("Env") or []))
        return env

    def _arg(self, i: dfile.Instruction, state: State) -> None:
        for name, default in dfile.arg_declarations(i, self._env(state), self.df.escape):
            if name in self.options.build_args:
                self.args[name] = self.options.build_args[name]
            elif default is not None:
                self.args[name] = default
            elif name in self.scope and (name in dfile.PLATFORM_ARGS or self._declared_globally(name)):
                self.args[name] = self.scope[name]

    def _declared_globally(self, name: str) -> bool:
        return any(w.partition("=")[0] == name for i in self.df.global_args for w in i.args)

    def _history(self, created_by: str, empty: bool) -> "dict[str, Any]":
        from dockyard.timefmt import rfc3339_nano_utc

        entry: dict[str, Any] = {"created": rfc3339_nano_utc(time.time()), "created_by": created_by,
                                 "comment": COMMENT}
        if empty:
            entry["empty_layer"] = True
        return entry

    def _metadata(self, i: dfile.Instruction, state: State, key: str) -> tuple[State, str]:
        rest = _rest(i)
        step_key = caching.key(key, i.keyword, rest, sorted(self.args.items()) if i.keyword not in ("CMD", "ENTRYPOINT") else [])
        if not self.options.no_cache:
            hit = self.cache.get(step_key)
            if hit is not None:
                return hit, step_key
        from dockyard.images import changes

        new = state.copy()
        conf = new.config.setdefault("config", {})
        shell = conf.get("Shell") or DEFAULT_SHELL
        if i.keyword == "MAINTAINER":
            new.config["author"] = rest
        elif i.keyword == "SHELL":
            conf["Shell"] = list(i.args)
        elif i.keyword == "HEALTHCHECK":
            conf["Healthcheck"] = _healthcheck(i, shell)
        elif i.keyword in ("CMD", "ENTRYPOINT") and not i.json:
            conf["Cmd" if i.keyword == "CMD" else "Entrypoint"] = list(shell) + [rest]
            if i.keyword == "ENTRYPOINT" and not self._cmd_set_in_stage(i):
                conf["Cmd"] = None
        else:
            conf.update(changes.apply_instruction(conf, i.keyword, rest, self._env(state), self.df.escape))
            if i.keyword == "ENTRYPOINT" and self._cmd_set_in_stage(i):
                conf["Cmd"] = state.config.get("config", {}).get("Cmd")
        new.add_history(self._history(_shown(i, conf), empty=True))
        self.cache.put(step_key, new)
        return new, step_key

    def _cmd_set_in_stage(self, i: dfile.Instruction) -> bool:
        """Whether a CMD came earlier in this stage (then a later ENTRYPOINT keeps it)."""
        return any(x.keyword == "CMD" and x.line < i.line for x in self.stage.instructions)

    # ---- RUN

    def _run(self, i: dfile.Instruction, state: State, key: str) -> tuple[State, str]:
        from dockyard.build import mounts as run_mounts

        conf = state.config.get("config", {})
        shell = conf.get("Shell") or DEFAULT_SHELL
        argv = _run_argv(i, shell)
        build_env = self._run_env(state)
        network = i.flag("network") or self.options.network
        if network not in ("default", "host", "none"):
            raise BuildError(f"{self.df.name}:{i.line}: unsupported network mode {network!r} "
                             "(default, host or none)")
        specs = run_mounts.parse(i.flag_values("mount"), self._env(state))
        mount_inputs = [run_mounts.cache_input(m, self) for m in specs]
        arg_pairs = sorted((k, v) for k, v in self.args.items() if k not in dfile.PROXY_ARGS)
        step_key = caching.key(key, "RUN", argv, arg_pairs, mount_inputs, network, conf.get("WorkingDir"),
                               conf.get("User"))
        shown = " ".join(argv[len(shell):] if argv[:len(shell)] == list(shell) else argv)
        vertex = self._vertex(f"RUN {_flags_shown(i)}{shown}")
        if not self.options.no_cache:
            hit = self.cache.get(step_key)
            if hit is not None:
                vertex.cached()
                return hit, step_key
        prefix = f"|{len(arg_pairs)} " + " ".join(f"{k}={v}" for k, v in arg_pairs) + " " if arg_pairs else ""
        created_by = f"RUN {prefix}{' '.join(argv)} # buildkit"
        with self._snapshot(state) as snap:
            rootfs = snap.mount()
            workdir = conf.get("WorkingDir") or "/"
            _mkdir_in(rootfs, workdir)
            with run_mounts.prepared(specs, self, rootfs) as oci_mounts:
                code = self._execute(snap, rootfs, argv, build_env, workdir, conf.get("User") or "", network,
                                     oci_mounts, vertex)
            if code != 0:
                failure = f"process \"{' '.join(argv)}\" did not complete successfully: exit code: {code}"
                vertex.error(failure)
                raise BuildError(f"{self.df.name}:{i.line}: {failure}")
            new, size = self._commit(snap, state, created_by)
        self.cache.put(step_key, new, size)
        vertex.done()
        return new, step_key

    def _run_env(self, state: State) -> list[str]:
        env = list(state.config.get("config", {}).get("Env") or [])
        present = {e.partition("=")[0] for e in env}
        for k, v in self.args.items():
            if k not in present:
                env.append(f"{k}={v}")
        for k in dfile.PROXY_ARGS:
            if k in self.options.build_args and k not in present and k not in self.args:
                env.append(f"{k}={self.options.build_args[k]}")
        return env

    def _execute(self, snap: "Snapshot", rootfs: str, argv: list[str], env: list[str], workdir: str, user: str,
                 network: str, oci_mounts: "list[dict[str, Any]]", vertex: "Vertex") -> int:
        from dockyard.build import executor

        namespace = self._sandbox().namespace if network == "default" else network
        process = executor.StepProcess(argv, env, workdir, user, namespace, oci_mounts, self._etc_dir())
        bundle = os.path.join(self.work, "bundle-" + snap.name[:12])
        try:
            return executor.run(self.engine, self.runtime, snap.name, rootfs, bundle, process, vertex.log)
        except DockyardError as e:
            raise BuildError(e.message) from None

    def _sandbox(self) -> "Any":
        """The build's one network sandbox, opened by the first RUN that needs it (kept on
        the builder all stage copies share)."""
        owner = self.root_builder
        with owner._lock:
            if owner.sandbox is None:
                from dockyard.network.sandbox import open_sandbox

                owner.sandbox = open_sandbox(owner.engine, os.path.basename(owner.work))
            return owner.sandbox

    # ---- COPY / ADD

    def _copy(self, i: dfile.Instruction, state: State, key: str) -> tuple[State, str]:
        from dockyard.build import copying

        env = self._env(state)
        words = [dfile.process_word(w, env, self.df.escape) for w in i.args] if not i.json else list(i.args)
        if i.heredocs:
            raise BuildError(f"{self.df.name}:{i.line}: {i.keyword} with a heredoc is not supported yet")
        sources, dest = words[:-1], words[-1]
        source_from = i.flag("from") if i.keyword == "COPY" else None
        chown_spec = i.flag("chown")
        chmod_spec = i.flag("chmod")
        checksum_flag = i.flag("checksum")
        if i.flag_values("exclude") or i.flag("parents") is not None:
            raise BuildError(f"{self.df.name}:{i.line}: {i.keyword} --exclude and --parents are not supported")
        chmod = None
        if chmod_spec:
            try:
                chmod = int(chmod_spec, 8)
            except ValueError:
                raise BuildError(f"{self.df.name}:{i.line}: invalid chmod parameter: {chmod_spec}") from None
        conf = state.config.get("config", {})
        workdir = conf.get("WorkingDir") or "/"
        urls = [s for s in sources if i.keyword == "ADD" and s.startswith(("http://", "https://"))]
        if urls and len(urls) != len(sources):
            raise BuildError(f"{self.df.name}:{i.line}: ADD cannot mix URLs and local sources")
        if checksum_flag and not urls:
            raise BuildError(f"{self.df.name}:{i.line}: checksum can't be specified for non-HTTP(S) sources")
        shown = f"{i.keyword} {_flags_shown(i)}{' '.join(words)}"
        vertex = self._vertex(shown)
        with contextlib.ExitStack() as stack:
            if urls:
                tree = copying.SourceTree(self._download(urls, checksum_flag, stack, i))
                paths = sorted(os.listdir(tree.root))
                digest = copying.checksum(tree, paths)
            elif source_from is None:
                tree = self._source_tree(stack, i)
                paths = self._expand(tree, sources, i, vertex)
                digest = copying.checksum(tree, paths, self.memo)
            else:
                # A stage's or image's files are named by its layer chain (diff IDs are content
                # digests): the key needs no mount and no read; the view is made on a miss only.
                top = self._top_of(source_from, i)
                paths = list(sources)
                digest = caching.key("layers", top or "", paths)
                tree = _LazyTree(lambda: copying.SourceTree(stack.enter_context(self._view(top)), keep_owner=True))
            inputs = (i.keyword, digest, dest, workdir, chown_spec, chmod_spec, bool(urls),
                      [os.path.basename(p) for p in paths])
            created_by = f"{i.keyword} {_flags_shown(i)}{' '.join(words)} # buildkit"
            link = i.flag("link")
            if link is not None and link.lower() not in ("false", "0"):
                return self._linked_copy(state, key, inputs, tree, paths, dest, workdir, chown_spec, chmod,
                                         created_by, i, vertex)
            step_key = caching.key(key, *inputs)
            if not self.options.no_cache:
                hit = self.cache.get(step_key)
                if hit is not None:
                    vertex.cached()
                    return hit, step_key
            link_layers: list[str] = []
            if isinstance(tree, _LazyTree):
                tree = tree.get()
                paths = self._expand(tree, sources, i, vertex)
                link_layers = self.engine.layers.lowerdirs(top) if top else []
            with self._snapshot(state) as snap:
                rootfs = snap.mount()
                chown = _chown(rootfs, chown_spec) if chown_spec else None
                linker = copying.LinkSource(tree.root, link_layers, snap.diff) if link_layers else None
                try:
                    copying.copy(tree, paths, rootfs, dest, workdir=workdir, chown=chown, chmod=chmod,
                                 unpack_archives=(i.keyword == "ADD" and not urls), link_from=linker)
                except copying.CopyError as e:
                    vertex.error(e.message)
                    raise BuildError(f"{self.df.name}:{i.line}: {e.message}") from None
                new, size = self._commit(snap, state, created_by)
        self.cache.put(step_key, new, size)
        vertex.done()
        return new, step_key

    def _linked_copy(self, state: State, key: str, inputs: tuple, tree: "Any", paths: list[str], dest: str,
                     workdir: str, chown_spec: str | None, chmod: int | None, created_by: str,
                     i: dfile.Instruction, vertex: "Vertex") -> tuple[State, str]:
        """``COPY --link``: the files go into a layer of their own, made on nothing and cached
        by the sources alone, then stacked on whatever the parent is. A change before the
        step leaves the copy cached: only the (cheap) stacking is done again."""
        from dockyard.build import copying

        link_key = caching.key("link", *inputs)
        piece = None if self.options.no_cache else self.cache.get(link_key)
        reused = piece is not None
        if piece is None:
            if isinstance(tree, _LazyTree):
                tree = tree.get()
                paths = self._expand(tree, list(paths), i, vertex)
            with self._snapshot(State(config={}, chains=[])) as snap:
                if chown_spec and not all(part.isdigit() for part in chown_spec.split(":")):
                    raise BuildError(f"{self.df.name}:{i.line}: COPY --link --chown takes numeric IDs here "
                                     "(the files are copied before the image they land in is known)")
                rootfs = snap.mount()
                chown = _chown(rootfs, chown_spec) if chown_spec else None
                try:
                    copying.copy(tree, paths, rootfs, dest, workdir=workdir, chown=chown, chmod=chmod,
                                 unpack_archives=(i.keyword == "ADD"))
                except copying.CopyError as e:
                    vertex.error(e.message)
                    raise BuildError(f"{self.df.name}:{i.line}: {e.message}") from None
                piece, size = self._commit(snap, State(config={}, chains=[]), created_by)
            self.cache.put(link_key, piece, size)
        else:
            vertex.cached()
        step_key = caching.key(key, "stack", link_key)
        hit = None if self.options.no_cache else self.cache.get(step_key)
        if hit is not None:
            return hit, step_key
        new = state.copy()
        diff_ids = (piece.config.get("rootfs") or {}).get("diff_ids") or []
        size = 0
        if diff_ids:
            layer = self._stack(diff_ids[0], piece.chains[0], state.top)
            rootfs = new.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
            rootfs["diff_ids"] = list(rootfs.get("diff_ids") or []) + [diff_ids[0]]
            new.chains.append(layer.chain_id)
            size = layer.size
        new.add_history(self._history(created_by, empty=not diff_ids))
        self.cache.put(step_key, new, size)
        if not reused:
            vertex.done()
        return new, step_key

    def _stack(self, diff_id: str, own_chain: str, parent: str | None) -> "Any":
        """The layer ``diff_id`` (held as the base layer ``own_chain``) on ``parent``."""
        if parent is None:
            return self.engine.layers.get(own_chain)
        descriptor = self._layer_descriptor(diff_id, own_chain)
        from dockyard.oci import mediatypes as mt

        with self.engine.content.open(descriptor["digest"]) as blob:
            return self.engine.layers.unpack(blob, mt.compression_of(descriptor["mediaType"]), diff_id, parent)

    def _source_tree(self, stack: contextlib.ExitStack, i: dfile.Instruction):  # noqa: ANN202
        from dockyard.build import copying

        if self.ctx.root is None:
            raise BuildError(f"{self.df.name}:{i.line}: {i.keyword} needs a build context, and none was given")
        return copying.SourceTree(self.ctx.root, self.ctx.excluded)

    def _expand(self, tree: "Any", sources: list[str], i: dfile.Instruction, vertex: "Vertex") -> list[str]:
        from dockyard.build import copying

        try:
            return copying.expand_sources(tree, sources)
        except copying.CopyError as e:
            vertex.error(e.message)
            raise BuildError(f"{self.df.name}:{i.line}: failed to compute cache key: {e.message}") from None

    @contextlib.contextmanager
    def state_view(self, ref: str, i: dfile.Instruction) -> "Iterator[str]":
        """A read-only view (a mounted, empty snapshot) of an earlier stage or an image."""
        with self._view(self._top_of(ref, i)) as view:
            yield view

    @contextlib.contextmanager
    def _view(self, top: str | None) -> "Iterator[str]":
        from dockyard.store.snapshots import Snapshots

        with Snapshots(self.engine).prepare(top) as snap:
            yield snap.mount()

    def _top_of(self, ref: str, i: dfile.Instruction) -> str | None:
        """The top layer of an earlier stage or an image (files from either keep their owners,
        as in BuildKit; context files become 0:0)."""
        ref = dfile.process_word(ref, self.scope, self.df.escape)
        stage = self.df.stage(ref, before=self.stage.index)
        if stage is not None:
            if stage.index not in self.results:
                raise BuildError(f"{self.df.name}:{i.line}: stage {ref} was not built")
            top = self.results[stage.index].state.top
        else:
            if self.df.stage(ref) is not None:
                raise BuildError(f"{self.df.name}:{i.line}: circular dependency detected on stage: {ref}")
            top = self._base_image(ref, i.line).layers[-1] if ref != "scratch" else None
        return top

    def _download(self, urls: list[str], checksum: str | None, stack: contextlib.ExitStack,
                  i: dfile.Instruction) -> str:
        import asyncio

        from dockyard.build import copying

        if checksum and len(urls) != 1:
            raise BuildError(f"{self.df.name}:{i.line}: checksum can't be specified for multiple sources")
        directory = os.path.join(self.work, "download-" + os.urandom(6).hex())
        os.mkdir(directory)
        stack.callback(_rmtree, directory)
        for url in urls:
            part = os.path.join(directory, ".part")
            try:
                name, _ = asyncio.run(copying.download(url, part, checksum))
            except copying.CopyError as e:
                raise BuildError(f"{self.df.name}:{i.line}: {e.message}") from None
            os.replace(part, os.path.join(directory, name))   # mode 0600, mtime Last-Modified: download's
        return directory

    # ---- snapshots and layers

    @contextlib.contextmanager
    def _snapshot(self, state: State) -> "Iterator[Snapshot]":
        from dockyard.store.snapshots import Snapshots

        with Snapshots(self.engine).prepare(state.top) as snap:
            yield snap

    def _commit(self, snap: "Snapshot", state: State, created_by: str) -> tuple[State, int]:
        """The state with the snapshot's changes on top (no layer if it changed nothing)."""
        from dockyard.store.snapshots import Snapshots

        new = state.copy()
        snap.unmount()
        if snap.is_empty():
            new.add_history(self._history(created_by, empty=True))
            return new, 0
        info, diff_id, blob_size = Snapshots(self.engine).commit(snap)
        self.engine.layers.record_blob(diff_id, diff_id, _oci_layer(""), blob_size)
        rootfs = new.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        rootfs["diff_ids"] = list(rootfs.get("diff_ids") or []) + [diff_id]
        new.chains.append(info.chain_id)
        new.add_history(self._history(created_by, empty=False))
        return new, info.size

    def _vertex(self, text: str) -> "Vertex":
        self.step_no += 1
        return self.progress.vertex(f"[{self.label} {self.step_no}/{self.step_total}] {text}")

    # ------------------------------------------------------------------ export

    def _export(self, state: State) -> "Image":
        from dockyard import reference
        from dockyard.images.commit import commit

        vertex = self.progress.vertex("exporting to image")
        config = state.copy().config
        if self.options.labels:
            inner = config.setdefault("config", {})
            inner["Labels"] = {**(inner.get("Labels") or {}), **self.options.labels}
        config.setdefault("config", {})
        layers = [self._layer_descriptor(diff_id, chain)
                  for diff_id, chain in zip(config.get("rootfs", {}).get("diff_ids") or [], state.chains)]
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
        from dockyard.oci import mediatypes as mt

        config_digest = _put(self.engine, config_bytes)
        manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                    "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
                    "layers": layers}
        manifest_digest = _put(self.engine, json.dumps(manifest, separators=(",", ":")).encode())
        vertex.log(b"exporting layers done\n")
        tags = [str(reference.parse(t)) for t in self.options.tags]
        image = self._unchanged(config_digest, tags) or commit(self.engine, manifest_digest, tags)
        vertex.log(f"writing image {image.id} done\n".encode())
        for tag in tags:
            vertex.log(f"naming to {tag} done\n".encode())
        vertex.done()
        return image

    def _unchanged(self, image_id: str, tags: list[str]) -> "Image | None":
        """The image when it is already recorded under every tag asked for (a cached
        rebuild): then nothing needs writing."""
        store = self.engine.image_store
        if not store.exists(image_id):
            return None
        named = {r[0] for r in self.engine.db.execute("SELECT name FROM tags WHERE image_id = ?", (image_id,))}
        return store.get(image_id) if set(tags) <= named else None

    def _layer_descriptor(self, diff_id: str, chain: str) -> "dict[str, Any]":
        """The layer's blob as the manifest lists it: a stored form of it (a base image's
        compressed blob, or the uncompressed tar a step wrote), packed again from the layer
        when a prune took it."""
        content = self.engine.content
        for blob, media_type, _size in self.engine.layers.blobs_for(diff_id):
            if content.has(blob):
                from dockyard.oci import mediatypes as mt

                return {"mediaType": _oci_layer(mt.compression_of(media_type)), "digest": blob,
                        "size": content.size(blob)}
        from pathlib import Path

        from dockyard.store import archive

        with content.ingest(expected=diff_id) as writer:
            archive.pack(Path(self.engine.layers.diff_dir(chain)), writer, hash=False)
            writer.commit()
        size = content.size(diff_id)
        self.engine.layers.record_blob(diff_id, diff_id, _oci_layer(""), size)
        return {"mediaType": _oci_layer(""), "digest": diff_id, "size": size}


# ---------------------------------------------------------------------- helpers


class _LazyTree:
    """A source tree made only when it is needed (a view costs a mount)."""

    def __init__(self, make: "Any") -> None:
        self.make = make

    def get(self) -> "Any":
        return self.make()


def work_area(engine: "Engine"):  # noqa: ANN201
    from dockyard.store.owned import TempArea

    base = os.path.join(engine.root, "build")
    return TempArea(os.path.join(base, "work"), os.path.join(engine.root, "locks", "build-work"), "unfinished build")


def reclaim(engine: "Engine") -> list[str]:
    """Clear what builds killed -9 left: their RUN processes' runtime state, snapshots,
    network sandboxes and work dirs. Returns what went, in words."""
    if not _traces(engine):
        return []   # the common case, found without loading the modules below
    from dockyard.build import executor
    from dockyard.network import sandbox
    from dockyard.store.snapshots import Snapshots

    snapshots = Snapshots(engine)
    area = work_area(engine)

    gone = [f"build step {c}" for c in executor.reclaim(engine, snapshots.alive)]
    gone += [f"build network sandbox {o}" for o in sandbox.reclaim(engine, area.held)]
    gone += [item.path for item in snapshots.reclaim()]
    gone += [item.path for item in area.reclaim()]
    return gone


def _traces(engine: "Engine") -> bool:
    """Is anything a build holds there at all (live or dead: ``reclaim`` tells which)?"""
    from dockyard.build.executor import ID_PREFIX
    from dockyard.network.sandbox import PREFIX

    def listed(path: str, prefix: str = "") -> bool:
        try:
            return any(name.startswith(prefix) for name in os.listdir(path))
        except FileNotFoundError:
            return False

    runroot = engine.settings.runroot
    runtimes = os.path.join(runroot, "build", "runtime")
    return (listed(os.path.join(engine.root, "build", "work"))
            or listed(os.path.join(engine.root, "layers", "snapshots"))
            or listed(os.path.join(runroot, "netns"), PREFIX)
            or any(listed(os.path.join(runtimes, r), ID_PREFIX) for r in (os.listdir(runtimes) if os.path.isdir(runtimes) else ()))
            or engine.db.execute("SELECT 1 FROM build_leases LIMIT 1").fetchone() is not None)


def reset(engine: "Engine") -> list[str]:
    """``system reset``: every build's RUN processes and network sandboxes, live or not."""
    from dockyard.build import executor
    from dockyard.network import sandbox

    gone = [f"build step {c}" for c in executor.reclaim(engine, lambda _: False)]
    return gone + [f"build network sandbox {o}" for o in sandbox.reclaim(engine, lambda _: False)]


def _rest(i: dfile.Instruction) -> str:
    """The instruction's text after its keyword (continuations already joined)."""
    text = i.original.split(None, 1)
    return text[1].strip() if len(text) > 1 else ""


def _shown(i: dfile.Instruction, conf: "dict[str, Any]") -> str:
    if i.keyword in ("CMD", "ENTRYPOINT"):
        value = conf.get("Cmd" if i.keyword == "CMD" else "Entrypoint") or []
        return f"{i.keyword} [" + " ".join(json.dumps(v) for v in value) + "]"
    return f"{i.keyword} {_rest(i)}"


def _flags_shown(i: dfile.Instruction) -> str:
    return "".join(f"{f} " for f in i.flags if not f.startswith("--mount=type=secret"))


def _run_argv(i: dfile.Instruction, shell: "list[str]") -> list[str]:
    if i.json:
        return list(i.args)
    if i.heredocs and i.args and i.args[0].startswith("<<") and len(i.args) == 1:
        return list(shell) + [i.heredocs[0][1]]   # RUN <<EOF: the heredoc is the script
    if i.heredocs:
        body = "".join(f"{content}{name}\n" for name, content in i.heredocs)
        return list(shell) + [" ".join(i.args) + "\n" + body]
    return list(shell) + [" ".join(i.args)]


def _healthcheck(i: dfile.Instruction, shell: "list[str]") -> "dict[str, Any]":
    from dockyard.timefmt import parse_duration

    args = list(i.args)
    kind = args[0].upper() if args else ""
    if kind == "NONE":
        if len(args) > 1 or i.flags:
            raise BuildError("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise BuildError(f"Unknown type {args[0] if args else ''!r} in HEALTHCHECK (try CMD)")
    rest = args[1:]
    if i.json:
        test = ["CMD"] + rest
    else:
        test = ["CMD-SHELL", " ".join(rest)]
    check: dict[str, Any] = {"Test": test}
    names = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
             "start-interval": "StartInterval"}
    for flag, key in names.items():
        value = i.flag(flag)
        if value:
            try:
                check[key] = int(parse_duration(value) * 1e9)
            except ValueError:
                raise BuildError(f"invalid --{flag} value {value!r}") from None
    if i.flag("retries"):
        try:
            check["Retries"] = int(i.flag("retries") or 0)
        except ValueError:
            raise BuildError(f"invalid --retries value {i.flag('retries')!r}") from None
    return check


def _chown(rootfs: str, spec: str) -> tuple[int, int]:
    """``--chown=user:group`` resolved in the destination's /etc/passwd and /etc/group."""
    from dockyard.runtime.spec import SpecError, resolve_user

    user, sep, group = spec.partition(":")
    try:
        resolved = resolve_user(rootfs, f"{user}:{group}" if sep and group else user)
    except SpecError as e:
        raise BuildError(f"unable to convert uid/gid chown string to host mapping: {e.message}") from None
    gid = resolved["gid"] if sep and group else (resolved["gid"] if not user.isdigit() else resolved["uid"])
    return resolved["uid"], gid


def _mkdir_in(rootfs: str, path: str) -> None:
    from dockyard.fsutil import in_root

    target = in_root(rootfs, path)
    if not os.path.isdir(target):
        os.makedirs(target, mode=0o755, exist_ok=True)


def _host_resolv() -> str:
    from dockyard.network.attach import _resolv

    return _resolv({}, None)


def _oci_layer(compression: str) -> str:
    from dockyard.oci import mediatypes as mt

    return {"": mt.OCI_LAYER, "gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD}[compression]


def _put(engine: "Engine", data: bytes) -> str:
    from dockyard.digest import small_sha256

    d = "sha256:" + small_sha256(data)
    if not engine.content.has(d):
        engine.content.write_bytes(data, d)
    return d


def _rmtree(path: str) -> None:
    from dockyard.store.owned import remove_tree

    remove_tree(path)

