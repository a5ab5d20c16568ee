"""The WhatsApp number's pace (issue 14): the same window as Telegram's against Meta's ~80/s,
and a 130429 that holds every send of the number, against the fake Graph API over HTTP."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.channels.whatsapp import WhatsAppChannel
from bot.channels.whatsapp.outbound import NUMBER_LIMIT, Pacing
from bot.engine.channel import TransientSendError
from bot.engine.events import OutText
from storage.evidence import LocalEvidenceStore
from tests.fakes import whatsapp_payloads as wp
from tests.fakes.graph_api import FakeGraphAPI

SITI = "6281200000001"


@pytest.fixture
async def channel(tmp_path: Path) -> AsyncIterator[tuple[FakeGraphAPI, WhatsAppChannel]]:
    async with FakeGraphAPI(phone_number_id=wp.PHONE_NUMBER_ID) as api:
        made = WhatsAppChannel(
            token=api.token,
            phone_number_id=wp.PHONE_NUMBER_ID,
            app_secret="s",
            verify_token="v",
            api_url=api.url,
            evidence_store=LocalEvidenceStore(tmp_path),
        )
        made.delays.throughput = 5.0
        try:
            yield api, made
        finally:
            await made.close()


def test_the_numbers_window_is_metas_80_unless_the_pace_is_set_above_it() -> None:
    assert NUMBER_LIMIT == 80
    assert Pacing(70, 10, 1.0).number.in_any_second == 80
    assert Pacing(500, 10, 1.0).number.in_any_second == 500


async def test_a_130429_holds_every_send_of_the_number_for_its_wait(
    channel: tuple[FakeGraphAPI, WhatsAppChannel],
) -> None:
    api, adapter = channel
    api.fail_next(130429, to=SITI)
    asked = time.monotonic()
    with pytest.raises(TransientSendError):
        await adapter.send(SITI, OutText(text="halo"), last_inbound_at=datetime.now(UTC))
    answered = time.monotonic()
    assert asked + 5.0 <= adapter.pacing.number.resumes_at <= answered + 5.0


async def test_other_refusals_do_not_hold_the_number(
    channel: tuple[FakeGraphAPI, WhatsAppChannel],
) -> None:
    api, adapter = channel
    api.fail_next(131056, to=SITI)  # too many to this one user: only its row waits
    with pytest.raises(TransientSendError):
        await adapter.send(SITI, OutText(text="halo"), last_inbound_at=datetime.now(UTC))
    assert adapter.pacing.number.resumes_at == -math.inf
