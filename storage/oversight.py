"""Region-level figures for coordinators, the Kanwil and admins, always scoped by role and region
(docs/contacts.md, "What each role needs"). Every query here starts from `scope_region_ids`
or a `Scope`.

Two reads of a scope and period (docs/oversight.md, "Cost at national scale"):
* `period_reports`, every report as a row, behind a pemda's /status, /belum and /rekap: six
  set-wise SELECTs (assignments, catalogue, reports, answer and evidence counts), never one
  query per report. What is derived from those rows (figures, the score estimate) is pure
  Python.
* `group_figures`, behind /status of the country and of a province: the same figures added up
  by the database, one SELECT returning a row per pemda (or province) and distinct set of
  facts, so the country's thousands of reports are never read one by one."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from cachetools import TTLCache
from sqlalchemy import case, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import scoring
from storage.models import (
    Action,
    Answer,
    Assignment,
    Contact,
    EvidenceFile,
    EvidenceRequirement,
    Measure,
    Office,
    Period,
    Programme,
    Question,
    Region,
    RegionKind,
    Role,
    Submission,
    SubmissionStatus,
)
from storage.models.reports import NIHIL_ANSWER, PRESENT_EVIDENCE
from storage.periods import dated_periods_by_deadline, deadline, open_now, window


@dataclass(frozen=True)
class RegionStatus:
    region_name: str
    period_title: str
    submitted: int
    expected: int


async def scope_region_ids(*, session: AsyncSession, contact: Contact) -> list[int]:
    """The regions a contact may see: none for a focal point (they see their office only)."""
    if contact.role is Role.admin:
        found = await session.exec(select(Region.id))
        return [region_id for region_id in found.all() if region_id is not None]
    if contact.role is Role.focal_point or contact.region_id is None:
        return []
    region = await session.get(Region, contact.region_id)
    if region is None:
        return []
    ids = [region.id or 0]
    if region.kind is RegionKind.provinsi and contact.role in {Role.coordinator, Role.kanwil}:
        children = await session.exec(select(Region.id).where(Region.parent_id == region.id))
        ids += [child for child in children.all() if child is not None]
    return ids


async def status_counts(
    *, session: AsyncSession, contact: Contact, now: datetime
) -> list[RegionStatus]:
    region_ids = await scope_region_ids(session=session, contact=contact)
    if not region_ids:
        return []
    regions = (
        await session.exec(
            select(Region).where(col(Region.id).in_(region_ids)).order_by(col(Region.code))
        )
    ).all()
    periods = (
        await session.exec(
            select(Period).where(col(Period.opens_on).is_not(None), col(Period.due_on).is_not(None))
        )
    ).all()
    result = []
    for region in regions:
        for period in periods:
            opens_on, due_on = period.opens_on, period.due_on
            if opens_on is None or due_on is None:  # never: the query keeps dated periods only
                continue
            if not window(opens_on, due_on, region.timezone).is_open(now):
                continue
            expected, submitted = await _counts(session, region.id or 0, period.id or 0)
            if expected:
                result.append(RegionStatus(region.name, period.title, submitted, expected))
    return result


async def _counts(session: AsyncSession, region_id: int, period_id: int) -> tuple[int, int]:
    """(assigned action x office pairs due in the period, how many of them are submitted)."""
    due = (
        select(Assignment.action_id, Assignment.office_id)
        .join(Office, col(Office.id) == Assignment.office_id)
        .join(Action, col(Action.id) == Assignment.action_id)
        .where(
            Office.region_id == region_id,
            col(Action.id).in_(select(Measure.action_id).where(Measure.period_id == period_id)),
        )
        .subquery()
    )
    expected = (await session.exec(select(func.count()).select_from(due))).one()
    submitted = (
        await session.exec(
            select(func.count())
            .select_from(Submission)
            .join(
                due,
                (due.c.action_id == Submission.action_id)
                & (due.c.office_id == Submission.office_id),
            )
            .where(
                Submission.period_id == period_id,
                col(Submission.status).in_([SubmissionStatus.submitted, SubmissionStatus.approved]),
            )
        )
    ).one()
    return int(expected), int(submitted)


# ---------------------------------------------------------------- /status, /belum, /rekap

SENT = frozenset({SubmissionStatus.submitted, SubmissionStatus.approved})


@dataclass(frozen=True)
class Scope:
    """The regions a contact oversees; `region_ids` None means everywhere (an admin)."""

    region_ids: frozenset[int] | None

    @property
    def everywhere(self) -> bool:
        return self.region_ids is None

    def covers(self, region_id: int) -> bool:
        return self.region_ids is None or region_id in self.region_ids

    def narrowed(self, region_ids: Iterable[int]) -> Scope:
        """Only these regions, and never one outside this scope."""
        wanted = frozenset(region_ids)
        return Scope(wanted if self.region_ids is None else wanted & self.region_ids)


async def scope_of(*, session: AsyncSession, contact: Contact) -> Scope:
    if contact.role is Role.admin:
        return Scope(None)
    return Scope(frozenset(await scope_region_ids(session=session, contact=contact)))


@dataclass(frozen=True)
class RegionInfo:
    id: int
    code: str
    name: str
    kind: RegionKind
    parent_id: int | None
    timezone: str

    @property
    def province_id(self) -> int:
        return self.id if self.kind is RegionKind.provinsi else (self.parent_id or self.id)


async def regions_in(*, session: AsyncSession, scope: Scope) -> dict[int, RegionInfo]:
    """The scope's regions by id, provinces first, then by code."""
    statement = _select(
        Region.id, Region.code, Region.name, Region.kind, Region.parent_id, Region.timezone
    ).order_by(col(Region.code))
    statement = _in_scope(statement, col(Region.id), scope)
    return {row[0]: RegionInfo(*row) for row in await _rows(session, statement)}


