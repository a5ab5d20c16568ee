"""What the reminder planner reads, in a few set-based queries, and what the reminder ticker
writes beside the outbox (scheduler/reminders/).

The planner is a pure function of a snapshot: the dated periods with their programme's policy,
then, for the periods it finds active, the assignments, reports and what they still miss, the
offices and regions, and who can be reached on which channel. One query per kind of row, never
one per office: at national scale (552 pemda, ~5,500 offices) a per-office loop costs seconds
(bench/planner.py measures both). Every function takes the caller's session and never commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Table, func, text
from sqlalchemy import select as select_columns
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    Action,
    Answer,
    Assignment,
    ChannelIdentity,
    Contact,
    EvidenceFile,
    EvidenceRequirement,
    Measure,
    Office,
    OutboxMessage,
    Period,
    Programme,
    Question,
    Region,
    Role,
    Submission,
    SubmissionStatus,
    UnreachableNumber,
)
from storage.phones import phone_to_whatsapp_id

# SQLModel sets __table__ on every table model but does not declare it. Core columns: the
# planner needs tuples, not ORM objects (building 30,000 of those would cost most of a second).
_ACTION: Table = Action.__table__  # type: ignore[attr-defined]
_ANSWER: Table = Answer.__table__  # type: ignore[attr-defined]
_ASSIGNMENT: Table = Assignment.__table__  # type: ignore[attr-defined]
_IDENTITY: Table = ChannelIdentity.__table__  # type: ignore[attr-defined]
_CONTACT: Table = Contact.__table__  # type: ignore[attr-defined]
_FILE: Table = EvidenceFile.__table__  # type: ignore[attr-defined]
_REQUIREMENT: Table = EvidenceRequirement.__table__  # type: ignore[attr-defined]
_MEASURE: Table = Measure.__table__  # type: ignore[attr-defined]
_OFFICE: Table = Office.__table__  # type: ignore[attr-defined]
_PERIOD: Table = Period.__table__  # type: ignore[attr-defined]
_PROGRAMME: Table = Programme.__table__  # type: ignore[attr-defined]
_QUESTION: Table = Question.__table__  # type: ignore[attr-defined]
_REGION: Table = Region.__table__  # type: ignore[attr-defined]
_SUBMISSION: Table = Submission.__table__  # type: ignore[attr-defined]
_OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]
_UNREACHABLE: Table = UnreachableNumber.__table__  # type: ignore[attr-defined]

# A report in one of these counts as handed in (a revision in progress beside a submitted
# version still counts: storage/models/reports.py).
HANDED_IN = (SubmissionStatus.submitted, SubmissionStatus.approved)
REMINDER_PURPOSES = ("reminder", "escalation")
# Keys per IN (...) when looking for keys already written: well under every driver's limit.
KEY_CHUNK = 900
# PostgreSQL advisory lock taken by a ticker writing reminders: two processes serialise here.
REMINDER_LOCK = 0x4C48_5245  # "LHRE"


@dataclass(frozen=True, slots=True)
class PeriodRow:
    id: int
    code: str
    title: str
    programme_id: int
    programme_code: str
    programme_year: int
    opens_on: date
    due_on: date
    policy: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class RegionRow:
    id: int
    name: str
    parent_id: int | None
    timezone: str


@dataclass(frozen=True, slots=True)
class OfficeRow:
    id: int
    region_id: int
    name: str


@dataclass(frozen=True, slots=True)
class ActionRow:
    id: int
    code: str
    title: str
    position: int


@dataclass(frozen=True, slots=True)
class RequirementRow:
    id: int
    label: str
    min_count: int


@dataclass(frozen=True, slots=True)
class ActionWork:
    """What an action asks for in one period: the required questions, the evidence."""

    required_questions: int
    requirements: tuple[RequirementRow, ...]


@dataclass(frozen=True, slots=True)
class SubmissionRow:
    id: int
    status: SubmissionStatus


class Reach(StrEnum):
    """How a contact's reminders reach them, or why they cannot."""

    account = "account"  # the channel identity they last wrote from
    # Never wrote, but imported with a number: the phone channel (WhatsApp) may open the
    # conversation with an approved template. No identity is created for it: the account is
    # bound only when that number itself writes (handlers/register.py).
    number = "number"
    no_number = "no_number"  # never wrote, and no number imported
    no_phone_channel = "no_phone_channel"  # never wrote; WhatsApp is not configured
    not_on_whatsapp = "not_on_whatsapp"  # never wrote; WhatsApp said the number is not on it


@dataclass(frozen=True, slots=True)
class Recipient:
    """A contact with the one chat their messages go to (a channel identity, or their imported
    number on the phone channel); for an unreachable contact, channel and chat are empty."""

    contact_id: int
    name: str
    role: Role
    region_id: int | None
    office_id: int | None
    language: str
    channel: str
    chat_id: str
    reach: Reach = Reach.account


