"""Benchmark /rekap off the chat turn (issue 15): how long another user's write waits while a
national recap is made, the old way (drawn inside the turn's write transaction) beside the new
(the turn records a request; the recap-requests job draws outside any transaction).

    .venv/bin/python bench/recap.py [--rounds 3]

The data set is bench/status.py's (552 pemda, ~10,000 reports), on a SQLite file, where the
turn's transaction holds the one write lock. Each round, while the recap is made, "another
user" writes a small row every 20 ms in a transaction of its own; its waits are the figure.
Baseline, in the same run: the old path, reproduced as it was (the national read, the chart
and the workbook on worker threads, both files stored, all inside one write transaction).
New: /rekap through the real engine (the turn), then one run of the job. CPU seconds are the
process's (all threads); wall seconds depend on the machine's load. The last line is JSON.
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
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.status import seed
from bot.engine.dispatch import Engine
from bot.engine.events import TextReceived
from handlers.router import route, wants_file
from scheduler.recaps import RecapJob
from storage import oversight
from storage.db import create_engine, session_factory, transaction
from storage.evidence import LocalEvidenceStore
from storage.migrate import upgrade_async
from storage.models import Period
from storage.recap import Bar, recap_chart, recap_workbook
from tests.support.fake_channel import FakeChannel

WRITE_EVERY_S = 0.02

Sessions = async_sessionmaker[AsyncSession]


async def while_writing(
    sessions: Sessions, work: Callable[[], Awaitable[object]], label: str
) -> tuple[float, float, list[float]]:
    """Run `work` while another user writes every 20 ms: (wall s, CPU s, each write's wait)."""
    waits: list[float] = []
    stop = asyncio.Event()
    counter = iter(range(10**9))

    async def other_user() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            async with transaction(sessions) as session:
                await session.exec(
                    text(
                        "INSERT INTO inbox_message (channel, message_id, status, received_at)"
                        " VALUES ('console', :id, 'processed', :now)"
                    ),
                    params={"id": f"{label}-{next(counter)}", "now": datetime.now(UTC)},
                )
            waits.append(time.perf_counter() - started)
            await asyncio.sleep(WRITE_EVERY_S)

    writer = asyncio.create_task(other_user())
    await asyncio.sleep(WRITE_EVERY_S * 3)  # the writer is going
    wall, cpu = time.perf_counter(), time.process_time()
    await work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stop.set()
    await writer
    return wall, cpu, waits


async def run(rounds: int, workdir: Path) -> dict[str, Any]:
    url = f"sqlite+aiosqlite:///{workdir / 'recap.db'}"
    now = datetime.now(UTC)
    await upgrade_async(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    store = LocalEvidenceStore(workdir / "evidence")
    try:
        started = time.perf_counter()
        seeded = await seed(sessions, now)
        print(f"seeded {seeded.counts} in {time.perf_counter() - started:.1f} s")
        channel = FakeChannel()
        bot = Engine(
            sessions=sessions,
            channels={channel.name: channel},
            router=route,
            wants_file=wants_file,
            evidence_store=store,
            max_upload_bytes=20 * 1024 * 1024,
        )
        job = RecapJob(sessions=sessions, store=store, owner="bench")
        counter = iter(range(10**9))

        async def old_turn() -> None:
            """What /rekap did before: everything inside the event's write transaction."""
            oversight.forget_national_reports()
            async with transaction(sessions) as session:
                period = await session.get(Period, seeded.period_id)
                assert period is not None
                found = await oversight.period_reports(
                    session=session, period=period, scope=oversight.Scope(None),
                    with_focal_points=True,
                )  # fmt: skip
                groups = oversight.by_province(found)
                bars = [
                    Bar(found.regions[rid].name, oversight.figures(found, rows, now).score.points)
                    for rid, rows in groups.items()
                ]
                chart = await asyncio.to_thread(
                    recap_chart, bars, title="Rekap", subtitle="", axis_label=""
                )
                workbook = await asyncio.to_thread(recap_workbook, found, now=now)
                await store.put(chart, extension="png")
                await store.put(workbook, extension="xlsx")

        async def new_turn() -> None:
            oversight.forget_national_reports()
            event = TextReceived(
                channel=channel.name, user_key=seeded.admin_key, chat_id=seeded.admin_key,
                message_id=f"bench-{next(counter)}", text="/rekap",
            )  # fmt: skip
            assert await bot.handle(event)

        async def new_job() -> None:
            assert await job.run() == 1

        results: dict[str, list[tuple[float, float, list[float]]]] = {
            "old": [], "new_turn": [], "new_job": []
        }  # fmt: skip
        await old_turn()  # warm: imports, fonts, caches
        for round_ in range(rounds):
            results["old"].append(await while_writing(sessions, old_turn, f"old{round_}"))
            results["new_turn"].append(await while_writing(sessions, new_turn, f"turn{round_}"))
            results["new_job"].append(await while_writing(sessions, new_job, f"job{round_}"))
    finally:
        await engine.dispose()
    figures: dict[str, Any] = {}
    print(f"\n{'national /rekap (SQLite)':34} {'wall s':>8} {'CPU s':>8} "
          f"{'writes':>7} {'max wait ms':>12} {'median ms':>10}")  # fmt: skip
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        waits = [w for r in runs for w in r[2]]
        worst = max(waits) * 1000
        median = statistics.median(waits) * 1000
        label = {
            "old": "baseline: drawn in the turn",
            "new_turn": "new: the turn (request only)",
            "new_job": "new: the job (drawn outside)",
        }[name]
        print(f"{label:34} {wall:8.2f} {cpu:8.2f} {len(waits):7d} {worst:12.1f} {median:10.1f}")
        figures |= {
            f"{name}_wall_s": round(wall, 3),
            f"{name}_cpu_s": round(cpu, 3),
            f"{name}_other_write_max_ms": round(worst, 1),
            f"{name}_other_write_median_ms": round(median, 1),
        }
    return figures


async def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as directory:
        return await run(args.rounds, Path(directory))


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
