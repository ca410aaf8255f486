"""``POST /build``: the body is the context tar, unpacked by the engine's safe extraction into a
staging dir as it arrives (build/context.py, bounded by disk only); the engine's builder
builds it; its progress is answered as the classic builder's JSON stream, which the docker
CLI 20.10 prints when the daemon advertises no BuildKit (``Builder-Version: 1``):

    {"stream":"Step 1/3 : FROM busybox\\n"}
    {"stream":" ---> 3f57d9401f8d\\n"}
    {"stream":"Step 2/3 : RUN echo hi\\n"}
    {"stream":"hi\\n"}
    {"aux":{"ID":"sha256:..."}}
    {"stream":"Successfully built 5a4b3c2d1e0f\\n"}
    {"stream":"Successfully tagged x:latest\\n"}

The builder has no intermediate images or containers: a step shows its output, ``---> Using
cache`` when cached, and the image ID after FROM and at the end. A failed RUN is the classic
builder's error line (``The command '...' returned a non-zero code: N``, code N: docker build
exits N).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from aiohttp import web

from dockyard.api import http
from dockyard.api.images import Emit, body_stream, job_stream
from dockyard.build.progress import Progress, Vertex
from dockyard.errors import DockyardError

routes = http.Routes()

_STEP = re.compile(r"^\[(?P<label>.+) (?P<n>\d+)/(?P<m>\d+)\] (?P<text>.*)$", re.S)
_RUN_FAILED = re.compile(r'process "(?P<cmd>.*)" did not complete successfully: exit code: (?P<code>\d+)$', re.S)
_NETWORKS = {"": "default", "default": "default", "bridge": "default", "host": "host", "none": "none"}


class BuildFailed(DockyardError):
    """A build error with the code the classic builder gives it (a failed RUN's exit code)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class ClassicProgress(Progress):
    """The builder's vertices as the classic builder's ``Step i/N : INSTRUCTION`` stream."""

    def __init__(self, emit: Emit, engine: Any, quiet: bool) -> None:
        super().__init__(None)
        self.emit = emit if not quiet else (lambda item: None)
        self.engine = engine
        self.stages: dict[str, list[Any]] = {}   # label -> [FROM line, instructions...]
        self.shown: dict[str, int] = {}          # label -> instructions already shown
        self.total = 0
        self.step = 0

    def plan(self, dockerfile_text: str, name: str, target: str | None, build_args: dict[str, str]) -> None:
        """The steps the classic builder would count: FROM and every instruction of the
        stages the target needs."""
        from dockyard.build import dockerfile as dfile

        try:
            df = dfile.parse(dockerfile_text, name)
            needed = dfile.needed_stages(df, target, dfile.global_scope(df, build_args, {}))
        except DockyardError:
            return   # the builder reports it
        for index in needed:
            stage = df.stages[index]
            label = stage.name or f"stage-{stage.index}"
            self.stages[label] = [f"FROM {stage.base}" + (f" AS {stage.name}" if stage.name else "")] + \
                [i.original.strip() for i in stage.instructions]
            self.total += 1 + len(stage.instructions)

    def _say(self, text: str) -> None:
        self.emit({"stream": text})

    def _show_until(self, label: str, wanted: int) -> None:
        """Show the stage's instructions up to the ``wanted``-th (0-based) one."""
        lines = self.stages.get(label, [])
        while self.shown.get(label, 0) <= min(wanted, len(lines) - 1):
            index = self.shown.get(label, 0)
            self.step += 1
            self._say(f"Step {self.step}/{self.total} : {lines[index]}\n")
            self.shown[label] = index + 1

    def vertex(self, name: str) -> Vertex:
        vertex = super().vertex(name)
        match = _STEP.match(name)
        if match is None:
            if name.startswith("[internal] load metadata for "):
                # The base is being pulled: its FROM step is shown first, as the classic builder does.
                self._show_from(name[len("[internal] load metadata for "):])
            if name == "exporting to image":
                for label in self.stages:
                    self._show_until(label, len(self.stages[label]) - 1)
            return vertex
        label, n, text = match["label"], int(match["n"]), match["text"]
        keywords = [line.split(None, 1)[0].upper() for line in self.stages.get(label, [])]
        # The n-th vertex of a stage is FROM (n = 1) or its (n-1)-th RUN/COPY/ADD.
        steps = [k for k, word in enumerate(keywords) if k == 0 or word in ("RUN", "COPY", "ADD")]
        if n - 1 < len(steps) and keywords[steps[n - 1]] == text.split(None, 1)[0].upper():
            self._show_until(label, steps[n - 1])
        else:
            self._say(f" ---> Running {text}\n")   # an ONBUILD trigger, or a plan we could not read
        vertex.classic = text  # type: ignore[attr-defined]
        return vertex

    def _show_from(self, wanted: str) -> None:
        from dockyard import reference

        for label, lines in self.stages.items():
            if self.shown.get(label, 0):
                continue
            try:
                base = str(reference.parse(lines[0].split()[1]))
            except (DockyardError, IndexError):
                continue
            if base == wanted:
                self._show_until(label, 0)
                return

    def line(self, vertex: Vertex, text: str) -> None:
        if getattr(vertex, "classic", None):
            self._say(text + "\n")

    def end(self, vertex: Vertex, message: str) -> None:
        text = getattr(vertex, "classic", None)
        if not text:
            return
        if vertex.status == "CACHED":
            self._say(" ---> Using cache\n")
        elif vertex.status == "DONE" and text.startswith("FROM "):
            base = self._image_id(text[5:].split()[0])
            if base:
                self._say(f" ---> {base[7:19]}\n")

    def _image_id(self, name: str) -> str:
        try:
            found = self.engine.image_store.find(name)
        except DockyardError:
            return ""
        return found.id if found is not None else ""

    def warning(self, text: str) -> None:
        self._say(text + "\n")


@routes.post("/build")
async def build(request: web.Request) -> web.StreamResponse:
    from dockyard import reference

    q = request.query
    if q.get("remote"):
        raise http.bad_request(f"remote build contexts are not supported: {q['remote']}")
    tags = [t for t in q.getall("t", []) if t]
    for tag in tags:
        reference.parse(tag)   # a bad tag is a 400 before the context is read
    build_args = {k: v for k, v in _json_object(request, "buildargs").items() if v is not None}
    labels = {k: str(v) for k, v in _json_object(request, "labels").items()}
    network = q.get("networkmode", "")
    if network not in _NETWORKS:
        raise http.bad_request(f"network mode {network!r} is not supported for RUN: default, host or none")
    dockerfile = q.get("dockerfile") or "Dockerfile"
    target = q.get("target") or None
    quiet = http.query_bool(request, "q")
    no_cache = http.query_bool(request, "nocache")
    pull = http.query_bool(request, "pull") if q.get("pull") not in (None, "") else False
    # rm / forcerm: the classic builder's intermediate containers; this builder makes none.
    http.query_bool(request, "rm", True)
    http.query_bool(request, "forcerm")
    platform = q.get("platform") or None
    registry_auth = registry_config(request)
    body = body_stream(request)

    def work(engine: Any, emit: Emit) -> None:
        from dockyard.build.builder import BuildError, BuildOptions, Builder
        from dockyard.build.context import open_context

        options = BuildOptions(tags=tags, build_args=build_args, target=target, no_cache=no_cache, pull=pull,
                               network=_NETWORKS[network], labels=labels, platform=platform,
                               runtime=os.environ.get("DOCKYARD_RUNTIME") or "", registry_auth=registry_auth)
        with open_context(engine, "-", dockerfile, stdin=body) as ctx:
            progress = ClassicProgress(emit, engine, quiet)
            progress.plan(ctx.dockerfile_text, ctx.dockerfile_name, target, build_args)
            try:
                image = Builder(engine, ctx, options, progress).run()
            except BuildError as e:
                failed = _RUN_FAILED.search(e.message)
                if failed:
                    raise BuildFailed(f"The command '{failed['cmd']}' returned a non-zero code: {failed['code']}",
                                      int(failed["code"])) from None
                raise
        emit({"aux": {"ID": image.id}})
        if quiet:
            emit({"stream": image.id + "\n"})
            return
        progress.emit({"stream": f" ---> {image.id[7:19]}\n"})
        emit({"stream": f"Successfully built {image.id[7:19]}\n"})
        for tag in tags:
            emit({"stream": f"Successfully tagged {reference.parse(tag).familiar()}\n"})

    return await job_stream(request, work, error=_error_line)


def registry_config(request: web.Request) -> dict[str, Any]:
    """``X-Registry-Config``: base64url JSON of every registry's credentials by server address,
    for the base images the build pulls; keyed here as config.json keys them."""
    import base64
    import binascii

    from dockyard.distribution.credentials import Credentials, server_key

    text = request.headers.get("X-Registry-Config", "").strip()
    if not text:
        return {}
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)) or b"{}")
    except (binascii.Error, ValueError):
        return {}   # dockerd goes on without credentials too
    out: dict[str, Any] = {}
    for server, entry in (data.items() if isinstance(data, dict) else ()):
        if not isinstance(entry, dict):
            continue
        if entry.get("identitytoken"):
            out[server_key(server)] = Credentials("<token>", str(entry["identitytoken"]))
        elif entry.get("username") or entry.get("password"):
            out[server_key(server)] = Credentials(str(entry.get("username") or ""), str(entry.get("password") or ""))
    return out