@dataclass(slots=True, eq=False)
class ReportRow:
    """One assigned action of one office in the period, with what its report holds so far.
    Read-only by convention (not frozen: a frozen dataclass costs twice as much to build, and
    a national read builds thousands). Compared by identity: it is also a key of the score
    memo below."""

    region_id: int
    office_id: int
    office_name: str
    action_id: int
    action_code: str
    action_title: str
    status: SubmissionStatus | None  # None: nothing started
    revision_open: bool
    submitted_at: datetime | None
    last_activity: datetime | None
    required_answers: int
    given_answers: int
    nihil_answers: int
    required_evidence: int
    missing_evidence: tuple[str, ...]  # labels of the evidence kinds short of their minimum

    @property
    def sent(self) -> bool:
        return self.status in SENT

    @property
    def missing_answers(self) -> int:
        return max(0, self.required_answers - self.given_answers)

    @property
    def complete(self) -> bool:
        return not self.missing_answers and not self.missing_evidence

    @property
    def met_evidence(self) -> int:
        return self.required_evidence - len(self.missing_evidence)

    @property
    def completeness(self) -> int:
        return completeness_percent(
            self.required_answers, self.given_answers, self.required_evidence, self.met_evidence
        )


def completeness_percent(
    required_answers: int, given_answers: int, required_evidence: int, met_evidence: int
) -> int:
    """Required answers and evidence kinds present, in percent."""
    wanted = required_answers + required_evidence
    have = given_answers + met_evidence
    return 100 if wanted == 0 else round(100 * min(have, wanted) / wanted)


@dataclass
class PeriodReports:
    """Everything a view of one period and one scope needs, read in one pass."""

    period: Period
    regions: dict[int, RegionInfo]
    reports: list[ReportRow]
    focal_points: dict[int, list[str]] = field(default_factory=dict)  # office id -> names
    # Each report's estimate is asked for by every group it is in (pemda, province, total) and
    # by every view of a cached read: worked out once per report and side of its deadline (the
    # only way the moment enters it).
    _estimates: dict[tuple[int, bool], scoring.ScoreEstimate] = field(
        default_factory=dict, repr=False
    )
    _deadlines: dict[str, datetime] = field(default_factory=dict, repr=False)

    def deadline_of(self, region_id: int) -> datetime | None:
        region = self.regions.get(region_id)
        if region is None or self.period.due_on is None:
            return None
        found = self._deadlines.get(region.timezone)
        if found is None:
            found = self._deadlines[region.timezone] = deadline(self.period.due_on, region.timezone)
        return found

    def estimate(self, row: ReportRow, now: datetime) -> scoring.ScoreEstimate:
        due = self.deadline_of(row.region_id)
        key = (id(row), due is not None and now >= due)
        found = self._estimates.get(key)
        if found is None:
            found = self._estimates[key] = _estimate(report_facts(row, due, now))
        return found


