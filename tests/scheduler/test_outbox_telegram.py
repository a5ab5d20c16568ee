"""A broadcast through the real composition (run_channels: the sender and the Telegram channel
at its default pace) against the fake Bot API enforcing Telegram's flood limits: nothing
overshoots them, a 429 storm loses nothing, and a user writing meanwhile is answered once."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import evidence_store, run_channels, telegram_channel
from bot.settings import Settings
from storage.models import OutboxStatus
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI, SendLimits, text_update
from tests.scheduler.test_outbox_processes import eventually, statuses, write_broadcast

BROADCAST = 120  # about 5 s at 25/s


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN, limits=SendLimits()) as fake:
        yield fake


@contextlib.asynccontextmanager
async def product(api: FakeTelegramAPI, database_url: str, data_dir: Path) -> AsyncIterator[None]:
    settings = Settings(
        telegram_token=DEFAULT_TOKEN,
        telegram_api_url=api.url,
        database_url=database_url,
        data_dir=data_dir,
        http_port=0,
    )
    stop = asyncio.Event()
    channel = telegram_channel(settings, evidence_store(settings))  # the default pace
    task = asyncio.create_task(run_channels(settings, [channel], stop=stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def broadcast_counts(api: FakeTelegramAPI) -> Counter[str]:
    return Counter(
        params["text"] for params in api.sent("sendMessage") if params["text"].startswith("siaran")
    )


async def test_a_broadcast_stays_under_the_limits_and_a_user_is_answered_meanwhile(
    api: FakeTelegramAPI, database_url: str, sessions, data_dir: Path
) -> None:
    user = 930_001
    async with product(api, database_url, data_dir):
        await write_broadcast(sessions, BROADCAST)
        await eventually(lambda: len(broadcast_counts(api)) >= 20)
        api.push_update(text_update(user, "halo"))
        await eventually(lambda: len(broadcast_counts(api)) >= BROADCAST)
        await eventually(lambda: api.sent("sendMessage", chat_id=user))
        await eventually(
            lambda: _all_sent(sessions, BROADCAST + len(api.sent("sendMessage", chat_id=user)))
        )
    assert api.rate_limited == 0  # never past 30/s, nor a chat's burst
    assert api.most_in_one_second(lambda r: r.method == "sendMessage") <= 30
    assert set(broadcast_counts(api).values()) == {1}
    assert len(broadcast_counts(api)) == BROADCAST


async def _all_sent(sessions, expected: int) -> bool:
    return (await statuses(sessions))[OutboxStatus.sent] == expected


async def test_a_429_storm_during_a_broadcast_loses_nothing_and_sends_nothing_twice(
    api: FakeTelegramAPI, database_url: str, sessions, data_dir: Path
) -> None:
    async with product(api, database_url, data_dir):
        await write_broadcast(sessions, BROADCAST)
        await eventually(lambda: len(broadcast_counts(api)) >= 10)
        # Each 429 pauses the whole pace for its second: ten in a row are a storm already.
        api.fail_next("sendMessage", status=429, retry_after=1, count=10)
        await eventually(lambda: len(broadcast_counts(api)) >= BROADCAST)
        await eventually(lambda: _all_sent(sessions, BROADCAST))
    refused = [r for r in api.requests if r.method == "sendMessage" and r.status == 429]
    assert len(refused) >= 10
    assert set(broadcast_counts(api).values()) == {1}
    assert len(broadcast_counts(api)) == BROADCAST
