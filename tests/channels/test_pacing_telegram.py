"""The Telegram channel's overall pace (issue 14): the window's size, and a 429 that holds every
send of the bot, against the fake Bot API over real HTTP."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.channels.telegram import Limits, TelegramChannel
from bot.engine.channel import TransientSendError
from bot.engine.events import OutText
from bot.settings import Settings
from storage.evidence import LocalEvidenceStore
from tests.fakes.telegram_api import FakeTelegramAPI

CHAT = 424242


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI() as fake:
        yield fake


def make_channel(api: FakeTelegramAPI, tmp_path: Path, limits: Limits) -> TelegramChannel:
    store = LocalEvidenceStore(tmp_path / "evidence")
    return TelegramChannel(token=api.token, api_url=api.url, store=store, limits=limits)


def test_the_window_is_telegrams_30_unless_the_pace_is_set_above_it() -> None:
    assert Limits().overall_window == 30
    assert Limits(overall_per_second=10).overall_window == 30
    # A local Bot API server, or tests faster than Telegram: the window follows the pace.
    assert Limits(overall_per_second=400).overall_window == 400
    assert Limits(overall_per_second=30.5).overall_window == 31


def test_the_default_pace_is_the_one_the_benchmark_holds() -> None:
    """bench/broadcast.py: 29.5/s with the window keeps 0 x 429 at >= 95 % of the limit."""
    assert Settings().telegram_messages_per_second == Limits().overall_per_second == 29.5


async def test_a_429_holds_every_send_of_the_bot_for_its_retry_after(
    api: FakeTelegramAPI, tmp_path: Path
) -> None:
    channel = make_channel(api, tmp_path, Limits())
    api.fail_next("sendMessage", status=429, retry_after=7)
    try:
        asked = time.monotonic()
        with pytest.raises(TransientSendError):
            await channel.send(str(CHAT), OutText(text="halo"))
        answered = time.monotonic()
    finally:
        await channel.close()
    assert asked + 7 <= channel.out.overall.resumes_at <= answered + 7


async def test_pause_on_429_off_leaves_retries_to_the_outbox(
    api: FakeTelegramAPI, tmp_path: Path
) -> None:
    channel = make_channel(api, tmp_path, Limits(pause_on_429=False))
    api.fail_next("sendMessage", status=429, retry_after=7)
    try:
        with pytest.raises(TransientSendError):
            await channel.send(str(CHAT), OutText(text="halo"))
    finally:
        await channel.close()
    assert channel.out.overall.resumes_at == -math.inf