# Most reports share their facts (every complete one sent on time has the same): a national
# view asks for thousands of estimates and computes a few dozen. Estimates are read-only.
_estimate = lru_cache(maxsize=4096)(scoring.estimate)


def report_facts(row: ReportRow, due: datetime | None, now: datetime) -> scoring.ReportFacts:
    on_time = row.submitted_at is not None and (due is None or row.submitted_at < due)
    return scoring.ReportFacts(
        sent=row.sent,
        sent_on_time=on_time,
        deadline_passed=due is not None and now >= due,
        required_answers=row.required_answers,
        given_answers=min(row.given_answers, row.required_answers),
        required_evidence=row.required_evidence,
        met_evidence=row.met_evidence,
        nihil_answers=row.nihil_answers,
    )


Query = sa.Select[Any]


def _in_scope(statement: Query, column: Any, scope: Scope) -> Query:
    if scope.region_ids is None:
        return statement
    return statement.where(col(column).in_(sorted(scope.region_ids)))


def _select(*columns: Any) -> Query:
    """SELECT of plain columns (typed loosely: model attributes are typed as their values)."""
    return sa.select(*columns)


async def _rows(session: AsyncSession, statement: Query) -> list[Any]:
    """Plain rows through Core: these reads need no ORM objects, and at national scale
    building them would cost more than the queries."""
    await session.flush()  # Core skips the ORM's autoflush
    connection = await session.connection()
    return list((await connection.execute(statement)).all())


# The country's reports are read for an admin's /status and for each page or province they
# open after it: kept NATIONAL_CACHE_SECONDS per database and period, so paging through the
# provinces reads the country once. Smaller scopes (a province, a pemda) are always read fresh:
# a coordinator expects to see the report that was sent a moment ago.
NATIONAL_CACHE_SECONDS = 30.0
clock: Callable[[], float] = time.monotonic  # the cache's clock (tests and the bench move it)
_national: TTLCache[tuple[object, int, bool], PeriodReports] = TTLCache(
    maxsize=16, ttl=NATIONAL_CACHE_SECONDS, timer=lambda: clock()
)


def forget_national_reports() -> None:
    _national.clear()


async def period_reports(
    *, session: AsyncSession, period: Period, scope: Scope, with_focal_points: bool = False
) -> PeriodReports:
    """Every assigned action x office of the scope due in the period, with its report's state,
    answer and evidence counts. Set-wise: a fixed number of SELECTs whatever the scope."""
    if not scope.everywhere:
        return await _read_period_reports(session, period, scope, with_focal_points)
    key = (session.get_bind(), period.id or 0, with_focal_points)
    found = _national.get(key)
    if found is None:
        found = _national[key] = await _read_period_reports(
            session, period, scope, with_focal_points
        )
    return found


