"""The console channel end to end: `laporham demo` as a subprocess, driven through stdin like
`printf '...' | laporham demo`, on a fresh SQLite file in a fresh directory."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
import yaml
from openpyxl import Workbook
from PIL import Image

from storage.demo import (
    CONTACTS_FILE,
    DEMO_DIR,
    DEMO_FOCAL_POINT_PHONE,
    DEMO_PROGRAMME,
    nearest_period,
)
from tests.support.harness import pdf_bytes

LAPORHAM = Path(sys.executable).parent / "laporham"
TIMEOUT = 60
SEEDED = "Data demo dimuat"
CONSOLE_PHONE = "0" + DEMO_FOCAL_POINT_PHONE.removeprefix("+62")  # 081200000001
FOCAL_REGION, FOCAL_OFFICE = "18.71", "DISKOPUKM"  # storage/demo/contacts.yaml


# --- running the console ----------------------------------------------------------------------


def console_env(directory: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LAPORHAM_TELEGRAM_", "LAPORHAM_WHATSAPP_", "LAPORHAM_DATABASE"))
    }
    env["LAPORHAM_DATABASE_URL"] = f"sqlite+aiosqlite:///{directory}/cli.db"
    env["LAPORHAM_DATA_DIR"] = str(directory / "data")
    env["LAPORHAM_HTTP_PORT"] = "0"
    return env


def run_demo(directory: Path, lines: list[str]) -> subprocess.CompletedProcess[str]:
    """Pipe the lines into `laporham demo`; it must end by itself at end of input."""
    return subprocess.run(
        [str(LAPORHAM), "demo"],
        cwd=directory,
        env=console_env(directory),
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def query(directory: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(directory / "cli.db") as db:
        return db.execute(sql).fetchall()


# --- what the demo focal point has to report today --------------------------------------------


@dataclass
class Walk:
    """The demo focal point's first action of the period seed_demo opens today."""

    period: str
    action_number: int  # its number in the /lapor list
    action_title: str
    measures: list[dict] = field(default_factory=list)

    @property
    def questions(self) -> list[dict]:
        return [q for m in self.measures for q in m.get("questions") or []]


def demo_walk(today: date) -> Walk:
    catalogue = yaml.safe_load(
        (DEMO_DIR / "catalogue-aksi-ham-2025.yaml").read_text(encoding="utf-8")
    )
    assert catalogue["programme"]["code"] == DEMO_PROGRAMME
    contacts = yaml.safe_load((DEMO_DIR / CONTACTS_FILE).read_text(encoding="utf-8"))
    assigned = {
        row["aksi"]
        for row in contacts["Penugasan"]
        if row["program"] == DEMO_PROGRAMME
        and str(row["wilayah"]) == FOCAL_REGION
        and row["opd"].upper() == FOCAL_OFFICE
    }
    period = nearest_period(today)
    listed = [
        action
        for action in catalogue["actions"]
        if action["code"] in assigned
        and any(m["period"] == period for m in action.get("measures") or [])
    ]
    assert listed, f"the demo focal point has nothing to report in {period}"
    action = listed[0]
    measures = [m for m in action["measures"] if m["period"] == period]
    return Walk(period, 1, " ".join(action["title"].split()), measures)


def answer_for(question: dict) -> str:
    kind = question["type"]
    if kind == "integer":
        return str(min(5, question.get("max", 5)))
    if kind == "decimal":
        return str(min(1000000, question.get("max", 1000000)))
    return {
        "yes_no": "ya",
        "date": "25-08-2025",
        "text": "Rapat dilaksanakan",
        "choice": "1",
    }[kind]


