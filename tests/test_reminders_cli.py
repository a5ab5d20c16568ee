"""`laporham reminders plan|history`, run for real as a subprocess on a database the test
filled (SQLite, or PostgreSQL with LAPORHAM_TEST_DATABASE_URL), starting from the migrated
schema (tests/test_cli.py's `migrated`: a copy, not a migration per test)."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from scheduler.reminders import ReminderTicker
from storage.db import create_engine, session_factory
from tests.scheduler.reminder_world import reminder_world
from tests.test_cli import DATABASES, LAPORHAM, TIMEOUT, cli_database, cli_env, count_rows, migrated  # noqa: F401  (fixtures used by name)

D_MINUS_3 = datetime(2025, 8, 25, 8, 0, tzinfo=ZoneInfo("Asia/Jakarta"))
pytestmark = pytest.mark.usefixtures("migrated")


@pytest.fixture
def cli(tmp_path: Path, cli_env: dict[str, str]):  # noqa: F811  (the imported fixture)
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(LAPORHAM), *args], cwd=tmp_path, env=cli_env, capture_output=True, text=True,
            timeout=TIMEOUT, check=False,
        )  # fmt: skip

    return run


def seed(tmp_path: Path, *, tick_at: datetime | None = None) -> None:
    url = DATABASES[tmp_path]

    async def fill() -> None:
        engine = create_engine(url)
        try:
            sessions = session_factory(engine)
            async with sessions() as session:
                await reminder_world(session)
            if tick_at is not None:
                await ReminderTicker(
                    sessions=sessions, clock=lambda: tick_at.astimezone(UTC)
                ).tick()
        finally:
            await engine.dispose()

    asyncio.run(fill())


def test_plan_shows_what_would_go_and_when_and_writes_nothing(cli, tmp_path: Path) -> None:
    seed(tmp_path)
    result = cli("reminders", "plan", "--at", "2025-08-25T08:00")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    reminder = next(line for line in lines if "reminder d-3" in line)
    assert "2025-08-25 08:00 WIB" in reminder and "AKAN DIKIRIM" in reminder
    assert "Siti Rahma (telegram 101)" in reminder and "KK-01, KK-02" in reminder
    assert "1 akan dikirim, 0 sudah ditulis sebelumnya." in lines
    upcoming = next(line for line in lines if line.startswith("B08 2025"))
    assert "pengingat d-1 2025-08-27 08:00 WIB" in upcoming
    assert "eskalasi d+1 2025-08-29 08:00 WIB" in upcoming
    assert count_rows(tmp_path, "outbox_message") == 0


def test_plan_marks_what_was_written_already(cli, tmp_path: Path) -> None:
    seed(tmp_path, tick_at=D_MINUS_3)
    result = cli("reminders", "plan", "--at", "2025-08-25T09:30+07:00")
    assert result.returncode == 0, result.stderr
    assert "sudah ditulis" in result.stdout
    assert "0 akan dikirim, 1 sudah ditulis sebelumnya." in result.stdout


def test_plan_with_a_bad_time_fails_in_one_line(cli, tmp_path: Path) -> None:
    seed(tmp_path)
    result = cli("reminders", "plan", "--at", "besok pagi")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "2025-08-25T08:00" in result.stderr


def test_history_shows_what_was_written(cli, tmp_path: Path) -> None:
    seed(tmp_path)
    empty = cli("reminders", "history")
    assert empty.returncode == 0, empty.stderr
    assert "Belum ada pengingat" in empty.stdout
    seed_tick(tmp_path, datetime(2025, 8, 29, 8, 0, tzinfo=ZoneInfo("Asia/Jakarta")))
    result = cli("reminders", "history")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3  # the focal point's d+1, the coordinator's and the Kanwil's
    mine = next(line for line in lines if "reminder d+1 → Siti Rahma (telegram 101)" in line)
    assert "menunggu" in mine  # the sender has not sent it yet
    assert any("escalation d+1 → Budi Hukum" in line for line in lines)
    assert any("escalation d+1 → Kanwil Lampung" in line for line in lines)


def seed_tick(tmp_path: Path, at: datetime) -> None:
    async def tick() -> None:
        engine = create_engine(DATABASES[tmp_path])
        try:
            await ReminderTicker(
                sessions=session_factory(engine), clock=lambda: at.astimezone(UTC)
            ).tick()
        finally:
            await engine.dispose()

    asyncio.run(tick())
