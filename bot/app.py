"""The composition root: settings -> database -> evidence store -> channels -> engine ->
outbox sender -> HTTP server -> scheduler. Nothing else wires things together."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from typing import TYPE_CHECKING, TextIO

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.routing import BaseRoute

from bot.channels.console import ConsoleChannel
from bot.engine.channel import Channel, ChannelAdapter, ExclusiveReceiver, KeepsClosedWindows
from bot.engine.dispatch import Engine
from bot.engine.lanes import Pace
from bot.engine.windows import StoredClosedWindows
from bot.http import HttpServer, ServerLimits, build_app
from bot.settings import Settings
from handlers.router import route, wants_file
from scheduler.jobs import JobRuns, build_scheduler, scheduled_jobs
from scheduler.leases import DatabaseLease
from scheduler.outbox import OutboxSender
from storage.db import create_engine, ping, session_factory, transaction
from storage.evidence import EvidenceStore, LocalEvidenceStore
from storage.files import private_directory
from storage.identities import find_contact_by_phone
from storage.migrate import upgrade_async

if TYPE_CHECKING:  # each channel module pulls its chat library: imported only when configured
    from bot.channels.telegram import Limits, TelegramChannel
    from bot.channels.whatsapp import WhatsAppChannel

log = logging.getLogger(__name__)


class HttpPortUnavailable(Exception):
    """The HTTP server's address cannot be bound: the operator's to fix, in one line."""

    def __init__(self, host: str, port: int, error: OSError) -> None:
        self.host, self.port, self.error = host, port, error
        super().__init__(f"{host}:{port}: {error.strerror or error}")

    @property
    def advice(self) -> str:
        """What is wrong and what to do, in Indonesian, for the command line."""
        where = f"Port HTTP {self.host}:{self.port}"
        if self.error.errno == errno.EADDRINUSE:
            return (
                f"{where} sudah dipakai program lain (laporham lain yang masih berjalan?): "
                "hentikan program itu, atau atur LAPORHAM_HTTP_PORT ke port lain."
            )
        if self.error.errno == errno.EACCES:
            return (
                f"{where} tidak boleh dipakai pengguna ini (port di bawah 1024 butuh hak "
                "root): atur LAPORHAM_HTTP_PORT ke port 1024 ke atas."
            )
        if self.error.errno == errno.EADDRNOTAVAIL:
            return (
                f"{where}: alamat {self.host} tidak ada di mesin ini: periksa "
                "LAPORHAM_HTTP_HOST (mis. 127.0.0.1 atau 0.0.0.0)."
            )
        return f"{where} tidak bisa dibuka ({self.error.strerror or self.error})."


@dataclass
class App:
    settings: Settings
    db: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    engine: Engine
    sender: OutboxSender
    channels: dict[Channel, ChannelAdapter] = field(default_factory=dict)

    async def close(self) -> None:
        await self.db.dispose()


def build(settings: Settings, channels: list[ChannelAdapter] | None = None) -> App:
    db = create_engine(settings.database_url)
    sessions = session_factory(db)
    by_name = {adapter.name: adapter for adapter in channels or []}
    engine = Engine(
        sessions=sessions,
        channels=by_name,
        router=route,
        wants_file=wants_file,
        evidence_store=evidence_store(settings),
        max_upload_bytes=settings.max_upload_bytes,
        invites=settings.invite_policy,
    )
    sender = OutboxSender(
        sessions=sessions, channels=by_name, wakeup=engine.outbox_ready, health=engine.health
    )
    engine.hand_off = sender  # used only while sender.run() is running
    app = App(settings, db, sessions, engine, sender, by_name)
    give_channels_their_storage(app)
    return app


def give_channels_their_storage(app: App) -> None:
    """What a channel keeps in the database, through objects made here (a channel never
    builds a session): the lease of receiving only one process may do (Telegram polling: a
    second process on the same database waits, and takes over), and WhatsApp's closed
    windows (a restart still knows who needs a template)."""
    for adapter in app.channels.values():
        if isinstance(adapter, ExclusiveReceiver) and (name := adapter.receiver_lease_name()):
            owner = app.sender.owner
            adapter.use_lease(DatabaseLease(sessions=app.sessions, name=name, owner=owner))
        if isinstance(adapter, KeepsClosedWindows):
            adapter.use_closed_windows(
                StoredClosedWindows(sessions=app.sessions, channel=adapter.name)
            )


def evidence_store(settings: Settings) -> EvidenceStore:
    """The one kind of store there is today: files under LAPORHAM_DATA_DIR."""
    return LocalEvidenceStore(settings.evidence_dir)


async def prepare_database(settings: Settings, *, seed_demo: bool) -> bool:
    """Apply migrations; with seed_demo, load the demo data into an empty database."""
    private_directory(settings.data_dir)
    await upgrade_async(settings.database_url)
    if not seed_demo:
        return False
    from storage.demo import seed_demo as seed  # demo data only when asked for

    db = create_engine(settings.database_url)
    try:
        async with transaction(session_factory(db)) as session:
            return await seed(session=session, today=date.today())
    finally:
        await db.dispose()


def configured_channels(settings: Settings) -> list[ChannelAdapter]:
    """The chat channels the settings turn on. Imported lazily: each pulls its own library."""
    channels: list[ChannelAdapter] = []
    if settings.telegram_enabled:
        channels.append(telegram_channel(settings, evidence_store(settings)))
    if settings.whatsapp_enabled:
        channels.append(whatsapp_channel(settings, evidence_store(settings)))
    return channels


def telegram_channel(
    settings: Settings, store: EvidenceStore, *, limits: Limits | None = None
) -> TelegramChannel:
    from bot.channels.telegram import Limits, TelegramChannel

    if not settings.telegram_token:
        raise ValueError("LAPORHAM_TELEGRAM_TOKEN is not set")
    # httpx logs every request URL at INFO, and Bot API URLs contain the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return TelegramChannel(
        token=settings.telegram_token,
        api_url=settings.telegram_api_url,
        store=store,
        webhook_url=settings.telegram_webhook_url,
        webhook_secret=settings.telegram_webhook_secret,
        limits=limits or Limits(overall_per_second=settings.telegram_messages_per_second),
        inbound_pace=inbound_pace(settings),
    )


def whatsapp_channel(settings: Settings, store: EvidenceStore) -> WhatsAppChannel:
    from bot.channels.whatsapp import WhatsAppChannel

    if not settings.whatsapp_token or not settings.whatsapp_phone_number_id:
        raise ValueError("LAPORHAM_WHATSAPP_TOKEN and _PHONE_NUMBER_ID are required")
    return WhatsAppChannel(
        token=settings.whatsapp_token,
        phone_number_id=settings.whatsapp_phone_number_id,
        app_secret=settings.whatsapp_app_secret,
        verify_token=settings.whatsapp_verify_token,
        api_url=settings.whatsapp_api_url,
        evidence_store=store,
        template_language=settings.whatsapp_template_language,
        template_languages={"en": settings.whatsapp_template_language_en},
        inbound_pace=inbound_pace(settings),
    )


def inbound_pace(settings: Settings) -> Pace:
    """How fast one sender's messages are handled once past their burst (docs/operations.md)."""
    return Pace(burst=settings.inbound_burst, per_minute=settings.inbound_per_minute)