async def _read_period_reports(
    session: AsyncSession, period: Period, scope: Scope, with_focal_points: bool
) -> PeriodReports:
    regions = await regions_in(session=session, scope=scope)
    period_id = period.id or 0
    actions_due = select(Measure.action_id).where(col(Measure.period_id) == period_id)
    assignments = _in_scope(
        _select(
            Office.region_id,
            Assignment.office_id,
            Office.name,
            Assignment.action_id,
            Action.code,
            Action.title,
        )
        .join(Office, col(Office.id) == Assignment.office_id)
        .join(Action, col(Action.id) == Assignment.action_id)
        .where(
            col(Action.programme_id) == period.programme_id,
            col(Assignment.action_id).in_(actions_due),
        )
        .order_by(col(Office.region_id), col(Office.name), col(Action.position), col(Action.id)),
        Office.region_id,
        scope,
    )
    required_questions: dict[int, int] = {
        action_id: int(count)
        for action_id, count in await _rows(
            session,
            _select(Measure.action_id, func.count())
            .join(Question, col(Question.measure_id) == Measure.id)
            .where(col(Measure.period_id) == period_id, col(Question.required))
            .group_by(col(Measure.action_id)),
        )
    }
    requirements: dict[int, list[tuple[int, str, int]]] = defaultdict(list)
    for action_id, requirement_id, label, minimum in await _rows(
        session,
        _select(
            Measure.action_id,
            EvidenceRequirement.id,
            EvidenceRequirement.label,
            EvidenceRequirement.min_count,
        )
        .join(EvidenceRequirement, col(EvidenceRequirement.measure_id) == Measure.id)
        .where(col(Measure.period_id) == period_id, col(EvidenceRequirement.min_count) > 0)
        .order_by(
            col(Measure.position),
            col(EvidenceRequirement.position),
            col(EvidenceRequirement.id),
        ),
    ):
        requirements[action_id].append((requirement_id or 0, label, minimum))
    in_period = (
        _select(Submission.id)
        .join(Office, col(Office.id) == Submission.office_id)
        .where(col(Submission.period_id) == period_id)
    )
    in_period = _in_scope(in_period, Office.region_id, scope)
    submissions = {
        (row[1], row[2]): row
        for row in await _rows(
            session,
            _in_scope(
                _select(
                    Submission.id,
                    Submission.action_id,
                    Submission.office_id,
                    Submission.status,
                    Submission.revision_open,
                    Submission.submitted_at,
                    Submission.updated_at,
                )
                .join(Office, col(Office.id) == Submission.office_id)
                .where(col(Submission.period_id) == period_id),
                Office.region_id,
                scope,
            ),
        )
    }
    counted = _answer_counts(in_period)
    answers = {
        submission_id: (int(given), int(nihil))
        for submission_id, given, nihil in await _rows(session, _select(*counted.c))
    }
    files: dict[tuple[int, int], int] = {
        (submission_id, requirement_id): int(count)
        for submission_id, requirement_id, count in await _rows(session, _file_counts(in_period))
    }
    reports = []
    for region_id, office_id, office_name, action_id, code, title in await _rows(
        session, assignments
    ):
        submission = submissions.get((action_id, office_id))
        submission_id = submission[0] if submission else None
        given, nihil = answers.get(submission_id or 0, (0, 0))
        wanted = requirements.get(action_id, [])
        missing = tuple(
            label
            for requirement_id, label, minimum in wanted
            if files.get((submission_id or 0, requirement_id), 0) < minimum
        )
        reports.append(
            ReportRow(
                region_id=region_id,
                office_id=office_id,
                office_name=office_name,
                action_id=action_id,
                action_code=code,
                action_title=title,
                status=submission[3] if submission else None,
                revision_open=bool(submission[4]) if submission else False,
                submitted_at=submission[5] if submission else None,
                last_activity=submission[6] if submission else None,
                required_answers=int(required_questions.get(action_id, 0)),
                given_answers=given,
                nihil_answers=nihil,
                required_evidence=len(wanted),
                missing_evidence=missing,
            )
        )
    result = PeriodReports(period=period, regions=regions, reports=reports)
    if with_focal_points:
        result.focal_points = await focal_point_names(session=session, scope=scope)
    return result


def _answer_counts(in_period: Query) -> sa.Subquery:
    """Per report of `in_period` with an answer to a required question: how many it has, and
    how many of them are a "nihil" word. Counted from indexes (the unique (submission,
    question) one and ix_answer_nihil), not from the answers' values."""
    given = (
        _select(Answer.submission_id, func.count().label("given"))
        .join(Question, col(Question.id) == Answer.question_id)
        .where(col(Answer.submission_id).in_(in_period), col(Question.required))
        .group_by(col(Answer.submission_id))
        .subquery("given")
    )
    nihil = (
        _select(Answer.submission_id, func.count().label("nihil"))
        .join(Question, col(Question.id) == Answer.question_id)
        .where(col(Answer.submission_id).in_(in_period), col(Question.required), NIHIL_ANSWER)
        .group_by(col(Answer.submission_id))
        .subquery("nihil")
    )
    return (
        _select(
            given.c.submission_id,
            given.c.given,
            func.coalesce(nihil.c.nihil, 0).label("nihil"),
        )
        .outerjoin(nihil, nihil.c.submission_id == given.c.submission_id)
        .subquery("answers")
    )


