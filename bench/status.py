"""Benchmark oversight at national scale (issue 15): /status, /belum and the recap workbook.

    .venv/bin/python bench/status.py [--rounds 20] [--no-postgres]

The data set: 38 provinces and 514 kabupaten/kota (552 pemda, the largest province with 38),
10 offices each, 6 actions with a measure in each of 3 periods (10 questions, 8 of them
required, and 3 evidence requirements per measure), ~10,000 reports over the three periods
with ~100,000 answers and ~50,000 evidence rows; a focal point per office, a coordinator per
pemda, a Kanwil per province, an admin. B08 is the open period. Built with bulk inserts on a
SQLite file, then again on PostgreSQL in a database of its own (created beside
laporham_h_status_bench_<pid> on 127.0.0.1:5432, dropped at the end; skipped when no server
answers).

Timed, each `--rounds` times, through the real engine (inbox claim, state, handler, outbox
rows, commit) as the users would send them: /status for the admin (the country), the Kanwil
of the largest province, a kabupaten/kota coordinator; /belum for that province. Beside each,
a baseline in the same run:
* /status of the admin and the Kanwil: the per-report way (period_reports, a row per report
  read into Python, then figures per province or pemda: what these views did before the
  database added the figures up, issue 15), the read and the figures alone, without the
  engine's turn; `--old-status` adds the status query of the first version
  (storage.oversight.status_counts, one count per region and period: for the admin 3 rounds
  only, it takes seconds on SQLite and about 100 s a round on PostgreSQL);
* /status of the coordinator: that old status query for the same contact;
* /belum: the naive per-report way, the report flow's own completeness check
  (storage.reports.walk + completeness) for each report of the province;
* the workbook: the one read behind it (period_reports for the country), to show what share
  of the time is the query and what the file.

`--pg-rounds` sets the rounds of the PostgreSQL pass (default: `--rounds`); `--pg-database`
the existing database the bench connects to to create (and drop) its own. After the bulk load
PostgreSQL's statistics are gathered (ANALYZE), as autovacuum does within a minute of it.

Target: every status answer under 200 ms p95, the national workbook under 10 s. The last line
is one JSON object. export_peak_rss_mb is bench/export.py's figure (a fresh process exporting
--export-mb of evidence, 2 GB by default, from SQLite; pg_export_peak_rss_mb stays null: the
export streams files, the database is read once); --export-mb 0 skips it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.dispatch import Engine
from bot.engine.events import TextReceived
from handlers.router import route, wants_file
from storage import oversight, reports
from storage.db import create_engine, session_factory
from storage.evidence import LocalEvidenceStore
from storage.migrate import upgrade_async
from storage.models import (
    Action,
    ActionLevel,
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
    ProgrammeKind,
    Question,
    QuestionKind,
    Region,
    RegionKind,
    Role,
    Submission,
    SubmissionStatus,
)
from storage.recap import recap_workbook
from tests.support.fake_channel import FakeChannel

PROVINCES = 38
KABKOTA = 514
LARGEST_PROVINCE = 38  # kabupaten/kota of the first province (Jawa Timur has 38)
OFFICES = 10
ACTIONS = 6
QUESTIONS = 10
REQUIRED_QUESTIONS = 8
REQUIREMENTS = 3
PERIODS = ("B04", "B08", "B12")
REPORT_SHARE = 1.0  # of assignments with a report (sent or a draft) in a period
TARGET_P95_MS = 200.0
TARGET_WORKBOOK_S = 10.0
PG_BENCH_PREFIX = "laporham_h_status"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
CHUNK = 5_000


def table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


@dataclass
class Seeded:
    admin_key: str
    kanwil_key: str
    coordinator_key: str
    admin: Contact
    kanwil: Contact
    coordinator: Contact
    province_id: int
    period_id: int
    counts: dict[str, int]


async def bulk(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    connection = await session.connection()
    for start in range(0, len(rows), CHUNK):
        await connection.execute(insert(table(model)), rows[start : start + CHUNK])


async def seed(sessions: async_sessionmaker[AsyncSession], now: datetime) -> Seeded:
    """The national data set, ids assigned here so the rows can go in bulk."""
    rng = random.Random(15)
    today = now.date()
    regions: list[dict[str, Any]] = []
    kabkota_of: dict[int, list[int]] = {}
    region_id = 0
    for p in range(PROVINCES):
        region_id += 1
        province = region_id
        regions.append(
            {"id": province, "code": f"{p + 11}", "name": f"Provinsi {p + 1:02d}",
             "kind": RegionKind.provinsi, "parent_id": None, "timezone": "Asia/Jakarta"}
        )  # fmt: skip
        share = LARGEST_PROVINCE if p == 0 else (KABKOTA - LARGEST_PROVINCE) // (PROVINCES - 1)
        if p == PROVINCES - 1:
            share = KABKOTA - sum(len(v) for v in kabkota_of.values())
        kabkota_of[province] = []
        for k in range(share):
            region_id += 1
            kabkota_of[province].append(region_id)
            regions.append(
                {"id": region_id, "code": f"{p + 11}.{k + 1:02d}",
                 "name": f"Kabupaten {p + 1:02d}-{k + 1:02d}", "kind": RegionKind.kabkota,
                 "parent_id": province, "timezone": "Asia/Jakarta"}
            )  # fmt: skip
    offices = [
        {"id": (r["id"] - 1) * OFFICES + o + 1, "region_id": r["id"], "code": f"OPD{o}",
         "name": f"Dinas {o} {r['name']}"}
        for r in regions
        for o in range(OFFICES)
    ]  # fmt: skip
    periods = [
        {"id": n + 1, "programme_id": 1, "code": code, "title": f"Periode {code}", "position": n,
         "opens_on": today + timedelta(days=-3 + 120 * (n - 1)),
         "due_on": today + timedelta(days=4 + 120 * (n - 1))}
        for n, code in enumerate(PERIODS)
    ]  # fmt: skip
    actions = [
        {"id": a + 1, "programme_id": 1, "code": f"AK-{a + 1:02d}", "level": ActionLevel.kabkota,
         "title": f"Aksi nasional nomor {a + 1}", "position": a}
        for a in range(ACTIONS)
    ]  # fmt: skip
    measures, questions, requirements = [], [], []
    for action in actions:
        for period in periods:
            measure_id = len(measures) + 1
            measures.append(
                {"id": measure_id, "action_id": action["id"], "period_id": period["id"],
                 "code": period["code"], "title": "Ukuran", "position": 0}
            )  # fmt: skip
            for q in range(QUESTIONS):
                questions.append(
                    {"id": len(questions) + 1, "measure_id": measure_id, "code": f"q{q}",
                     "position": q, "text": "Berapa?", "kind": QuestionKind.integer,
                     "required": q < REQUIRED_QUESTIONS}
                )  # fmt: skip
            for e in range(REQUIREMENTS):
                requirements.append(
                    {"id": len(requirements) + 1, "measure_id": measure_id, "code": f"e{e}",
                     "position": e, "label": f"Data dukung {e + 1}", "kinds": ["pdf"],
                     "min_count": 1}
                )  # fmt: skip
    assignments = [
        {"action_id": a + 1, "office_id": (r["id"] - 1) * OFFICES + a + 1}
        for r in regions
        for a in range(ACTIONS)
    ]
    questions_of = {
        (m["action_id"], m["period_id"]): [q for q in questions if q["measure_id"] == m["id"]]
        for m in measures
    }
    requirements_of = {
        (m["action_id"], m["period_id"]): [e for e in requirements if e["measure_id"] == m["id"]]
        for m in measures
    }
    submissions, answers, files = [], [], []
    for period in periods:
        for assignment in assignments:
            if rng.random() > REPORT_SHARE:
                continue
            submission_id = len(submissions) + 1
            sent = rng.random() < 0.6
            submissions.append(
                {"id": submission_id, "action_id": assignment["action_id"],
                 "office_id": assignment["office_id"], "period_id": period["id"],
                 "status": SubmissionStatus.submitted if sent else SubmissionStatus.draft,
                 "version": 1, "revision_open": False, "created_at": now, "updated_at": now,
                 "submitted_at": now if sent else None}
            )  # fmt: skip
            key = (assignment["action_id"], period["id"])
            given = questions_of[key] if sent else questions_of[key][: rng.randint(3, QUESTIONS)]
            for q in given:
                answers.append(
                    {"submission_id": submission_id, "question_id": q["id"],
                     "value": "nihil" if rng.random() < 0.02 else str(rng.randint(0, 500)),
                     "answered_at": now}
                )  # fmt: skip
            for e in requirements_of[key]:
                for _ in range(rng.randint(1, 3) if sent else rng.randint(0, 2)):
                    files.append(
                        {"submission_id": submission_id, "requirement_id": e["id"],
                         "sha256": "a" * 64, "detected_mime": "application/pdf", "kind": "pdf",
                         "size": 1000, "storage_key": "aa/" + "a" * 64 + ".pdf",
                         "received_at": now}
                    )  # fmt: skip
    contacts = [
        {"id": o["id"], "name": f"Fokal {o['id']}", "phone": f"+62812{o['id']:08d}",
         "role": Role.focal_point, "region_id": o["region_id"], "office_id": o["id"],
         "language": "id", "active": True, "created_at": now, "updated_at": now}
        for o in offices
    ]  # fmt: skip
    base = len(contacts)
    province_id = regions[0]["id"]
    kabkota_id = kabkota_of[province_id][0]
    overseers = [
        ("admin", Role.admin, None),
        ("kanwil", Role.kanwil, province_id),
        ("coordinator", Role.coordinator, kabkota_id),
    ]
    for n, (name, role, region) in enumerate(overseers, start=1):
        contacts.append(
            {"id": base + n, "name": name, "phone": f"+62819{n:08d}", "role": role,
             "region_id": region, "office_id": None, "language": "id", "active": True,
             "created_at": now, "updated_at": now}
        )  # fmt: skip
    identities = [
        {"contact_id": base + n, "channel": FakeChannel().name, "external_id": f"boss-{n}",
         "created_at": now}
        for n in range(1, len(overseers) + 1)
    ]  # fmt: skip
    async with sessions() as session:
        await bulk(session, Programme, [{"id": 1, "code": "aksi-ham-bench",
                                         "kind": ProgrammeKind.aksi_ham, "year": today.year,
                                         "title": "Aksi HAM bench"}])  # fmt: skip
        for model, rows in (
            (Region, regions),
            (Office, offices),
            (Period, periods),
            (Action, actions),
            (Measure, measures),
            (Question, questions),
            (EvidenceRequirement, requirements),
            (Assignment, assignments),
            (Contact, contacts),
            (ChannelIdentity, identities),
            (Submission, submissions),
            (Answer, answers),
            (EvidenceFile, files),
        ):
            await bulk(session, model, rows)
        await session.commit()
        people = [await session.get(Contact, base + n) for n in range(1, 4)]
    await _reset_sequences(sessions)
    return Seeded(
        admin_key="boss-1",
        kanwil_key="boss-2",
        coordinator_key="boss-3",
        admin=people[0],
        kanwil=people[1],
        coordinator=people[2],
        province_id=province_id,
        period_id=2,
        counts={
            "pemda": len(regions),
            "offices": len(offices),
            "reports": len(submissions),
            "answers": len(answers),
            "evidence": len(files),
        },
    )


async def _reset_sequences(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Ids were given in bulk: PostgreSQL's sequences must move past them (inbox, outbox and
    state rows are inserted by the engine while timing), and its statistics be gathered."""
    async with sessions() as session:
        connection = await session.connection()
        if connection.dialect.name != "postgresql":
            return
        from sqlalchemy import text

        for name in ("region", "office", "period", "action", "measure", "question",
                     "evidence_requirement", "contact", "submission", "programme"):  # fmt: skip
            sequence = f"pg_get_serial_sequence('{name}', 'id')"
            await connection.execute(
                text(f"SELECT setval({sequence}, (SELECT MAX(id) FROM {name}))")
            )
        await session.commit()
        # Planner statistics, as autovacuum gathers them within a minute of a bulk load: timed
        # at once without them, PostgreSQL plans the joins for empty tables (several times
        # slower than any database in use would be).
        await (await session.connection()).execute(text("ANALYZE"))
        await session.commit()


