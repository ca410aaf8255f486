"""``GET /events``: the engine's event log (``dockyard.events``) as dockerd's JSON stream.

``since``/``until`` bound the window (Unix seconds, ``secs.nanos``); without ``until`` the
answer follows the log until the client goes. A follower holds no thread while it waits: each
step of the log reader (a bounded read of new lines) runs on a worker thread and the waits
between them are on the event loop; a client that disconnects closes the reader (its fd) at
the next step.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Iterator

from aiohttp import web

from dockyard.api import http

routes = http.Routes()

POLL_SECONDS = 0.2     # how soon a follower sees an event another process logged
BATCH = 256            # events per worker step (one write)


def _time(request: web.Request, name: str, now: int) -> int | None:
    from dockyard import events as log

    value = request.query.get(name)
    if not value:
        return None
    try:
        return log.parse_time(value, now)
    except ValueError as e:
        raise http.bad_request(str(e)) from None


def encode(message: dict[str, Any]) -> bytes:
    """One event as dockerd's encoder writes it: Go's field order, the attributes sorted."""
    from dockyard.events import go_message

    return json.dumps(go_message(message), separators=(",", ":")).encode() + b"\n"


def _step(reader: Iterator[dict | None]) -> tuple[bytes, str]:
    """Up to BATCH events from the reader: (their lines, "more" | "idle" | "end")."""
    lines = []
    for message in reader:
        if message is None:
            return b"".join(lines), "idle"
        lines.append(encode(message))
        if len(lines) >= BATCH:
            return b"".join(lines), "more"
    return b"".join(lines), "end"


@routes.get("/events")
async def events(request: web.Request) -> web.StreamResponse:
    from dockyard import events as log
    from dockyard.errors import DockyardError

    now = time.time_ns()
    since = _time(request, "since", now)
    until = _time(request, "until", now)
    filters = http.query_filters(request)
    try:
        log.validate_filters(filters)
    except DockyardError as e:
        raise http.bad_request(e.message) from None
    if since is not None and until is not None and until < since:
        raise http.bad_request("`since` time cannot be after `until` time")
    root = request.app[http.SETTINGS_KEY].root
    reader = log.read(root, since=since, until=until, filters=filters, follow=until is None or until > now,
                      history=since is not None or until is not None, idle=True)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    pool = http.workers(request).pool
    running = None
    try:
        await response.prepare(request)   # the headers now: a client waits for them before any event
        while True:
            running = pool.submit(_step, reader)
            data, state = await asyncio.wrap_future(running)
            running = None
            if data:
                await response.write(data)
            if state == "end":
                break
            if state == "idle":
                transport = request.transport
                if transport is None or transport.is_closing():
                    break   # the client went while nothing happened
                await asyncio.sleep(POLL_SECONDS)
    except ConnectionError:
        pass   # the client went; nothing to answer
    finally:
        if running is not None and not running.done():
            running.add_done_callback(lambda _: reader.close())   # the step in flight finishes first
        else:
            reader.close()
    return response