def _file_counts(in_period: Query) -> Query:
    """Per report of `in_period` and evidence requirement: its files not removed (from
    ix_evidence_file_present alone)."""
    return (
        _select(EvidenceFile.submission_id, EvidenceFile.requirement_id, func.count().label("n"))
        .where(col(EvidenceFile.submission_id).in_(in_period), PRESENT_EVIDENCE)
        .group_by(col(EvidenceFile.submission_id), col(EvidenceFile.requirement_id))
    )


async def focal_point_names(*, session: AsyncSession, scope: Scope) -> dict[int, list[str]]:
    """The active focal points' names by office, so a coordinator knows whom to call."""
    statement = _in_scope(
        _select(Contact.office_id, Contact.name)
        .join(Office, col(Office.id) == Contact.office_id)
        .where(col(Contact.role) == Role.focal_point, col(Contact.active))
        .order_by(col(Contact.name)),
        Office.region_id,
        scope,
    )
    names: dict[int, list[str]] = defaultdict(list)
    for office_id, name in await _rows(session, statement):
        if office_id is not None:
            names[office_id].append(name)
    return dict(names)


async def current_periods(*, session: AsyncSession, timezone: str, now: datetime) -> list[Period]:
    """The periods open now in this time zone, soonest deadline first; when none is open, the
    one whose deadline passed last (after the deadline a coordinator still asks who missed it)."""
    periods = await dated_periods_by_deadline(session=session)
    current = open_now(periods, timezone, now)
    if current:
        return current
    past = [p for p in periods if p.due_on and now >= deadline(p.due_on, timezone)]
    return past[-1:]


async def period_by_code(
    *, session: AsyncSession, code: str, programme_code: str | None = None
) -> Period | None:
    """A period by its code (B08), in the latest programme that has it unless one is named."""
    statement = (
        select(Period)
        .join(Programme, col(Programme.id) == Period.programme_id)
        .where(func.lower(Period.code) == code.strip().lower())
        .order_by(col(Programme.year).desc(), col(Programme.id).desc())
    )
    if programme_code is not None:
        statement = statement.where(Programme.code == programme_code.strip())
    return (await session.exec(statement)).first()


async def region_by_code(*, session: AsyncSession, code: str) -> Region | None:
    return (await session.exec(select(Region).where(Region.code == code.strip()))).first()


async def region_scope(*, session: AsyncSession, region: Region) -> Scope:
    """A region and, for a province, its kabupaten/kota: what an export for it covers."""
    children: list[int] = []
    if region.kind is RegionKind.provinsi:
        found = await session.exec(select(Region.id).where(Region.parent_id == region.id))
        children = [child for child in found.all() if child is not None]
    return Scope(frozenset([region.id or 0, *children]))


# ------------------------------------------------------------------- figures, pure


@dataclass(frozen=True)
class Figures:
    """A group of reports (a pemda, a province, an office) in a few numbers."""

    total: int
    sent: int
    completeness: int  # mean completeness of the reports, percent
    missing: int  # reports not sent
    score: scoring.ScoreEstimate


def figures(reports: PeriodReports, rows: Iterable[ReportRow], now: datetime) -> Figures:
    items = list(rows)
    sent = sum(1 for row in items if row.sent)
    mean = round(sum(row.completeness for row in items) / len(items)) if items else 0
    score = scoring.combine(reports.estimate(row, now) for row in items)
    return Figures(len(items), sent, mean, len(items) - sent, score)


def by_region(rows: Iterable[ReportRow]) -> dict[int, list[ReportRow]]:
    grouped: dict[int, list[ReportRow]] = defaultdict(list)
    for row in rows:
        grouped[row.region_id].append(row)
    return grouped


def by_province(reports: PeriodReports) -> dict[int, list[ReportRow]]:
    grouped: dict[int, list[ReportRow]] = defaultdict(list)
    for row in reports.reports:
        region = reports.regions.get(row.region_id)
        if region is not None:
            grouped[region.province_id].append(row)
    return grouped


# ------------------------------------------------- figures of pemda and provinces, in SQL


class Grouping(StrEnum):
    region = "region"  # a group per pemda: a province's view
    province = "province"  # a group per province: the country's view


