"""The `laporham` console script, run for real as a subprocess, each test in its own directory
with its own database (README.md, "The command line"): a SQLite file, or with
LAPORHAM_TEST_DATABASE_URL an empty PostgreSQL database of its own.

A test whose subject comes after `laporham db upgrade` (and the demo catalogue's import, and the
contacts workbook's) starts from the fixture `migrated` (`catalogued`, `imported`): a copy of the
database those very commands left, run once per pytest-xdist worker (tests/support/databases.py),
instead of the same subprocesses again in every test. The commands themselves are tested here
on an untouched database."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import text

from storage.db import create_engine
from storage.demo import DEMO_DIR
from storage.migrate import upgrade
from tests.support.databases import DatabaseTemplates, Place

LAPORHAM = Path(sys.executable).parent / "laporham"
CATALOGUE = DEMO_DIR / "catalogue-aksi-ham-2025.yaml"
TIMEOUT = 60
CHANNEL_VARS = ("LAPORHAM_TELEGRAM_", "LAPORHAM_WHATSAPP_")
# Each test's database URL, by its directory: the helpers below take the directory.
DATABASES: dict[Path, str] = {}
# The fixtures below that replace the test's database by a template's copy.
FROM_A_TEMPLATE = {"migrated", "catalogued", "imported"}


@pytest.fixture
def cli_database(
    tmp_path: Path, request: pytest.FixtureRequest, database_templates: DatabaseTemplates
) -> Iterator[str]:
    """A database no test has touched, not even with the schema: a SQLite file in the test's
    directory, or a PostgreSQL database made for this test. There a test that starts from a
    template gets only the template's copy (an empty database made first would be dropped at
    once), and the databases are dropped together at the end of the session
    (tests/support/databases.py says why)."""
    base = os.environ.get("LAPORHAM_TEST_DATABASE_URL")
    if not base:
        url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    else:
        create = not FROM_A_TEMPLATE & set(request.fixturenames)
        url = database_templates.new_postgres_database("cli", create=create)
    DATABASES[tmp_path] = url
    try:
        yield url
    finally:
        DATABASES.pop(tmp_path, None)


@pytest.fixture
def cli_env(tmp_path: Path, cli_database: str) -> dict[str, str]:
    return cli_environment(cli_database, tmp_path / "data")


def cli_environment(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(CHANNEL_VARS) and name != "LAPORHAM_DATABASE_URL"
    }
    env["LAPORHAM_DATABASE_URL"] = database_url
    env["LAPORHAM_DATA_DIR"] = str(data_dir)
    return env


@pytest.fixture
def laporham(tmp_path: Path, cli_env: dict[str, str]):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(LAPORHAM), *args],
            cwd=tmp_path,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    return run


def sql(tmp_path: Path, query: str) -> list[tuple[Any, ...]]:
    """Rows of a query against the test's database, as the CLI left it."""

    async def fetch() -> list[tuple[Any, ...]]:
        engine = create_engine(DATABASES[tmp_path])
        try:
            async with engine.connect() as connection:
                return [tuple(row) for row in await connection.execute(text(query))]
        finally:
            await engine.dispose()

    return asyncio.run(fetch())


def count_rows(tmp_path: Path, table: str) -> int:
    return int(sql(tmp_path, f"SELECT count(*) FROM {table}")[0][0])


def has_schema(tmp_path: Path) -> bool:
    async def check() -> bool:
        engine = create_engine(DATABASES[tmp_path])
        try:
            async with engine.connect() as connection:
                return "alembic_version" in await connection.run_sync(
                    lambda sync: sync.dialect.get_table_names(sync)
                )
        finally:
            await engine.dispose()

    return asyncio.run(check())


