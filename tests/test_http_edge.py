"""The public edge of the HTTP server (hardening issue #13, items 3, 8 and 13): slow heads and
bodies, too many connections and clients that go away cost bounded resources and bounded log lines;
/healthz says what is failing. Real uvicorn on 127.0.0.1, real sockets, the real WhatsApp
channel against the fake Graph API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.app import App, build, evidence_store, http_server, whatsapp_channel
from bot.channels.whatsapp import WEBHOOK_PATH
from bot.engine.health import DATABASE, Health
from bot.http import (
    BoundedBody,
    HeadDeadline,
    HeadWatch,
    HttpServer,
    ServerLimits,
    Stage,
    build_app,
    install_quiet_repeats,
    with_head_deadline,
)
from bot.settings import Settings
from storage.db import create_engine, ping
from storage.models import InboxMessage
from tests.fakes import whatsapp_payloads as wp
from tests.fakes.graph_api import FakeGraphAPI

TOKEN = "wa-edge-token"
SECRET = "wa-edge-app-secret"
PNID = wp.PHONE_NUMBER_ID
OUTSIDER = "6289900001111"
# Nothing listens on port 1: connecting is refused at once, like a database that went away.
DEAD_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:1/laporham_gone"
GUARD_SECONDS = 20.0  # only guards against a hang; nothing is asserted about time


@pytest.fixture
def database(engine: AsyncEngine, database_url: str) -> str:
    """The test database's URL, its tables emptied (the `engine` fixture does that)."""
    return database_url


@pytest.fixture(autouse=True)
def quiet_log_starts_empty() -> None:
    """The repeat filter is per process: each test starts as if nothing had been logged."""
    install_quiet_repeats().reset()


@dataclass
class Served:
    api: FakeGraphAPI
    app: App
    http: HttpServer

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http.port}"


@asynccontextmanager
async def serving(
    database_url: str, data_dir: Path, **overrides: int | float
) -> AsyncIterator[Served]:
    """The product's HTTP server with the WhatsApp webhook, as `laporham run` builds it."""
    async with FakeGraphAPI(token=TOKEN, phone_number_id=PNID) as api:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            whatsapp_token=TOKEN,
            whatsapp_phone_number_id=PNID,
            whatsapp_app_secret=SECRET,
            whatsapp_verify_token="wa-edge-verify-token",
            whatsapp_api_url=api.url,
            database_url=database_url,
            data_dir=data_dir,
            http_port=0,
            **overrides,
        )
        adapter = whatsapp_channel(settings, evidence_store(settings))
        app = build(settings, [adapter])
        http = http_server(app, adapter.routes(app.engine))
        await http.start()
        sender = asyncio.create_task(app.sender.run())
        try:
            yield Served(api, app, http)
        finally:
            sender.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sender
            await adapter.close()
            await http.stop()
            await app.close()


async def open_slow_body(port: int, *, sent: bytes = b'{"object":') -> asyncio.StreamWriter:
    """An unauthenticated POST that declares 1,000 bytes and sends only the first few."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    writer.write(head.encode() + sent)
    await writer.drain()
    return writer


async def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)


async def inbox_rows(served: Served) -> int:
    async with served.app.sessions() as session:
        return (await session.exec(select(func.count()).select_from(InboxMessage))).one()


def edge_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the server's side wrote to the log (after the repeat filter)."""
    names = ("bot.http", "uvicorn.error", "asyncio")
    return [r for r in caplog.records if r.name in names and r.levelno >= logging.WARNING]


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(GUARD_SECONDS):
        while not check():  # noqa: ASYNC110 - log records come with no event to wait on
            await asyncio.sleep(0.02)