class Files:
    """Distinct small files of each kind, so that no upload looks like a repeat of another."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0

    def make(self, kinds: list[str]) -> Path:
        self.count += 1
        n = self.count
        if "photo" in kinds:
            path = self.directory / f"foto-{n}.jpg"
            Image.new("RGB", (64, 48), (n * 37 % 256, 90, 160)).save(path, "JPEG")
        elif "pdf" in kinds:
            path = self.directory / f"dokumen-{n}.pdf"
            path.write_bytes(pdf_bytes(f"berkas {n}"))
        elif "xlsx" in kinds:
            path = self.directory / f"tabel-{n}.xlsx"
            book = Workbook()
            book.active.append(["nomor", n])
            book.save(path)
        else:
            raise AssertionError(f"no test file for {kinds}")
        return path


def report_lines(walk: Walk, files: Files) -> list[str]:
    """Every question answered validly, every requirement given its files, then submit."""
    lines = [f"/kontak {CONSOLE_PHONE}", "/lapor", str(walk.action_number)]
    for measure in walk.measures:
        lines += [answer_for(question) for question in measure.get("questions") or []]
        for requirement in measure.get("evidence") or []:
            for _ in range(max(1, requirement.get("min_count", 1))):
                lines.append(f"/file {files.make(requirement['kinds'])}")
            lines.append("/selesai")
    return [*lines, "1", "1"]  # summary: [1] Kirim laporan; confirm: [1] Ya, kirim


# --- the tests --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def submitted(tmp_path_factory: pytest.TempPathFactory):
    """One full report through the console, shared by the tests that look at its outcome."""
    directory = tmp_path_factory.mktemp("console")
    walk = demo_walk(date.today())
    result = run_demo(directory, report_lines(walk, Files(directory)))
    return directory, walk, result


def test_a_focal_point_reports_an_action_through_the_console(submitted) -> None:
    directory, walk, result = submitted
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert SEEDED in result.stderr
    out = result.stdout
    assert "Demo Operator Koperasi Bandar Lampung" in out  # registered by phone
    assert f"{walk.action_number}. {walk.action_title}" in out
    assert f"({walk.period})" in out
    assert out.count("✅ Diterima") == sum(
        max(1, r.get("min_count", 1)) for m in walk.measures for r in m.get("evidence") or []
    )
    assert "terkirim" in out
    assert "maaf" not in out.lower()  # no answer was refused or misunderstood

    assert query(directory, "SELECT status, version FROM submission") == [("submitted", 1)]
    answers = query(directory, "SELECT count(*) FROM answer")[0][0]
    assert answers == len(walk.questions)
    stored = query(directory, "SELECT count(*) FROM evidence_file")[0][0]
    assert stored == out.count("✅ Diterima")


def test_a_second_run_keeps_the_data_and_shows_the_status(submitted) -> None:
    directory, walk, first = submitted
    assert first.returncode == 0, first.stderr
    result = run_demo(directory, ["/status"])
    assert result.returncode == 0, result.stderr
    assert SEEDED not in result.stderr
    assert SEEDED not in result.stdout
    assert "Traceback" not in result.stderr
    assert walk.action_title in result.stdout
    assert "terkirim" in result.stdout
    assert query(directory, "SELECT count(*) FROM programme")[0][0] == 2  # not seeded twice
    assert query(directory, "SELECT status FROM submission") == [("submitted",)]


def test_bad_input_is_explained_in_indonesian_and_the_console_carries_on(
    tmp_path: Path,
) -> None:
    walk = demo_walk(date.today())
    measure = walk.measures[0]
    questions = measure.get("questions") or []
    numeric = next(q for q in questions if q["type"] in {"integer", "decimal"})
    assert measure.get("evidence"), "the first measure asks for no evidence"
    lines = [
        f"/kontak {CONSOLE_PHONE}",
        f"/file {tmp_path / 'belum-lapor.pdf'}",  # a file outside the report flow
        "/lapor",
        str(walk.action_number),
    ]
    for question in questions:
        if question is numeric:
            lines.append("nihil")
        lines.append(answer_for(question))
    lines.append(f"/file {tmp_path / 'tidak-ada' / 'notulen.pdf'}")  # a path that is not there
    result = run_demo(tmp_path, lines)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "tidak sedang mengisi laporan" in out
    assert "Pertanyaan ini meminta angka" in out
    assert 'bukan "nihil"' in out
    assert "notulen.pdf" in out.split("> /file")[-1]  # the missing file is named in the reply
    assert "❌" in out.split("> /file")[-1]
    assert "tidak ditemukan" in out.split("> /file")[-1]
    # "nihil" was not stored; the valid answers were; nothing from the missing path.
    values = [row[0] for row in query(tmp_path, "SELECT value FROM answer")]
    assert len(values) == len(questions)
    assert "nihil" not in values
    assert query(tmp_path, "SELECT count(*) FROM evidence_file") == [(0,)]
    assert query(tmp_path, "SELECT status FROM submission") == [("draft",)]


def test_a_missing_local_file_is_not_blamed_on_the_connection(tmp_path: Path) -> None:
    walk = demo_walk(date.today())
    measure = walk.measures[0]
    lines = [f"/kontak {CONSOLE_PHONE}", "/lapor", str(walk.action_number)]
    lines += [answer_for(question) for question in measure.get("questions") or []]
    lines.append(f"/file {tmp_path / 'tidak-ada.pdf'}")
    result = run_demo(tmp_path, lines)
    assert result.returncode == 0, result.stderr
    reply = result.stdout.split("> /file")[-1]
    assert "tidak-ada.pdf" in reply
    assert "koneksi" not in reply
