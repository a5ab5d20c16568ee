"""storage.oversight.group_figures (what the country's and a province's /status show) adds up
in the database exactly what `figures` makes of period_reports' rows, report by report: on a
varied data set, for every scope, grouping and side of each zone's deadline."""

from __future__ import annotations

import importlib.util
import random
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from storage import oversight
from storage.models import (
    Answer,
    Assignment,
    EvidenceFile,
    EvidenceRequirement,
    Office,
    Question,
    QuestionKind,
    RegionKind,
    Submission,
    SubmissionStatus,
)
from storage.models.reports import NIHIL_ANSWER
from storage.oversight import Grouping
from storage.periods import deadline
from tests.support.oversight_world import Country, make_country

VALUES = ["12", "0", "nihil", " Tidak ", "-", "NIL", "tidak ada", "ya", "3,5"]
STATES = ["none", "draft", "on_time", "late", "approved", "returned", "revision"]


async def _varied_country(session, seed: int) -> Country:
    """The small country with six more offices per pemda, each assigned both actions, every
    report in a random state: nothing, a draft, sent on time or late, approved, returned, sent
    and reopened; required and optional answers, some "nihil" in any spelling; evidence short
    of, at or over its minimum, some removed; one kabupaten in another time zone."""
    rng = random.Random(seed)
    country = await make_country(session)
    period = country.period
    assert period is not None and period.due_on is not None
    betasatu = country.regions["92.01"]
    betasatu.timezone = "Asia/Jayapura"  # its deadline passes two hours before Jakarta's
    session.add(betasatu)
    first, second = country.actions
    first_measure = country.questions[0].measure_id
    second_measure = country.questions[1].measure_id
    extra_question = Question(
        measure_id=second_measure, code="peserta", text="Berapa peserta?", kind=QuestionKind.integer
    )
    two_files = EvidenceRequirement(
        measure_id=first_measure, code="foto", label="Foto kegiatan", kinds=["jpg"], min_count=2
    )
    optional_files = EvidenceRequirement(
        measure_id=first_measure, code="lain", label="Lain-lain", kinds=["pdf"], min_count=0
    )
    session.add_all([extra_question, two_files, optional_files])
    await session.flush()
    optional = {
        question.measure_id: question
        for question in (await session.exec(select(Question).where(~col(Question.required)))).all()
    }
    questions = {  # required and optional ones: answers to the optional never count
        first.id: [country.questions[0], optional[first_measure]],
        second.id: [country.questions[1], extra_question, optional[second_measure]],
    }
    requirements = {
        first.id: [*country.requirements[:2], two_files, optional_files],
        second.id: country.requirements[2:],
    }
    jakarta = deadline(period.due_on, "Asia/Jakarta")
    jayapura = deadline(period.due_on, "Asia/Jayapura")
    between = jayapura + (jakarta - jayapura) / 2
    for code, region in country.regions.items():
        offices = [
            Office(region_id=region.id or 0, code=f"X{n}", name=f"Kantor {n} {region.name}")
            for n in range(6)
        ]
        session.add_all(offices)
        await session.flush()
        country.offices[code] += offices
        for office in offices:
            for action in (first, second):
                session.add(Assignment(action_id=action.id or 0, office_id=office.id or 0))
                state = rng.choice(STATES)
                if state == "none":
                    continue
                sent = state in {"on_time", "late", "approved", "revision"}
                submitted_at = None
                if sent or state == "returned":
                    submitted_at = rng.choice(
                        [jakarta - timedelta(days=2), between, jakarta + timedelta(hours=3)]
                        if state != "on_time"
                        else [jakarta - timedelta(days=1), between]
                    )
                submission = Submission(
                    action_id=action.id or 0,
                    office_id=office.id or 0,
                    period_id=period.id or 0,
                    status={
                        "draft": SubmissionStatus.draft,
                        "returned": SubmissionStatus.returned,
                        "approved": SubmissionStatus.approved,
                    }.get(state, SubmissionStatus.submitted),
                    revision_open=state == "revision",
                    submitted_at=submitted_at,
                )
                session.add(submission)
                await session.flush()
                await _answers_and_files(
                    session, rng, submission, questions[action.id], requirements[action.id]
                )
    await session.commit()
    return country


