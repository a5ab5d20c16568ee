"""Two real `laporham run` processes on one database (a deploy overlap, a second worker), and
a graceful stop by a real SIGTERM. The fake Bot API runs in the test's own event loop over
real HTTP and is where "exactly once" is checked: it records every message it received.

Runs on SQLite, and on PostgreSQL when LAPORHAM_TEST_DATABASE_URL points there (.ci/run)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.channel import Channel
from bot.engine.events import OutText, outgoing_to_payload
from storage import outbox
from storage.db import transaction
from storage.models import Lease, OutboxMessage, OutboxStatus
from tests.channels.test_telegram_cli import laporham_command
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI, command_update

REPO = Path(__file__).resolve().parents[2]
MESSAGES = 1_000
# Hang guards, never speed requirements: two Python processes starting on a loaded machine.
STARTUP_GUARD = 120
DELIVERY_GUARD = 300


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as fake:
        yield fake


def bot_environment(api: FakeTelegramAPI, database_url: str, home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LAPORHAM_")}
    return env | {
        "LAPORHAM_TELEGRAM_TOKEN": DEFAULT_TOKEN,
        "LAPORHAM_TELEGRAM_API_URL": api.url,
        "LAPORHAM_DATABASE_URL": database_url,
        "LAPORHAM_DATA_DIR": str(home / "data"),
        "LAPORHAM_HTTP_PORT": "0",
        # Faster than Telegram allows (the fake does not enforce it here): the test is about
        # who sends, not how fast.
        "LAPORHAM_TELEGRAM_MESSAGES_PER_SECOND": "400",
        "PYTHONPATH": str(REPO),
    }


class Bot:
    """One `laporham run` process; its log goes to a file (a pipe nobody reads would block)."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_for_log(self, needle: str) -> None:
        async with asyncio.timeout(STARTUP_GUARD):
            while needle not in self.text():
                if self.process.returncode is not None:
                    pytest.fail(f"laporham run exited early:\n{self.text()[-3000:]}")
                await asyncio.sleep(0.1)

    async def terminate(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(STARTUP_GUARD):
            return await self.process.wait()


@contextlib.asynccontextmanager
async def laporham_run(env: dict[str, str], home: Path, name: str) -> AsyncIterator[Bot]:
    home.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a test's own tmp directory
    log = home / f"{name}.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *laporham_command(), cwd=home, env=env, stdout=sink, stderr=sink
        )
    bot = Bot(process, log)
    try:
        yield bot
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def laporham_run_later(
    env: dict[str, str], home: Path, name: str
) -> AsyncIterator[Callable[[], Awaitable[Bot]]]:
    """A process started when the test says so, stopped (if still running) at the end."""
    async with contextlib.AsyncExitStack() as stack:

        async def start() -> Bot:
            return await stack.enter_async_context(laporham_run(env, home, name))

        yield start


async def eventually(check: Callable[[], object], within: float = DELIVERY_GUARD) -> None:
    async with asyncio.timeout(within):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.1)


async def statuses(sessions: async_sessionmaker[AsyncSession]) -> Counter[OutboxStatus]:
    async with sessions() as session:
        return Counter((await session.exec(select(OutboxMessage.status))).all())


async def write_broadcast(sessions: async_sessionmaker[AsyncSession], count: int) -> None:
    rows = [
        outbox.outbox_row(
            idempotency_key=f"broadcast:test:{n}",
            channel=Channel.telegram,
            recipient=str(800_000 + n),
            payload=outgoing_to_payload(OutText(text=f"siaran {n}")),
            purpose="broadcast",
        )
        for n in range(count)
    ]
    async with transaction(sessions) as session:
        await outbox.insert_outbox(session=session, rows=rows)


async def test_two_processes_deliver_every_message_exactly_once(
    api: FakeTelegramAPI, database_url: str, sessions, tmp_path: Path
) -> None:
    # 100 messages/s each: the first is still at it when the second starts (a deploy overlap).
    env = bot_environment(api, database_url, tmp_path) | {
        "LAPORHAM_TELEGRAM_MESSAGES_PER_SECOND": "100"
    }
    await write_broadcast(sessions, MESSAGES)
    async with (
        laporham_run(env, tmp_path / "one", "one") as one,
        laporham_run_later(env, tmp_path / "two", "two") as start_two,
    ):
        await eventually(lambda: len(api.sent("sendMessage")) >= 50)
        # The second starts while the first holds claimed rows in hand: its start-up
        # recovery must leave them alone, and from then on both claim.
        two = await start_two()
        await two.wait_for_log("HTTP server on")
        assert len(api.sent("sendMessage")) < MESSAGES  # still overlapping
        # Users write meanwhile: only the process holding the polling lease fetches them.
        users = [900_001 + n for n in range(10)]
        for user in users:
            api.push_update(command_update(user, "start"))

        async def all_sent() -> bool:
            return (await statuses(sessions))[OutboxStatus.sent] >= MESSAGES + len(users)

        await eventually(all_sent)
        assert await one.terminate() == 0
        assert await two.terminate() == 0

    texts = Counter(params["text"] for params in api.sent("sendMessage"))
    broadcast = {text: n for text, n in texts.items() if text.startswith("siaran ")}
    assert len(broadcast) == MESSAGES
    assert set(broadcast.values()) == {1}, [t for t, n in broadcast.items() if n > 1][:10]
    for user in users:  # each update fetched by one poller, answered once
        assert len(api.sent("sendMessage", chat_id=user)) == 1
    assert await statuses(sessions) == Counter({OutboxStatus.sent: MESSAGES + len(users)})
    async with sessions() as session:  # the poller gave its lease up at the stop
        assert (await session.exec(select(Lease))).all() == []
    for bot in (one, two):
        assert "Traceback" not in bot.text()


async def test_sigterm_finishes_the_send_in_hand_records_it_and_exits_0(
    api: FakeTelegramAPI, database_url: str, sessions, tmp_path: Path
) -> None:
    env = bot_environment(api, database_url, tmp_path) | {"LAPORHAM_SHUTDOWN_SECONDS": "20"}
    user = 900_100
    async with laporham_run(env, tmp_path / "one", "one") as bot:
        await bot.wait_for_log("HTTP server on")
        await api.wait_for("getUpdates", timeout=STARTUP_GUARD, finished=False)
        api.delay_next("sendMessage", 2.0)  # the reply is in hand when the signal comes
        api.push_update(command_update(user, "start"))
        await api.wait_for("sendMessage", timeout=STARTUP_GUARD, finished=False)
        signalled_at = api.clock()
        assert await bot.terminate() == 0
        assert "graceful stop" not in bot.text()  # nothing was cut short

    # The send in hand finished, and its outcome was written before the exit.
    assert len(api.sent("sendMessage", chat_id=user)) == 1
    async with sessions() as session:
        row = (await session.exec(select(OutboxMessage))).one()
    assert (row.status, row.claimed_by) == (OutboxStatus.sent, None)
    # Polling stopped at the signal: no getUpdates began after it.
    assert not [r for r in api.requests if r.method == "getUpdates" and r.at > signalled_at]

    # A restart sends nothing again.
    async with laporham_run(env, tmp_path / "two", "two") as again:
        await again.wait_for_log("HTTP server on")
        await api.wait_for(
            lambda r: r.method == "getUpdates" and r.at > signalled_at,
            timeout=STARTUP_GUARD,
            finished=False,
        )
        assert await again.terminate() == 0
    assert len(api.sent("sendMessage", chat_id=user)) == 1