def _error_line(error: BaseException, message: str) -> dict:
    detail: dict[str, Any] = {"message": message}
    if isinstance(error, BuildFailed) and error.code:
        detail = {"code": error.code, "message": message}
    return {"errorDetail": detail, "error": message}


def _json_object(request: web.Request, name: str) -> dict[str, Any]:
    text = request.query.get(name)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise http.bad_request(f"invalid {name}: not JSON") from None
    if not isinstance(value, dict):
        raise http.bad_request(f"invalid {name}: expected a JSON object")
    return value


@routes.post("/build/prune")
async def prune(request: web.Request) -> web.Response:
    """``docker builder prune`` and the last step of ``docker system prune``: the build cache
    (all of it with ``all``, else what no image uses), ``until`` as the CLI's filter; dead builds'
    leftovers are reclaimed first, as ``dockyard builder prune`` does."""
    import time

    from dockyard.timefmt import parse_duration, parse_timestamp

    filters = http.query_filters(request)
    until = None
    for key, values in filters.items():
        if key != "until":
            raise http.bad_request(f"invalid filter '{key}'")
        for value in values:
            try:
                until = time.time() - parse_duration(value)
            except ValueError:
                try:
                    until = parse_timestamp(value)
                except ValueError:
                    raise http.bad_request(f"invalid filter 'until={value}'") from None
    if http.query_int(request, "keep-storage", 0):
        raise http.bad_request("keep-storage is not supported: the build cache is pruned whole or by age")
    all_ = http.query_bool(request, "all")

    def run(engine: Any) -> list[tuple[str, int]]:
        from dockyard.build.builder import reclaim
        from dockyard.build.cache import BuildCache

        reclaim(engine)
        return BuildCache(engine).prune(all=all_, until=until)

    removed = await http.call(request, run)
    return http.json_response({"CachesDeleted": [key.partition(":")[2] for key, _ in removed] or None,
                               "SpaceReclaimed": sum(size for _, size in removed)})
