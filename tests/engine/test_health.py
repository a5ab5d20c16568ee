"""An outage is logged when it starts and when it ends, not at every retry (hardening issue
#13, item 8: a 45-second PostgreSQL outage wrote 6,057 lines): the Health board itself, the
outbox sender's loop and Telegram's polling loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from telegram.error import NetworkError

import scheduler.outbox as outbox_module
from bot.channels.telegram import transport
from bot.engine.health import DATABASE, Health
from scheduler.outbox import OutboxSender
from storage.db import create_engine, session_factory

DEAD_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:1/laporham_gone"
GUARD_SECONDS = 20.0  # only guards against a hang


async def until(check: Any) -> None:
    async with asyncio.timeout(GUARD_SECONDS):
        while not check():  # noqa: ASYNC110 - the loops under test signal nothing
            await asyncio.sleep(0.005)


def failures(health: Health, part: str) -> int:
    outage = health.outage(part)
    return outage.failures if outage else 0


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_health_logs_a_state_change_once_with_an_injected_clock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    now = [100.0]
    health = Health(clock=lambda: now[0])
    for second in range(45):
        now[0] = 100.0 + second
        health.failing(DATABASE, "ConnectionRefusedError")
    assert health.problems() == {DATABASE: "ConnectionRefusedError"}
    health.ok(DATABASE)
    health.ok(DATABASE)
    assert [r.getMessage() for r in caplog.records] == [
        "database down: ConnectionRefusedError",
        "database recovered after 44 s (45 failed attempts)",
    ]
    assert health.problems() == {}


class SwitchableSessions:
    """A session factory whose database the test takes away and gives back."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.current = sessions
        self.opened = 0

    def __call__(self) -> AsyncSession:
        self.opened += 1
        return self.current()


async def test_the_outbox_sender_logs_a_database_outage_once(
    sessions: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbox_module, "POLL_SECONDS", 0.001)
    caplog.set_level(logging.INFO)
    health = Health()
    dead = create_engine(DEAD_DATABASE)
    database = SwitchableSessions(sessions)
    sender = OutboxSender(sessions=database, channels={}, health=health)  # type: ignore[arg-type]
    running = asyncio.create_task(sender.run())
    try:
        await until(lambda: database.opened >= 2)  # recover() is done, the loop has begun
        database.current = session_factory(dead)
        sender.wakeup.set()
        await until(lambda: failures(health, DATABASE) >= 30)
        database.current = sessions
        await until(lambda: not health.is_down(DATABASE))
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        await dead.dispose()
    lines = warnings(caplog)
    assert len(lines) == 2, lines
    assert lines[0].startswith("database down: outbox cycle failed: ")
    assert lines[1].startswith("database recovered after ")


class FailingBotApi:
    """getUpdates fails `times` times (Telegram unreachable), then answers empty polls."""

    def __init__(self, times: int) -> None:
        self.left = times
        self.answered = asyncio.Event()
        self.bot = None

    async def call(self, method: str, **_params: Any) -> list[Any]:
        assert method == "getUpdates"
        await asyncio.sleep(0)  # a real poll waits on the network: let the test run meanwhile
        if self.left:
            self.left -= 1
            raise NetworkError("connection refused")
        self.answered.set()
        return []


async def test_telegram_polling_logs_an_outage_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "_delay", lambda _failures: 0.0)
    caplog.set_level(logging.INFO)
    health = Health(clock=lambda: 0.0)
    api = FailingBotApi(times=200)

    async def keep(*_args: Any) -> None:
        raise AssertionError("no update was sent")

    polling = asyncio.create_task(
        transport.poll(api, keep, poll_timeout=1, health=health)  # type: ignore[arg-type]
    )
    try:
        async with asyncio.timeout(GUARD_SECONDS):
            await api.answered.wait()
        await until(lambda: not health.is_down(transport.TELEGRAM))
    finally:
        polling.cancel()
        with pytest.raises(asyncio.CancelledError):
            await polling
    lines = warnings(caplog)
    assert lines == [
        "telegram down: getUpdates failed: NetworkError: connection refused",
        "telegram recovered after 0 s (200 failed attempts)",
    ]
