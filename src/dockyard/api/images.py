"""Image routes of the Engine API (1.41): list, inspect, history, tag, remove, prune, pull
(``/images/create``, also import), push, save (``/images/get``), load, search, and ``/auth``.

Every engine call runs on a worker thread (``http.call``). Pull, push, load, import and build
are long jobs streamed as dockerd streams them: ``job_stream`` runs the job on a worker thread
(pull and push run their own event loop there, ``asyncio.run`` in that thread) and sends each
JSON message to the client as it happens, through a queue; a request body (a tar) is read by the
worker chunk by chunk (``BodyReader``), never whole into memory.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import logging
import re
import threading
import time
from typing import Any, Callable

from aiohttp import web

from dockyard.api import http
from dockyard.errors import DockyardError, NotFoundError, RegistryError

routes = http.Routes()
log = logging.getLogger("dockyard.api")

Emit = Callable[[dict], None]


# ---------------------------------------------------------------- streaming jobs

class BodyReader(io.RawIOBase):
    """The request body as a blocking binary stream, for a worker thread (never the loop's)."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        self.content = request.content
        self.loop = loop

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = asyncio.run_coroutine_threadsafe(self.content.read(len(b)), self.loop).result()
        n = len(data)
        b[:n] = data
        return n


def body_stream(request: web.Request) -> io.BufferedReader:
    """Call on the loop; read from a worker thread."""
    return io.BufferedReader(BodyReader(request, asyncio.get_running_loop()), 1 << 20)


class ResponseWriter(io.RawIOBase):
    """A prepared streaming response as a blocking binary stream, for a worker thread."""

    def __init__(self, response: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self.response = response
        self.loop = loop

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        asyncio.run_coroutine_threadsafe(self.response.write(data), self.loop).result()
        return len(data)


def error_line(message: str) -> dict:
    return {"errorDetail": {"message": message}, "error": message}


def message_of(error: BaseException) -> str:
    if isinstance(error, (DockyardError, http.ApiError)):
        return error.message
    log.error("job failed", exc_info=error)
    return str(error) or type(error).__name__


async def job_stream(request: web.Request, job: Callable[[Any, Emit], Any],
                     held: Callable[[dict], bool] = lambda item: False,
                     error: Callable[[BaseException, str], dict] = lambda e, message: error_line(message),
                     ) -> web.StreamResponse:
    """Run ``job(engine, emit)`` on a worker thread and stream what it emits as JSON lines.

    Messages ``held`` says yes to are kept back while nothing else has come: a job that fails
    before anything else answers Docker's error status and ``{"message"}`` (dockerd's answer to
    a pull of a missing tag); a later failure is the stream's last line, ``errorDetail``.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    def emit(item: dict) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    future = asyncio.ensure_future(http.call(request, job, emit))

    def finished(f: asyncio.Future) -> None:
        # Queued after every emit of the job's thread: those were scheduled before it returned.
        queue.put_nowait(done)
        if not f.cancelled():
            f.exception()   # retrieved: a client that left mid-job leaves no asyncio warning behind

    future.add_done_callback(finished)
    pending: list[dict] = []
    out = _Lines(request)
    while True:
        item = await queue.get()
        if item is done:
            break
        if not out.started and held(item):
            pending.append(item)
            continue
        for early in pending:
            await out.write(early)
        pending.clear()
        await out.write(item)
    # The job has ended (a client that left is not waited on less: the request stays active
    # while the job runs, so an idle service does not exit under it).
    failure = future.exception()
    if failure is not None and not out.started:
        raise failure
    for early in pending:
        await out.write(early)
    if failure is not None:
        if out.gone:
            log.info("%s %s: the client left; the job ended with: %s", request.method, request.path,
                     message_of(failure))
        await out.write(error(failure, message_of(failure)))
    return await out.finish()


class _Lines:
    """The streamed answer: started on the first line; a client that left makes writes no-ops."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None
        self.gone = False

    @property
    def started(self) -> bool:
        return self.response is not None

    async def write(self, item: dict) -> None:
        if self.response is None:
            self.response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            await self.response.prepare(self.request)
        if self.gone:
            return
        try:
            await self.response.write(json.dumps(item).encode() + b"\r\n")
        except ConnectionResetError:
            self.gone = True

    async def finish(self) -> web.StreamResponse:
        if self.response is None:
            self.response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            await self.response.prepare(self.request)
        if not self.gone:
            try:
                await self.response.write_eof()
            except ConnectionResetError:
                pass
        return self.response


# ---------------------------------------------------------------- registry credentials

def registry_auth(request: web.Request) -> Any:
    """The ``X-Registry-Auth`` header (base64url JSON: username/password or identitytoken) as
    Credentials; None without one. dockerd uses only what the client sends."""
    from dockyard.distribution.credentials import Credentials

    text = request.headers.get("X-Registry-Auth", "").strip()
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw) if raw.strip() else {}
    except (binascii.Error, ValueError):
        # dockerd falls back to no credentials on a header it cannot read
        return None
    if not isinstance(data, dict):
        return None
    if data.get("identitytoken"):
        # Sent as the password of user "<token>"; the engine has no OAuth refresh-token grant,
        # so only a registry that takes it that way accepts it.
        return Credentials("<token>", str(data["identitytoken"]))
    if data.get("username") or data.get("password"):
        return Credentials(str(data.get("username") or ""), str(data.get("password") or ""))
    return None


# ---------------------------------------------------------------- progress as JSON messages

_PULLING = re.compile(r"^(\S+): (Pulling from .+)$")
_PUSHED = re.compile(r"^(\S+): digest: (sha256:[0-9a-f]{64}) size: (\d+)$")
_QUIET_STATUSES = frozenset({"Extracting", "Downloading", "Pushing"})


class JsonProgress:
    """distribution's Progress interface as dockerd's JSON messages."""

    def __init__(self, emit: Emit, pulled_as: str = "") -> None:
        self.emit = emit
        self.pulled_as = pulled_as   # what "Pulling from" is said of, when not the engine's label
        self._lock = threading.Lock()
        self._last_sent: dict[str, float] = {}

    def message(self, text: str) -> None:
        pulling = _PULLING.match(text)
        if pulling:
            self.emit({"status": pulling[2], "id": self.pulled_as or pulling[1]})
            return
        self.emit({"status": text})
        pushed = _PUSHED.match(text)
        if pushed:
            self.emit({"progressDetail": {},
                       "aux": {"Tag": pushed[1], "Digest": pushed[2], "Size": int(pushed[3])}})

    def status(self, id: str, text: str) -> None:
        if text in _QUIET_STATUSES:
            return   # dockerd sends these with byte counts only, which a log never shows
        self.emit({"status": text, "progressDetail": {}, "id": id})

    def transfer(self, id: str, action: str, current: int, total: int | None) -> None:
        now = time.monotonic()
        with self._lock:   # a message per 100 ms per layer, and the last one
            if total is not None and current < total and now - self._last_sent.get(id, 0) < 0.1:
                return
            self._last_sent[id] = now
        detail: dict[str, int] = {"current": current}
        if total:
            detail["total"] = total
        self.emit({"status": action, "progressDetail": detail, "progress": _bar(current, total), "id": id})

    def close(self) -> None:
        pass


def _bar(current: int, total: int | None) -> str:
    from dockyard.units import human_size

    if not total:
        return human_size(current)
    width = 50
    filled = min(width, int(width * current / total))
    arrow = "=" * max(0, filled - 1) + (">" if filled else "") + " " * (width - filled)
    return f"[{arrow}] {human_size(current)}/{human_size(total)}"


# ---------------------------------------------------------------- list, inspect, history

@routes.get("/images/json")
async def list_images(request: web.Request) -> web.Response:
    filters = http.query_filters(request)
    all_ = http.query_bool(request, "all")
    if request.query.get("filter"):   # the API's old single-reference parameter
        filters.setdefault("reference", []).append(request.query["filter"])

    def work(engine: Any) -> list[dict]:
        return [_summary(engine, s) for s in engine.images.list(filters, all=all_)]

    return http.json_response(await http.call(request, work))


def _summary(engine: Any, s: Any) -> dict:
    """dockerd's ImageSummary; an image with no name shows ``<none>`` as dockerd 20.10 does."""
    tags, digests = list(s.repo_tags), list(s.repo_digests)
    if not tags and not digests:
        tags, digests = ["<none>:<none>"], ["<none>@<none>"]
    try:
        labels = (engine.image_store.config(engine.image_store.get(s.id)).get("config") or {}).get("Labels")
    except (DockyardError, OSError, ValueError):
        labels = None
    return {"Containers": s.containers, "Created": int(s.created or 0), "Id": s.id, "Labels": labels or None,
            "ParentId": "", "RepoDigests": digests, "RepoTags": tags, "SharedSize": s.shared_size,
            "Size": s.size, "VirtualSize": s.size}


@routes.get("/images/search")
async def search(request: web.Request) -> web.Response:
    term = request.query.get("term", "")
    if not term:
        raise http.bad_request("term is required")
    limit = http.query_int(request, "limit", 25) or 25
    filters = http.query_filters(request)
    results = await http.call(request, lambda engine: _search(engine, term, limit))
    stars = [int(v) for v in filters.get("stars", []) if v.isdigit()]
    official = filters.get("is-official", [])
    automated = filters.get("is-automated", [])
    out = []
    for r in results:
        if stars and int(r.get("star_count") or 0) < max(stars):
            continue
        if official and bool(r.get("is_official")) != (official[-1] == "true"):
            continue
        if automated and bool(r.get("is_automated")) != (automated[-1] == "true"):
            continue
        out.append({"star_count": int(r.get("star_count") or 0), "is_official": bool(r.get("is_official")),
                    "name": r.get("name", ""), "is_automated": bool(r.get("is_automated")),
                    "description": r.get("description") or ""})
    return http.json_response(out)


def _search(engine: Any, term: str, limit: int) -> list[dict]:
    """GET /v1/search on the registry the term names (``host/term``; Docker Hub's index else)."""
    import urllib.error
    import urllib.parse
    import urllib.request

    from dockyard.reference import DOCKER_HUB_REGISTRY

    host, slash, rest = term.partition("/")
    if slash and ("." in host or ":" in host or host == "localhost"):
        query = rest
    else:
        host, query = "index.docker.io", term
    if host == DOCKER_HUB_REGISTRY:
        host = "index.docker.io"
    loopback = host.split(":")[0] in ("localhost", "127.0.0.1", "::1", "[::1]")
    schemes = ["https", "http"] if loopback or host in _insecure(engine) else ["https"]
    last = ""
    for scheme in schemes:
        url = f"{scheme}://{host}/v1/search?" + urllib.parse.urlencode({"q": query, "n": limit})
        try:
            with urllib.request.urlopen(url, timeout=15) as resp:
                data = json.loads(resp.read(16 << 20))
            return list(data.get("results") or [])
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise DockyardError(f"registry {host} does not support search: GET /v1/search answered 404 "
                                    "(a v2-only registry such as distribution has no search)") from None
            last = f"{url}: {e.code} {e.reason}"
        except (urllib.error.URLError, OSError, ValueError) as e:
            last = f"{url}: {getattr(e, 'reason', e)}"
    raise DockyardError(f"Error searching {host}: {last}")


def _insecure(engine: Any) -> list[str]:
    return list(getattr(engine.settings, "insecure_registries", None) or [])


@routes.get("/images/get")
async def save_many(request: web.Request) -> web.StreamResponse:
    names = http.split_csv(request.query.getall("names", []))
    return await _save(request, names)


@routes.post("/images/load")
async def load(request: web.Request) -> web.StreamResponse:
    quiet = http.query_bool(request, "quiet")
    body = body_stream(request)

    def work(engine: Any, emit: Emit) -> None:
        for line in engine.images.load(body, quiet=quiet):
            emit({"stream": line + "\n"})

    return await job_stream(request, work)


@routes.post("/images/prune")
async def prune(request: web.Request) -> web.Response:
    filters = http.query_filters(request)
    dangling = filters.pop("dangling", ["true"])
    all_ = dangling[-1].lower() in ("false", "0")
    report = await http.call(request, lambda engine: engine.images.prune(all=all_, filters=filters))
    deleted = [_delete_record(r) for r in report.deleted]
    return http.json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": report.reclaimed})


@routes.post("/images/create")
async def create(request: web.Request) -> web.StreamResponse:
    source = request.query.get("fromSrc")
    if source is not None:
        return await _import(request, source)
    image = request.query.get("fromImage", "")
    if not image:
        raise http.bad_request("fromImage or fromSrc is required")
    tag = request.query.get("tag", "")
    from dockyard import reference
    from dockyard.oci import platform as platforms

    ref = reference.parse((f"{image}@{tag}" if tag.startswith("sha256:") else f"{image}:{tag}") if tag else image,
                          default_tag=False)
    all_tags = not ref.tag and not ref.digest   # no tag anywhere: every tag (docker pull -a)
    text = request.query.get("platform", "")
    try:
        wanted = platforms.parse(text) if text else None
    except DockyardError as e:
        raise http.bad_request(e.message) from None
    creds = registry_auth(request)

    def work(engine: Any, emit: Emit) -> None:
        if not all_tags:
            # dockerd says a digest pull is "Pulling from" of the whole familiar reference
            progress = JsonProgress(emit, pulled_as=ref.familiar() if ref.digest else "")
            engine.images.pull(ref, platform=wanted, progress=progress, creds=creds)
            return
        newer = False

        def each(item: dict) -> None:
            nonlocal newer
            status = str(item.get("status", ""))
            if status.startswith("Status: "):   # one Status line for the repository, at the end
                newer = newer or status.startswith("Status: Downloaded newer image")
                return
            emit(item)

        for name in registry_tags(engine, ref, creds):
            engine.images.pull(ref.with_tag(name), platform=wanted,
                               progress=JsonProgress(each), creds=creds)
        repo = ref.familiar_repository
        emit({"status": f"Status: Downloaded newer image for {repo}" if newer
              else f"Status: Image is up to date for {repo}"})

    # "Pulling from" is held: a missing tag is then a 404, as dockerd answers it.
    try:
        return await job_stream(request, work,
                                held=lambda item: str(item.get("status", "")).startswith("Pulling from"))
    except RegistryError as e:
        if e.message.startswith("manifest for ") or e.message.startswith("pull access denied"):
            raise http.ApiError(404, e.message) from None
        raise


def registry_tags(engine: Any, ref: Any, creds: Any) -> list[str]:
    """The repository's tags (GET /v2/NAME/tags/list, following Link pages), sorted."""
    from dockyard.distribution.client import RegistryClient

    async def fetch() -> list[str]:
        tags: list[str] = []
        async with RegistryClient(engine.settings, ref.registry_host, creds) as client:
            url: Any = client.url(f"{ref.path}/tags/list")
            for _ in range(100):   # pages
                async with client.request("GET", url, scopes=[f"repository:{ref.path}:pull"],
                                          what=f"tags of {ref.path}") as resp:
                    data = await resp.json(content_type=None)
                    link = resp.headers.get("Link", "")
                tags += list((data or {}).get("tags") or [])
                page = re.match(r"<([^>]+)>", link)
                if not page:
                    break
                url = str(client.base) + page[1]
        return sorted(set(tags))

    found = asyncio.run(fetch())
    if not found:
        raise NotFoundError(f"no tags found for {ref.familiar_repository}")
    return found


async def _import(request: web.Request, source: str) -> web.StreamResponse:
    from dockyard import reference

    repo = request.query.get("repo", "")
    tag = request.query.get("tag", "")
    name = None
    if repo:
        name = f"{repo}:{tag}" if tag else repo
        reference.parse(name)   # a bad name is a 400 before the body is read
    changes = request.query.getall("changes", [])
    message = request.query.get("message", "")
    text = request.query.get("platform", "")
    from dockyard.oci import platform as platforms

    wanted = platforms.parse(text) if text else None
    stream: Any = body_stream(request) if source == "-" else source

    def work(engine: Any, emit: Emit) -> None:
        image = engine.images.import_(stream, name, changes, message, wanted)
        emit({"status": image.id})

    return await job_stream(request, work)


# The routes below name an image in the path: it may hold slashes and colons
# (127.0.0.1:5000/team/app:1), so they come after the fixed /images/... paths.

@routes.get("/images/{name:.+}/json")
async def inspect(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        return http.json_response(await http.call(request, lambda engine: engine.images.inspect(name)))
    except NotFoundError:
        raise NotFoundError(f"no such image: {name}: No such image: {_as_dockerd_names(name)}") from None


def _as_dockerd_names(name: str) -> str:
    """A name as dockerd's "No such image" says it: a reference with its tag (``:latest`` added),
    an ID or ID prefix as given."""
    from dockyard import reference

    if re.fullmatch(r"(sha256:)?[0-9a-f]{1,64}", name):
        return name
    try:
        return reference.parse(name).familiar()
    except DockyardError:
        return name


async def _or_no_such_image(request: web.Request, name: str, fn: Callable[[Any], Any]) -> Any:
    try:
        return await http.call(request, fn)
    except NotFoundError as e:
        if not e.message.startswith("No such image"):
            raise
        raise NotFoundError(f"No such image: {_as_dockerd_names(name)}") from None


@routes.get("/images/{name:.+}/history")
async def history(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    entries = await _or_no_such_image(request, name, lambda engine: engine.images.history(name))
    return http.json_response([{"Comment": e.comment, "Created": int(e.created or 0), "CreatedBy": e.created_by,
                                "Id": e.id, "Size": e.size, "Tags": e.tags or None} for e in entries])


@routes.get("/images/{name:.+}/get")
async def save_one(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    if not names:
        raise http.bad_request("no image names given (names=...)")
    # Every name must exist before a byte is sent: then a missing one is dockerd's 404.
    await http.call(request, lambda engine: [engine.images.get(n) for n in names])
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/x-tar"})
    await response.prepare(request)
    loop = asyncio.get_running_loop()

    def work(engine: Any) -> None:
        out = io.BufferedWriter(ResponseWriter(response, loop), 1 << 20)
        engine.images.save(names, out)
        out.flush()

    try:
        await http.call(request, work)
    except ConnectionResetError:
        return response   # the client left
    except Exception as e:  # noqa: BLE001 - headers are sent: the only way left to fail is to cut the tar short
        log.warning("save of %s failed after it began: %s", names, message_of(e))
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response


@routes.post("/images/{name:.+}/push")
async def push(request: web.Request) -> web.StreamResponse:
    from dockyard import reference

    name = request.match_info["name"]
    tag = request.query.get("tag", "")
    ref = reference.parse(f"{name}:{tag}" if tag else name, default_tag=bool(tag))
    creds = registry_auth(request)

    def work(engine: Any, emit: Emit) -> None:
        targets = [ref] if ref.tag else _tags_of(engine, ref)
        if not targets or engine.image_store.find(str(targets[0])) is None:
            # dockerd names the repository, then fails in the stream
            emit({"status": f"The push refers to repository [{ref.repository}]"})
            raise NotFoundError(f"An image does not exist locally with the tag: {ref.familiar_repository}")
        progress = JsonProgress(emit)
        for target in targets:
            engine.images.push(target, progress=progress, creds=creds)

    return await job_stream(request, work)


def _tags_of(engine: Any, ref: Any) -> list[Any]:
    """A push without a tag pushes every tag of the repository, as dockerd does."""
    from dockyard import reference

    out = []
    for (name,) in engine.db.execute("SELECT name FROM tags ORDER BY name"):
        parsed = reference.parse(name)
        if parsed.repository == ref.repository:
            out.append(parsed)
    return out


@routes.post("/images/{name:.+}/tag")
async def tag(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    repo = request.query.get("repo", "")
    if not repo:
        raise http.bad_request("repository name must have at least one component")
    tag_ = request.query.get("tag", "")
    target = f"{repo}:{tag_}" if tag_ else repo
    await _or_no_such_image(request, name, lambda engine: engine.images.tag(name, target))
    return http.no_content(201)


@routes.delete("/images/{name:.+}")
async def remove(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    force = http.query_bool(request, "force")
    http.query_bool(request, "noprune")   # parents are never kept apart: dockyard images have none
    records = await http.call(request, lambda engine: engine.images.remove(name, force=force))
    return http.json_response([_delete_record(r) for r in records])


def _delete_record(record: Any) -> dict:
    return {"Untagged": record.untagged} if record.untagged else {"Deleted": record.deleted}


# ---------------------------------------------------------------- /auth

@routes.post("/auth")
async def auth(request: web.Request) -> web.Response:
    from dockyard.distribution import login as logins
    from dockyard.distribution.credentials import Credentials
    from dockyard.errors import AuthenticationError

    body = await http.json_body(request)
    if not isinstance(body, dict):
        raise http.bad_request("invalid auth configuration: expected a JSON object")
    server = body.get("serveraddress") or None
    username, password = body.get("username") or "", body.get("password") or ""
    if body.get("identitytoken"):
        username, password = "<token>", body["identitytoken"]
    creds = Credentials(username, password)

    def check(engine: Any) -> None:
        logins.verify(engine.settings, server, creds)

    try:
        await http.call(request, check)
    except AuthenticationError as e:
        raise http.ApiError(401, e.message) from None
    return http.json_response({"IdentityToken": "", "Status": "Login Succeeded"})


# ---------------------------------------------------------------- commit

# Config fields of a commit body the image takes, as the Dockerfile instruction `--change` gives
# (the engine's commit applies changes); the rest of a container config means nothing to an image.
_COMMIT_IGNORED = ("Hostname", "Domainname", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin",
                   "StdinOnce", "Image", "NetworkDisabled", "MacAddress", "ArgsEscaped")


def commit_changes(config: Any) -> list[str]:
    """A commit body's Config (docker-py's ``conf``, Docker Compose v2's) as ``--change`` lines."""
    if config is None:
        return []
    if not isinstance(config, dict):
        raise http.bad_request("invalid commit config: expected an object")
    changes: list[str] = []
    for key, value in config.items():
        if value in (None, "", [], {}, False, 0) or key in _COMMIT_IGNORED:
            continue
        if key in ("Cmd", "Entrypoint", "Shell"):
            words = [value] if isinstance(value, str) else value
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                raise http.bad_request(f"invalid commit config: {key} must be a list of strings")
            changes.append(f"{key.upper()} {json.dumps(words)}")
        elif key == "Env" and isinstance(value, list):
            changes += [f"ENV {item}" if "=" in item else f"ENV {item}=" for item in value if isinstance(item, str)]
        elif key == "Labels" and isinstance(value, dict):
            changes += [f"LABEL {json.dumps(k)}={json.dumps(str(v))}" for k, v in value.items()]
        elif key == "ExposedPorts" and isinstance(value, dict):
            changes += [f"EXPOSE {port}" for port in value]
        elif key == "Volumes" and isinstance(value, dict):
            changes.append(f"VOLUME {json.dumps(list(value))}")
        elif key in ("WorkingDir", "User", "StopSignal") and isinstance(value, str):
            changes.append({"WorkingDir": "WORKDIR", "User": "USER", "StopSignal": "STOPSIGNAL"}[key] + " " + value)
        else:
            raise http.bad_request(f"commit config field {key} is not supported by dockyard")
    return changes


@routes.post("/commit")
async def commit(request: web.Request) -> web.Response:
    """``docker commit``: the container's changes as a new image, named ``repo:tag`` if given."""
    container = request.query.get("container", "")
    if not container:
        raise http.bad_request("No container given to commit")   # dockerd answers this for an empty name
    repo, tag_ = request.query.get("repo", ""), request.query.get("tag", "")
    reference = (f"{repo}:{tag_}" if tag_ else repo) or None
    changes = request.query.getall("changes", []) + commit_changes(await http.json_body(request, required=False)
                                                                    or None)
    comment, author = request.query.get("comment", ""), request.query.get("author", "")
    pause = http.query_bool(request, "pause", default=True)
    image = await http.call(request, lambda engine: engine.containers.commit(
        container, reference, changes, comment, author, pause))
    return http.json_response({"Id": image.id}, status=201)