async def _answers_and_files(session, rng, submission, questions, requirements) -> None:
    for question in questions:
        if rng.random() < 0.7:
            session.add(
                Answer(
                    submission_id=submission.id or 0,
                    question_id=question.id or 0,
                    value=rng.choice(VALUES),
                )
            )
    for requirement in requirements:
        for _ in range(rng.randint(0, 3)):
            session.add(
                EvidenceFile(
                    submission_id=submission.id or 0,
                    requirement_id=requirement.id or 0,
                    sha256="b" * 64,
                    detected_mime="application/pdf",
                    kind="pdf",
                    size=10,
                    storage_key="bb/" + "b" * 64 + ".pdf",
                    removed_at=datetime.now(UTC) if rng.random() < 0.3 else None,
                )
            )
    await session.flush()


def _moments(country: Country) -> list[datetime]:
    """Before both deadlines, between Jayapura's and Jakarta's, after both."""
    due_on = country.period.due_on if country.period else None
    assert due_on is not None
    jakarta = deadline(due_on, "Asia/Jakarta")
    jayapura = deadline(due_on, "Asia/Jayapura")
    return [
        datetime.combine(due_on - timedelta(days=1), time(3), UTC),
        jayapura + (jakarta - jayapura) / 2,
        jakarta + timedelta(days=1),
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_group_figures_equal_the_figures_of_every_report(session, seed: int) -> None:
    country = await _varied_country(session, seed)
    period = country.period
    assert period is not None
    scopes = [oversight.Scope(None)]
    for region in country.regions.values():
        if region.kind is RegionKind.provinsi:
            scopes.append(await oversight.region_scope(session=session, region=region))
        scopes.append(oversight.Scope(frozenset({region.id or 0})))
    compared = 0
    for now in _moments(country):
        for scope in scopes:
            found = await oversight._read_period_reports(session, period, scope, False)
            for grouping, groups in (
                (Grouping.province, oversight.by_province(found)),
                (Grouping.region, oversight.by_region(found.reports)),
            ):
                fast = await oversight.group_figures(
                    session=session, period=period, scope=scope, grouping=grouping, now=now
                )
                assert fast.regions == found.regions
                assert fast.total == oversight.figures(found, found.reports, now)
                assert fast.groups == {
                    group_id: oversight.figures(found, rows, now)
                    for group_id, rows in groups.items()
                }
                compared += len(groups)
    assert compared > 50
    # The data set is as varied as meant: every state and cause of a lower estimate shows.
    everything = await oversight._read_period_reports(session, period, oversight.Scope(None), False)
    causes = {
        cause
        for row in everything.reports
        for now in _moments(country)
        for cause in everything.estimate(row, now).lost
    }
    assert len(causes) == 5
    assert any(row.nihil_answers for row in everything.reports)
    assert {row.status for row in everything.reports} >= {None, *SubmissionStatus}


async def test_group_figures_of_an_empty_scope_are_empty(session) -> None:
    country = await make_country(session)
    await session.commit()
    assert country.period is not None
    nowhere = await oversight.group_figures(
        session=session,
        period=country.period,
        scope=oversight.Scope(frozenset()),
        grouping=Grouping.region,
        now=datetime.now(UTC),
    )
    assert nowhere.groups == {} and nowhere.total.total == 0
    assert nowhere.total.score.points == 0.0


def test_the_nihil_index_condition_is_the_words_of_the_scoring() -> None:
    """The migration spells the partial index's condition as literals; the model (and so the
    queries) spell it from storage.scoring.NIL_WORDS. They must agree, else the index stops
    being used (the figures stay right, only slower)."""
    path = (
        Path(__file__).resolve().parents[2]
        / "storage/migrations/versions/0009_oversight_indexes.py"
    )
    spec = importlib.util.spec_from_file_location("migration_0009", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert migration.NIHIL_ANSWER.text == NIHIL_ANSWER.text