@dataclass(frozen=True, slots=True)
class FactGroup:
    """The reports of one pemda (or province) that share every fact their figures are made of:
    N such reports weigh as one report N times."""

    group_id: int  # a region id, or a province's
    timezone: str  # of the reports' pemda: when its deadline passes
    sent: bool
    submitted_on_time: bool
    required_answers: int
    given_answers: int
    nihil_answers: int
    required_evidence: int
    met_evidence: int
    count: int

    def facts(self, deadline_passed: bool) -> scoring.ReportFacts:
        return scoring.ReportFacts(
            sent=self.sent,
            sent_on_time=self.submitted_on_time,
            deadline_passed=deadline_passed,
            required_answers=self.required_answers,
            given_answers=min(self.given_answers, self.required_answers),
            required_evidence=self.required_evidence,
            met_evidence=self.met_evidence,
            nihil_answers=self.nihil_answers,
        )

    @property
    def completeness(self) -> int:
        return completeness_percent(
            self.required_answers, self.given_answers, self.required_evidence, self.met_evidence
        )


@dataclass(frozen=True)
class GroupFigures:
    """The figures of a scope and period per pemda or per province, and in total: what the
    country's and a province's /status show, without a row per report."""

    regions: dict[int, RegionInfo]
    total: Figures
    groups: dict[int, Figures]  # by group id (region or province)


async def group_figures(
    *, session: AsyncSession, period: Period, scope: Scope, grouping: Grouping, now: datetime
) -> GroupFigures:
    """`figures` of every pemda (or province) of the scope, the same numbers as from
    `period_reports`, but added up by the database: one SELECT returns a row per group and
    distinct set of facts (a few per pemda), not one per report (the country has thousands), and
    each distinct set is scored once. Always fresh, whatever the scope."""
    regions = await regions_in(session=session, scope=scope)
    deadlines = _deadlines_by_timezone(period, regions)
    groups = [
        FactGroup(
            group_id=int(group_id),
            timezone=timezone,
            sent=bool(sent),
            submitted_on_time=bool(on_time),
            required_answers=int(required_answers),
            given_answers=int(given),
            nihil_answers=int(nihil),
            required_evidence=int(required_evidence),
            met_evidence=int(met),
            count=int(count),
        )
        for (
            group_id,
            timezone,
            sent,
            on_time,
            required_answers,
            given,
            nihil,
            required_evidence,
            met,
            count,
        ) in (
            await _rows(session, _fact_groups(period, scope, grouping, deadlines))
            if regions
            else []
        )
    ]
    passed = {zone: due is not None and now >= due for zone, due in deadlines.items()}
    by_group: dict[int, list[FactGroup]] = defaultdict(list)
    for group in groups:
        by_group[group.group_id].append(group)
    return GroupFigures(
        regions=regions,
        total=_figures_of_groups(groups, passed),
        groups={
            group_id: _figures_of_groups(items, passed) for group_id, items in by_group.items()
        },
    )


def _deadlines_by_timezone(
    period: Period, regions: dict[int, RegionInfo]
) -> dict[str, datetime | None]:
    zones = {region.timezone for region in regions.values()}
    due_on = period.due_on
    return {zone: None if due_on is None else deadline(due_on, zone) for zone in sorted(zones)}


def _figures_of_groups(groups: list[FactGroup], deadline_passed: dict[str, bool]) -> Figures:
    """`figures` of the reports these groups stand for."""
    total = sum(group.count for group in groups)
    sent = sum(group.count for group in groups if group.sent)
    completeness = sum(group.completeness * group.count for group in groups)
    score = scoring.combine_counted(
        (_estimate(group.facts(deadline_passed.get(group.timezone, False))), group.count)
        for group in groups
    )
    mean = round(completeness / total) if total else 0
    return Figures(total, sent, mean, total - sent, score)


