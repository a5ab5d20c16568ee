"""Buttons belong to the prompt they came with: a double tap or an old keyboard is refused and
changes nothing (issue #12, item 2)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Answer, ConversationState, EvidenceFile, Submission
from tests.support.harness import Harness, at_first_question, jpeg_bytes

STALE = "Tombol itu sudah tidak berlaku"
Sessions = async_sessionmaker[AsyncSession]


async def _walk_to_second_requirement(sessions: Sessions, data_dir: Any) -> Harness:
    """Register and walk one action up to its second evidence requirement, pressing a button
    wherever the flow offers one."""
    h = await at_first_question(sessions, data_dir)
    await h.text("25")
    await h.choose("yes")
    await h.choose("skip")
    await h.file(jpeg_bytes(), "kegiatan.jpg", photo=True)
    reply = await h.choose("done")
    assert "Tanggal penetapan" in reply
    await h.text("25-08-2025")
    reply = await h.text("2")
    assert "Daftar penerima" in reply
    return h


async def _snapshot(sessions: Sessions) -> tuple[object, ...]:
    async with sessions() as session:
        answers = sorted(
            (a.question_id, a.value) for a in (await session.exec(select(Answer))).all()
        )
        files = sorted(
            (f.requirement_id, f.sha256) for f in (await session.exec(select(EvidenceFile))).all()
        )
        submissions = sorted(
            (s.id, s.status.value, s.version)
            for s in (await session.exec(select(Submission))).all()
        )
        states = sorted(
            (s.flow, s.step, s.data.get("item"))
            for s in (await session.exec(select(ConversationState))).all()
        )
    return answers, files, submissions, states


async def test_a_double_tapped_done_button_does_not_close_the_next_requirement(
    sessions: Sessions, data_dir: Any
) -> None:
    h = await _walk_to_second_requirement(sessions, data_dir)
    first_done = next(b for b in h.buttons_sent() if b.startswith("done#"))
    before = await _snapshot(sessions)

    reply = await h.press(first_done)  # the first requirement's "Selesai", tapped again

    assert STALE in reply and "Daftar penerima" in reply
    assert await _snapshot(sessions) == before


async def test_a_current_button_still_works(sessions: Sessions, data_dir: Any) -> None:
    h = await _walk_to_second_requirement(sessions, data_dir)
    current_done = h.last_choices()[0][0]

    reply = await h.press(current_done)

    assert STALE not in reply and "Ringkasan" in reply


async def test_an_untagged_or_forged_button_is_refused(sessions: Sessions, data_dir: Any) -> None:
    h = await _walk_to_second_requirement(sessions, data_dir)
    before = await _snapshot(sessions)
    current = h.last_choices()[0][0]

    for forged in ["done", current + "0", current.replace("#", "#x")]:
        assert STALE in await h.press(forged)

    assert await _snapshot(sessions) == before


_walks: dict[int, Harness] = {}


@settings(
    max_examples=25,
    deadline=None,
    # The walk is made once per test and shared: pressing stale buttons must leave it as it is.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(picks=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=6))
async def test_every_old_button_of_a_walk_changes_nothing(
    sessions: Sessions, data_dir: Any, picks: list[int]
) -> None:
    h = _walks.get(id(sessions))
    if h is None:
        h = _walks[id(sessions)] = await _walk_to_second_requirement(sessions, data_dir)
    current = {wire for wire, _ in h.last_choices()}
    old = [b for b in dict.fromkeys(h.buttons_sent()) if b not in current]
    assert len(old) >= 8  # action, yes/no, keep/skip, "Selesai", the choice question's options
    before = await _snapshot(sessions)

    for pick in picks:
        reply = await h.press(old[pick % len(old)])
        assert STALE in reply and "Daftar penerima" in reply

    assert await _snapshot(sessions) == before
    assert {wire for wire, _ in h.last_choices()} == current