@dataclass
class ReminderSnapshot:
    periods: list[PeriodRow]
    regions: dict[int, RegionRow] = field(default_factory=dict)
    offices: dict[int, OfficeRow] = field(default_factory=dict)
    actions: dict[int, ActionRow] = field(default_factory=dict)
    work: dict[tuple[int, int], ActionWork] = field(default_factory=dict)  # (action, period)
    assigned: dict[int, list[int]] = field(default_factory=dict)  # office -> action ids
    submissions: dict[tuple[int, int, int], SubmissionRow] = field(default_factory=dict)
    answered: dict[int, int] = field(default_factory=dict)  # submission -> required answered
    evidence: dict[tuple[int, int], int] = field(default_factory=dict)  # (submission, req)
    recipients: list[Recipient] = field(default_factory=list)
    # Contacts who never wrote to the bot and cannot be written to first (`reach` says why).
    unreachable: list[Recipient] = field(default_factory=list)


async def dated_periods(*, session: AsyncSession) -> list[PeriodRow]:
    """Every period with a window, with its programme's reminder policy (a handful of rows)."""
    statement = (
        select_columns(
            _PERIOD.c.id, _PERIOD.c.code, _PERIOD.c.title, _PERIOD.c.programme_id,
            _PROGRAMME.c.code, _PROGRAMME.c.year, _PERIOD.c.opens_on, _PERIOD.c.due_on,
            _PROGRAMME.c.reminder_policy,
        )
        .join(Programme, _PROGRAMME.c.id == _PERIOD.c.programme_id)
        .where(_PERIOD.c.opens_on.is_not(None), _PERIOD.c.due_on.is_not(None))
        .order_by(_PROGRAMME.c.year, _PERIOD.c.position, _PERIOD.c.id)
    )  # fmt: skip
    connection = await session.connection()
    return [PeriodRow(*row) for row in await connection.execute(statement)]


async def load_snapshot(
    *, session: AsyncSession, periods: Sequence[PeriodRow], phone_channel: str | None = None
) -> ReminderSnapshot:
    """Everything the planner needs about these periods (the active ones). `phone_channel`: the
    configured channel that may start a conversation with a phone number (WhatsApp), if any."""
    snapshot = ReminderSnapshot(periods=list(periods))
    if not periods:
        return snapshot
    connection = await session.connection()
    period_ids = [period.id for period in periods]
    programme_ids = sorted({period.programme_id for period in periods})

    regions = select_columns(_REGION.c.id, _REGION.c.name, _REGION.c.parent_id, _REGION.c.timezone)
    snapshot.regions = {row[0]: RegionRow(*row) for row in await connection.execute(regions)}
    offices = select_columns(_OFFICE.c.id, _OFFICE.c.region_id, _OFFICE.c.name)
    snapshot.offices = {row[0]: OfficeRow(*row) for row in await connection.execute(offices)}
    actions = select_columns(
        _ACTION.c.id, _ACTION.c.code, _ACTION.c.title, _ACTION.c.position
    ).where(_ACTION.c.programme_id.in_(programme_ids))
    snapshot.actions = {row[0]: ActionRow(*row) for row in await connection.execute(actions)}
    snapshot.work = await _work(session, period_ids)
    assignments = (
        select_columns(_ASSIGNMENT.c.office_id, _ASSIGNMENT.c.action_id)
        .join(Action, _ACTION.c.id == _ASSIGNMENT.c.action_id)
        .where(_ACTION.c.programme_id.in_(programme_ids))
    )
    for office_id, action_id in await connection.execute(assignments):
        snapshot.assigned.setdefault(office_id, []).append(action_id)
    submissions = select_columns(
        _SUBMISSION.c.id, _SUBMISSION.c.action_id, _SUBMISSION.c.office_id, _SUBMISSION.c.period_id,
        _SUBMISSION.c.status,
    ).where(_SUBMISSION.c.period_id.in_(period_ids))  # fmt: skip
    for sub_id, action_id, office_id, period_id, status in await connection.execute(submissions):
        snapshot.submissions[(action_id, office_id, period_id)] = SubmissionRow(sub_id, status)
    snapshot.answered, snapshot.evidence = await _progress(session, period_ids)
    snapshot.recipients = await _recipients(session)
    numbers, snapshot.unreachable = await _never_wrote(session, phone_channel)
    snapshot.recipients += numbers
    return snapshot


