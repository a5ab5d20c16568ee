"""The product's one HTTP server (Starlette on uvicorn): /healthz, and the channels' webhooks.

It is on the public internet (behind a reverse proxy, docs/operations.md), so every resource a
client can hold is bounded: connections (uvicorn's `limit_concurrency`: more get a 503), the
size of a request head (h11's incomplete-event limit), idle keep-alive, and the size and the
time of a request body (`BoundedBody`, since uvicorn has no body timeout). A client that goes
away mid-body costs one log line, and what an attack repeats (503s, cut bodies, accept errors
when descriptors run out) is logged once per interval (`QuietRepeats`), not once per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.engine.health import DATABASE, Health, short_reason

log = logging.getLogger(__name__)

# The database's answer to /healthz's SELECT 1 must come within this, or it counts as down.
DATABASE_CHECK_SECONDS = 2.0
# Methods whose body is read (and bounded) before the route sees the request.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
DatabaseCheck = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class ServerLimits:
    """What one client may hold. The defaults suit the webhooks (Meta and Telegram post a few
    kB and send the whole body at once); docs/operations.md pairs them with the proxy's."""

    max_connections: int = 500  # beyond: 503 at once (uvicorn's limit_concurrency)
    keep_alive_seconds: int = 5  # an idle kept-alive connection is closed after this
    max_head_bytes: int = 16 * 1024  # request line and headers (h11)
    max_body_bytes: int = 1024 * 1024
    body_seconds: float = 10.0  # the whole body must have arrived by then: else 408
    # Bodies are read before a route checks the sender: all of them together may hold this
    # much memory; a body that would go past it gets 503 (max_connections x max_body is more).
    max_buffered_bytes: int = 64 * 1024 * 1024
    backlog: int = 512


class QuietRepeats(logging.Filter):
    """Lets a kind of log line through once per `interval` seconds; the next one that passes
    says how many were held back. Tracebacks of what it throttles are dropped: one line each."""

    def __init__(
        self,
        matches: Callable[[logging.LogRecord], bool],
        *,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._matches = matches
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def reset(self) -> None:
        """Forget what was seen (tests: each starts with a quiet log)."""
        self._last.clear()
        self._held.clear()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._matches(record):
            return True
        kind = f"{record.name}:{record.msg}"
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            return False
        self._last[kind] = now
        held = self._held.pop(kind, 0)
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        if record.name == "asyncio":  # its handler adds the socket's repr on further lines
            record.msg = str(record.msg).splitlines()[0]
        if held:
            record.msg = f"{record.msg} (and {held} more like it since the last such line)"
        return True


def _is_server_noise(record: logging.LogRecord) -> bool:
    """uvicorn's per-request warnings (bad request, concurrency limit), asyncio's accept errors
    (descriptors exhausted) and our own per-request refusals: the lines an attack repeats."""
    if record.name == "uvicorn.error":
        return record.levelno >= logging.WARNING
    if record.name == "asyncio":
        return "accept" in str(record.msg)
    return record.name == __name__


def install_quiet_repeats(*, interval: float = 60.0) -> QuietRepeats:
    """One filter per process on the loggers the server's noise comes from."""
    for name in ("uvicorn.error", "asyncio", __name__):
        for existing in logging.getLogger(name).filters:
            if isinstance(existing, QuietRepeats):
                return existing
    quiet = QuietRepeats(_is_server_noise, interval=interval)
    for name in ("uvicorn.error", "asyncio", __name__):
        logging.getLogger(name).addFilter(quiet)
    return quiet


class OverBudget(Exception):
    """Reading this body would take the bodies held now past ServerLimits.max_buffered_bytes."""


class BoundedBody:
    """ASGI middleware: a request body is read whole before the route runs, within a size and
    a time limit, so a client trickling bytes holds a connection for `body_seconds` at most.
    413 past the size, 408 past the time; a client that disconnects mid-body gets one log line
    (the route never runs, so there is no traceback). The route then reads the buffered body."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, seconds: float, max_buffered: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.seconds = seconds
        self.max_buffered = max_buffered
        self.buffered = 0  # bytes of bodies held now, all requests together

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _plain(send, 413, b"Payload too large")
            return
        held = [0]  # this request's share of `buffered`, given back whatever happens
        try:
            await self._bounded(scope, receive, send, held)
        finally:
            self.buffered -= held[0]

    async def _bounded(self, scope: Scope, receive: Receive, send: Send, held: list[int]) -> None:
        try:
            async with asyncio.timeout(self.seconds):
                body = await self._read(receive, held)
        except TimeoutError:
            log.warning("request body too slow on %s: cut after %s s", scope["path"], self.seconds)
            await _plain(send, 408, b"Request body too slow")
            return
        except OverBudget:
            log.warning("request bodies over their memory budget: %s refused", scope["path"])
            await _plain(send, 503, b"Busy, try again")
            return
        if body is None:
            log.warning("client disconnected mid-body on %s", scope["path"])
            return
        if len(body) > self.max_bytes:
            await _plain(send, 413, b"Payload too large")
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive, held: list[int]) -> bytes | None:
        """The whole body; None if the client went away first. Reading stops past the limit;
        OverBudget when the bodies held by all requests would go past their budget."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            if self.buffered + len(chunk) > self.max_buffered:
                raise OverBudget
            self.buffered += len(chunk)
            held[0] += len(chunk)
            size += len(chunk)
            chunks.append(chunk)
            if size > self.max_bytes or not message.get("more_body", False):
                return b"".join(chunks)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """The buffered body as one message, then the connection's own messages (a disconnect)."""
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _plain(send: Send, status: int, text: bytes) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(text)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text, "more_body": False})


