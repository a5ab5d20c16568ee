"""The review loop's queries: the queue of submitted reports in a reviewer's scope, what a
version of a report holds, what changed since the previous version, and the decision
(approve, or return with a note). Never commits.

Scope is a security boundary, so every function that reads or changes a report for a reviewer
takes the reviewer's contact and filters by `review_scope` in SQL:
- a coordinator reviews the reports of their own pemda (the Bagian/Biro Hukum's own OPDs);
- the Kanwil reviews its province's pemda and their kabupaten/kota (the KKPHAM check too);
- an admin reviews everywhere; a focal point reviews nothing.

Which version is under review: a submitted report whose focal point has a revision open
(`revision_open`) still counts as its last submitted version, kept as a SubmissionVersion
snapshot; otherwise it is the report's current rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, func, true
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import reports
from storage.models import (
    Action,
    ChannelIdentity,
    Contact,
    EvidenceFile,
    Office,
    Period,
    Region,
    RegionKind,
    ReviewDecision,
    ReviewEvent,
    Role,
    Submission,
    SubmissionStatus,
    SubmissionVersion,
)

REVIEWER_ROLES = frozenset({Role.coordinator, Role.kanwil, Role.admin})
NOTE_MAX = 1000  # characters of a return note


@dataclass(frozen=True)
class Scope:
    """Regions a reviewer may review: `everywhere` for an admin, else `region_ids`."""

    everywhere: bool = False
    region_ids: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.everywhere and not self.region_ids


async def review_scope(*, session: AsyncSession, contact: Contact) -> Scope:
    if not contact.active or contact.role not in REVIEWER_ROLES:
        return Scope()
    if contact.role is Role.admin:
        return Scope(everywhere=True)
    if contact.region_id is None:
        return Scope()
    region = await session.get(Region, contact.region_id)
    if region is None:
        return Scope()
    if contact.role is Role.coordinator:
        return Scope(region_ids=(region.id or 0,))
    if region.kind is not RegionKind.provinsi:  # a Kanwil is a province's office
        return Scope()
    children = await session.exec(select(Region.id).where(Region.parent_id == region.id))
    return Scope(region_ids=(region.id or 0, *(c for c in children.all() if c is not None)))


def _in_scope(scope: Scope) -> ColumnElement[bool]:
    """Only reports of offices inside the scope (the statement joins Office)."""
    if scope.everywhere:
        return true()
    return col(Office.region_id).in_(scope.region_ids)


@dataclass(frozen=True)
class QueueEntry:
    submission_id: int
    version: int  # the version under review
    region_name: str
    office_name: str
    action_code: str
    action_title: str
    period_title: str
    submitted_at: datetime | None


@dataclass(frozen=True)
class QueuePage:
    entries: list[QueueEntry]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def reviewed_version(submission: Submission) -> int:
    """The version a reviewer decides on: the last submitted one (see the module docstring)."""
    return submission.version - 1 if submission.revision_open else submission.version


async def queue(*, session: AsyncSession, contact: Contact, page: int, page_size: int) -> QueuePage:
    """Submitted, not yet reviewed reports in the reviewer's scope, the longest waiting first."""
    scope = await review_scope(session=session, contact=contact)
    if scope.empty:
        return QueuePage([], 0, 0, page_size)
    waiting = (
        select(Submission, Office, Action, Period)
        .join(Office, col(Office.id) == Submission.office_id)
        .join(Action, col(Action.id) == Submission.action_id)
        .join(Period, col(Period.id) == Submission.period_id)
        .where(Submission.status == SubmissionStatus.submitted)
    )
    counted = select(func.count()).select_from(Submission)
    counted = counted.join(Office, col(Office.id) == Submission.office_id).where(
        Submission.status == SubmissionStatus.submitted
    )
    total = int((await session.exec(counted.where(_in_scope(scope)))).one())
    pages = max(1, -(-total // page_size))
    page = min(max(page, 0), pages - 1)
    rows = await session.exec(
        waiting.where(_in_scope(scope))
        .order_by(col(Submission.submitted_at), col(Submission.id))
        .offset(page * page_size)
        .limit(page_size)
    )
    entries = []
    for submission, office, action, period in rows.all():
        region = await reports.get_region(session=session, region_id=office.region_id)
        entries.append(
            QueueEntry(
                submission_id=submission.id or 0,
                version=reviewed_version(submission),
                region_name=region.name if region else "",
                office_name=office.name,
                action_code=action.code,
                action_title=action.title,
                period_title=period.title,
                submitted_at=submission.submitted_at,
            )
        )
    return QueuePage(entries, total, page, page_size)


async def reviewable(
    *, session: AsyncSession, contact: Contact, submission_id: int, lock: bool = False
) -> Submission | None:
    """The report if it waits for review and lies in the reviewer's scope; None otherwise (out
    of scope, decided already, or an id that was never offered). `lock`: for a decision."""
    scope = await review_scope(session=session, contact=contact)
    if scope.empty:
        return None
    statement = (
        select(Submission)
        .join(Office, col(Office.id) == Submission.office_id)
        .where(Submission.id == submission_id, Submission.status == SubmissionStatus.submitted)
    )
    statement = statement.where(_in_scope(scope))
    if lock:
        statement = statement.with_for_update(of=Submission)
    return (await session.exec(statement)).first()


# --- what a version holds, and what changed -------------------------------------------------


@dataclass(frozen=True)
class FileRef:
    id: int
    requirement_id: int
    sha256: str
    name: str | None  # as the client sent it: shown (escaped), never a path
    kind: str
    storage_key: str
    thumbnail_key: str | None


@dataclass
class Content:
    """A version of a report: its answers by question id and its files."""

    answers: dict[int, str] = field(default_factory=dict)
    files: list[FileRef] = field(default_factory=list)


@dataclass
class Changes:
    """What a version changed against the previous submitted one."""

    previous_version: int
    answers: list[int] = field(default_factory=list)  # question ids changed, added or cleared
    added: list[FileRef] = field(default_factory=list)
    removed: list[FileRef] = field(default_factory=list)

    @property
    def none(self) -> bool:
        return not (self.answers or self.added or self.removed)


def _file_ref(row: EvidenceFile) -> FileRef:
    return FileRef(
        id=row.id or 0,
        requirement_id=row.requirement_id,
        sha256=row.sha256,
        name=row.original_name,
        kind=row.kind,
        storage_key=row.storage_key,
        thumbnail_key=row.thumbnail_key,
    )


async def content(*, session: AsyncSession, submission: Submission, version: int) -> Content:
    """The answers and files of one version: the current rows for the current version without
    a revision open, else that version's snapshot."""
    if version == submission.version and not submission.revision_open:
        answers = await reports.answers_by_question(
            session=session, submission_id=submission.id or 0
        )
        files = await reports.evidence_files(session=session, submission_id=submission.id or 0)
        return Content(
            {qid: answer.value for qid, answer in answers.items()}, [_file_ref(f) for f in files]
        )
    snapshot = await _snapshot(session, submission.id or 0, version)
    return await _from_snapshot(session, snapshot) if snapshot is not None else Content()


async def _snapshot(
    session: AsyncSession, submission_id: int, version: int
) -> SubmissionVersion | None:
    statement = select(SubmissionVersion).where(
        SubmissionVersion.submission_id == submission_id, SubmissionVersion.version == version
    )
    return (await session.exec(statement)).first()


async def _from_snapshot(session: AsyncSession, snapshot: SubmissionVersion) -> Content:
    data = snapshot.snapshot
    answers = {int(qid): str(value) for qid, value in dict(data.get("answers", {})).items()}
    ids = [int(item["id"]) for item in data.get("evidence", []) if item.get("id") is not None]
    rows: Sequence[EvidenceFile] = []
    if ids:  # the rows stay (a removed file is only marked): kind and thumbnail from there
        found = await session.exec(
            select(EvidenceFile).where(col(EvidenceFile.id).in_(ids)).order_by(col(EvidenceFile.id))
        )
        rows = found.all()
    return Content(answers, [_file_ref(row) for row in rows])


async def changes(
    *, session: AsyncSession, submission: Submission, version: int, current: Content
) -> Changes | None:
    """What `version` (whose content is `current`) changed against the latest earlier
    snapshot; None for a first submission."""
    statement = (
        select(SubmissionVersion)
        .where(
            SubmissionVersion.submission_id == submission.id,
            SubmissionVersion.version < version,
        )
        .order_by(col(SubmissionVersion.version).desc())
    )
    previous = (await session.exec(statement)).first()
    if previous is None:
        return None
    before = await _from_snapshot(session, previous)
    keys = set(before.answers) | set(current.answers)
    changed = sorted(qid for qid in keys if before.answers.get(qid) != current.answers.get(qid))
    old = {(f.requirement_id, f.sha256) for f in before.files}
    new = {(f.requirement_id, f.sha256) for f in current.files}
    return Changes(
        previous_version=previous.version,
        answers=changed,
        added=[f for f in current.files if (f.requirement_id, f.sha256) not in old],
        removed=[f for f in before.files if (f.requirement_id, f.sha256) not in new],
    )


# --- the decision ---------------------------------------------------------------------------


async def decide(
    *,
    session: AsyncSession,
    submission: Submission,
    reviewer: Contact,
    decision: ReviewDecision,
    note: str | None,
    now: datetime,
) -> int:
    """Approve, or return with a note, the version under review (the caller locked the report
    with `reviewable(lock=True)`). A review event and an audit row record it. A return keeps
    the reviewed version as a snapshot and opens the next one for the focal point's revision
    (a revision already open simply continues). Returns the version decided on."""
    version = reviewed_version(submission)
    session.add(
        ReviewEvent(
            submission_id=submission.id or 0,
            version=version,
            decision=decision,
            note=note,
            reviewer_id=reviewer.id,
            created_at=now,
        )
    )
    if decision is ReviewDecision.approved:
        submission.status = SubmissionStatus.approved
    elif decision is ReviewDecision.returned:
        if not submission.revision_open:
            await reports.keep_version(
                session=session, submission=submission, status=SubmissionStatus.returned
            )
            submission.version += 1
        submission.status = SubmissionStatus.returned
        submission.revision_open = False
    else:
        raise ValueError(f"not a reviewer's decision: {decision}")
    submission.updated_at = now
    reports.record_audit(
        session=session,
        actor_id=reviewer.id,
        action=f"review.{decision.value}",
        entity="submission",
        entity_id=submission.id,
        detail={"version": version, "role": reviewer.role.value, "note": note},
    )
    await session.flush()
    return version


async def office_focal_points(
    *, session: AsyncSession, office_id: int
) -> list[tuple[Contact, ChannelIdentity]]:
    """The office's active focal points with each channel identity still reachable: whom a
    decision on the office's report is told."""
    statement = (
        select(Contact, ChannelIdentity)
        .join(ChannelIdentity, col(ChannelIdentity.contact_id) == Contact.id)
        .where(
            Contact.office_id == office_id,
            Contact.role == Role.focal_point,
            col(Contact.active).is_(True),
            col(ChannelIdentity.unreachable_since).is_(None),
        )
        .order_by(col(Contact.id), col(ChannelIdentity.id))
    )
    return [(contact, identity) for contact, identity in (await session.exec(statement)).all()]