async def test_slow_bodies_leave_healthz_and_a_signed_webhook_answering(
    database: str, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue #13 item 3: 200 unauthenticated connections trickling bodies; /healthz and a real
    signed webhook still answer, and the 200 cut connections write a bounded log."""
    caplog.set_level(logging.WARNING)
    async with serving(database, data_dir, http_max_connections=300) as served:
        slow = [await open_slow_body(served.http.port) for _ in range(200)]
        for writer in slow[::10]:  # some keep trickling
            writer.write(b" ")
        async with httpx.AsyncClient(base_url=served.base, timeout=GUARD_SECONDS) as client:
            health = await client.get("/healthz")
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            body = wp.encode(wp.text_message(OUTSIDER, "halo"))
            response = await client.post(
                WEBHOOK_PATH, content=body, headers=wp.signed_headers(body, SECRET)
            )
            assert response.status_code == 200
            replies = await served.api.wait_for_sent(1, to=OUTSIDER, timeout=GUARD_SECONDS)
            assert "/daftar" in str(replies[0])
        await close_all(slow)
        await until(lambda: any("mid-body" in r.getMessage() for r in edge_lines(caplog)))
    lines = edge_lines(caplog)
    # 200 disconnects mid-body: one line, then the rest counted on the next one.
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert all(r.exc_info is None for r in lines)


async def test_beyond_the_connection_limit_a_503_at_once_and_one_log_line(
    database: str, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """More connections than LAPORHAM_HTTP_MAX_CONNECTIONS get uvicorn's 503 straight away
    (instead of the process running out of descriptors), logged once, not once per request."""
    caplog.set_level(logging.WARNING)
    async with serving(database, data_dir, http_max_connections=20) as served:
        slow = [await open_slow_body(served.http.port) for _ in range(20)]
        async with httpx.AsyncClient(base_url=served.base, timeout=GUARD_SECONDS) as client:
            refused = [await client.get("/healthz") for _ in range(30)]
        assert {r.status_code for r in refused} == {503}
        await close_all(slow)
    limit_lines = [r for r in edge_lines(caplog) if "concurrency" in r.getMessage()]
    assert len(limit_lines) == 1


async def test_a_body_that_trickles_past_the_timeout_gets_408(
    database: str, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with serving(database, data_dir, http_body_timeout_seconds=0.2) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.http.port)
        head = f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{"
        writer.write(head.encode())
        async with asyncio.timeout(GUARD_SECONDS):
            status_line = await reader.readline()
        assert status_line.startswith(b"HTTP/1.1 408")
        await close_all([writer])
        assert await inbox_rows(served) == 0
    assert [r.getMessage() for r in edge_lines(caplog)] == [
        f"request body too slow on {WEBHOOK_PATH}: cut after 0.2 s"
    ]


async def test_a_client_disconnecting_mid_body_logs_one_line_not_a_traceback(
    database: str, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue #13 item 13: it used to log a 40-line traceback."""
    caplog.set_level(logging.DEBUG)
    async with serving(database, data_dir) as served:
        writer = await open_slow_body(served.http.port)
        await close_all([writer])
        await until(lambda: bool(edge_lines(caplog)))
        async with httpx.AsyncClient(base_url=served.base) as client:  # the server is fine
            assert (await client.get("/healthz")).status_code == 200
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in lines] == [f"client disconnected mid-body on {WEBHOOK_PATH}"]
    assert lines[0].exc_info is None and "Traceback" not in caplog.text


# --- /healthz --------------------------------------------------------------------------------