def healthz_endpoint(
    health: Health, database_check: DatabaseCheck | None
) -> Callable[[Request], Awaitable[JSONResponse]]:
    """GET /healthz: the database answers a SELECT 1 within DATABASE_CHECK_SECONDS, and no
    part (a channel's receiving, the sender) reports a failure. 503 with the failing parts."""

    async def healthz(_request: Request) -> JSONResponse:
        if database_check is not None:
            try:
                async with asyncio.timeout(DATABASE_CHECK_SECONDS):
                    await database_check()
            except Exception as error:
                health.failing(DATABASE, short_reason(error) or "timed out")
            else:
                health.ok(DATABASE)
        problems = health.problems()
        body: dict[str, Any] = {"status": "unhealthy" if problems else "ok"}
        if problems:
            body["failing"] = problems
        return JSONResponse(body, status_code=503 if problems else 200)

    return healthz


def build_app(
    routes: Sequence[BaseRoute],
    *,
    health: Health | None = None,
    database_check: DatabaseCheck | None = None,
    limits: ServerLimits | None = None,
) -> ASGIApp:
    limits = limits or ServerLimits()
    healthz = healthz_endpoint(health or Health(), database_check)
    app = Starlette(routes=[Route("/healthz", healthz), *routes])
    return BoundedBody(
        app,
        max_bytes=limits.max_body_bytes,
        seconds=limits.body_seconds,
        max_buffered=limits.max_buffered_bytes,
    )


def raise_open_files_limit(wanted: int) -> None:
    """Let the process hold `wanted` descriptors if the hard limit allows: with the usual soft
    limit of 1,024, a burst of connections made accept() fail before any limit of ours did."""
    try:
        import resource
    except ImportError:  # not on Unix: nothing to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class HttpServer:
    """uvicorn inside our event loop; `port` is known after start (port 0 picks a free one)."""

    def __init__(
        self, app: ASGIApp, *, host: str, port: int, limits: ServerLimits | None = None
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.limits = limits or ServerLimits()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        install_quiet_repeats()
        # Room for every allowed connection, the database pool and the channels' clients.
        raise_open_files_limit(self.limits.max_connections * 2 + 1024)
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP;
        # without it every response waits on delayed ACKs (~40 ms).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,  # uvicorn's lines go through our logging (and its filters)
            log_level="warning",
            access_log=False,
            http="h11",  # the protocol whose head-size limit is configurable
            limit_concurrency=self.limits.max_connections,
            timeout_keep_alive=self.limits.keep_alive_seconds,
            h11_max_incomplete_event_size=self.limits.max_head_bytes,
            backlog=self.limits.backlog,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        # uvicorn offers only a `started` flag to wait on.
        while not self._server.started and not self._task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()

    async def stop(self) -> None:
        if self._server and self._task:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
