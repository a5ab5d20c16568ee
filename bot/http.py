"""The product's one HTTP server (Starlette on uvicorn): /healthz, and the channels' webhooks.

It is on the public internet (behind a reverse proxy, docs/operations.md), so every resource a
client can hold is bounded: connections (uvicorn's `limit_concurrency`: more get a 503), the
size of a request head (h11's incomplete-event limit) and the time it may take to arrive
(`HeadDeadline`, since uvicorn has no head timeout), idle keep-alive, and the size and the
time of a request body (`BoundedBody`, since uvicorn has no body timeout). A client that goes
away mid-body costs one log line, and what an attack repeats (503s, cut bodies, slow heads,
accept errors when descriptors run out) is logged once per interval (`QuietRepeats`), not
once per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Protocol

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

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
    head_seconds: float = 10.0  # a request head must be complete by then: else closed
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


class Cancellable(Protocol):
    def cancel(self) -> None: ...


# Calls a function after a delay, as loop.call_later does (tests pass a manual one).
Scheduler = Callable[[float, Callable[[], None]], Cancellable]


class Stage(Enum):
    """Where a connection's client is, as far as the head deadline cares."""

    HEAD = "head"  # a request head is awaited: from the accept, or the next request's 1st byte
    MESSAGE = "message"  # the head is complete; the body is BoundedBody's business
    BETWEEN = "between"  # a request ended; idle time is uvicorn's keep-alive timeout
    UNFOLLOWED = "unfollowed"  # not plain HTTP/1.1 requests any more (error, close, upgrade)


class HeadWatch:
    """Follows the requests a client sends on one connection with a parser of our own (h11,
    as uvicorn's): tells when a head is awaited and when it is complete. It only reads: what
    is answered is still uvicorn's alone. A fresh parser per request, started on the bytes
    left after the previous one (a pipelined request), since h11 waits for a response before
    it parses the next request and this parser never sees one."""

    def __init__(self, max_head_bytes: int) -> None:
        self.max_head_bytes = max_head_bytes
        self.stage = Stage.HEAD
        self.heads = 0  # heads completed: a deadline runs per head
        self._parser = self._fresh()

    def _fresh(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head_bytes)

    def received(self, data: bytes) -> None:
        if self.stage is Stage.UNFOLLOWED or not data:
            return
        if self.stage is Stage.BETWEEN:
            self.stage = Stage.HEAD  # the first byte of the next request starts its deadline
        self._parser.receive_data(data)
        try:
            self._advance()
        except h11.RemoteProtocolError:  # uvicorn answers 400 and closes: nothing to follow
            self.stage = Stage.UNFOLLOWED

    def _advance(self) -> None:
        while True:
            event = self._parser.next_event()
            if event is h11.NEED_DATA:
                return
            if isinstance(event, h11.Request):
                self.stage = Stage.MESSAGE
                self.heads += 1
            elif isinstance(event, h11.EndOfMessage):
                if self._parser.their_state is not h11.DONE:  # Connection: close, an upgrade
                    self.stage = Stage.UNFOLLOWED
                    return
                rest, _closed = self._parser.trailing_data
                self._parser = self._fresh()
                if not rest:  # (h11 takes empty data for the end of the stream)
                    self.stage = Stage.BETWEEN
                    return
                self.stage = Stage.HEAD
                self._parser.receive_data(rest)
            elif not isinstance(event, h11.Data):  # ConnectionClosed, PAUSED
                self.stage = Stage.UNFOLLOWED
                return


class HeadDeadline(asyncio.Protocol):
    """uvicorn's HTTP protocol, composed: every callback goes on to it unchanged, and a
    connection whose request head is not complete `head_seconds` after it began to be awaited
    is closed (one log line, throttled by QuietRepeats). uvicorn has no head timeout: its
    keep-alive timer starts only after a response, so a head trickled a byte at a time held a
    connection (and a place under limit_concurrency) for ever. The deadline runs from the
    accept for the first request, and from a later request's first byte, like nginx's
    client_header_timeout. Made for uvicorn by `with_head_deadline` (Config(http=...) takes an
    asyncio.Protocol class and calls it once per connection with its own arguments)."""

    make_inner: ClassVar[Callable[..., asyncio.Protocol]]
    head_seconds: ClassVar[float]
    head_max_bytes: ClassVar[int]
    schedule_on: ClassVar[Scheduler | None] = None  # None: the running loop's call_later

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # uvicorn's arguments (config, server state...) are passed on untouched.
        self.inner = type(self).make_inner(*args, **kwargs)
        self.watch = HeadWatch(type(self).head_max_bytes)
        self.transport: asyncio.BaseTransport | None = None
        self.timer: Cancellable | None = None
        self.timed_head = -1  # the head (by HeadWatch.heads) the running timer is for

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.inner.connection_made(transport)
        self._follow()

    def data_received(self, data: bytes) -> None:
        self.watch.received(data)
        self._follow()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def _follow(self) -> None:
        """A timer runs exactly while a head is awaited, one deadline per head."""
        if self.watch.stage is not Stage.HEAD:
            self._stop_timer()
        elif self.timer is None or self.timed_head != self.watch.heads:
            self._stop_timer()
            self._start_timer()

    def _start_timer(self) -> None:
        schedule = type(self).schedule_on or asyncio.get_running_loop().call_later
        self.timed_head = self.watch.heads
        self.timer = schedule(type(self).head_seconds, self._too_slow)

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _too_slow(self) -> None:
        self.timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if isinstance(transport, asyncio.ReadTransport) and not transport.is_reading():
            # uvicorn paused reading (a pipelined request waits for the response before it):
            # the wait is the server's, not the client's. Checked again a deadline later.
            self._start_timer()
            return
        log.warning(
            "request head not complete within %s s: connection closed", type(self).head_seconds
        )
        transport.close()


def with_head_deadline(
    inner: Callable[..., asyncio.Protocol],
    *,
    seconds: float,
    max_head_bytes: int,
    schedule: Scheduler | None = None,
) -> type[HeadDeadline]:
    """The protocol class to give uvicorn's Config(http=...): `inner` (uvicorn's own protocol
    class) under a head deadline of `seconds`."""

    class BoundHeadDeadline(HeadDeadline):
        make_inner = inner
        head_seconds = seconds
        head_max_bytes = max_head_bytes
        schedule_on = schedule

    return BoundHeadDeadline


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
            # h11: the protocol whose head-size limit is configurable; under our head deadline.
            http=with_head_deadline(
                H11Protocol,
                seconds=self.limits.head_seconds,
                max_head_bytes=self.limits.max_head_bytes,
            ),
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
