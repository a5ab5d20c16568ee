"""The composition root: settings -> database -> evidence store -> channels -> engine ->
outbox sender -> HTTP server -> scheduler. Nothing else wires things together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import TYPE_CHECKING, TextIO

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.routing import BaseRoute

from bot.channels.console import ConsoleChannel
from bot.engine.channel import Channel, ChannelAdapter
from bot.engine.dispatch import Engine
from bot.engine.lanes import Pace
from bot.http import HttpServer, ServerLimits, build_app
from bot.settings import Settings
from handlers.router import route, wants_file
from scheduler.jobs import build_scheduler, scheduled_jobs
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
    return App(settings, db, sessions, engine, sender, by_name)


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
    from bot.channels.telegram import TelegramChannel

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
        limits=limits,
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
        inbound_pace=inbound_pace(settings),
    )


def inbound_pace(settings: Settings) -> Pace:
    """How fast one sender's messages are handled once past their burst (docs/operations.md)."""
    return Pace(burst=settings.inbound_burst, per_minute=settings.inbound_per_minute)


async def run_console(settings: Settings, *, input_stream: TextIO | None = None) -> None:
    console = ConsoleChannel()
    app = build(settings, [console])
    http = http_server(app, [])
    await http.start()
    try:
        await app.sender.recover()
        await console.converse(
            app.engine.handle,
            app.sender.drain_all,
            input_stream=input_stream,
            greeting=await console_greeting(app.sessions),
        )
    finally:
        await http.stop()
        await app.close()


def http_limits(settings: Settings) -> ServerLimits:
    return ServerLimits(
        max_connections=settings.http_max_connections,
        keep_alive_seconds=settings.http_keep_alive_seconds,
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
) -> None:
    """Serve chat channels until cancelled: their receivers, the sender, HTTP and the jobs.
    `on_http_started` gets the bound port (useful with LAPORHAM_HTTP_PORT=0)."""
    app = build(settings, channels)
    routes = [route for adapter in channels for route in adapter.routes(app.engine)]
    http = http_server(app, routes)
    await http.start()
    log.info("HTTP server on %s:%s", settings.http_host, http.port)
    if on_http_started:
        on_http_started(http.port)
    scheduler = build_scheduler(
        scheduled_jobs(engine=app.engine, sessions=app.sessions, store=app.engine.evidence_store)
    )
    scheduler.start()
    tasks = [asyncio.create_task(app.sender.run(), name="outbox-sender")]
    tasks += [
        asyncio.create_task(_serve(adapter, app.engine), name=f"channel-{adapter.name}")
        for adapter in channels
    ]
    try:
        await app.engine.replay_stored()
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        scheduler.shutdown(wait=False)
        for adapter in channels:
            await adapter.close()
        await http.stop()
        await app.close()


async def _serve(adapter: ChannelAdapter, engine: Engine) -> None:
    await adapter.start(engine)
    await adapter.run(engine)