async def run_console(settings: Settings, *, input_stream: TextIO | None = None) -> None:
    """The console channel alone. No HTTP server: nothing can post to the console, so the
    port is left free (a second `laporham demo` beside a running bot is fine)."""
    console = ConsoleChannel()
    app = build(settings, [console])
    try:
        await app.sender.recover()
        await console.converse(
            app.engine.handle,
            app.sender.drain_all,
            input_stream=input_stream,
            greeting=await console_greeting(app.sessions),
        )
    finally:
        await app.close()


def http_limits(settings: Settings) -> ServerLimits:
    return ServerLimits(
        max_connections=settings.http_max_connections,
        keep_alive_seconds=settings.http_keep_alive_seconds,
        head_seconds=settings.http_head_timeout_seconds,
        body_seconds=settings.http_body_timeout_seconds,
    )


def http_server(app: App, routes: list[BaseRoute]) -> HttpServer:
    """The HTTP server with /healthz watching this app's database and parts."""
    limits = http_limits(app.settings)
    asgi = build_app(
        routes, health=app.engine.health, database_check=partial(ping, app.db), limits=limits
    )
    return HttpServer(asgi, host=app.settings.http_host, port=app.settings.http_port, limits=limits)


async def console_greeting(sessions: async_sessionmaker[AsyncSession]) -> str:
    """The console's first lines; the demo focal point's number only when that contact is in
    the database (after `laporham demo`), since elsewhere it would register no one."""
    from storage.demo import DEMO_FOCAL_POINT_PHONE  # the demo module only for its number

    async with sessions() as session:
        demo = await find_contact_by_phone(session=session, phone=DEMO_FOCAL_POINT_PHONE)
    login = (
        "Demo: ketik /kontak 081200000001 untuk masuk sebagai focal point demo, lalu /lapor.\n"
        if demo is not None
        else "Masuk dengan /kontak NOMOR_HP (nomor Anda di daftar kontak), lalu /lapor.\n"
    )
    return (
        "LaporHAM — kanal konsol. Ketik pesan seperti di ponsel; /file PATH mengirim berkas.\n"
        + login
        + "Akhiri dengan Ctrl-D."
    )