class SwitchableDatabase:
    """/healthz's database check against whichever engine is current: the test makes the
    database go away and come back."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def check(self) -> None:
        await ping(self.engine)


async def test_healthz_reports_a_database_outage_with_503_and_logs_it_once(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue #13 item 8: /healthz said ok through a PostgreSQL outage, and the outage wrote
    thousands of lines. Now: 503 naming the database while it is away, one line when it goes,
    one when it is back."""
    caplog.set_level(logging.INFO)
    health = Health()
    database = SwitchableDatabase(engine)
    app = build_app([], health=health, database_check=database.check)
    server = HttpServer(app, host="127.0.0.1", port=0)
    await server.start()
    dead = create_engine(DEAD_DATABASE)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            database.engine = dead
            during = [await client.get("/healthz") for _ in range(25)]
            assert {r.status_code for r in during} == {503}
            failing = during[-1].json()
            assert failing["status"] == "unhealthy" and list(failing["failing"]) == [DATABASE]
            health.failing("telegram", "getUpdates failed: NetworkError")
            both = (await client.get("/healthz")).json()["failing"]
            assert set(both) == {DATABASE, "telegram"}
            database.engine = engine
            health.ok("telegram")
            back = await client.get("/healthz")
            assert back.status_code == 200 and back.json() == {"status": "ok"}
    finally:
        await server.stop()
        await dead.dispose()
    changes = [r.getMessage() for r in caplog.records if r.name == "bot.engine.health"]
    assert len(changes) == 4, changes  # database down, telegram down, telegram up, database up
    assert changes[0].startswith("database down: ")
    assert changes[-1].startswith("database recovered after ") and "(26 failed" in changes[-1]


