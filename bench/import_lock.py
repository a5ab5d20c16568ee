"""Benchmark how long a contacts import keeps the bot waiting for SQLite's write lock (#13 item 18).

    .venv/bin/python bench/import_lock.py [--regions 514] [--offices 20] [--contacts 2]

A national-size contacts document (one province per 14 kabupaten/kota, ``--offices`` OPD per
region, ``--contacts`` focal points per OPD) is imported into a fresh SQLite file twice:

* baseline: in one transaction (what `laporham contacts import` did before), and
* batched: as the CLI does now, storage.db.batched_writes with the importer's checkpoints.

Meanwhile "the bot" (a second connection with the default 30 s busy timeout) writes one small
transaction every 50 ms and records how long each waited. Printed: import time, the bot's
longest and 99th-percentile wait, for both, and their ratio. Nothing here is an assertion:
the figures are compared side by side, measured in the same run. The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage import inbox
from storage.db import (
    batched_writes,
    create_engine,
    session_factory,
    transaction,
)
from storage.importers import contacts_doc_from_rows, import_contacts
from storage.importers.common import BATCH_ROWS
from storage.importers.contacts_format import ContactsDoc
from storage.migrate import upgrade_async

BOT_INTERVAL = 0.05


def national(regions: int, offices: int, contacts: int) -> ContactsDoc:
    rows: dict[str, list[dict[str, Any]]] = {"Wilayah": [], "OPD": [], "Kontak": []}
    number = 0
    provinces = max(1, regions // 14)
    for p in range(provinces):
        rows["Wilayah"].append({"kode": f"{p + 11}", "nama": f"Provinsi {p}", "jenis": "provinsi"})
    for r in range(regions):
        province = f"{r % provinces + 11}"
        region = f"{province}.{r // provinces + 1:02d}"
        rows["Wilayah"].append(
            {"kode": region, "nama": f"Kab {r}", "jenis": "kabkota", "induk": province}
        )
        for o in range(offices):
            rows["OPD"].append({"wilayah": region, "kode": f"OPD{o}", "nama": f"OPD {o}"})
            for _ in range(contacts):
                number += 1
                rows["Kontak"].append(
                    {
                        "nama": f"Operator {number}",
                        "telepon": f"0812{number:08d}",
                        "peran": "focal point",
                        "wilayah": region,
                        "opd": f"OPD{o}",
                    }
                )
    doc = contacts_doc_from_rows(rows)
    if doc.problems:
        raise SystemExit(f"bench data has problems: {doc.problems[:3]}")
    return doc


async def bot(url: str, stop: asyncio.Event, waits: list[float]) -> None:
    engine = create_engine(url)
    sessions = session_factory(engine)
    n = 0
    try:
        while not stop.is_set():
            started = time.perf_counter()
            async with transaction(sessions) as session:
                await inbox.claim_inbound(session=session, channel="telegram", message_id=f"b{n}")
            waits.append(time.perf_counter() - started)
            n += 1
            await asyncio.sleep(BOT_INTERVAL)
    finally:
        await engine.dispose()


async def run(doc: ContactsDoc, *, batched: bool, batch_rows: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{directory}/bench.db"
        await upgrade_async(url)
        engine = create_engine(url)
        sessions = session_factory(engine)
        stop, waits = asyncio.Event(), []
        writer = asyncio.create_task(bot(url, stop, waits))
        await asyncio.sleep(0.3)  # the bot is writing before the import starts
        started = time.perf_counter()
        if batched:
            async with batched_writes(sessions) as (session, checkpoint):
                await import_contacts(
                    doc, session=session, checkpoint=checkpoint, batch_rows=batch_rows
                )
        else:
            async with transaction(sessions) as session:
                await import_contacts(doc, session=session)
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.3)
        stop.set()
        await writer
        await engine.dispose()
    waits.sort()
    return {
        "import_s": elapsed,
        "bot_max_wait_s": waits[-1],
        "bot_p99_wait_s": waits[int(len(waits) * 0.99) - 1] if len(waits) > 1 else waits[-1],
        "bot_median_wait_s": statistics.median(waits),
        "bot_writes": len(waits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regions", type=int, default=514)
    parser.add_argument("--offices", type=int, default=20)
    parser.add_argument("--contacts", type=int, default=2)
    parser.add_argument("--batch-rows", type=int, default=BATCH_ROWS)
    args = parser.parse_args()
    doc = national(args.regions, args.offices, args.contacts)
    print(f"{doc.row_count} rows (regions, offices, contacts)")
    baseline = asyncio.run(run(doc, batched=False, batch_rows=args.batch_rows))
    batched = asyncio.run(run(doc, batched=True, batch_rows=args.batch_rows))
    print(f"{'':22} {'one transaction':>16} {'batched':>10}")
    for key in ("import_s", "bot_max_wait_s", "bot_p99_wait_s", "bot_median_wait_s"):
        print(f"{key:22} {baseline[key]:16.3f} {batched[key]:10.3f}")
    figures = {
        "rows": doc.row_count,
        "batch_rows": args.batch_rows,
        "baseline": baseline,
        "batched": batched,
        "max_wait_ratio": batched["bot_max_wait_s"] / baseline["bot_max_wait_s"],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