def assert_clean_failure(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout


def write_contacts_workbook(path: Path, *, assignment: bool = True) -> Path:
    """The example of docs/contacts.md as a real .xlsx."""
    book = Workbook()
    regions = book.active
    regions.title = "Wilayah"
    regions.append(["kode", "nama", "jenis", "induk", "zona_waktu"])
    regions.append(["18", "Lampung", "provinsi", None, "WIB"])
    regions.append(["18.71", "Kota Bandar Lampung", "kabkota", "18", None])
    offices = book.create_sheet("OPD")
    offices.append(["wilayah", "kode", "nama"])
    offices.append(["18.71", "DISKOPUKM", "Dinas Koperasi dan UMKM"])
    offices.append(["18.71", "HUKUM", "Bagian Hukum Sekretariat Daerah"])
    contacts = book.create_sheet("Kontak")
    contacts.append(["nama", "telepon", "peran", "wilayah", "opd", "bahasa", "aktif"])
    for row in (
        ["Siti Aminah", "0812-3456-7890", "focal point", "18.71", "DISKOPUKM", None, "ya"],
        ["Budi Santoso", "0813-1111-2222", "koordinator", "18.71", "HUKUM", None, None],
        ["Kanwil Lampung", "0811-7000-1000", "kanwil", "18", None, None, None],
    ):
        contacts.append(row)
    assignments = book.create_sheet("Penugasan")
    assignments.append(["program", "aksi", "wilayah", "opd"])
    if assignment:
        assignments.append(["aksi-ham-2025", "KK-01", "18.71", "DISKOPUKM"])
    book.save(path)
    return path


# --- the states tests start from: built once per worker by the CLI, copied per test ------------


def run_in_template(place: Place, *args: str) -> None:
    """One `laporham` command on a template database, in the template's own directory."""
    result = subprocess.run(
        [str(LAPORHAM), *args],
        cwd=place.data_dir.parent,
        env=cli_environment(place.url, place.data_dir),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def build_migrated(place: Place) -> None:
    run_in_template(place, "db", "upgrade")


def build_catalogued(place: Place) -> None:
    run_in_template(place, "catalogue", "import", str(CATALOGUE))


def build_imported(place: Place) -> None:
    workbook = write_contacts_workbook(place.data_dir.parent / "kontak.xlsx")
    run_in_template(place, "contacts", "import", str(workbook))


def copy_of(templates: DatabaseTemplates, name: str, tmp_path: Path, cli_database: str) -> None:
    """This test's database (and data folder) as the worker's template `name` is; each template
    is built on first use by the CLI, on top of the one before it."""
    templates.template("migrated", build_migrated)
    if name in ("catalogued", "imported"):
        templates.template("catalogued", build_catalogued, start_from="migrated")
    if name == "imported":
        templates.template("imported", build_imported, start_from="catalogued")
    templates.copy(name, Place(cli_database, tmp_path / "data"))


@pytest.fixture
def migrated(tmp_path: Path, cli_database: str, database_templates: DatabaseTemplates) -> None:
    """As after `laporham db upgrade`."""
    copy_of(database_templates, "migrated", tmp_path, cli_database)


@pytest.fixture
def catalogued(tmp_path: Path, cli_database: str, database_templates: DatabaseTemplates) -> None:
    """As after `laporham db upgrade` and `laporham catalogue import` of the demo catalogue."""
    copy_of(database_templates, "catalogued", tmp_path, cli_database)


# --- help and db ------------------------------------------------------------------------------


def test_help_lists_the_commands(laporham) -> None:
    result = laporham("--help")
    assert result.returncode == 0, result.stderr
    for command in ("run", "demo", "db", "catalogue", "contacts", "invite", "period"):
        assert re.search(rf"^\W*{command}\b", result.stdout, re.MULTILINE), command


def test_db_upgrade_is_idempotent(laporham, tmp_path: Path) -> None:
    first = laporham("db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert has_schema(tmp_path)
    assert (tmp_path / "data").is_dir()
    second = laporham("db", "upgrade")
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stderr
    assert count_rows(tmp_path, "alembic_version") == 1


def test_db_upgrade_says_what_it_did(laporham, tmp_path: Path) -> None:
    created = laporham("db", "upgrade")
    assert created.returncode == 0, created.stderr
    assert "skema dibuat" in created.stderr.lower()
    again = laporham("db", "upgrade")
    assert again.returncode == 0, again.stderr
    assert "sudah terbaru" in again.stderr.lower()
    assert "skema dibuat" not in again.stderr.lower()


def test_db_upgrade_names_the_revisions_it_applied(laporham, tmp_path: Path) -> None:
    upgrade(DATABASES[tmp_path], "0001")
    result = laporham("db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert "0002" in result.stderr
    assert "0001" not in result.stderr
    assert "sudah terbaru" not in result.stderr.lower()


def test_catalogue_import_on_a_fresh_database_creates_the_schema_first(
    laporham, tmp_path: Path
) -> None:
    result = laporham("catalogue", "import", str(CATALOGUE))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert count_rows(tmp_path, "programme") == 1


def test_contacts_import_on_a_fresh_database_creates_the_schema_first(
    laporham, tmp_path: Path
) -> None:
    workbook = write_contacts_workbook(tmp_path / "kontak.xlsx", assignment=False)
    result = laporham("contacts", "import", str(workbook))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert count_rows(tmp_path, "contact") == 3


@pytest.mark.parametrize(
    "args",
    [
        ("invite", "create", "--role", "admin"),
        ("period", "set", "B08", "--opens", "2025-08-18", "--due", "2025-08-25"),
    ],
)
def test_commands_on_a_fresh_database_need_no_db_upgrade_first(
    laporham, tmp_path: Path, args: tuple[str, ...]
) -> None:
    result = laporham(*args)
    assert "Traceback" not in result.stderr
    assert "no such table" not in result.stderr
    assert "does not exist" not in result.stderr
    assert has_schema(tmp_path)


# --- catalogue --------------------------------------------------------------------------------


@pytest.mark.usefixtures("migrated")
def test_catalogue_import_loads_the_demo_catalogue_and_a_reimport_changes_nothing(
    laporham, tmp_path: Path
) -> None:
    first = laporham("catalogue", "import", str(CATALOGUE))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip()
    assert count_rows(tmp_path, "programme") == 1
    assert count_rows(tmp_path, "period") == 3
    assert count_rows(tmp_path, "action") == 11
    counts = {t: count_rows(tmp_path, t) for t in ("measure", "question", "evidence_requirement")}

    second = laporham("catalogue", "import", str(CATALOGUE))
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip()
    assert count_rows(tmp_path, "action") == 11
    assert {t: count_rows(tmp_path, t) for t in counts} == counts


@pytest.mark.usefixtures("migrated")
def test_catalogue_import_prints_the_indonesian_report(laporham) -> None:
    first = laporham("catalogue", "import", str(CATALOGUE))
    assert first.returncode == 0, first.stderr
    assert "Program: 1 baru, 0 diubah, 0 tetap, 0 tidak ada di berkas" in first.stdout
    assert "Aksi: 11 baru" in first.stdout
    second = laporham("catalogue", "import", str(CATALOGUE))
    assert second.returncode == 0, second.stderr
    assert "Aksi: 0 baru, 0 diubah, 11 tetap" in second.stdout
    assert "Program: 0 baru, 0 diubah, 1 tetap" in second.stdout


BROKEN_YAML = "programme:\n  code: x\n  kind: aksi_ham\n bad: [\n"


@pytest.mark.usefixtures("migrated")
def test_catalogue_import_of_broken_yaml_fails_cleanly(laporham, tmp_path: Path) -> None:
    (tmp_path / "katalog.yaml").write_text(BROKEN_YAML, encoding="utf-8")
    result = laporham("catalogue", "import", "katalog.yaml")
    assert_clean_failure(result)
    assert "baris 4" in result.stderr
    assert "YAML tidak valid" in result.stderr
    assert "Tidak ada data yang diubah" in result.stderr
    assert count_rows(tmp_path, "programme") == 0


@pytest.mark.usefixtures("migrated")
def test_catalogue_import_of_a_missing_file_fails_cleanly(laporham) -> None:
    result = laporham("catalogue", "import", "tidak-ada.yaml")
    assert_clean_failure(result)
    assert "tidak-ada.yaml" in result.stderr


@pytest.mark.usefixtures("migrated")
def test_catalogue_error_shows_a_file_name_with_brackets_verbatim(laporham, tmp_path: Path) -> None:
    (tmp_path / "katalog [draft].yaml").write_text(BROKEN_YAML, encoding="utf-8")
    result = laporham("catalogue", "import", "katalog [draft].yaml")
    assert_clean_failure(result)
    assert "katalog [draft].yaml" in result.stderr


@pytest.mark.usefixtures("migrated")
def test_catalogue_error_quoting_a_closing_tag_fails_cleanly(laporham, tmp_path: Path) -> None:
    (tmp_path / "katalog.yaml").write_text(
        "programme: {code: x, kind: aksi_ham, year: 2025, title: X}\n"
        "periods: [{code: B04, title: P}]\n"
        "actions:\n"
        "  - code: A\n"
        "    level: kabkota\n"
        "    title: T\n"
        "    measures:\n"
        "      - {code: M, period: B04, title: M,\n"
        '         questions: [{code: q, text: Q, type: "[/angka]"}]}\n',
        encoding="utf-8",
    )
    result = laporham("catalogue", "import", "katalog.yaml")
    assert_clean_failure(result)
    assert "MarkupError" not in result.stderr
    assert "[/angka]" in result.stderr
    assert "Tidak ada data yang diubah" in result.stderr


@pytest.mark.usefixtures("migrated")
def test_catalogue_errors_are_one_per_line(laporham, tmp_path: Path) -> None:
    (tmp_path / "katalog.yaml").write_text(
        "programme: {code: x, kind: aksi_ham, year: 2025, title: X}\n"
        "periods: [{code: B04, title: P}]\n"
        "actions:\n"
        "  - code: A\n"
        "    level: kab\n"
        "    title: T\n"
        "    measures:\n"
        "      - {code: M, period: B04, title: M,\n"
        "         questions: [{code: q, text: Q, type: number}]}\n",
        encoding="utf-8",
    )
    result = laporham("catalogue", "import", "katalog.yaml")
    assert_clean_failure(result)
    lines = result.stderr.splitlines()
    assert any(
        "actions[0].level" in line and line.rstrip().endswith("provinsi, kabkota") for line in lines
    ), result.stderr
    assert any(
        "questions[0].type" in line and line.rstrip().endswith("date, choice") for line in lines
    ), result.stderr


# --- contacts ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("catalogued")
def test_contacts_import_of_a_workbook(laporham, tmp_path: Path) -> None:
    workbook = write_contacts_workbook(tmp_path / "kontak.xlsx")
    result = laporham("contacts", "import", str(workbook))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert count_rows(tmp_path, "region") == 2
    assert count_rows(tmp_path, "office") == 2
    assert count_rows(tmp_path, "contact") == 3
    assert count_rows(tmp_path, "assignment") == 1
    phones = {row[0] for row in sql(tmp_path, "SELECT phone FROM contact")}
    assert "+6281234567890" in phones

    again = laporham("contacts", "import", str(workbook))
    assert again.returncode == 0, again.stderr
    assert count_rows(tmp_path, "contact") == 3
    assert count_rows(tmp_path, "assignment") == 1


@pytest.mark.usefixtures("migrated")
def test_contacts_import_of_a_text_file_named_xlsx_fails_cleanly(laporham, tmp_path: Path) -> None:
    (tmp_path / "kontak.xlsx").write_text("nama,telepon\nSiti,0812\n", encoding="utf-8")
    result = laporham("contacts", "import", "kontak.xlsx")
    assert_clean_failure(result)
    assert "kontak.xlsx" in result.stderr
    assert ".xlsx" in result.stderr
    assert "Tidak ada data yang diubah" in result.stderr
    assert count_rows(tmp_path, "contact") == 0


@pytest.mark.usefixtures("migrated")
def test_contacts_import_with_an_unknown_action_fails_cleanly(laporham, tmp_path: Path) -> None:
    """Without the catalogue the assignment's action does not exist: nothing is written."""
    workbook = write_contacts_workbook(tmp_path / "kontak.xlsx")
    result = laporham("contacts", "import", str(workbook))
    assert_clean_failure(result)
    assert "Penugasan" in result.stderr
    assert "Tidak ada data yang diubah" in result.stderr
    assert count_rows(tmp_path, "region") == 0
    assert count_rows(tmp_path, "contact") == 0


# --- invites ----------------------------------------------------------------------------------


@pytest.fixture
def imported(tmp_path: Path, cli_database: str, database_templates: DatabaseTemplates) -> None:
    """As after `laporham db upgrade`, the demo catalogue's import and the contacts workbook's
    (kontak.xlsx, in the test's directory too)."""
    copy_of(database_templates, "imported", tmp_path, cli_database)
    write_contacts_workbook(tmp_path / "kontak.xlsx")


@pytest.mark.usefixtures("imported")
def test_invite_create_prints_a_code(laporham, tmp_path: Path) -> None:
    result = laporham(
        "invite", "create", "--role", "focal_point", "--region", "18.71",
        "--office", "DISKOPUKM", "--name", "Siti", "--days", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    code = result.stdout.strip()
    assert re.fullmatch(r"[A-Z2-9]{8}", code), result.stdout
    assert f"/daftar {code}" in result.stderr
    assert count_rows(tmp_path, "invite_code") == 1


@pytest.mark.usefixtures("imported")
def test_invite_create_refuses_a_kanwil_for_a_city(laporham, tmp_path: Path) -> None:
    """As the contacts import does: a Kanwil covers one province."""
    result = laporham("invite", "create", "--role", "kanwil", "--region", "18.71")
    assert_clean_failure(result)
    assert "18.71" in result.stderr
    assert "provinsi" in result.stderr
    assert count_rows(tmp_path, "invite_code") == 0
    province = laporham("invite", "create", "--role", "kanwil", "--region", "18")
    assert province.returncode == 0, province.stderr


@pytest.mark.usefixtures("imported")
@pytest.mark.parametrize("spelling", ["focal point", "Operator", "focal-point"])
def test_invite_create_takes_the_contacts_role_spellings(
    laporham, tmp_path: Path, spelling: str
) -> None:
    result = laporham(
        "invite", "create", "--role", spelling, "--region", "18.71", "--office", "DISKOPUKM"
    )
    assert result.returncode == 0, result.stderr
    assert sql(tmp_path, "SELECT role FROM invite_code") == [("focal_point",)]


@pytest.mark.usefixtures("imported")
def test_invite_create_koordinator_is_a_coordinator(laporham, tmp_path: Path) -> None:
    result = laporham("invite", "create", "--role", "koordinator", "--region", "18.71")
    assert result.returncode == 0, result.stderr
    assert sql(tmp_path, "SELECT role FROM invite_code") == [("coordinator",)]


@pytest.mark.usefixtures("imported")
def test_invite_create_for_an_unknown_region_fails_cleanly(laporham, tmp_path: Path) -> None:
    result = laporham(
        "invite", "create", "--role", "focal_point", "--region", "99.99", "--office", "DISKOPUKM"
    )
    assert_clean_failure(result)
    assert result.stdout.strip() == ""
    assert "99.99" in result.stderr
    assert "Tidak ada data yang diubah" in result.stderr
    assert count_rows(tmp_path, "invite_code") == 0


@pytest.mark.usefixtures("imported")
def test_invite_create_with_an_unknown_role_fails_cleanly(laporham) -> None:
    result = laporham("invite", "create", "--role", "bupati", "--region", "18.71")
    assert_clean_failure(result)
    assert "bupati" in result.stderr


# --- periods ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("catalogued")
def test_period_set_changes_the_window(laporham, tmp_path: Path) -> None:
    result = laporham("period", "set", "B08", "--opens", "2025-08-18", "--due", "2025-08-25")
    assert result.returncode == 0, result.stderr
    assert "B08" in result.stdout
    moved = laporham("period", "set", "b08", "--opens", "2025-08-20", "--due", "2025-08-30")
    assert moved.returncode == 0, moved.stderr
    window = sql(tmp_path, "SELECT opens_on, due_on FROM period WHERE code = 'B08'")[0]
    assert tuple(str(day)[:10] for day in window) == ("2025-08-20", "2025-08-30")


@pytest.mark.usefixtures("catalogued")
def test_period_set_with_a_badly_written_date_fails_cleanly(laporham, tmp_path: Path) -> None:
    result = laporham("period", "set", "B08", "--opens", "2025-08-18", "--due", "25-08-2025")
    assert_clean_failure(result)
    assert "YYYY-MM-DD" in result.stderr
    due = sql(tmp_path, "SELECT due_on FROM period WHERE code = 'B08'")[0][0]
    assert str(due)[:10] == "2025-08-25"  # the catalogue's date, untouched


@pytest.mark.usefixtures("catalogued")
def test_period_set_with_a_date_that_does_not_exist_says_so(laporham, tmp_path: Path) -> None:
    result = laporham("period", "set", "B08", "--opens", "2025-02-30", "--due", "2025-08-25")
    assert_clean_failure(result)
    assert "2025-02-30" in result.stderr
    assert "tidak ada" in result.stderr
    assert "YYYY-MM-DD" not in result.stderr


CATALOGUE_ERROR_UNCAUGHT = (
    "bot/cli.py _friendly_errors does not catch storage.periods.CatalogueError: "
    "`period set` prints a traceback"
)


@pytest.mark.usefixtures("catalogued")
def test_period_set_for_an_unknown_period_fails_cleanly(laporham) -> None:
    result = laporham("period", "set", "B99", "--opens", "2025-08-18", "--due", "2025-08-25")
    assert_clean_failure(result)
    assert "B99" in result.stderr
    assert "Tidak ada data yang diubah" in result.stderr


@pytest.mark.usefixtures("catalogued")
def test_period_set_opening_after_the_due_date_fails_cleanly(laporham, tmp_path: Path) -> None:
    result = laporham("period", "set", "B08", "--opens", "2025-08-30", "--due", "2025-08-25")
    assert_clean_failure(result)
    assert "2025-08-30" in result.stderr
    opens = sql(tmp_path, "SELECT opens_on FROM period WHERE code = 'B08'")[0][0]
    assert str(opens)[:10] == "2025-08-18"


# --- the repository's own references ----------------------------------------------------------

REPOSITORY = Path(__file__).resolve().parents[1]


def test_every_markdown_file_named_in_the_repository_exists() -> None:
    """Docstrings, comments and docs point the reader at the repository's own Markdown files
    only: a reference to a file that is not here is a dead end."""
    present = {path.name for path in REPOSITORY.rglob("*.md") if ".venv" not in path.parts}
    sources = [
        path
        for pattern in ("*.py", "*.md", "Makefile")
        for path in REPOSITORY.rglob(pattern)
        if not {".venv", ".git", "build"} & set(path.parts)
    ]
    missing = {
        f"{path.relative_to(REPOSITORY)}: {name}"
        for path in sources
        for name in re.findall(r"[\w./-]+\.md\b", path.read_text(encoding="utf-8"))
        if Path(name).name not in present
    }
    assert not missing


def test_production_without_a_channel_and_with_weak_secrets_refuses_to_start(
    laporham, cli_env: dict[str, str]
) -> None:
    """Hardening issue, item 14: one clear line per problem, no console channel, no traceback."""
    cli_env["LAPORHAM_ENVIRONMENT"] = "production"
    cli_env["LAPORHAM_TELEGRAM_WEBHOOK_SECRET"] = "ChangeMe"
    cli_env["LAPORHAM_INVITE_SECRET"] = "a-real-invite-key-0123456789abcdef"
    result = laporham("run")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, result.stderr
    assert all(line.startswith("Konfigurasi salah: ") for line in lines)
    assert "needs a chat channel" in lines[0]
    assert "LAPORHAM_TELEGRAM_WEBHOOK_SECRET still holds a placeholder" in lines[1]