async def _work(session: AsyncSession, period_ids: list[int]) -> dict[tuple[int, int], ActionWork]:
    connection = await session.connection()
    measured = (
        select_columns(_MEASURE.c.action_id, _MEASURE.c.period_id)
        .where(_MEASURE.c.period_id.in_(period_ids))
        .distinct()
    )
    questions = (
        select_columns(_MEASURE.c.action_id, _MEASURE.c.period_id, func.count(_QUESTION.c.id))
        .join(Question, _QUESTION.c.measure_id == _MEASURE.c.id)
        .where(_MEASURE.c.period_id.in_(period_ids), _QUESTION.c.required.is_(True))
        .group_by(_MEASURE.c.action_id, _MEASURE.c.period_id)
    )
    requirements = (
        select_columns(
            _MEASURE.c.action_id, _MEASURE.c.period_id, _REQUIREMENT.c.id,
            _REQUIREMENT.c.label, _REQUIREMENT.c.min_count,
        )
        .join(EvidenceRequirement, _REQUIREMENT.c.measure_id == _MEASURE.c.id)
        .where(_MEASURE.c.period_id.in_(period_ids), _REQUIREMENT.c.min_count > 0)
        .order_by(_MEASURE.c.position, _REQUIREMENT.c.position)
    )  # fmt: skip
    counts = {(a, p): n for a, p, n in await connection.execute(questions)}
    needed: dict[tuple[int, int], list[RequirementRow]] = {}
    for action_id, period_id, req_id, label, min_count in await connection.execute(requirements):
        needed.setdefault((action_id, period_id), []).append(
            RequirementRow(req_id, label, min_count)
        )
    return {
        (a, p): ActionWork(counts.get((a, p), 0), tuple(needed.get((a, p), ())))
        for a, p in await connection.execute(measured)
    }


async def _progress(
    session: AsyncSession, period_ids: list[int]
) -> tuple[dict[int, int], dict[tuple[int, int], int]]:
    """Of the reports not handed in: required answers given, and files per requirement."""
    connection = await session.connection()
    open_reports = select_columns(_SUBMISSION.c.id).where(
        _SUBMISSION.c.period_id.in_(period_ids), _SUBMISSION.c.status.not_in(HANDED_IN)
    )
    answered = (
        select_columns(_ANSWER.c.submission_id, func.count())
        .join(Question, _QUESTION.c.id == _ANSWER.c.question_id)
        .where(_ANSWER.c.submission_id.in_(open_reports), _QUESTION.c.required.is_(True))
        .group_by(_ANSWER.c.submission_id)
    )
    files = (
        select_columns(_FILE.c.submission_id, _FILE.c.requirement_id, func.count())
        .where(
            _FILE.c.submission_id.in_(open_reports),
            _FILE.c.removed_at.is_(None),
        )
        .group_by(_FILE.c.submission_id, _FILE.c.requirement_id)
    )
    answers = {sub: count for sub, count in await connection.execute(answered)}
    evidence = {(sub, req): count for sub, req, count in await connection.execute(files)}
    return answers, evidence


async def _recipients(session: AsyncSession) -> list[Recipient]:
    """Active focal points, coordinators and Kanwil officers, each on the channel they last
    wrote from (one reminder per person, not one per account), skipping accounts that blocked
    the bot."""
    statement = select_columns(
        _CONTACT.c.id, _CONTACT.c.name, _CONTACT.c.role, _CONTACT.c.region_id,
        _CONTACT.c.office_id, _CONTACT.c.language, _IDENTITY.c.channel,
        _IDENTITY.c.external_id, _IDENTITY.c.last_inbound_at, _IDENTITY.c.id,
    ).join(_IDENTITY, _IDENTITY.c.contact_id == _CONTACT.c.id).where(
        _CONTACT.c.active.is_(True),
        _CONTACT.c.role.in_([Role.focal_point, Role.coordinator, Role.kanwil]),
        _IDENTITY.c.unreachable_since.is_(None),
    )  # fmt: skip
    connection = await session.connection()
    chosen: dict[int, Any] = {}
    for row in await connection.execute(statement):
        best = chosen.get(row[0])
        if best is None or _recency(row) > _recency(best):
            chosen[row[0]] = row
    return [Recipient(*row[:8]) for row in chosen.values()]