# --------------------------------------------------------------------------- timing


class Samples(list[float]):
    """Wall time of each round (s), and in `cpu` this process's CPU time of each (ours and
    SQLite's threads; not PostgreSQL's server): steadier than wall time on a loaded machine."""

    def __init__(self) -> None:
        super().__init__()
        self.cpu: list[float] = []


async def timed(rounds: int, work: Callable[[], Awaitable[object]]) -> Samples:
    await work()  # warm: caches, prepared statements
    times = Samples()
    for _ in range(rounds):
        started, cpu = time.perf_counter(), time.process_time()
        await work()
        times.append(time.perf_counter() - started)
        times.cpu.append(time.process_time() - cpu)
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


@dataclass
class Row:
    name: str
    times: Samples
    baseline_name: str
    baseline: Samples


async def run_on(
    url: str, workdir: Path, rounds: int, *, old_status: bool
) -> tuple[list[Row], float, float, dict]:
    now = datetime.now(UTC)
    await upgrade_async(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    try:
        started = time.perf_counter()
        seeded = await seed(sessions, now)
        print(f"  seeded {seeded.counts} in {time.perf_counter() - started:.1f} s")
        channel = FakeChannel()
        bot = Engine(
            sessions=sessions,
            channels={channel.name: channel},
            router=route,
            wants_file=wants_file,
            evidence_store=LocalEvidenceStore(workdir / "evidence"),
            max_upload_bytes=20 * 1024 * 1024,
        )
        counter = iter(range(10**9))

        def ask(user: str, text: str, *, cold: bool = True) -> Callable[[], Awaitable[object]]:
            """Cold: the country's cached read (see NATIONAL_CACHE_SECONDS) forgotten first,
            as for the first /status of an admin; warm: as when they page through it."""

            async def send() -> None:
                if cold:
                    oversight.forget_national_reports()
                n = next(counter)
                event = TextReceived(
                    channel=channel.name, user_key=user, chat_id=user,
                    message_id=f"bench-{n}", text=text,
                )  # fmt: skip
                assert await bot.handle(event)  # the answer is in the outbox, committed

            return send

        def old_status_query(contact: Contact) -> Callable[[], Awaitable[object]]:
            async def query() -> None:
                async with sessions() as session:
                    await oversight.status_counts(session=session, contact=contact, now=now)

            return query

        async def naive_pending() -> None:
            """The report flow's completeness check, report by report, for the province."""
            async with sessions() as session:
                region = await session.get(Region, seeded.province_id)
                assert region is not None
                scope = await oversight.region_scope(session=session, region=region)
                period = await session.get(Period, seeded.period_id)
                assert period is not None
                found = await oversight.period_reports(session=session, period=period, scope=scope)
                for row in found.reports:
                    submission = (
                        await session.exec(
                            select(Submission).where(
                                Submission.action_id == row.action_id,
                                Submission.office_id == row.office_id,
                                Submission.period_id == period.id,
                            )
                        )
                    ).first()
                    items = await reports.walk(
                        session=session, action_id=row.action_id, period_id=period.id or 0
                    )
                    if submission is not None:
                        await reports.completeness(
                            session=session, submission_id=submission.id or 0, items=items
                        )

        def per_report(contact: Contact) -> Callable[[], Awaitable[object]]:
            """What /status of the country or a province did before issue 15: every report of
            the scope read into Python (the country's cache forgotten), figures per group."""

            async def read_and_add_up() -> None:
                oversight.forget_national_reports()
                async with sessions() as session:
                    scope = await oversight.scope_of(session=session, contact=contact)
                    period = await session.get(Period, seeded.period_id)
                    assert period is not None
                    found = await oversight.period_reports(
                        session=session, period=period, scope=scope
                    )
                    oversight.figures(found, found.reports, now)
                    groups = (
                        oversight.by_province(found)
                        if scope.everywhere
                        else oversight.by_region(found.reports)
                    )
                    for rows in groups.values():
                        oversight.figures(found, rows, now)

            return read_and_add_up

        async def national_read() -> PeriodReadResult:
            oversight.forget_national_reports()
            async with sessions() as session:
                period = await session.get(Period, seeded.period_id)
                assert period is not None
                return await oversight.period_reports(
                    session=session, period=period, scope=oversight.Scope(None),
                    with_focal_points=True,
                )  # fmt: skip

        async def national_workbook() -> None:
            found = await national_read()
            await asyncio.to_thread(recap_workbook, found, now=now)

        rows = [
            Row("/status admin (country)", await timed(rounds, ask(seeded.admin_key, "/status")),
                "per-report read", await timed(rounds, per_report(seeded.admin))),
            Row("/status admin again",
                await timed(rounds, ask(seeded.admin_key, "/status", cold=False)),
                "", Samples()),
            Row("/status Kanwil (38 kab/kota)",
                await timed(rounds, ask(seeded.kanwil_key, "/status")),
                "per-report read", await timed(rounds, per_report(seeded.kanwil))),
            Row("/status coordinator (pemda)",
                await timed(rounds, ask(seeded.coordinator_key, "/status")),
                "old status_counts", await timed(rounds, old_status_query(seeded.coordinator))),
            Row("/belum Kanwil (province)", await timed(rounds, ask(seeded.kanwil_key, "/belum")),
                "naive per report", await timed(max(3, rounds // 4), naive_pending)),
        ]  # fmt: skip
        if old_status:
            rows += [
                Row("(first version) admin", Samples(), "old status_counts",
                    await timed(3, old_status_query(seeded.admin))),
                Row("(first version) Kanwil", Samples(), "old status_counts",
                    await timed(rounds, old_status_query(seeded.kanwil))),
            ]  # fmt: skip
        await check_answers(sessions, [seeded.admin_key, seeded.kanwil_key, seeded.coordinator_key])
        workbook_times = await timed(3, national_workbook)
        read_times = await timed(3, national_read)
        return rows, statistics.median(workbook_times), statistics.median(read_times), seeded.counts
    finally:
        await engine.dispose()


PeriodReadResult = oversight.PeriodReports


async def check_answers(sessions: async_sessionmaker[AsyncSession], users: list[str]) -> None:
    """What was timed answered for real: each user's last reply is a status view or a list,
    never the apology of a failed handler."""
    async with sessions() as session:
        for user in users:
            row = (
                await session.exec(
                    select(OutboxMessage)
                    .where(OutboxMessage.recipient == user)
                    .order_by(col(OutboxMessage.id).desc())
                )
            ).first()
            text = str(row.payload.get("text", "")) if row else ""
            assert "Status" in text or "Belum" in text, (user, text[:200])


def _figures(times: Samples) -> str:
    """p50 and p95 of the wall time and p50 of the CPU time, in ms; blank without samples."""
    if not times:
        return f"{'':8} {'':8} {'':8}"
    return (
        f"{statistics.median(times) * 1000:8.1f} {p95(times) * 1000:8.1f}"
        f" {statistics.median(times.cpu) * 1000:8.1f}"
    )


def report(label: str, rows: list[Row], workbook_s: float, read_s: float) -> None:
    print(f"\n{label}")
    print(f"{'':32} {'p50 ms':>8} {'p95 ms':>8} {'cpu p50':>8}   {'baseline':<20} "
          f"{'p50 ms':>8} {'p95 ms':>8} {'cpu p50':>8}")  # fmt: skip
    for row in rows:
        print(f"{row.name:32} {_figures(row.times)}   {row.baseline_name:<20} "
              f"{_figures(row.baseline)}".rstrip())  # fmt: skip
    print(f"{'national workbook (552 sheets)':32} {workbook_s:8.2f} s   "
          f"{'of which the read':<20} {read_s:8.2f} s")  # fmt: skip


def figures(rows: list[Row], workbook_s: float, prefix: str = "") -> dict[str, Any]:
    names = ["status_admin_p95_ms", "status_admin_again_p95_ms", "status_kanwil_p95_ms",
             "status_coordinator_p95_ms", "belum_p95_ms"]  # fmt: skip
    result: dict[str, Any] = {
        f"{prefix}{name}": round(p95(row.times) * 1000, 1)
        for name, row in zip(names, rows[: len(names)], strict=True)
    }
    for name, row in zip(names, rows[: len(names)], strict=True):
        cpu_name = name.replace("_p95_ms", "_cpu_p50_ms")
        result[f"{prefix}{cpu_name}"] = round(statistics.median(row.times.cpu) * 1000, 1)
    result[f"{prefix}status_admin_per_report_baseline_p95"] = round(p95(rows[0].baseline) * 1000, 1)
    result[f"{prefix}workbook_national_s"] = round(workbook_s, 2)
    result[f"{prefix}export_peak_rss_mb"] = None
    return result


async def pg_admin(sql: str, database: str) -> None:
    connection = await asyncpg.connect(**PG, database=database, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def main() -> tuple[dict[str, Any], int]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--export-mb", type=int, default=2048, help="0: no export figure")
    parser.add_argument("--pg-rounds", type=int, help="rounds on PostgreSQL (default: --rounds)")
    parser.add_argument("--pg-database", default="postgres", help="existing database to connect to")
    parser.add_argument(
        "--old-status", action="store_true", help="also time the first version's status query"
    )
    args = parser.parse_args()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        print("SQLite")
        rows, workbook_s, read_s, _ = await run_on(
            f"sqlite+aiosqlite:///{workdir / 'status.db'}",
            workdir,
            args.rounds,
            old_status=args.old_status,
        )
        report("SQLite", rows, workbook_s, read_s)
        result.update(figures(rows, workbook_s))
        pg_rows = None
        if not args.no_postgres:
            try:
                await pg_admin("SELECT 1", args.pg_database)
            except (OSError, TimeoutError, asyncpg.PostgresError) as error:
                print(f"NOTICE: no PostgreSQL on 127.0.0.1:5432 ({error!r}); skipped.",
                      file=sys.stderr)  # fmt: skip
            else:
                name = f"{PG_BENCH_PREFIX}_bench_{os.getpid()}"
                await pg_admin(f"CREATE DATABASE {name}", args.pg_database)
                try:
                    print("\nPostgreSQL")
                    url = f"postgresql+asyncpg://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
                    pg_rows, pg_workbook, pg_read, _ = await run_on(
                        url, workdir, args.pg_rounds or args.rounds, old_status=args.old_status
                    )
                    report("PostgreSQL", pg_rows, pg_workbook, pg_read)
                    result.update(figures(pg_rows, pg_workbook, "pg_"))
                finally:
                    await pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", args.pg_database)
        if pg_rows is None:
            result.update({f"pg_{key}": None for key in figures(rows, workbook_s)})
    worst = max(v for k, v in result.items() if k.endswith("_p95_ms") and v is not None)
    print(f"\ntarget: every status answer p95 < {TARGET_P95_MS:.0f} ms (worst {worst:.0f} ms); "
          f"national workbook < {TARGET_WORKBOOK_S:.0f} s")  # fmt: skip
    return result, args.export_mb


if __name__ == "__main__":
    figures_by_key, export_mb = asyncio.run(main())
    if export_mb:
        # Its own child process and event loops: measured outside this one.
        from bench.export import export_peak_rss_mb

        figures_by_key["export_peak_rss_mb"] = export_peak_rss_mb(export_mb)
        print(f"evidence export of {export_mb} MB: peak RSS "
              f"{figures_by_key['export_peak_rss_mb']} MB (target < 200 MB)")  # fmt: skip
    print(json.dumps(figures_by_key))
