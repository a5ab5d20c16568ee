"""Nothing given is lost: restarts at every step, every message delivered twice, bad input at
every step, and a process dying in the middle of a transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlmodel import func, select

from bot.engine.events import ChoiceMade, CommandReceived, LocationShared, Unsupported
from storage import conversation_state, outbox
from storage.models import Answer, EvidenceFile, Submission, SubmissionStatus
from tests.support.factories import FOCAL_PHONE, World, make_world
from tests.support.harness import Harness, jpeg_bytes, pdf_bytes

Step = Callable[[Harness, World], Awaitable[str]]

# The whole report of the main action, one user message per step.
SCRIPT: list[tuple[str, Step]] = [
    ("hello", lambda h, w: h.text("halo")),
    ("contact", lambda h, w: h.contact(FOCAL_PHONE)),
    ("report", lambda h, w: h.text("lapor")),
    ("action", lambda h, w: h.choose(f"a:{w.action.id}")),
    ("count", lambda h, w: h.text("25")),
    ("yes", lambda h, w: h.choose("yes")),
    ("skip note", lambda h, w: h.choose("skip")),
    ("photo", lambda h, w: h.file(jpeg_bytes(), "foto.jpg", photo=True)),
    ("done 1", lambda h, w: h.text("/selesai")),
    ("date", lambda h, w: h.text("25-08-2025")),
    ("kind", lambda h, w: h.text("Pelatihan")),
    ("pdf", lambda h, w: h.file(pdf_bytes(), "daftar.pdf")),
    ("done 2", lambda h, w: h.text("selesai")),
    ("submit", lambda h, w: h.choose("submit")),
    ("confirm", lambda h, w: h.choose("yes")),
]


async def _world(sessions) -> World:
    async with sessions() as session:
        world = await make_world(session)
        await session.commit()
    return world


async def _assert_submitted(sessions) -> None:
    async with sessions() as session:
        submission = (await session.exec(select(Submission))).one()
        assert submission.status is SubmissionStatus.submitted
        assert len((await session.exec(select(Answer))).all()) == 4
        assert len((await session.exec(select(EvidenceFile))).all()) == 2


async def test_restart_before_every_step_loses_nothing(sessions, data_dir) -> None:
    world = await _world(sessions)
    h = Harness(sessions, data_dir)
    for name, step in SCRIPT:
        h.restart()
        assert await step(h, world), f"no reply at step {name}"
    assert "terkirim" in h.channel.texts()[-1]
    await _assert_submitted(sessions)


async def test_every_message_delivered_twice_is_handled_once(sessions, data_dir) -> None:
    world = await _world(sessions)
    h = Harness(sessions, data_dir)
    h.duplicate_every_delivery = True
    for name, step in SCRIPT:
        assert await step(h, world), f"no reply at step {name}"
    await _assert_submitted(sessions)
    async with sessions() as session:
        answers = (await session.exec(select(func.count()).select_from(Answer))).one()
        assert answers == 4


async def test_bad_input_at_every_step_is_answered_and_changes_nothing(sessions, data_dir) -> None:
    world = await _world(sessions)
    h = Harness(sessions, data_dir)
    base = h._base
    for name, step in SCRIPT:
        if name not in {"hello"}:
            for bad in (
                Unsupported(**base(None), kind="sticker"),
                ChoiceMade(**base(None), choice_id="a:999999"),
                CommandReceived(**base(None), name="hapuskan", args=""),
                LocationShared(**base(None), latitude=-5.4, longitude=105.2),
            ):
                before = await _state(sessions, h)
                replies = await h.deliver(bad)
                assert replies and all(replies), f"silence for {bad!r} before {name}"
                assert not any("Traceback" in r for r in replies)
                assert await _state(sessions, h) == before, f"{bad!r} changed state at {name}"
        assert await step(h, world), f"no reply at step {name}"
    await _assert_submitted(sessions)


async def _state(sessions, h: Harness) -> tuple[object, ...]:
    async with sessions() as session:
        state = await conversation_state.peek_state(
            session=session, channel=h.channel.name, user_key=h.user
        )
        answers = (await session.exec(select(func.count()).select_from(Answer))).one()
        files = (await session.exec(select(func.count()).select_from(EvidenceFile))).one()
    if state is None:
        return (None, answers, files)
    return (state.flow, state.step, state.data.get("item"), answers, files)


class ProcessDied(BaseException):
    """Stands for the process being killed: not an Exception, so nothing catches it."""


async def test_a_crash_inside_the_transaction_loses_nothing(
    sessions, data_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await _world(sessions)
    h = Harness(sessions, data_dir)
    for _, step in SCRIPT[:4]:
        await step(h, world)
    real_insert = outbox.insert_outbox
    calls = {"n": 0}

    async def dying_insert(**kwargs: object) -> object:
        # The process dies while writing the replies: the answer is in the same transaction.
        calls["n"] += 1
        if calls["n"] == 1:
            raise ProcessDied
        return await real_insert(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(outbox, "insert_outbox", dying_insert)
    with pytest.raises(ProcessDied):
        await h.text("25", message_id="answer-25")
    async with sessions() as session:  # the answer was not half-saved
        assert (await session.exec(select(func.count()).select_from(Answer))).one() == 0
    h.restart()
    reply = await h.text("25", message_id="answer-25")  # the channel redelivers
    assert "daftar penerima" in reply.lower()
    async with sessions() as session:
        assert [a.value for a in (await session.exec(select(Answer))).all()] == ["25"]


async def test_handler_bug_gets_an_apology_not_silence(
    sessions, data_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await _world(sessions)
    h = Harness(sessions, data_dir)
    for _, step in SCRIPT[:3]:
        await step(h, world)

    async def broken(turn: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(h.engine, "router", broken)
    reply = await h.text("apa saja")
    assert "terjadi kesalahan" in reply