async def run_channels(
    settings: Settings,
    channels: list[ChannelAdapter],
    *,
    on_http_started: Callable[[int], None] | None = None,
    handle_signals: bool = False,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve chat channels until `stop` is set (with `handle_signals`: on SIGTERM or SIGINT)
    or until cancelled: their receivers, the sender, HTTP and the jobs; then stop gracefully
    (see `shut_down`). `on_http_started` gets the bound port (LAPORHAM_HTTP_PORT=0)."""
    stop = stop or asyncio.Event()
    app = build(settings, channels)
    routes = [route for adapter in channels for route in adapter.routes(app.engine)]
    http = http_server(app, routes)
    try:
        await http.start()
    except OSError as error:  # the port is taken, or not ours to take
        await app.close()
        raise HttpPortUnavailable(settings.http_host, settings.http_port, error) from error
    log.info("HTTP server on %s:%s", settings.http_host, http.port)
    if on_http_started:
        on_http_started(http.port)
    job_runs = JobRuns()
    scheduler = build_scheduler(
        scheduled_jobs(
            engine=app.engine,
            sessions=app.sessions,
            store=app.engine.evidence_store,
            retention_age=timedelta(days=settings.retention_days),
        ),
        job_runs,
    )
    scheduler.start()
    sender = asyncio.create_task(app.sender.run(), name="outbox-sender")
    receivers = [
        asyncio.create_task(_serve(adapter, app.engine), name=f"channel-{adapter.name}")
        for adapter in channels
    ]
    try:
        with stop_signals(stop, enabled=handle_signals):
            await app.engine.replay_stored()
            await until_stopped(stop, [sender, *receivers])
    finally:
        if stop.is_set():
            scheduler.pause()  # no new job runs; those in hand finish within the grace
            await shut_down(
                app, http, receivers, sender, grace=settings.shutdown_seconds, jobs=job_runs
            )
            scheduler.shutdown(wait=False)
        else:  # cancelled, or a channel failed: stop now, as a crash would (nothing is lost)
            scheduler.shutdown(wait=False)
            await cut_short(app, http, [*receivers, sender])


@contextlib.contextmanager
def stop_signals(stop: asyncio.Event, *, enabled: bool) -> Iterator[None]:
    """SIGTERM (a deploy, systemd, docker stop) and SIGINT (Ctrl-C) set `stop`."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if enabled else ()
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        yield
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


async def until_stopped(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Until `stop` is set; a task that fails (a rejected token) ends it with its error. A
    receiver that simply returns (webhooks deliver instead) is no reason to stop."""
    stopping = asyncio.create_task(stop.wait())
    running = set(tasks)
    try:
        while not stop.is_set():
            done, _ = await asyncio.wait({stopping, *running}, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopping}:
                running.discard(task)
                task.result()
    finally:
        stopping.cancel()


async def shut_down(
    app: App,
    http: HttpServer,
    receivers: list[asyncio.Task[None]],
    sender: asyncio.Task[None],
    *,
    grace: float,
    jobs: JobRuns | None = None,
) -> None:
    """Stop taking updates (polling stops, the HTTP server stops accepting), let the turns in
    hand finish, let the sender finish its sends and write their outcomes, let the scheduled
    job runs in hand end, then close; all within `grace` seconds, after which what is left is
    cut short (its rows are sent again after the restart, a job's work is redone: nothing is
    lost)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    # Job runs in hand end meanwhile (their queries are not cut mid-way).
    jobs_settled = asyncio.ensure_future(jobs.settle() if jobs is not None else asyncio.sleep(0))
    for task in receivers:
        task.cancel()
    for task in receivers:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await _within(deadline, http.stop(), "HTTP server")
    await _within(
        deadline,
        asyncio.gather(*(adapter.settle() for adapter in app.channels.values())),
        "turns in hand",
    )
    # The sender keeps a second of the grace to write its outcomes.
    app.sender.stop_grace = max(0.0, deadline - loop.time() - 1.0)
    app.sender.stop()
    await _within(deadline, asyncio.shield(sender), "outbox sender")
    if not sender.done():
        sender.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await sender
    await _within(deadline, jobs_settled, "scheduled jobs")
    if jobs is not None:
        await jobs.cancel()  # past the bound: cut short
    for adapter in app.channels.values():
        with contextlib.suppress(Exception):
            await adapter.close()
    await app.close()


async def cut_short(app: App, http: HttpServer, tasks: list[asyncio.Task[None]]) -> None:
    """Stop at once: turns in hand are dropped (replayed from the inbox at the next start),
    sends in flight stay claimed until their lease expires; the sender still writes the
    outcomes it has."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    for adapter in app.channels.values():
        await adapter.close()
    await http.stop()
    await app.close()


async def _within(deadline: float, work: Awaitable[object], what: str) -> None:
    """Wait for `work` until the deadline; past it, say what was cut short (one line)."""
    remaining = max(0.0, deadline - asyncio.get_running_loop().time())
    try:
        await asyncio.wait_for(work, timeout=remaining)
    except TimeoutError:
        log.warning("graceful stop: %s cut short after the shutdown bound", what)
    except Exception as error:
        log.warning("graceful stop: %s failed: %s", what, error)


async def _serve(adapter: ChannelAdapter, engine: Engine) -> None:
    await adapter.start(engine)
    await adapter.run(engine)
