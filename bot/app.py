"""The composition root: settings -> database -> evidence store -> channels -> engine ->
outbox sender -> HTTP server -> scheduler. Nothing else wires things together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TextIO

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels.console import ConsoleChannel
from bot.engine.channel import ChannelAdapter
from bot.engine.dispatch import Engine
from bot.http import HttpServer, build_app
from bot.settings import Settings
from handlers.router import route, wants_file
from scheduler.jobs import Job, build_scheduler
from scheduler.outbox import OutboxSender
from storage.db import create_engine, session_factory, transaction
from storage.evidence import LocalEvidenceStore
from storage.migrate import upgrade_async
from storage.models import Channel

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
        evidence_store=LocalEvidenceStore(settings.evidence_dir),
        max_upload_bytes=settings.max_upload_bytes,
    )
    sender = OutboxSender(sessions=sessions, channels=by_name, wakeup=engine.outbox_ready)
    engine.hand_off = sender  # used only while sender.run() is running
    return App(settings, db, sessions, engine, sender, by_name)


async def prepare_database(settings: Settings, *, seed_demo: bool) -> bool:
    """Apply migrations; with seed_demo, load the demo data into an empty database."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
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
        from bot.channels.telegram import TelegramChannel

        channels.append(TelegramChannel.from_settings(settings))
    if settings.whatsapp_enabled:
        from bot.channels.whatsapp import WhatsAppChannel

        channels.append(WhatsAppChannel.from_settings(settings))
    return channels


async def run_console(settings: Settings, *, input_stream: TextIO | None = None) -> None:
    console = ConsoleChannel()
    app = build(settings, [console])
    http = HttpServer(build_app([]), host=settings.http_host, port=settings.http_port)
    await http.start()
    try:
        await app.sender.recover()
        await console.run(
            app.engine.handle,
            app.sender.drain_all,
            input_stream=input_stream,
            greeting=console_greeting(),
        )
    finally:
        await http.stop()
        await app.close()


def console_greeting() -> str:
    return (
        "LaporHAM — kanal konsol. Ketik pesan seperti di ponsel; /file PATH mengirim berkas.\n"
        "Demo: ketik /kontak 081200000001 untuk masuk sebagai focal point demo, lalu /lapor.\n"
        "Akhiri dengan Ctrl-D."
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
    routes = [r for adapter in channels for r in getattr(adapter, "routes", list)(app.engine)]
    http = HttpServer(build_app(routes), host=settings.http_host, port=settings.http_port)
    await http.start()
    log.info("HTTP server on %s:%s", settings.http_host, http.port)
    if on_http_started:
        on_http_started(http.port)
    scheduler = build_scheduler(jobs(app))
    scheduler.start()
    settle_garbage_collector()
    tasks = [asyncio.create_task(app.sender.run(), name="outbox-sender")]
    tasks += [
        asyncio.create_task(adapter.run(app.engine), name=f"channel-{adapter.name}")  # type: ignore[attr-defined]
        for adapter in channels
        if hasattr(adapter, "run")
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
            close = getattr(adapter, "close", None)
            if close:
                await close()
        await http.stop()
        await app.close()


def settle_garbage_collector() -> None:
    """Once started: move what start-up built (modules, mappers, the catalogue) out of the
    collector's sight, and collect young objects less often. Every message makes and drops
    thousands of small objects (ORM rows, PTB objects, SQL parameters); with the defaults the
    collector ran every few hundred allocations and rescanned start-up's objects each time."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


GC_YOUNG_THRESHOLD = 10_000  # Python's default is 700


def jobs(app: App) -> list[Job]:
    """The scheduled jobs. Reminders and escalations join this list in their own issue."""
    return [
        Job(id="inbox-replay", seconds=60, run=app.engine.replay_stored),
        Job(id="outbox-wakeup", seconds=15, run=_wake(app)),
    ]


def _wake(app: App):  # type: ignore[no-untyped-def]
    async def wake() -> None:
        app.engine.outbox_ready.set()

    return wake
