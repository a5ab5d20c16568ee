"""Benchmark the evidence export (`laporham export evidence`): peak memory and throughput.

    .venv/bin/python bench/export.py [--size-mb 2048] [--file-mb 4] [--baseline-mb 256]

A temporary SQLite database and evidence store get SIZE_MB of distinct generated blobs of
FILE_MB each (random bytes: nothing compresses, as with real photos and PDFs), spread over
10 kabupaten/kota x 2 actions of one submitted period. Setup is untimed.

* export: a fresh child process plans and writes the whole archive with
  ``write_evidence_archive`` (pieces streamed from the store into the ZIP). Its peak RSS is its
  own VmHWM from /proc/self/status (ru_maxrss would inherit this parent's high-water mark).
* baseline: a fresh child that does what a naive export does, on BASELINE_MB of the same blobs:
  ``store.get`` each file whole and ``zipfile`` into an in-memory buffer, then write it out. Its
  growth is scaled to SIZE_MB (it grows with the data: that is the point of measuring it).

Target (issue #15): the export's peak under 200 MB for 2 GB. The last line printed is one JSON
object: {"export_peak_rss_mb", "baseline_peak_rss_mb", "export_mb_per_s"}.
``export_peak_rss_mb(size_mb)`` gives the first figure alone, for bench/status.py.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

# Allow running as a plain script from the repository root or from bench/.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from storage.db import create_engine, session_factory  # noqa: E402
from storage.evidence import LocalEvidenceStore  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import (  # noqa: E402
    Action,
    ActionLevel,
    EvidenceFile,
    EvidenceRequirement,
    Measure,
    Office,
    Period,
    Programme,
    ProgrammeKind,
    Region,
    RegionKind,
    Submission,
    SubmissionStatus,
)

REGIONS = 10
ACTIONS = 2
TARGET_MB = 200

PEAK = """
def peak_mb():
    status = open("/proc/self/status").read()
    return next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmHWM")) / 1024
"""

EXPORT_CHILD = PEAK + """
import asyncio, json, sys, time
from pathlib import Path
from storage.db import create_engine, session_factory  # noqa: E402
from storage.evidence import LocalEvidenceStore
from storage.evidence_export import evidence_plan, write_evidence_archive

async def main(url, root, target):
    start_mb = peak_mb()
    started = time.perf_counter()
    engine = create_engine(url)
    async with session_factory(engine)() as session:
        plan = await evidence_plan(session=session, period_code="B08")
    await engine.dispose()
    store = LocalEvidenceStore(Path(root))
    result = await write_evidence_archive(plan, store=store, target=Path(target))
    seconds = time.perf_counter() - started
    print(json.dumps({"start_mb": start_mb, "peak_mb": peak_mb(), "seconds": seconds,
                      "files": result.files, "bytes": result.bytes}))

asyncio.run(main(*sys.argv[1:]))
"""

BASELINE_CHILD = PEAK + """
import asyncio, io, json, sys, time, zipfile
from pathlib import Path
from storage.evidence import LocalEvidenceStore

async def main(root, target, keys_file):
    start_mb = peak_mb()
    store = LocalEvidenceStore(Path(root))
    keys = Path(keys_file).read_text().split()
    started = time.perf_counter()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key in keys:
            archive.writestr(key.replace("/", "_"), await store.get(key))
    Path(target).write_bytes(buffer.getvalue())
    seconds = time.perf_counter() - started
    print(json.dumps({"start_mb": start_mb, "peak_mb": peak_mb(), "seconds": seconds}))

