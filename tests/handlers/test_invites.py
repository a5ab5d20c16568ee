"""Invite codes on the public edge (hardening issue #13, item 2): wrong codes are throttled per
sender and per code, each refusal is one log line without the code or the number, and codes are
stored as HMAC-SHA256 with the server's key (legacy bare SHA-256 rows still honoured)."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.invites import (
    DEVELOPMENT_KEY,
    InvitePolicy,
    Throttled,
    ThrottledBy,
    code_hash,
    create_invite,
    find_usable_invite,
    new_code,
    record_wrong_try,
    throttled,
)
from storage.models import InviteAttempt, InviteCode, Role
from tests.support.factories import World, make_world
from tests.support.harness import Harness

Sessions = async_sessionmaker[AsyncSession]
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
BAD_CODE = "Kode undangan itu tidak dikenal"
THROTTLED = "Terlalu banyak percobaan kode undangan yang salah"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def _world(sessions: Sessions) -> World:
    async with sessions() as session:
        world = await make_world(session)
        await session.commit()
    return world


async def _invite(sessions: Sessions, world: World, *, key: bytes = DEVELOPMENT_KEY) -> str:
    async with sessions() as session:
        code = await create_invite(
            session=session,
            role=Role.focal_point,
            region_code=world.region.code,
            office_code=world.office.code,
            key=key,
            name="Andi Pratama",
            now=START,
        )
        await session.commit()
    return code


def _user(sessions: Sessions, data_dir: Path, user: str, clock: Clock) -> Harness:
    harness = Harness(sessions, data_dir, user=user)
    harness.engine.clock = clock
    return harness


def _refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("invite refused")]


async def test_300_wrong_codes_are_throttled_after_5_and_each_refusal_is_logged(
    sessions: Sessions, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's reproduction: 300 tries used to be checked at 94/s with no log line."""
    caplog.set_level(logging.WARNING)
    world = await _world(sessions)
    good = await _invite(sessions, world)
    clock = Clock(START)
    attacker = _user(sessions, data_dir, "987654321", clock)
    guesses = [new_code() for _ in range(300)]
    replies = []
    for guess in guesses:
        replies.append(await attacker.text(f"/daftar {guess}"))
        clock.now += timedelta(seconds=0.01)
    assert all(BAD_CODE in reply for reply in replies[:5])
    assert all(THROTTLED in reply for reply in replies[5:])
    assert "dalam <b>60 menit</b>" in replies[5]
    # Throttled tries are refused unchecked: even the right code, until the window has passed.
    assert THROTTLED in await attacker.text(f"/daftar {good}")
    async with sessions() as session:
        attempts = (await session.exec(select(InviteAttempt))).all()
    assert len(attempts) == 5  # only the checked tries are counted
    lines = _refusals(caplog)
    assert len(lines) == 301
    assert lines[0] == "invite refused: telegram …4321 wrong code (1 of 5 in the window)"
    assert lines[5].startswith("invite refused: telegram …4321 throttled by sender until ")
    assert not any(g in line for g in [*guesses, good] for line in lines)
    assert not any("987654321" in line for line in lines)
    # An hour after the first wrong try, the sender may try again, and the right code works.
    clock.now = START + timedelta(hours=1, seconds=1)
    assert "Andi Pratama" in await attacker.text(f"/daftar {good}")


async def test_a_code_tried_wrongly_by_five_senders_is_throttled_for_everyone(
    sessions: Sessions, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Per code: many senders (or numbers) guessing at one code are stopped too."""
    caplog.set_level(logging.WARNING)
    await _world(sessions)
    clock = Clock(START)
    target = "ABCD2345"
    for n in range(5):
        sender = _user(sessions, data_dir, f"70000{n}", clock)
        assert BAD_CODE in await sender.text(f"/daftar {target}")
    sixth = _user(sessions, data_dir, "7000099", clock)
    assert THROTTLED in await sixth.text(f"/daftar {target.lower()}")  # the same code
    assert BAD_CODE in await sixth.text("/daftar ZZZZ9999")  # another code is checked
    assert any("throttled by code" in line for line in _refusals(caplog))


async def test_throttled_until_counts_from_the_oldest_try_in_the_window(
    session: AsyncSession,
) -> None:
    policy = InvitePolicy(max_wrong_tries=3, window=timedelta(minutes=10))
    sender = "whatsapp:6281200000009"
    for minute in (0, 4, 8):
        now = START + timedelta(minutes=minute)
        await record_wrong_try(session=session, policy=policy, sender=sender, code="X", now=now)
    at_nine = START + timedelta(minutes=9)
    refused = await throttled(session=session, policy=policy, sender=sender, code="Y", now=at_nine)
    assert refused == Throttled(ThrottledBy.sender, START + timedelta(minutes=10))
    by_code = await throttled(
        session=session, policy=policy, sender="telegram:1", code="x", now=at_nine
    )
    assert by_code == Throttled(ThrottledBy.code, START + timedelta(minutes=10))
    at_ten = START + timedelta(minutes=10)
    assert (
        await throttled(session=session, policy=policy, sender=sender, code="Y", now=at_ten) is None
    )


async def test_codes_are_stored_keyed_and_a_legacy_sha256_row_still_works(
    session: AsyncSession, sessions: Sessions
) -> None:
    world = await make_world(session)
    key = b"a-server-key-of-its-own-0123456789"
    code = await create_invite(
        session=session,
        role=Role.coordinator,
        region_code=world.region.code,
        office_code=None,
        key=key,
        now=START,
    )
    stored = (await session.exec(select(InviteCode))).one()
    assert stored.keyed and stored.code_hash == code_hash(code, key)
    assert stored.code_hash != hashlib.sha256(code.encode()).hexdigest()
    found = await find_usable_invite(session=session, code=code, key=key, now=START)
    assert found is not None
    # The same code under another key (a leaked database without the secret) finds nothing.
    assert await find_usable_invite(session=session, code=code, key=b"other", now=START) is None
    # A code issued before keying: its row holds a bare SHA-256 and `keyed` false.
    legacy = "LEGACY23"
    session.add(
        InviteCode(
            code_hash=hashlib.sha256(legacy.encode()).hexdigest(),
            keyed=False,
            role=Role.coordinator,
            region_id=world.region.id,
            expires_at=START + timedelta(days=3),
        )
    )
    await session.flush()
    assert await find_usable_invite(session=session, code="legacy-23", key=key, now=START)
    after_expiry = START + timedelta(days=4)
    assert await find_usable_invite(session=session, code=legacy, key=key, now=after_expiry) is None


async def test_the_wait_is_counted_from_the_oldest_wrong_try(
    sessions: Sessions, data_dir: Path
) -> None:
    await _world(sessions)
    clock = Clock(START)
    user = _user(sessions, data_dir, "55501", clock)
    for _ in range(5):
        assert BAD_CODE in await user.text("/daftar WRONG234")
        clock.now += timedelta(minutes=1)
    reply = await user.text("/daftar WRONG234")
    assert THROTTLED in reply and "dalam <b>55 menit</b>" in reply