def _fact_groups(
    period: Period, scope: Scope, grouping: Grouping, deadlines: dict[str, datetime | None]
) -> Query:
    """Every assigned action x office of the scope due in the period, counted per group and
    distinct facts. The same rules as `_read_period_reports`, in SQL: answers to required
    questions (and how many are a "nihil" word), evidence requirements of the action in the
    period that have their minimum number of files, sent on time against the deadline of the
    pemda's own time zone."""
    period_id = period.id or 0
    required_questions = (
        _select(Measure.action_id, func.count().label("n"))
        .join(Question, col(Question.measure_id) == Measure.id)
        .where(col(Measure.period_id) == period_id, col(Question.required))
        .group_by(col(Measure.action_id))
        .subquery("required_questions")
    )
    required_evidence = (
        _select(Measure.action_id, func.count().label("n"))
        .join(EvidenceRequirement, col(EvidenceRequirement.measure_id) == Measure.id)
        .where(col(Measure.period_id) == period_id, col(EvidenceRequirement.min_count) > 0)
        .group_by(col(Measure.action_id))
        .subquery("required_evidence")
    )
    in_period = _in_scope(
        _select(Submission.id)
        .join(Office, col(Office.id) == Submission.office_id)
        .where(col(Submission.period_id) == period_id),
        Office.region_id,
        scope,
    )
    answers = _answer_counts(in_period)
    files = _file_counts(in_period).subquery("files")
    # Per report and action of the requirements its files are for (only the report's own
    # action is joined below); "has its minimum" is summed, not filtered, so that PostgreSQL
    # estimates this subquery's size well (a filter here made it plan a nested loop over it).
    met = (
        _select(
            files.c.submission_id,
            Measure.action_id,
            func.sum(case((files.c.n >= EvidenceRequirement.min_count, 1), else_=0)).label("n"),
        )
        .join(EvidenceRequirement, col(EvidenceRequirement.id) == files.c.requirement_id)
        .join(Measure, col(Measure.id) == EvidenceRequirement.measure_id)
        .where(col(Measure.period_id) == period_id, col(EvidenceRequirement.min_count) > 0)
        .group_by(files.c.submission_id, col(Measure.action_id))
        .subquery("met")
    )
    report = (
        _select(
            Submission.id,
            Submission.action_id,
            Submission.office_id,
            Submission.status,
            Submission.submitted_at,
        )
        .where(col(Submission.period_id) == period_id)
        .subquery("report")
    )
    group_id: Any = col(Office.region_id)
    if grouping is Grouping.province:
        group_id = case(
            (col(Region.kind) == RegionKind.provinsi, col(Region.id)),
            else_=func.coalesce(col(Region.parent_id), col(Region.id)),
        )
    sent = case((report.c.status.in_(sorted(SENT)), 1), else_=0)
    on_time = case((_submitted_on_time(report.c.submitted_at, deadlines), 1), else_=0)
    given = func.coalesce(answers.c.given, 0)
    nihil = func.coalesce(answers.c.nihil, 0)
    questions = func.coalesce(required_questions.c.n, 0)
    kinds = func.coalesce(required_evidence.c.n, 0)
    kinds_met = func.coalesce(met.c.n, 0)
    zone = col(Region.timezone)
    keys = [group_id, zone, sent, on_time, questions, given, nihil, kinds, kinds_met]
    actions_due = select(Measure.action_id).where(col(Measure.period_id) == period_id)
    statement = (
        _select(*keys, func.count())
        .select_from(Assignment)
        .join(Office, col(Office.id) == Assignment.office_id)
        .join(Region, col(Region.id) == Office.region_id)
        .join(Action, col(Action.id) == Assignment.action_id)
        .outerjoin(
            report,
            (report.c.action_id == Assignment.action_id)
            & (report.c.office_id == Assignment.office_id),
        )
        .outerjoin(answers, answers.c.submission_id == report.c.id)
        .outerjoin(
            met, (met.c.submission_id == report.c.id) & (met.c.action_id == report.c.action_id)
        )
        .outerjoin(required_questions, required_questions.c.action_id == Assignment.action_id)
        .outerjoin(required_evidence, required_evidence.c.action_id == Assignment.action_id)
        .where(
            col(Action.programme_id) == period.programme_id,
            col(Assignment.action_id).in_(actions_due),
        )
        .group_by(*keys)
    )
    return _in_scope(statement, Office.region_id, scope)


def _submitted_on_time(submitted_at: Any, deadlines: dict[str, datetime | None]) -> Any:
    """SQL for `report_facts`' on time: submitted, and before the deadline of the pemda's zone
    (every zone of the scope is in `deadlines`; no due date: any submission is on time)."""
    if any(due is None for due in deadlines.values()):
        return submitted_at.is_not(None)
    return sa.or_(
        *(
            sa.and_(col(Region.timezone) == zone, submitted_at < due)
            for zone, due in deadlines.items()
        )
    )
