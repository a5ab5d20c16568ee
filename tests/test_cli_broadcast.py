"""`laporham broadcast` and `laporham broadcast status`, run for real as a subprocess on the
contacts workbook of docs/contacts.md (tests/test_cli.py's fixtures)."""

# ruff: noqa: F811  (the fixtures imported from tests/test_cli.py are parameters here)

from __future__ import annotations

import asyncio
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.db import create_engine
from tests.test_cli import (  # noqa: F401  (fixtures)
    DATABASES,
    LAPORHAM,
    TIMEOUT,
    assert_clean_failure,
    cli_database,
    cli_env,
    count_rows,
    imported,
    laporham,
    sql,
)


def _give_telegram_chat(tmp_path: Path, name: str, chat: str) -> None:
    """The contact started a chat with the bot (as registering does)."""

    async def write() -> None:
        engine = create_engine(DATABASES[tmp_path])
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    text(
                        "INSERT INTO channel_identity (contact_id, channel, external_id,"
                        " created_at) SELECT id, 'telegram', :chat, created_at FROM contact"
                        " WHERE name = :name"
                    ),
                    {"chat": chat, "name": name},
                )
        finally:
            await engine.dispose()

    asyncio.run(write())


@pytest.fixture(autouse=True)
def siti_has_a_chat(imported: None, tmp_path: Path) -> None:
    """The workbook's focal point has a Telegram chat; its coordinator and Kanwil have none."""
    _give_telegram_chat(tmp_path, "Siti Aminah", "5001")


def _answering(tmp_path: Path, env: dict[str, str], answer: str, *args: str):
    return subprocess.run(
        [str(LAPORHAM), *args],
        cwd=tmp_path,
        env=env,
        input=answer,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_broadcast_shows_the_count_and_writes_one_row_per_recipient(laporham, tmp_path) -> None:
    result = laporham(
        "broadcast", "--audience", "fokal", "--region", "18", "--text", "Bimtek hari Senin", "--yes"
    )
    assert result.returncode == 0, result.stderr
    assert "Penerima: 1 kontak" in result.stderr and "Bimtek hari Senin" in result.stderr
    broadcast_id = int(result.stdout.strip())
    rows = sql(
        tmp_path,
        "SELECT recipient, purpose, idempotency_key, broadcast_id, status FROM outbox_message",
    )
    assert [row[:4] for row in rows] == [
        ("5001", "broadcast", f"broadcast:{broadcast_id}:1", broadcast_id)
    ]
    status = laporham("broadcast", "status", str(broadcast_id))
    assert status.returncode == 0, status.stderr
    assert "Terkirim: 0 dari 1" in status.stdout and "Menunggu: 1" in status.stdout
    assert "Siaran #1 dari Admin LaporHAM" in status.stdout


def test_a_pemda_broadcast_says_who_cannot_be_reached(laporham, tmp_path) -> None:
    result = laporham(
        "broadcast", "--audience", "pemda", "--region", "18.71", "--text", "Rapat", "--yes",
        "--sender", "Kanwil Lampung",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Penerima: 1 kontak" in result.stderr
    assert "1 kontak lain belum terhubung ke bot" in result.stderr  # the coordinator
    status = laporham("broadcast", "status", result.stdout.strip())
    assert "Belum terhubung ke bot (tidak dikirimi): 1" in status.stdout
    assert "dari Kanwil Lampung" in status.stdout


def test_broadcast_from_a_file_asks_and_a_no_sends_nothing(
    laporham, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    today = date.today()
    opens, due = (today - timedelta(days=3)).isoformat(), (today + timedelta(days=4)).isoformat()
    assert laporham("period", "set", "B08", "--opens", opens, "--due", due).returncode == 0
    message = tmp_path / "pesan.txt"
    message.write_text("Batas B08: 25 Agustus.\nMohon segera dilengkapi.\n", encoding="utf-8")
    args = ("broadcast", "--audience", "belum", "--region", "18", "--file", str(message))
    refused = _answering(tmp_path, cli_env, "n\n", *args)
    assert refused.returncode == 0, refused.stderr
    assert "Dibatalkan" in refused.stderr
    assert "Penerima: 1 kontak (not_submitted, Lampung, " in refused.stderr
    assert "Mohon segera dilengkapi." in refused.stderr
    assert count_rows(tmp_path, "broadcast") == 0
    assert count_rows(tmp_path, "outbox_message") == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--audience", "fokal", "--region", "99", "--text", "x"), "wilayah 99 tidak dikenal"),
        (("--audience", "semua", "--text", "x"), "--audience semua tidak dikenal"),
        (("--region", "18", "--text", "x"), "pilih penerima dengan --audience"),
        (("--audience", "pemda", "--text", "x"), "--audience pemda perlu --region"),
        (("--audience", "fokal", "--text", "x" * 901), "901 karakter, paling banyak 900"),
        (("--audience", "fokal"), "--text atau --file"),
        (("--audience", "belum", "--text", "x"), "tidak ada periode yang sedang dibuka"),
        (("--audience", "koordinator", "--region", "18", "--text", "x", "--yes"), "tidak ada"),
    ],
)
def test_broadcast_mistakes_fail_cleanly_and_send_nothing(
    laporham, tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    result = laporham("broadcast", *args)
    assert_clean_failure(result)
    assert says in result.stderr
    assert count_rows(tmp_path, "outbox_message") == 0


def test_status_of_an_unknown_broadcast_fails_cleanly(laporham) -> None:
    result = laporham("broadcast", "status", "42")
    assert_clean_failure(result)
    assert "siaran #42 tidak ada" in result.stderr
