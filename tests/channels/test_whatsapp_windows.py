"""WhatsApp's closed windows outlive the process: Meta's "outside the window" (131047) is kept
in the database (storage/windows.py, given to the channel by bot.app.build), so after a
restart a message to that user goes straight out as a template."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.app import App, build, evidence_store, whatsapp_channel
from bot.engine.channel import Channel
from bot.engine.events import OutText
from bot.settings import Settings
from storage import windows
from storage.db import transaction
from storage.types import utcnow
from tests.fakes import whatsapp_payloads as wp
from tests.fakes.graph_api import FakeGraphAPI

TOKEN = "wa-test-token"
SITI = "6281200000001"


@pytest.fixture
async def api() -> AsyncIterator[FakeGraphAPI]:
    async with FakeGraphAPI(token=TOKEN, phone_number_id=wp.PHONE_NUMBER_ID) as fake:
        yield fake


def process(api: FakeGraphAPI, database_url: str, tmp_path: Path) -> App:
    """One process's composition (build gives the channel its database memory)."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        whatsapp_token=TOKEN,
        whatsapp_phone_number_id=wp.PHONE_NUMBER_ID,
        whatsapp_api_url=api.url,
        database_url=database_url,
        data_dir=tmp_path / "data",
    )
    return build(settings, [whatsapp_channel(settings, evidence_store(settings))])


async def test_a_closed_window_is_remembered_across_a_restart(
    api: FakeGraphAPI, database_url: str, tmp_path: Path
) -> None:
    wrote = utcnow() - timedelta(hours=2)  # inside the window by our clock
    api.outside_window(SITI)  # ... but Meta says it is closed
    first = process(api, database_url, tmp_path)
    try:
        await first.channels[Channel.whatsapp].send(
            SITI, OutText(text="Halo"), last_inbound_at=wrote
        )
    finally:
        await first.channels[Channel.whatsapp].close()
        await first.close()
    assert [(r.json or {}).get("type") for r in api.requests] == ["text", "template"]
    assert api.requests[0].failed

    restarted = process(api, database_url, tmp_path)
    try:
        await restarted.channels[Channel.whatsapp].send(
            SITI, OutText(text="Halo lagi"), last_inbound_at=wrote
        )
    finally:
        await restarted.channels[Channel.whatsapp].close()
        await restarted.close()
    # Straight as a template: no free-form attempt Meta would refuse.
    assert [(r.json or {}).get("type") for r in api.requests[2:]] == ["template"]
    assert not api.requests[2].failed


async def test_a_user_writing_again_reopens_a_stored_closed_window(
    api: FakeGraphAPI, database_url: str, tmp_path: Path, sessions
) -> None:
    closed = utcnow() - timedelta(hours=1)
    async with transaction(sessions) as session:
        await windows.note_window_closed(
            session=session, channel=Channel.whatsapp, recipient=SITI, at=closed
        )
    app = process(api, database_url, tmp_path)
    try:
        await app.channels[Channel.whatsapp].send(
            SITI, OutText(text="Halo"), last_inbound_at=closed + timedelta(minutes=5)
        )
    finally:
        await app.channels[Channel.whatsapp].close()
        await app.close()
    assert [(r.json or {}).get("type") for r in api.requests] == ["text"]


async def test_the_latest_closing_is_kept_per_channel_and_recipient(sessions) -> None:
    now = utcnow()
    async with transaction(sessions) as session:
        for at in (now, now - timedelta(hours=1), now - timedelta(hours=2)):
            await windows.note_window_closed(
                session=session, channel=Channel.whatsapp, recipient=SITI, at=at
            )
    async with sessions() as session:
        assert (
            await windows.window_closed_at(
                session=session, channel=Channel.whatsapp, recipient=SITI
            )
            == now
        )
        assert (
            await windows.window_closed_at(
                session=session, channel=Channel.whatsapp, recipient="6281299999999"
            )
            is None
        )
