"""Writing a catalogue: an idempotent upsert by codes. The catalogue changes every year and every
RANHAM generation, so it is data, and re-importing it is the normal way to edit it.

The same file twice changes nothing, edited text is updated in place, and rows the file no
longer mentions are kept (counted as not in the file), because answers may refer to them.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.importers.catalogue_checks import check_windows
from storage.importers.catalogue_format import CatalogueDoc, EvidenceDoc, QuestionDoc
from storage.importers.common import (
    BATCH_ROWS,
    Batches,
    Checkpoint,
    ImportReport,
    Progress,
    no_checkpoint,
    noop_progress,
    row_id,
    upsert_row,
)
from storage.models import Action, EvidenceRequirement, Measure, Period, Programme, Question

ChildT = TypeVar("ChildT", Question, EvidenceRequirement)


async def import_catalogue(
    doc: CatalogueDoc,
    *,
    session: AsyncSession,
    progress: Progress = noop_progress,
    checkpoint: Checkpoint = no_checkpoint,
    batch_rows: int = BATCH_ROWS,
) -> ImportReport:
    """Upsert the catalogue by codes. Flushes, never commits: the caller owns the transaction;
    `checkpoint` is called once the checks are done and after every `batch_rows` items."""
    report = ImportReport()
    total = _count_items(doc)
    programme = await _find_programme(doc.programme.code, session=session)
    old_periods = await _existing_periods(programme, session=session)
    check_windows(doc.periods, old_periods)
    await checkpoint()  # checks done: what follows writes
    batches = Batches(session, checkpoint, batch_rows)
    programme = await _upsert_programme(doc, programme, session=session, report=report)
    progress(1, total, "Program")
    periods = await _upsert_periods(doc, programme, old_periods, session=session, report=report)
    progress(len(doc.periods), total, "Periode")
    actions = await _upsert_actions(doc, programme, session=session, report=report)
    progress(len(doc.actions), total, "Aksi")
    await batches.written(len(doc.actions))
    measures = await _upsert_measures(doc, programme, actions, periods, session, report)
    progress(len(measures), total, "Ukuran keberhasilan")
    await batches.written(len(measures))
    done = await _upsert_measure_items(doc, programme, measures, session, report, batches)
    progress(done, total, "Pertanyaan dan data dukung")
    return report


def _count_items(doc: CatalogueDoc) -> int:
    measures = [m for action in doc.actions for m in action.measures]
    items = sum(len(m.questions) + len(m.evidence) for m in measures)
    return 1 + len(doc.periods) + len(doc.actions) + len(measures) + items


async def _find_programme(code: str, *, session: AsyncSession) -> Programme | None:
    return (await session.exec(select(Programme).where(Programme.code == code))).first()


async def _existing_periods(
    programme: Programme | None, *, session: AsyncSession
) -> dict[str, Period]:
    if programme is None:
        return {}
    rows = await session.exec(select(Period).where(Period.programme_id == programme.id))
    return {period.code: period for period in rows.all()}


async def _upsert_programme(
    catalogue: CatalogueDoc,
    programme: Programme | None,
    *,
    session: AsyncSession,
    report: ImportReport,
) -> Programme:
    doc = catalogue.programme
    existing = {doc.code: programme} if programme else {}
    policy = catalogue.reminders.model_dump(mode="json") if catalogue.reminders else None
    values = {
        "code": doc.code,
        "kind": doc.kind,
        "year": doc.year,
        "title": doc.title,
        "reminder_policy": policy,
    }
    row = upsert_row(session, existing, doc.code, Programme, values, report["programme"])
    await session.flush()
    return row


async def _upsert_periods(
    doc: CatalogueDoc,
    programme: Programme,
    existing: dict[str, Period],
    *,
    session: AsyncSession,
    report: ImportReport,
) -> dict[str, Period]:
    existing = dict(existing)
    rows: dict[str, Period] = {}
    for position, period in enumerate(doc.periods):
        values: dict[str, Any] = {
            "programme_id": programme.id,
            "code": period.code,
            "title": period.title,
            "position": position,
        }
        # An absent date leaves the database's alone: windows are also set by `period set`.
        if period.opens_on is not None:
            values["opens_on"] = period.opens_on
        if period.due_on is not None:
            values["due_on"] = period.due_on
        rows[period.code] = upsert_row(
            session, existing, period.code, Period, values, report["period"]
        )
    report["period"].not_in_file = len(existing)
    await session.flush()
    return rows


async def _upsert_actions(
    doc: CatalogueDoc, programme: Programme, *, session: AsyncSession, report: ImportReport
) -> dict[str, Action]:
    found = await session.exec(select(Action).where(Action.programme_id == programme.id))
    existing = {action.code: action for action in found.all()}
    rows: dict[str, Action] = {}
    for position, action in enumerate(doc.actions):
        values = {
            "programme_id": programme.id,
            "code": action.code,
            "level": action.level,
            "title": action.title,
            "target_group": action.target_group,
            "success_criterion": action.success_criterion,
            "position": position,
        }
        rows[action.code] = upsert_row(
            session, existing, action.code, Action, values, report["action"]
        )
    report["action"].not_in_file = len(existing)
    await session.flush()
    return rows


async def _upsert_measures(
    doc: CatalogueDoc,
    programme: Programme,
    actions: dict[str, Action],
    periods: dict[str, Period],
    session: AsyncSession,
    report: ImportReport,
) -> dict[tuple[str, str], Measure]:
    found = await session.exec(
        select(Measure)
        .join(Action, col(Action.id) == Measure.action_id)
        .where(Action.programme_id == programme.id)
    )
    existing = {(m.action_id, m.code): m for m in found.all()}
    rows: dict[tuple[str, str], Measure] = {}
    for action in doc.actions:
        action_id = row_id(actions[action.code])
        for position, measure in enumerate(action.measures):
            values = {
                "action_id": action_id,
                "code": measure.code,
                "period_id": periods[measure.period].id,
                "position": position,
                "title": measure.title,
                "help_text": measure.help,
            }
            rows[(action.code, measure.code)] = upsert_row(
                session, existing, (action_id, measure.code), Measure, values, report["measure"]
            )
    report["measure"].not_in_file = len(existing)
    await session.flush()
    return rows


async def _upsert_measure_items(
    doc: CatalogueDoc,
    programme: Programme,
    measures: dict[tuple[str, str], Measure],
    session: AsyncSession,
    report: ImportReport,
    batches: Batches,
) -> int:
    """Questions and evidence requirements; returns how many the file holds."""
    questions = await _existing_children(Question, programme, session=session)
    requirements = await _existing_children(EvidenceRequirement, programme, session=session)
    done = 0
    for action in doc.actions:
        for measure in action.measures:
            measure_id = row_id(measures[(action.code, measure.code)])
            for position, question in enumerate(measure.questions):
                values = _question_values(question, measure_id, position)
                key = (measure_id, question.code)
                upsert_row(session, questions, key, Question, values, report["question"])
            for position, evidence in enumerate(measure.evidence):
                values = _requirement_values(evidence, measure_id, position)
                key = (measure_id, evidence.code)
                counts = report["evidence_requirement"]
                upsert_row(session, requirements, key, EvidenceRequirement, values, counts)
            done += len(measure.questions) + len(measure.evidence)
            await batches.written(len(measure.questions) + len(measure.evidence))
    report["question"].not_in_file = len(questions)
    report["evidence_requirement"].not_in_file = len(requirements)
    await session.flush()
    return done


async def _existing_children(
    model: type[ChildT], programme: Programme, *, session: AsyncSession
) -> dict[tuple[int, str], ChildT]:
    """All questions (or requirements) of the programme's measures, by (measure id, code)."""
    found = await session.exec(
        select(model)
        .join(Measure, col(Measure.id) == model.measure_id)
        .join(Action, col(Action.id) == Measure.action_id)
        .where(Action.programme_id == programme.id)
    )
    return {(row.measure_id, row.code): row for row in found.all()}


def _question_values(question: QuestionDoc, measure_id: int, position: int) -> dict[str, Any]:
    return {
        "measure_id": measure_id,
        "code": question.code,
        "position": position,
        "text": question.text,
        "kind": question.type,
        "required": question.required,
        "min_value": question.min,
        "max_value": question.max,
        "choices": list(question.choices) if question.choices else None,
        "help_text": question.help,
    }


def _requirement_values(evidence: EvidenceDoc, measure_id: int, position: int) -> dict[str, Any]:
    return {
        "measure_id": measure_id,
        "code": evidence.code,
        "position": position,
        "label": evidence.label,
        "kinds": list(evidence.kinds),
        "min_count": evidence.min_count,
        "help_text": evidence.help,
    }
