"""A flood from one WhatsApp number through the real webhook (hardening issue #13, item 5):
every message is stored before its 200, the flood is handled at the sender's pace in its own
lane, and another user's message is handled right after the flooder's burst, not behind the
flood. The pace's wait is injected (a gate the test opens): nothing depends on wall time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.app import build, evidence_store
from bot.channels.whatsapp import WEBHOOK_PATH, WhatsAppChannel
from bot.engine.events import Inbound
from bot.engine.lanes import Pace
from bot.http import HttpServer, build_app
from bot.settings import Settings
from storage.models import InboxMessage, InboxStatus
from tests.fakes import whatsapp_payloads as wp
from tests.fakes.graph_api import FakeGraphAPI

TOKEN = "wa-pace-token"
SECRET = "wa-pace-app-secret"
FLOODER = "6289900002222"
OTHER = "6289900003333"
BURST = 20
GUARD_SECONDS = 60.0  # only guards against a hang


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(GUARD_SECONDS):
        while not check():  # noqa: ASYNC110 - the handlers run in the background
            await asyncio.sleep(0.01)


async def test_one_number_flooding_500_messages_does_not_starve_another(
    engine: AsyncEngine, database_url: str, data_dir: Path
) -> None:
    gate = asyncio.Event()
    pace_time = [0.0]  # the pace's clock: it stands still until the test opens the gate

    async def paced_wait(seconds: float) -> None:
        await gate.wait()
        pace_time[0] += seconds
        await asyncio.sleep(0)

    async with FakeGraphAPI(token=TOKEN, phone_number_id=wp.PHONE_NUMBER_ID) as api:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=database_url,
            data_dir=data_dir,
            whatsapp_token=TOKEN,
            whatsapp_phone_number_id=wp.PHONE_NUMBER_ID,
        )
        adapter = WhatsAppChannel(
            token=TOKEN,
            phone_number_id=wp.PHONE_NUMBER_ID,
            app_secret=SECRET,
            verify_token=None,
            api_url=api.url,
            evidence_store=evidence_store(settings),
            inbound_pace=Pace(burst=BURST, per_minute=30),
            sleep=paced_wait,
            pace_clock=lambda: pace_time[0],
        )
        adapter.pacing.recipient_burst = 1000
        app = build(settings, [adapter])
        handled: list[str] = []
        original = app.engine.handle

        async def recording(event: Inbound) -> bool:
            handled.append(event.user_key)
            return await original(event)

        app.engine.handle = recording  # type: ignore[method-assign]
        http = HttpServer(build_app(adapter.routes(app.engine)), host="127.0.0.1", port=0)
        await http.start()
        sender = asyncio.create_task(app.sender.run())
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}") as client:

                async def post(wa_id: str, text: str) -> int:
                    body = wp.encode(wp.text_message(wa_id, text))
                    headers = wp.signed_headers(body, SECRET)
                    return (
                        await client.post(WEBHOOK_PATH, content=body, headers=headers)
                    ).status_code

                statuses = [await post(FLOODER, f"spam {n}") for n in range(500)]
                assert statuses == [200] * 500  # every one stored and acknowledged
                await until(lambda: len(handled) >= BURST)
                assert await post(OTHER, "halo") == 200
                await api.wait_for_sent(1, to=OTHER, timeout=GUARD_SECONDS)
                # The other user came right after the flooder's burst, not behind 480 more.
                assert handled[: BURST + 1] == [FLOODER] * BURST + [OTHER]
                gate.set()  # time passes: the flood is handled at its pace, to the end
                await until(lambda: len(handled) == 501)
                await adapter.idle()
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            await adapter.close()
            await http.stop()
    async with app.sessions() as session:
        statement = select(InboxMessage.status, func.count()).group_by(InboxMessage.status)
        counts = dict((await session.exec(statement)).all())
    await app.close()
    assert counts == {InboxStatus.processed: 501}  # nothing lost, nothing twice