async def test_webhooks_during_a_database_outage_get_503_and_one_log_line(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Meta delivers again after a 503: nothing is lost, and 20 webhooks during the outage
    write one line, not 20 tracebacks."""
    caplog.set_level(logging.INFO)
    async with FakeGraphAPI(token=TOKEN, phone_number_id=PNID) as api:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            whatsapp_token=TOKEN,
            whatsapp_phone_number_id=PNID,
            whatsapp_app_secret=SECRET,
            whatsapp_api_url=api.url,
            database_url=DEAD_DATABASE,
            data_dir=data_dir,
            http_port=0,
        )
        adapter = whatsapp_channel(settings, evidence_store(settings))
        app = build(settings, [adapter])
        http = http_server(app, adapter.routes(app.engine))
        await http.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}") as client:
                statuses = []
                for n in range(20):
                    body = wp.encode(wp.text_message(OUTSIDER, f"halo {n}"))
                    headers = wp.signed_headers(body, SECRET)
                    response = await client.post(WEBHOOK_PATH, content=body, headers=headers)
                    statuses.append(response.status_code)
                health = await client.get("/healthz")
        finally:
            await adapter.close()
            await http.stop()
            await app.close()
    assert statuses == [503] * 20
    assert health.status_code == 503 and DATABASE in health.json()["failing"]
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].getMessage().startswith("database down: WhatsApp webhook not stored: ")
    assert "Traceback" not in caplog.text


async def test_bodies_held_at_once_stay_within_their_memory_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bodies are read before a route can check who sent them: together they may hold at most
    `max_buffered_bytes`; past it a request gets 503 (and the held bytes are given back)."""
    caplog.set_level(logging.WARNING)

    async def echo(request: Request) -> Response:
        return Response(str(len(await request.body())))

    limits = ServerLimits(max_body_bytes=200_000, max_buffered_bytes=100_000)
    app = build_app([Route("/echo", echo, methods=["POST"])], limits=limits)
    assert isinstance(app, BoundedBody)
    server = HttpServer(app, host="127.0.0.1", port=0, limits=limits)
    await server.start()
    try:
        _reader, holder = await asyncio.open_connection("127.0.0.1", server.port)
        holder.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 150000\r\n\r\n")
        holder.write(b"x" * 90_000)  # held, waiting for the rest
        await holder.drain()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            await until(lambda: app.buffered >= 90_000)  # the holder's part is in memory
            refused = await client.post("/echo", content=b"y" * 50_000)
            assert refused.status_code == 503
            await close_all([holder])
            await until(lambda: any("mid-body" in r.getMessage() for r in caplog.records))
            accepted = await client.post("/echo", content=b"y" * 50_000)
            assert accepted.status_code == 200 and accepted.text == "50000"
    finally:
        await server.stop()
    assert app.buffered == 0
    assert any("over their memory budget" in r.getMessage() for r in caplog.records)


# --- Slow request heads (issue #13 item 3: the head's time) ----------------------------------


async def open_slow_head(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An unauthenticated POST whose head stops halfway (no blank line ever comes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".encode())
    await writer.drain()
    return reader, writer


async def trickle(writers: list[asyncio.StreamWriter], stop: asyncio.Event) -> None:
    """The attack's pace: one more byte of header on every open connection every 50 ms (the
    head never ends), until `stop`."""
    while not stop.is_set():
        for writer in writers:
            if not writer.is_closing():
                writer.write(b"x")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.05):
                await stop.wait()


async def answer_of(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    try:
        return await reader.read()
    except ConnectionError:  # closed while our trickle was writing: a reset
        return b""


async def test_slow_heads_are_closed_at_their_deadline_and_real_requests_get_through(
    database: str, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """More connections than the connection limit trickle their request heads a byte at a
    time: uvicorn never timed them out, so they held every place and real webhooks got 503.
    Each is closed LAPORHAM_HTTP_HEAD_TIMEOUT_SECONDS after it opened (bytes do not extend
    it), with one log line for all of them; then /healthz and a signed webhook answer."""
    caplog.set_level(logging.WARNING)
    overrides: dict[str, int | float] = {
        "http_max_connections": 30,
        "http_head_timeout_seconds": 0.5,
    }
    async with serving(database, data_dir, **overrides) as served:
        slow = [await open_slow_head(served.http.port) for _ in range(45)]
        stop = asyncio.Event()
        async with asyncio.timeout(GUARD_SECONDS), asyncio.TaskGroup() as attack:
            attack.create_task(trickle([writer for _reader, writer in slow], stop))
            answers = await asyncio.gather(*(answer_of(reader) for reader, _w in slow))
            stop.set()
        assert answers == [b""] * 45  # closed without an answer, as nginx does
        async with httpx.AsyncClient(base_url=served.base, timeout=GUARD_SECONDS) as client:
            health = await client.get("/healthz")
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            body = wp.encode(wp.text_message(OUTSIDER, "halo"))
            response = await client.post(
                WEBHOOK_PATH, content=body, headers=wp.signed_headers(body, SECRET)
            )
            assert response.status_code == 200
            replies = await served.api.wait_for_sent(1, to=OUTSIDER, timeout=GUARD_SECONDS)
            assert "/daftar" in str(replies[0])
        await close_all([writer for _reader, writer in slow])
    lines = [r.getMessage() for r in edge_lines(caplog)]
    assert lines == ["request head not complete within 0.5 s: connection closed"]


async def test_a_kept_alive_connection_has_a_deadline_for_each_head(
    database: str, data_dir: Path
) -> None:
    """A first request answered, then the next head trickled: the deadline starts again at the
    next request's first byte (idle time before it is keep-alive's), and that head is cut."""
    async with serving(database, data_dir, http_head_timeout_seconds=0.5) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.http.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(GUARD_SECONDS):
            assert (await reader.readline()).startswith(b"HTTP/1.1 200")
            await reader.readuntil(b'"ok"}')
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # no blank line
            assert await answer_of(reader) == b""
        await close_all([writer])


# HeadDeadline on its own: a fake uvicorn protocol and transport, and a timer the test fires.


class ManualTimers:
    """loop.call_later's stand-in: the test decides when a deadline has passed."""

    def __init__(self) -> None:
        self.pending: list[ManualTimer] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> ManualTimer:
        timer = ManualTimer(delay, callback)
        self.pending.append(timer)
        return timer

    @property
    def running(self) -> list[ManualTimer]:
        return [t for t in self.pending if not t.cancelled and not t.fired]

    def expire(self) -> None:
        for timer in self.running:
            timer.fired = True
            timer.callback()


@dataclass
class ManualTimer:
    delay: float
    callback: Callable[[], None]
    cancelled: bool = False
    fired: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.reading = True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def is_reading(self) -> bool:
        return self.reading


class RecordingProtocol(asyncio.Protocol):
    """Stands for uvicorn's protocol: records what reaches it."""

    def __init__(self, **kwargs: object) -> None:
        self.kwargs = kwargs
        self.calls: list[str] = []
        self.data = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.calls.append("made")

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> bool | None:
        self.calls.append("eof")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append("lost")


def deadline_protocol(timers: ManualTimers) -> tuple[HeadDeadline, FakeTransport]:
    cls = with_head_deadline(RecordingProtocol, seconds=10, max_head_bytes=1024, schedule=timers)
    protocol = cls(config="uvicorn's", server_state="its own")
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


def test_the_deadline_runs_from_the_accept_until_the_head_is_complete(
    caplog: pytest.LogCaptureFixture,
) -> None:
    timers = ManualTimers()
    protocol, transport = deadline_protocol(timers)
    inner = protocol.inner
    assert isinstance(inner, RecordingProtocol)
    assert inner.kwargs == {"config": "uvicorn's", "server_state": "its own"}
    assert [t.delay for t in timers.running] == [10]
    protocol.data_received(b"POST /w HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n")
    assert len(timers.running) == 1  # bytes of the same head do not restart it
    protocol.data_received(b"\r\nab")
    assert timers.running == []  # head complete: the body is BoundedBody's
    protocol.data_received(b"cd")
    assert timers.running == []  # request done: idle is uvicorn's keep-alive
    protocol.data_received(b"G")
    assert len(timers.running) == 1  # the next head began
    caplog.set_level(logging.WARNING)
    timers.expire()
    assert transport.closed
    assert [r.getMessage() for r in caplog.records] == [
        "request head not complete within 10 s: connection closed"
    ]
    assert inner.data == b"POST /w HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcdG"
    protocol.eof_received()
    protocol.connection_lost(None)
    assert inner.calls == ["made", "eof", "lost"]


def test_pipelined_requests_get_a_deadline_each() -> None:
    timers = ManualTimers()
    protocol, transport = deadline_protocol(timers)
    protocol.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHo")
    (first,) = [t for t in timers.pending if t.cancelled]
    (second,) = timers.running  # a new deadline for /b's head, not /a's
    protocol.data_received(b"st: x\r\n\r\n")
    assert timers.running == [] and second.cancelled and first is not second
    protocol.connection_lost(None)
    assert not transport.closed


def test_a_server_that_paused_reading_is_not_the_clients_fault() -> None:
    """uvicorn pauses reading while a pipelined request waits for the previous response: the
    deadline is checked again a deadline later instead of closing."""
    timers = ManualTimers()
    _protocol, transport = deadline_protocol(timers)
    transport.reading = False
    timers.expire()
    assert not transport.closed and len(timers.running) == 1
    transport.reading = True
    timers.expire()
    assert transport.closed


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET",  # uvicorn closes
        b"NOT HTTP AT ALL\r\n\r\n",  # uvicorn answers 400 and closes
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
    ],
)
def test_what_is_no_longer_plain_requests_is_left_to_uvicorn(data: bytes) -> None:
    watch = HeadWatch(max_head_bytes=1024)
    watch.received(data)
    assert watch.stage is Stage.UNFOLLOWED
    watch.received(b"more")
    assert watch.stage is Stage.UNFOLLOWED


def test_a_chunked_body_then_the_next_head() -> None:
    watch = HeadWatch(max_head_bytes=1024)
    watch.received(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc")
    assert watch.stage is Stage.MESSAGE
    watch.received(b"\r\n0\r\n\r\n")
    assert watch.stage is Stage.BETWEEN and watch.heads == 1
    watch.received(b"GET / HTTP/1.1\r\n")
    assert watch.stage is Stage.HEAD
