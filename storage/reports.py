"""Queries of the reporting flow: open periods, an office's actions, the walk through measures,
answers, evidence, completeness, submit and reopen. Never commits."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

from cachetools import TTLCache
from sqlalchemy import Table, bindparam, func, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    Action,
    Answer,
    Assignment,
    AuditLog,
    EvidenceFile,
    EvidenceRequirement,
    Measure,
    Office,
    Period,
    Programme,
    Question,
    Region,
    ReviewDecision,
    ReviewEvent,
    Submission,
    SubmissionStatus,
    SubmissionVersion,
)
from storage.periods import deadline, window


@dataclass(frozen=True)
class WalkItem:
    """One stop of the walk through a report: a question, or an evidence requirement."""

    key: str  # "q12" or "e7": stored in the conversation state
    measure: Measure
    question: Question | None = None
    requirement: EvidenceRequirement | None = None


@dataclass
class Completeness:
    missing_answers: list[WalkItem] = field(default_factory=list)
    missing_evidence: list[tuple[WalkItem, int]] = field(default_factory=list)  # (item, count)
    missing_keys: list[str] = field(default_factory=list)  # both kinds, in walk order

    @property
    def complete(self) -> bool:
        return not self.missing_answers and not self.missing_evidence

    def first_missing_key(self) -> str | None:
        return self.missing_keys[0] if self.missing_keys else None


async def get_region(*, session: AsyncSession, region_id: int) -> Region | None:
    return await _catalogue_row(session, Region, region_id)


async def get_office(*, session: AsyncSession, office_id: int) -> Office | None:
    return await _catalogue_row(session, Office, office_id)


_PERIODS_FOR_OFFICE = (
    select(Programme, Period)
    .join(Period, col(Period.programme_id) == Programme.id)
    .where(
        col(Period.opens_on).is_not(None),
        col(Period.due_on).is_not(None),
        col(Programme.id).in_(
            select(Action.programme_id)
            .join(Assignment, col(Assignment.action_id) == Action.id)
            .where(Assignment.office_id == bindparam("office_id"))
        ),
    )
    .order_by(col(Programme.year), col(Period.position))
)


async def open_periods_for_office(
    *, session: AsyncSession, office_id: int, timezone: str, now: datetime
) -> list[tuple[Programme, Period]]:
    """Periods open now (in the region's zone) of programmes with an action for this office."""
    rows = (await session.exec(_PERIODS_FOR_OFFICE, params={"office_id": office_id})).all()
    return [
        (programme, period)
        for programme, period in rows
        if period.opens_on
        and period.due_on
        and window(period.opens_on, period.due_on, timezone).is_open(now)
    ]


async def last_closed_period_for_office(
    *, session: AsyncSession, office_id: int, timezone: str, now: datetime
) -> Period | None:
    """The period of this office's programmes whose deadline passed most recently, if any."""
    rows = (await session.exec(_PERIODS_FOR_OFFICE, params={"office_id": office_id})).all()
    closed = [
        (period.due_on, period)
        for _, period in rows
        if period.due_on and now >= deadline(period.due_on, timezone)
    ]
    return max(closed, key=lambda pair: pair[0], default=(None, None))[1]


async def get_period(*, session: AsyncSession, period_id: int) -> Period | None:
    return await _catalogue_row(session, Period, period_id)


async def get_programme(*, session: AsyncSession, programme_id: int) -> Programme | None:
    return await _catalogue_row(session, Programme, programme_id)


async def get_action(*, session: AsyncSession, action_id: int) -> Action | None:
    return await _catalogue_row(session, Action, action_id)


# Catalogue rows (actions, periods), reference rows (regions, offices) and the walk of an
# (action, period) are read several times per message of a report and change only when an
# operator imports: kept CACHE_SECONDS, per database engine (an import shows within that).
# Measured with bench/engine.py: without it a message runs ~3 more SELECTs (12 instead of 9)
# and the engine handles ~30% fewer messages per second. Cached objects are for reading only:
# they outlive the session that loaded them.
CACHE_SECONDS = 60.0
clock: Callable[[], float] = time.monotonic  # the cache's clock (tests move it)
_cache: TTLCache[tuple[object, ...], object] = TTLCache(
    maxsize=10_000, ttl=CACHE_SECONDS, timer=lambda: clock()
)

CatalogueRow = TypeVar("CatalogueRow", Action, Period, Programme, Region, Office)


async def _catalogue_row(
    session: AsyncSession, model: type[CatalogueRow], row_id: int
) -> CatalogueRow | None:
    """A catalogue or reference row by id, from the cache when it is there."""
    key = (session.get_bind(), model, row_id)
    cached = _cache.get(key)
    if cached is not None:
        return cast(CatalogueRow, cached)
    row = await session.get(model, row_id)
    if row is not None:
        _cache[key] = row
    return row


async def office_actions_for_period(
    *, session: AsyncSession, office_id: int, period: Period
) -> list[tuple[Action, Submission | None]]:
    """The office's assigned actions that have measures in this period, with their reports."""
    params = {"office_id": office_id, "period_id": period.id, "programme_id": period.programme_id}
    rows = (await session.exec(_ACTIONS_FOR_PERIOD, params=params)).all()
    return [(action, submission) for action, submission in rows]


_ACTIONS_FOR_PERIOD = (
    select(Action, Submission)
    .join(Assignment, col(Assignment.action_id) == Action.id)
    .outerjoin(
        Submission,
        (col(Submission.action_id) == Action.id)
        & (col(Submission.office_id) == bindparam("office_id"))
        & (col(Submission.period_id) == bindparam("period_id")),
    )
    .where(
        Assignment.office_id == bindparam("office_id"),
        Action.programme_id == bindparam("programme_id"),
        col(Action.id).in_(
            select(Measure.action_id).where(Measure.period_id == bindparam("period_id"))
        ),
    )
    .order_by(col(Action.position), col(Action.id))
)


async def assigned_action(
    *, session: AsyncSession, office_id: int, action_id: int
) -> Action | None:
    """The action, only if it is assigned to the office (the scope check and the action's row in
    one SELECT; `get_action` then finds it in the session's identity map)."""
    params = {"office_id": office_id, "action_id": action_id}
    return (await session.exec(_ASSIGNED_ACTION, params=params)).first()


_ASSIGNED_ACTION = (
    select(Action)
    .join(Assignment, col(Assignment.action_id) == Action.id)
    .where(Assignment.office_id == bindparam("office_id"), Action.id == bindparam("action_id"))
)


_SUBMISSION_LOCKED = (
    select(Submission)
    .where(
        Submission.action_id == bindparam("action_id"),
        Submission.office_id == bindparam("office_id"),
        Submission.period_id == bindparam("period_id"),
    )
    .with_for_update()
)


async def get_or_create_submission(
    *, session: AsyncSession, action_id: int, office_id: int, period_id: int
) -> tuple[Submission, bool]:
    """The report of (action, office, period), locked; True when it was created just now (and so
    has no answers or files yet)."""
    params = {"action_id": action_id, "office_id": office_id, "period_id": period_id}
    submission = (await session.exec(_SUBMISSION_LOCKED, params=params)).first()
    if submission is None:
        submission = Submission(action_id=action_id, office_id=office_id, period_id=period_id)
        session.add(submission)
        await session.flush()
        return submission, True
    return submission, False


async def get_submission(*, session: AsyncSession, submission_id: int) -> Submission | None:
    return await session.get(Submission, submission_id)


async def walk(*, session: AsyncSession, action_id: int, period_id: int) -> list[WalkItem]:
    """The questions, then the evidence requirements, of each measure, in catalogue order
    (from the cache when it is there)."""
    key = (session.get_bind(), "walk", action_id, period_id)
    cached = _cache.get(key)
    if cached is not None:
        return cast(list[WalkItem], cached)
    items = await _load_walk(session, action_id, period_id)
    _cache[key] = items
    return items


async def _load_walk(session: AsyncSession, action_id: int, period_id: int) -> list[WalkItem]:
    measures = list(
        (
            await session.exec(
                select(Measure)
                .where(Measure.action_id == action_id, Measure.period_id == period_id)
                .order_by(col(Measure.position), col(Measure.id))
            )
        ).all()
    )
    ids = [measure.id for measure in measures]
    questions = (
        await session.exec(
            select(Question)
            .where(col(Question.measure_id).in_(ids))
            .order_by(col(Question.position), col(Question.id))
        )
    ).all()
    requirements = (
        await session.exec(
            select(EvidenceRequirement)
            .where(col(EvidenceRequirement.measure_id).in_(ids))
            .order_by(col(EvidenceRequirement.position), col(EvidenceRequirement.id))
        )
    ).all()
    items: list[WalkItem] = []
    for measure in measures:
        items += [
            WalkItem(f"q{q.id}", measure, question=q)
            for q in questions
            if q.measure_id == measure.id
        ]
        items += [
            WalkItem(f"e{r.id}", measure, requirement=r)
            for r in requirements
            if r.measure_id == measure.id
        ]
    return items


# Built once (values are bind parameters): these run on most messages of a report, and building
# a statement costs SQLAlchemy more CPU than running it.
_ANSWERS = select(Answer).where(Answer.submission_id == bindparam("submission_id"))
_EVIDENCE_COUNTS = (
    select(EvidenceFile.requirement_id, func.count())
    .where(
        EvidenceFile.submission_id == bindparam("submission_id"),
        col(EvidenceFile.removed_at).is_(None),
    )
    .group_by(col(EvidenceFile.requirement_id))
)


async def answers_by_question(*, session: AsyncSession, submission_id: int) -> dict[int, Answer]:
    rows = await session.exec(_ANSWERS, params={"submission_id": submission_id})
    return {answer.question_id: answer for answer in rows.all()}


async def evidence_counts(*, session: AsyncSession, submission_id: int) -> Counter[int]:
    await session.flush()  # Core skips the ORM's autoflush: files changed in the session count
    connection = await session.connection()  # Core: no ORM objects needed
    rows = await connection.execute(_EVIDENCE_COUNTS, {"submission_id": submission_id})
    return Counter({requirement_id: count for requirement_id, count in rows})


async def evidence_files(*, session: AsyncSession, submission_id: int) -> list[EvidenceFile]:
    statement = (
        select(EvidenceFile)
        .where(EvidenceFile.submission_id == submission_id, col(EvidenceFile.removed_at).is_(None))
        .order_by(col(EvidenceFile.id))
    )
    return list((await session.exec(statement)).all())


# SQLModel sets __table__ on every table model but does not declare it.
_ANSWER: Table = Answer.__table__  # type: ignore[attr-defined]
_SUBMISSION: Table = Submission.__table__  # type: ignore[attr-defined]
_INSERT_ANSWER = insert(_ANSWER).returning(_ANSWER.c.id)
_UPDATE_ANSWER = (
    update(_ANSWER)
    .where(_ANSWER.c.id == bindparam("answer_id"))
    .values(
        value=bindparam("b_value"),
        answered_by_id=bindparam("b_answered_by_id"),
        answered_at=bindparam("b_answered_at"),
    )
)
_TOUCH_SUBMISSION = (
    update(_SUBMISSION)
    .where(_SUBMISSION.c.id == bindparam("submission_id"))
    .values(updated_at=bindparam("b_updated_at"))
)


async def save_answer(
    *,
    session: AsyncSession,
    submission: Submission,
    question_id: int,
    value: str,
    contact_id: int | None,
    now: datetime,
    answers: dict[int, Answer] | None = None,
) -> None:
    """Save or replace one answer. `answers`: the report's answers by question, when the caller
    has read them in this transaction already; the existing answer is then found there without
    a query, and the new one is put there.

    Written with Core, not through the session's flush: this runs on most messages of a report,
    and the unit of work cost more than the two statements. The objects stay consistent: a
    loaded answer and the submission get the new values as their committed state, and a new
    answer is a plain object (any later query of this session loads it from the row)."""
    if answers is not None:
        existing = answers.get(question_id)
    else:
        existing = (
            await session.exec(
                select(Answer).where(
                    Answer.submission_id == submission.id, Answer.question_id == question_id
                )
            )
        ).first()
    connection = await session.connection()
    fields = {"value": value, "answered_by_id": contact_id, "answered_at": now}
    if existing is not None:
        await connection.execute(
            _UPDATE_ANSWER, {"answer_id": existing.id, **{f"b_{k}": v for k, v in fields.items()}}
        )
        for name, new_value in fields.items():
            set_committed_value(existing, name, new_value)
    else:
        inserted = await connection.execute(
            _INSERT_ANSWER, {"submission_id": submission.id, "question_id": question_id, **fields}
        )
        existing = Answer(
            id=inserted.scalar_one(),
            submission_id=submission.id,  # type: ignore[arg-type]  # a stored row: id is set
            question_id=question_id,
            value=value,
            answered_by_id=contact_id,
            answered_at=now,
        )
    if answers is not None:
        answers[question_id] = existing
    await _touch(connection, submission, now)


_EVIDENCE: Table = EvidenceFile.__table__  # type: ignore[attr-defined]  # as _ANSWER's
_INSERT_EVIDENCE = insert(_EVIDENCE).returning(_EVIDENCE.c.id)
_EVIDENCE_COLUMNS = [column.key for column in _EVIDENCE.columns if column.key != "id"]


async def add_evidence(
    *, session: AsyncSession, submission: Submission, file: EvidenceFile
) -> None:
    """Insert a new file's row (with Core, as save_answer does); `file` gets its id."""
    connection = await session.connection()
    values = {key: getattr(file, key) for key in _EVIDENCE_COLUMNS}
    inserted = await connection.execute(_INSERT_EVIDENCE, values)
    file.id = inserted.scalar_one()
    await _touch(connection, submission, file.received_at)


async def attached_file(
    *, session: AsyncSession, submission_id: int, requirement_id: int, sha256: str
) -> EvidenceFile | None:
    """The file with these bytes already attached (and not removed) to this requirement."""
    statement = select(EvidenceFile).where(
        EvidenceFile.submission_id == submission_id,
        EvidenceFile.requirement_id == requirement_id,
        EvidenceFile.sha256 == sha256,
        col(EvidenceFile.removed_at).is_(None),
    )
    return (await session.exec(statement)).first()


async def remove_evidence(
    *,
    session: AsyncSession,
    submission: Submission,
    file_id: int,
    contact_id: int | None,
    now: datetime,
) -> EvidenceFile | None:
    """Take a file off the report: marked removed (the row and the bytes stay, for the audit),
    so it no longer counts. None when it is not this report's or was removed already."""
    file = await session.get(EvidenceFile, file_id)
    if file is None or file.submission_id != submission.id or file.removed_at is not None:
        return None
    file.removed_at = now
    submission.updated_at = now
    record_audit(
        session=session,
        actor_id=contact_id,
        action="evidence.removed",
        entity="evidence_file",
        entity_id=file.id,
        detail={
            "submission_id": submission.id,
            "requirement_id": file.requirement_id,
            "sha256": file.sha256,
        },
    )
    await session.flush()
    return file


async def _touch(connection: AsyncConnection, submission: Submission, now: datetime) -> None:
    """The report changed now: its updated_at, in the row and as the object's committed state."""
    await connection.execute(
        _TOUCH_SUBMISSION, {"submission_id": submission.id, "b_updated_at": now}
    )
    set_committed_value(submission, "updated_at", now)


async def completeness(
    *, session: AsyncSession, submission_id: int, items: list[WalkItem]
) -> Completeness:
    answers = await answers_by_question(session=session, submission_id=submission_id)
    counts = await evidence_counts(session=session, submission_id=submission_id)
    return completeness_of(items, answers=answers, counts=counts)


def completeness_of(
    items: list[WalkItem], *, answers: Mapping[int, Answer], counts: Counter[int]
) -> Completeness:
    """What is still missing, from answers and evidence counts the caller has read already."""
    result = Completeness()
    for item in items:
        if item.question and item.question.required and item.question.id not in answers:
            result.missing_answers.append(item)
            result.missing_keys.append(item.key)
        requirement = item.requirement
        if requirement and counts[requirement.id or 0] < requirement.min_count:
            result.missing_evidence.append(
                (item, requirement.min_count - counts[requirement.id or 0])
            )
            result.missing_keys.append(item.key)
    return result


async def submit(
    *, session: AsyncSession, submission: Submission, contact_id: int | None, now: datetime
) -> None:
    submission.status = SubmissionStatus.submitted
    submission.revision_open = False
    submission.submitted_at = now
    submission.submitted_by_id = contact_id
    submission.updated_at = now
    record_audit(
        session=session,
        actor_id=contact_id,
        action="submission.submitted",
        entity="submission",
        entity_id=submission.id,
        detail={"version": submission.version},
    )


async def keep_version(
    *, session: AsyncSession, submission: Submission, status: SubmissionStatus
) -> None:
    """Freeze the report's current answers and files as its version `submission.version`
    (before a revision starts: a reopen, or a reviewer's return)."""
    answers = await answers_by_question(session=session, submission_id=submission.id or 0)
    files = await evidence_files(session=session, submission_id=submission.id or 0)
    snapshot: dict[str, Any] = {
        "answers": {str(qid): answer.value for qid, answer in answers.items()},
        "evidence": [
            {
                "id": f.id,
                "requirement_id": f.requirement_id,
                "sha256": f.sha256,
                "storage_key": f.storage_key,
                "original_name": f.original_name,
            }
            for f in files
        ],
    }
    session.add(
        SubmissionVersion(
            submission_id=submission.id,  # type: ignore[arg-type]  # a stored row: id is set
            version=submission.version,
            status=status,
            submitted_at=submission.submitted_at,
            snapshot=snapshot,
        )
    )


async def reopen(
    *, session: AsyncSession, submission: Submission, contact_id: int | None, now: datetime
) -> None:
    """Keep the submitted version as a snapshot and open a revision beside it: the report stays
    `submitted` (that snapshot counts) until the revision is submitted in turn."""
    await keep_version(session=session, submission=submission, status=submission.status)
    session.add(
        ReviewEvent(
            submission_id=submission.id,  # type: ignore[arg-type]  # a stored row: id is set
            version=submission.version,
            decision=ReviewDecision.reopened,
            reviewer_id=contact_id,
        )
    )
    submission.version += 1
    submission.revision_open = True
    submission.updated_at = now
    record_audit(
        session=session,
        actor_id=contact_id,
        action="submission.reopened",
        entity="submission",
        entity_id=submission.id,
        detail={"new_version": submission.version},
    )


async def latest_return_note(*, session: AsyncSession, submission_id: int) -> str | None:
    statement = (
        select(ReviewEvent.note)
        .where(
            ReviewEvent.submission_id == submission_id,
            ReviewEvent.decision == ReviewDecision.returned,
        )
        .order_by(col(ReviewEvent.id).desc())
    )
    return (await session.exec(statement)).first()


def record_audit(
    *,
    session: AsyncSession,
    actor_id: int | None,
    action: str,
    entity: str,
    entity_id: int | None,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditLog(
            actor_id=actor_id,
            action=action,
            entity=entity,
            entity_id=entity_id,
            detail=detail or {},
        )
    )