async def _never_wrote(
    session: AsyncSession, phone_channel: str | None
) -> tuple[list[Recipient], list[Recipient]]:
    """Active focal points, coordinators and Kanwil officers with no channel identity at all:
    (those the phone channel can reach at their imported number, those nobody can reach)."""
    has_identity = select_columns(_IDENTITY.c.id).where(_IDENTITY.c.contact_id == _CONTACT.c.id)
    statement = select_columns(
        _CONTACT.c.id, _CONTACT.c.name, _CONTACT.c.role, _CONTACT.c.region_id,
        _CONTACT.c.office_id, _CONTACT.c.language, _CONTACT.c.phone,
    ).where(
        _CONTACT.c.active.is_(True),
        _CONTACT.c.role.in_([Role.focal_point, Role.coordinator, Role.kanwil]),
        ~has_identity.exists(),
    )  # fmt: skip
    connection = await session.connection()
    refused: set[str] = set()
    if phone_channel is not None:
        numbers = select_columns(_UNREACHABLE.c.recipient).where(
            _UNREACHABLE.c.channel == phone_channel
        )
        refused = {recipient for (recipient,) in await connection.execute(numbers)}
    reachable, unreachable = [], []
    for contact_id, name, role, region_id, office_id, language, phone in await connection.execute(
        statement
    ):
        person = Recipient(contact_id, name, role, region_id, office_id, language, "", "")
        chat_id = phone_to_whatsapp_id(phone) if phone else ""
        if not chat_id:
            reach = Reach.no_number
        elif phone_channel is None:
            reach = Reach.no_phone_channel
        elif chat_id in refused:
            reach = Reach.not_on_whatsapp
        else:
            reachable.append(
                replace(person, channel=phone_channel, chat_id=chat_id, reach=Reach.number)
            )
            continue
        unreachable.append(replace(person, reach=reach))
    return reachable, unreachable


async def unreachable_numbers(*, session: AsyncSession, channel: str) -> int:
    """How many imported numbers the channel said it cannot reach (`reminders history`)."""
    statement = select_columns(func.count()).where(_UNREACHABLE.c.channel == channel)
    connection = await session.connection()
    return int((await connection.execute(statement)).scalar_one())


def _recency(row: Any) -> tuple[bool, datetime, int]:
    """The account written from last wins; never written from, the newest account."""
    seen = row[8]
    return (seen is not None, seen or datetime.min.replace(tzinfo=UTC), row[9])


async def timezones_in_use(*, session: AsyncSession) -> list[str]:
    """The time zones of the regions there are (for the operator's schedule)."""
    connection = await session.connection()
    statement = select_columns(_REGION.c.timezone).distinct().order_by(_REGION.c.timezone)
    return [zone for (zone,) in await connection.execute(statement)]


# --- writing: the ticker's guard against writing a reminder twice


async def written_keys(*, session: AsyncSession, keys: Iterable[str]) -> set[str]:
    """Which of these idempotency keys the outbox holds already."""
    wanted = list(dict.fromkeys(keys))
    connection = await session.connection()
    found: set[str] = set()
    for start in range(0, len(wanted), KEY_CHUNK):
        chunk = wanted[start : start + KEY_CHUNK]
        statement = select_columns(_OUTBOX.c.idempotency_key).where(
            _OUTBOX.c.idempotency_key.in_(chunk)
        )
        found.update(key for (key,) in await connection.execute(statement))
    return found


async def serialise_reminder_writers(*, session: AsyncSession) -> None:
    """Hold the reminder writers' lock until the transaction ends, so two tickers (two
    processes) never both find a key missing and both write it. SQLite needs nothing: a
    writing transaction there holds the database's write lock from its BEGIN."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REMINDER_LOCK})


# --- history: what was sent (`laporham reminders history`)


@dataclass(frozen=True, slots=True)
class HistoryRow:
    created_at: datetime
    sent_at: datetime | None
    purpose: str
    status: str
    channel: str
    recipient: str
    contact_name: str | None
    idempotency_key: str
    last_error: str | None
    # False: sent to an imported number that has not written to the bot (no identity).
    has_account: bool = True


async def reminder_history(
    *, session: AsyncSession, limit: int, since: datetime | None = None
) -> list[HistoryRow]:
    """The latest reminder and escalation rows of the outbox, newest first."""
    statement = (
        select_columns(
            _OUTBOX.c.created_at, _OUTBOX.c.sent_at, _OUTBOX.c.purpose, _OUTBOX.c.status,
            _OUTBOX.c.channel, _OUTBOX.c.recipient, _CONTACT.c.name, _OUTBOX.c.idempotency_key,
            _OUTBOX.c.last_error, _IDENTITY.c.id,
        )
        .outerjoin(Contact, _CONTACT.c.id == _OUTBOX.c.contact_id)
        .outerjoin(
            _IDENTITY,
            (_IDENTITY.c.channel == _OUTBOX.c.channel)
            & (_IDENTITY.c.external_id == _OUTBOX.c.recipient),
        )
        .where(_OUTBOX.c.purpose.in_(REMINDER_PURPOSES))
        .order_by(_OUTBOX.c.id.desc())
        .limit(limit)
    )  # fmt: skip
    if since is not None:
        statement = statement.where(_OUTBOX.c.created_at >= since)
    connection = await session.connection()
    return [
        HistoryRow(
            created_at=row[0], sent_at=row[1], purpose=row[2], status=str(row[3]),
            channel=row[4], recipient=row[5], contact_name=row[6], idempotency_key=row[7],
            last_error=row[8], has_account=row[9] is not None,
        )
        for row in await connection.execute(statement)
    ]  # fmt: skip
