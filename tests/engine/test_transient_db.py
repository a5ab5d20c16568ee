"""A transient database error during a turn (a lost connection, a PostgreSQL restart, SQLite
still locked after its busy timeout) is retried with back-off; the user gets the real answer,
or, when the database stays away, one "busy" notice while the message stays unprocessed in the
inbox for the replay job."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.dispatch import TRANSIENT_RETRY_DELAYS
from bot.engine.events import TextReceived
from bot.engine.texts import t
from storage.db import is_transient
from storage.models import Answer, InboxMessage, InboxStatus
from tests.support.harness import Harness, at_first_question


def locked() -> Exception:
    return OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))


def connection_lost() -> Exception:
    return DBAPIError(
        "SELECT 1", {}, ConnectionResetError("connection terminated"), connection_invalidated=True
    )


class FlakySessions:
    """A session factory that raises a transient error for its next `failures` sessions, then
    works: a database that comes back."""

    def __init__(self, real: async_sessionmaker[AsyncSession], failures: int, error: Any) -> None:
        self.real, self.failures, self.error = real, failures, error
        self.refused = 0

    def __call__(self, **kwargs: Any) -> AsyncSession:
        if self.failures > 0:
            self.failures -= 1
            self.refused += 1
            raise self.error()
        return self.real(**kwargs)


class Pauses:
    """The engine's injected sleeper: records the back-off instead of waiting."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def flaky(h: Harness, failures: int, error: Any) -> tuple[FlakySessions, Pauses]:
    sessions = FlakySessions(h.sessions, failures, error)
    pauses = Pauses()
    h.engine.sessions = sessions  # type: ignore[assignment]
    h.engine.sleep = pauses
    return sessions, pauses


@pytest.mark.parametrize("error", [locked, connection_lost], ids=["locked", "connection-lost"])
async def test_a_transient_error_is_retried_and_the_user_gets_the_real_answer(
    sessions, data_dir, error
) -> None:
    h = await at_first_question(sessions, data_dir)
    flaky_sessions, pauses = flaky(h, failures=2, error=error)
    reply = await h.text("25")
    assert flaky_sessions.refused == 2
    assert pauses.slept == list(TRANSIENT_RETRY_DELAYS[:2])  # backs off, growing
    assert "daftar penerima" in reply.lower()  # the next question: the answer was taken
    assert t("id", "error.busy") not in reply and "terjadi kesalahan" not in reply
    async with sessions() as session:
        assert [a.value for a in (await session.exec(select(Answer))).all()] == ["25"]


async def test_when_the_database_stays_away_one_notice_and_the_message_is_kept(
    sessions, data_dir
) -> None:
    h = await at_first_question(sessions, data_dir)
    event = TextReceived(**h._base("kept-1"), text="25")
    # What a channel does first: keep the raw message in the inbox.
    assert await h.engine.store_raw(h.channel.name, "kept-1", {"text": "25"})
    tries = len(TRANSIENT_RETRY_DELAYS) + 1
    _, pauses = flaky(h, failures=tries, error=connection_lost)
    before = len(h.channel.sent)
    assert await h.engine.handle(event) is False  # not handled
    await h.sender.drain_all()
    assert pauses.slept == list(TRANSIENT_RETRY_DELAYS)
    assert h.channel.texts()[before:] == [t("id", "error.busy")]  # one notice, no apology
    async with sessions() as session:
        row = (
            await session.exec(select(InboxMessage).where(InboxMessage.message_id == "kept-1"))
        ).one()
        assert row.status is InboxStatus.received  # still for the replay job
        assert (await session.exec(select(Answer))).all() == []  # nothing half-written

    # The same message fails again (a replay while the database is still away): no second notice.
    flaky(h, failures=tries, error=connection_lost)
    assert await h.engine.handle(event) is False
    await h.sender.drain_all()
    assert h.channel.texts()[before:] == [t("id", "error.busy")]

    # The database is back: the replay job handles the kept message, the user gets the answer.
    h.engine.sessions = sessions
    h.channel.parse_stored = lambda payload: event  # type: ignore[attr-defined]
    assert await h.engine.replay_stored() == 1
    await h.sender.drain_all()
    assert "daftar penerima" in h.channel.texts()[-1].lower()
    async with sessions() as session:
        row = (
            await session.exec(select(InboxMessage).where(InboxMessage.message_id == "kept-1"))
        ).one()
        assert row.status is InboxStatus.processed
        assert [a.value for a in (await session.exec(select(Answer))).all()] == ["25"]


async def test_a_bug_is_not_retried(sessions, data_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    h = await at_first_question(sessions, data_dir)
    pauses = Pauses()
    h.engine.sleep = pauses
    calls = {"n": 0}

    async def broken(turn: object) -> None:
        calls["n"] += 1
        raise IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))

    monkeypatch.setattr(h.engine, "router", broken)
    reply = await h.text("25")
    assert calls["n"] == 1 and pauses.slept == []
    assert "terjadi kesalahan" in reply


def test_which_errors_are_transient() -> None:
    assert is_transient(locked())
    assert is_transient(connection_lost())
    assert is_transient(ConnectionRefusedError())

    class AdminShutdown(Exception):
        sqlstate = "57P01"  # PostgreSQL restarting: "terminating connection due to administrator"

    assert is_transient(DBAPIError("SELECT 1", {}, AdminShutdown()))
    assert not is_transient(IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE")))
    assert not is_transient(ValueError("a bug"))