asyncio.run(main(*sys.argv[1:]))
"""


async def seed(url: str, root: Path, size_mb: int, file_mb: float) -> list[str]:
    """The catalogue, one submitted report per (kabupaten, action), and the files; returns the
    blob keys in the order they were made."""
    store = LocalEvidenceStore(root)
    engine = create_engine(url)
    keys: list[str] = []
    try:
        async with session_factory(engine)() as session:
            submissions, requirements = await _catalogue(session)
            await session.commit()
            block = os.urandom(int(file_mb * 1024 * 1024))
            count = max(1, round(size_mb / file_mb))
            for index in range(count):
                data = index.to_bytes(8, "big") + block[8:]
                key = await store.put(data, extension="jpg")
                keys.append(key)
                submission = submissions[index % len(submissions)]
                session.add(
                    EvidenceFile(
                        submission_id=submission.id or 0,
                        requirement_id=requirements[submission.action_id],
                        sha256=hashlib.sha256(data).hexdigest(),
                        original_name=f"foto kegiatan {index}.jpg",
                        detected_mime="image/jpeg",
                        kind="photo",
                        size=len(data),
                        storage_key=key,
                        gps_lat=-5.43,
                        gps_lon=105.26,
                        received_at=datetime(2025, 8, 20, 7, 0, tzinfo=UTC),
                    )
                )
            await session.commit()
    finally:
        await engine.dispose()
    return keys


async def _catalogue(session: Any) -> tuple[list[Submission], dict[int, int]]:
    province = Region(code="18", name="Lampung", kind=RegionKind.provinsi)
    programme = Programme(
        code="aksi-ham-2025", kind=ProgrammeKind.aksi_ham, year=2025, title="Aksi HAM 2025"
    )
    session.add_all([province, programme])
    await session.flush()
    period = Period(
        programme_id=programme.id, code="B08", title="Periode B08",
        opens_on=date(2025, 8, 18), due_on=date(2025, 8, 25),
    )  # fmt: skip
    session.add(period)
    await session.flush()
    requirements: dict[int, int] = {}
    actions = []
    for number in range(1, ACTIONS + 1):
        action = Action(
            programme_id=programme.id, code=f"KK-0{number}", level=ActionLevel.kabkota,
            title=f"Aksi {number}",
        )  # fmt: skip
        session.add(action)
        await session.flush()
        measure = Measure(
            action_id=action.id, period_id=period.id, code="B08-1",
            title="Bantuan atau pelatihan telah disalurkan",
        )  # fmt: skip
        session.add(measure)
        await session.flush()
        requirement = EvidenceRequirement(
            measure_id=measure.id, code="foto", label="Foto kegiatan", kinds=["photo"]
        )
        session.add(requirement)
        await session.flush()
        requirements[action.id or 0] = requirement.id or 0
        actions.append(action)
    submissions = []
    for number in range(1, REGIONS + 1):
        region = Region(
            code=f"18.{number:02d}", name=f"Kabupaten {number}", kind=RegionKind.kabkota,
            parent_id=province.id,
        )  # fmt: skip
        session.add(region)
        await session.flush()
        office = Office(region_id=region.id, code="dinsos", name="Dinas Sosial")
        session.add(office)
        await session.flush()
        for action in actions:
            submission = Submission(
                action_id=action.id, office_id=office.id, period_id=period.id,
                status=SubmissionStatus.submitted,
            )  # fmt: skip
            session.add(submission)
            submissions.append(submission)
    await session.flush()
    return submissions, requirements


def child(code: str, *args: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, check=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def prepare(work: Path, size_mb: int, file_mb: float) -> tuple[str, Path, list[str]]:
    url = f"sqlite+aiosqlite:///{work / 'bench.db'}"
    upgrade(url)
    root = work / "evidence"
    keys = asyncio.run(seed(url, root, size_mb, file_mb))
    return url, root, keys


def run_export(url: str, root: Path, work: Path) -> dict[str, float]:
    target = work / "export.zip"
    figures = child(EXPORT_CHILD, url, str(root), str(target))
    target.unlink()
    return figures


def export_peak_rss_mb(size_mb: float, file_mb: float = 4.0) -> float:
    """Peak RSS (MB) of a fresh process exporting ``size_mb`` of evidence (for bench/status.py)."""
    with tempfile.TemporaryDirectory(prefix="bench-export-") as temp:
        work = Path(temp)
        url, root, _ = prepare(work, int(size_mb), file_mb)
        return round(run_export(url, root, work)["peak_mb"], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=2048, help="evidence to export (MB)")
    parser.add_argument("--file-mb", type=float, default=4.0, help="size of each file (MB)")
    parser.add_argument("--baseline-mb", type=int, default=256, help="naive export's share (MB)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as temp:
        work = Path(temp)
        print(f"generating {args.size_mb} MB in {args.file_mb} MB files ...", flush=True)
        url, root, keys = prepare(work, args.size_mb, args.file_mb)
        export = run_export(url, root, work)
        baseline_mb = min(args.baseline_mb, args.size_mb)
        subset = keys[: max(1, round(baseline_mb / args.file_mb))]
        keys_file = work / "keys.txt"
        keys_file.write_text("\n".join(subset))
        naive = child(BASELINE_CHILD, str(root), str(work / "naive.zip"), str(keys_file))
    naive_scaled = naive["start_mb"] + (naive["peak_mb"] - naive["start_mb"]) * (
        args.size_mb / baseline_mb
    )
    exported_mb = export["bytes"] / (1024 * 1024)
    mb_per_s = exported_mb / export["seconds"]
    print(f"{'':32} {'start MB':>9} {'peak MB':>9} {'MB/s':>8}")
    print(
        f"{'export, ' + str(args.size_mb) + ' MB streamed':32} {export['start_mb']:9.1f} "
        f"{export['peak_mb']:9.1f} {mb_per_s:8.1f}"
    )
    print(
        f"{'naive in memory, ' + str(baseline_mb) + ' MB':32} {naive['start_mb']:9.1f} "
        f"{naive['peak_mb']:9.1f} {baseline_mb / naive['seconds']:8.1f}"
    )
    print(f"{'naive scaled to ' + str(args.size_mb) + ' MB':32} {'':9} {naive_scaled:9.1f}")
    verdict = "meets" if export["peak_mb"] < TARGET_MB else "MISSES"
    print(f"{int(export['files'])} files; export peak {verdict} the target of {TARGET_MB} MB")
    print(
        json.dumps(
            {
                "export_peak_rss_mb": round(export["peak_mb"], 1),
                "baseline_peak_rss_mb": round(naive_scaled, 1),
                "export_mb_per_s": round(mb_per_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
