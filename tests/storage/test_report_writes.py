"""reports.save_answer and add_evidence write with Core, beside the session's unit of work: the
rows, the objects the turn holds and what the session loads later must all agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import reports
from storage.db import transaction
from storage.models import Answer, EvidenceFile, EvidenceRequirement, Question, Submission
from tests.support.factories import World, make_world


async def draft_report(session: AsyncSession) -> tuple[World, Submission]:
    world = await make_world(session)
    submission, _ = await reports.get_or_create_submission(
        session=session,
        action_id=world.action.id or 0,
        office_id=world.office.id or 0,
        period_id=world.period.id or 0,
    )
    return world, submission


async def test_an_answer_saved_then_replaced_agrees_everywhere(sessions) -> None:
    first_at = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    second_at = first_at + timedelta(minutes=5)
    async with transaction(sessions) as session:
        world, submission = await draft_report(session)
        question = (await session.exec(select(Question))).first()
        assert question is not None and question.id is not None
        answers = await reports.answers_by_question(
            session=session, submission_id=submission.id or 0
        )
        await reports.save_answer(
            session=session, submission=submission, question_id=question.id, value="25",
            contact_id=world.focal_point.id, now=first_at, answers=answers,
        )  # fmt: skip
        assert answers[question.id].value == "25" and answers[question.id].id is not None
        # Replaced in the same turn, found in `answers`; then without it, found by a query.
        await reports.save_answer(
            session=session, submission=submission, question_id=question.id, value="30",
            contact_id=None, now=second_at, answers=answers,
        )  # fmt: skip
        assert answers[question.id].value == "30"
        loaded = await reports.answers_by_question(
            session=session, submission_id=submission.id or 0
        )
        assert loaded[question.id].value == "30"
        await reports.save_answer(
            session=session, submission=submission, question_id=question.id, value="31",
            contact_id=None, now=second_at, answers=None,
        )  # fmt: skip
        assert submission.updated_at == second_at
        assert not session.dirty  # nothing left for the flush at commit to write again

    async with sessions() as session:
        rows = (await session.exec(select(Answer))).all()
        stored = await session.get(Submission, submission.id)
    assert [(row.question_id, row.value, row.answered_by_id) for row in rows] == [
        (question.id, "31", None)
    ]
    assert rows[0].answered_at == second_at
    assert stored is not None and stored.updated_at == second_at


async def test_added_evidence_gets_its_id_and_counts_at_once(sessions) -> None:
    received_at = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    async with transaction(sessions) as session:
        _, submission = await draft_report(session)
        requirement = (await session.exec(select(EvidenceRequirement))).first()
        assert requirement is not None and requirement.id is not None
        file = EvidenceFile(
            submission_id=submission.id or 0, requirement_id=requirement.id, sha256="ab" * 32,
            original_name="foto.jpg", detected_mime="image/jpeg", kind="photo", size=123,
            storage_key="ab/abab", received_at=received_at,
        )  # fmt: skip
        await reports.add_evidence(session=session, submission=submission, file=file)
        assert file.id is not None
        counts = await reports.evidence_counts(session=session, submission_id=submission.id or 0)
        assert counts[requirement.id] == 1
        assert submission.updated_at == received_at and not session.dirty

    async with sessions() as session:
        stored = await session.get(EvidenceFile, file.id)
        report = await session.get(Submission, submission.id)
    assert stored is not None and (stored.original_name, stored.size) == ("foto.jpg", 123)
    assert stored.received_at == received_at
    assert report is not None and report.updated_at == received_at
