"""Benchmark the reminder planner at national scale (issue 14, "Benchmark").

    .venv/bin/python bench/planner.py [--rounds 5] [--database-url URL]

A generated national data set on a fresh database (a SQLite file in a temporary directory, or,
with ``--database-url``, a PostgreSQL database whose tables are emptied first): 552 pemda (38
provinces, 514 kabupaten/kota in WIB, WITA and WIT), 10 offices each, one programme of 6
actions with a measure in each of 3 periods (B04 closed, B08 open, B12 ahead), each action
assigned to 2 offices per pemda, 2 focal points per office, a coordinator per pemda and a Kanwil
per province, all reachable on Telegram; of B08's reports a third are handed in, a third are
drafts with some answers and files, a third not started.

* planner: ``plan_at`` at 08:00 WIB three days before B08's due date, what the `reminders`
  ticker runs every minute: the active periods, the snapshot (one query per kind of row), the
  pure plan, and the check of which keys the outbox holds already.
* baseline: the same answer the naive way, one office at a time with the report flow's own
  storage functions (the office's actions and reports, each draft's walk and completeness, the
  office's focal points): a query loop per office.

Each is run ``--rounds`` times; the figure is the median. ``planner_national_seconds()`` builds
the data set and returns the planner's median (bench/broadcast.py reports it). The last line
printed is one JSON object: {"planner_national_s", "baseline_planner_national_s", ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

# Allow running as a plain script from the repository root or from bench/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from scheduler.reminders import plan_at
from storage import reports
from storage.db import create_engine, empty_all_tables, session_factory
from storage.migrate import upgrade
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
    Period,
    Programme,
    Question,
    Region,
    Role,
    Submission,
    SubmissionStatus,
)
from storage.types import utcnow

PROVINCES, KABKOTA, OFFICES, ACTIONS = 38, 514, 10, 6
PERIODS = (
    ("B04", date(2025, 4, 1), date(2025, 4, 10)),
    ("B08", date(2025, 8, 18), date(2025, 8, 28)),
    ("B12", date(2025, 12, 1), date(2025, 12, 10)),
)
ACTIVE = "B08"
AT = datetime(2025, 8, 25, 8, 0, tzinfo=ZoneInfo("Asia/Jakarta")).astimezone(UTC)
ZONES = ("Asia/Jakarta",) * 6 + ("Asia/Makassar",) * 3 + ("Asia/Jayapura",)


def table(model: Any) -> Any:
    return model.__table__


async def build_national(engine: AsyncEngine) -> dict[str, int]:
    """Write the national data set with bulk INSERTs; row counts by table."""
    rows: dict[str, list[dict[str, Any]]] = {}
    now = utcnow()
    regions = []
    for p in range(PROVINCES):
        regions.append(
            {
                "id": p + 1,
                "code": f"{p + 11}",
                "name": f"Provinsi {p + 1}",
                "kind": "provinsi",
                "parent_id": None,
                "timezone": ZONES[p % len(ZONES)],
            }
        )
    for k in range(KABKOTA):
        parent = regions[k % PROVINCES]
        regions.append(
            {
                "id": PROVINCES + k + 1,
                "code": f"{parent['code']}.{k + 1:02d}",
                "name": f"Kabupaten {k + 1}",
                "kind": "kabkota",
                "parent_id": parent["id"],
                "timezone": parent["timezone"],
            }
        )
    rows["region"] = regions
    rows["office"] = [
        {"id": r["id"] * 100 + o, "region_id": r["id"], "code": f"opd{o}", "name": f"Dinas {o}"}
        for r in regions
        for o in range(OFFICES)
    ]
    rows["programme"] = [
        {
            "id": 1,
            "code": "aksi-ham-2025",
            "kind": "aksi_ham",
            "year": 2025,
            "title": "Aksi HAM 2025",
            "reminder_policy": None,
        }
    ]
    rows["period"] = [
        {
            "id": i + 1,
            "programme_id": 1,
            "code": code,
            "title": f"Periode {code}",
            "position": i,
            "opens_on": opens,
            "due_on": due,
        }
        for i, (code, opens, due) in enumerate(PERIODS)
    ]
    rows["action"] = [
        {
            "id": a + 1,
            "programme_id": 1,
            "code": f"KK-{a + 1:02d}",
            "level": "kabkota",
            "title": f"Aksi HAM nomor {a + 1}",
            "target_group": None,
            "success_criterion": None,
            "position": a,
        }
        for a in range(ACTIONS)
    ]
    measures, questions, requirements = [], [], []
    for a in range(ACTIONS):
        for p in range(len(PERIODS)):
            measure_id = a * 10 + p + 1
            measures.append(
                {
                    "id": measure_id,
                    "action_id": a + 1,
                    "period_id": p + 1,
                    "code": f"M{p}",
                    "position": 0,
                    "title": "Ukuran",
                    "help_text": None,
                }
            )
            for q in range(2):
                questions.append(
                    {
                        "id": measure_id * 10 + q,
                        "measure_id": measure_id,
                        "code": f"q{q}",
                        "position": q,
                        "text": "Berapa?",
                        "kind": "integer",
                        "required": True,
                        "min_value": None,
                        "max_value": None,
                        "choices": None,
                        "help_text": None,
                    }
                )
            for e, label in enumerate(("Notulen rapat", "Daftar hadir")):
                requirements.append(
                    {
                        "id": measure_id * 10 + e,
                        "measure_id": measure_id,
                        "code": f"e{e}",
                        "position": e,
                        "label": label,
                        "kinds": ["pdf"],
                        "min_count": 1,
                        "help_text": None,
                    }
                )
    rows["measure"], rows["question"], rows["evidence_requirement"] = (
        measures,
        questions,
        requirements,
    )
    assignments, contacts, identities = [], [], []
    submissions, answers, files = [], [], []
    active_period = next(i + 1 for i, (code, _, _) in enumerate(PERIODS) if code == ACTIVE)
    for r in regions:
        for a in range(ACTIONS):
            for office_id in (r["id"] * 100 + a, r["id"] * 100 + (a + 5) % OFFICES):
                assignments.append({"action_id": a + 1, "office_id": office_id, "created_at": now})
                turn = len(assignments) % 3
                if turn == 0:
                    continue  # not started
                sub_id = len(submissions) + 1
                status = SubmissionStatus.submitted if turn == 1 else SubmissionStatus.draft
                submissions.append(
                    {
                        "id": sub_id,
                        "action_id": a + 1,
                        "office_id": office_id,
                        "period_id": active_period,
                        "status": status.value,
                        "version": 1,
                        "revision_open": False,
                        "created_at": now,
                        "updated_at": now,
                        "submitted_at": None,
                        "submitted_by_id": None,
                    }
                )
                measure_id = a * 10 + active_period
                answers.append(
                    {
                        "submission_id": sub_id,
                        "question_id": measure_id * 10,
                        "value": "1",
                        "answered_by_id": None,
                        "answered_at": now,
                    }
                )
                files.append(
                    {
                        "submission_id": sub_id,
                        "requirement_id": measure_id * 10,
                        "sha256": "0" * 64,
                        "detected_mime": "application/pdf",
                        "kind": "pdf",
                        "size": 1,
                        "storage_key": "x",
                        "received_at": now,
                    }
                )
    for office in rows["office"]:
        for n in range(2):
            contacts.append(
                {
                    "name": f"Focal {office['id']}-{n}",
                    "role": Role.focal_point.value,
                    "region_id": office["region_id"],
                    "office_id": office["id"],
                }
            )
    for r in regions:
        contacts.append(
            {
                "name": f"Koordinator {r['id']}",
                "role": Role.coordinator.value,
                "region_id": r["id"],
                "office_id": None,
            }
        )
        if r["kind"] == "provinsi":
            contacts.append(
                {
                    "name": f"Kanwil {r['id']}",
                    "role": Role.kanwil.value,
                    "region_id": r["id"],
                    "office_id": None,
                }
            )
    for n, contact in enumerate(contacts, start=1):
        contact |= {
            "id": n,
            "phone": None,
            "language": "id",
            "active": True,
            "created_at": now,
            "updated_at": now,
        }
        identities.append(
            {
                "contact_id": n,
                "channel": "telegram",
                "external_id": str(10_000 + n),
                "created_at": now,
            }
        )
    rows |= {
        "assignment": assignments,
        "contact": contacts,
        "channel_identity": identities,
        "submission": submissions,
        "answer": answers,
        "evidence_file": files,
    }
    order = (
        Region,
        Office,
        Programme,
        Period,
        Action,
        Measure,
        Question,
        EvidenceRequirement,
        Assignment,
        Contact,
        ChannelIdentity,
        Submission,
        Answer,
        EvidenceFile,
    )
    async with engine.begin() as connection:
        for model in order:
            name = table(model).name
            for start in range(0, len(rows[name]), 2000):
                await connection.execute(insert(table(model)), rows[name][start : start + 2000])
        if connection.dialect.name == "postgresql":  # explicit ids: move the sequences on
            for model in order:
                name = table(model).name
                await connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"(SELECT max(id) FROM {name}))"
                )
    return {name: len(values) for name, values in rows.items()}


async def planner_once(sessions: async_sessionmaker[AsyncSession]) -> tuple[float, int, float]:
    """(wall seconds, messages due, CPU seconds of this process: on SQLite the queries run in
    aiosqlite's thread, so that counts them too; it varies less on a busy machine)."""
    started, cpu = time.perf_counter(), time.process_time()
    plan = await plan_at(sessions, AT)
    return time.perf_counter() - started, len(plan.due), time.process_time() - cpu


async def baseline_once(sessions: async_sessionmaker[AsyncSession]) -> tuple[float, int, float]:
    """One office at a time, with the report flow's storage functions."""
    started, cpu = time.perf_counter(), time.process_time()
    due = 0
    async with sessions() as session:
        period = (await session.exec(select(Period).where(Period.code == ACTIVE))).one()
        offices = (await session.exec(select(Office.id))).all()
        for office_id in offices:
            pending = []
            for action, submission in await reports.office_actions_for_period(
                session=session, office_id=office_id or 0, period=period
            ):
                if submission is not None and submission.status in (
                    SubmissionStatus.submitted,
                    SubmissionStatus.approved,
                ):
                    continue
                if submission is not None:
                    items = await reports.walk(
                        session=session, action_id=action.id or 0, period_id=period.id or 0
                    )
                    await reports.completeness(
                        session=session, submission_id=submission.id or 0, items=items
                    )
                pending.append(action)
            if pending:
                focal = await session.exec(
                    select(Contact.id, ChannelIdentity.external_id)
                    .join(ChannelIdentity, ChannelIdentity.contact_id == Contact.id)
                    .where(Contact.office_id == office_id, Contact.role == Role.focal_point)
                )
                due += len(focal.all())
    return time.perf_counter() - started, due, time.process_time() - cpu


async def measure(url: str, *, rounds: int, baseline_rounds: int) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        await empty_all_tables(engine)
        counts = await build_national(engine)
        sessions = session_factory(engine)
        planner = [await planner_once(sessions) for _ in range(rounds)]
        baseline = [await baseline_once(sessions) for _ in range(baseline_rounds)]
    finally:
        await engine.dispose()
    return {
        "counts": counts,
        "planner_s": statistics.median(run[0] for run in planner),
        "planner_cpu_s": statistics.median(run[2] for run in planner),
        "planner_due": planner[0][1],
        "baseline_s": statistics.median(run[0] for run in baseline),
        "baseline_cpu_s": statistics.median(run[2] for run in baseline),
        "baseline_due": baseline[0][1],
    }


def _sqlite_url(directory: str) -> str:
    return f"sqlite+aiosqlite:///{directory}/planner.db"


def planner_national_seconds(rounds: int = 3) -> float:
    """The planner's median time on the national data set (a temporary SQLite database)."""
    with tempfile.TemporaryDirectory() as directory:
        url = _sqlite_url(directory)
        upgrade(url)

        async def run() -> float:
            engine = create_engine(url)
            try:
                await build_national(engine)
                sessions = session_factory(engine)
                return statistics.median([(await planner_once(sessions))[0] for _ in range(rounds)])
            finally:
                await engine.dispose()

        return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline-rounds", type=int, default=1)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        url = args.database_url or _sqlite_url(directory)
        upgrade(url)
        result = asyncio.run(measure(url, rounds=args.rounds, baseline_rounds=args.baseline_rounds))
    counts = result["counts"]
    print(
        f"data set: {counts['region']} pemda, {counts['office']} offices, "
        f"{counts['assignment']} assignments, {counts['contact']} contacts, "
        f"{counts['submission']} reports of {ACTIVE}"
    )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'':10} {'median s':>9} {'cpu s':>7} {'recipients':>11}")
    print(
        f"{'planner':10} {result['planner_s']:9.3f} {result['planner_cpu_s']:7.3f} "
        f"{result['planner_due']:11d}"
    )
    print(
        f"{'baseline':10} {result['baseline_s']:9.3f} {result['baseline_cpu_s']:7.3f} "
        f"{result['baseline_due']:11d}  (per-office query loop; focal points only)"
    )
    print(
        f"target: planner under 1 s; {result['baseline_s'] / result['planner_s']:.1f}x faster "
        "than the baseline"
    )
    print(
        json.dumps(
            {
                "planner_national_s": round(result["planner_s"], 4),
                "baseline_planner_national_s": round(result["baseline_s"], 4),
                "planner_national_cpu_s": round(result["planner_cpu_s"], 4),
                "baseline_planner_national_cpu_s": round(result["baseline_cpu_s"], 4),
                "planner_messages": result["planner_due"],
                "database": "postgresql" if args.database_url else "sqlite",
            }
        )
    )


if __name__ == "__main__":
    main()
