"""`laporham export evidence` and `laporham export verify` run for real as subprocesses against
the test's database and evidence folder (README.md, "Evidence exports for SAPA-HAM")."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from sqlmodel.ext.asyncio.session import AsyncSession

from tests.storage.test_evidence_export import attach, make_place, members, report, rewrite

LAPORHAM = Path(sys.executable).parent / "laporham"
CHANNEL_VARS = ("LAPORHAM_TELEGRAM_", "LAPORHAM_WHATSAPP_")


async def laporham(
    database_url: str, data_dir: Path, cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CHANNEL_VARS)}
    env |= {"LAPORHAM_DATABASE_URL": database_url, "LAPORHAM_DATA_DIR": str(data_dir)}
    return await asyncio.to_thread(
        subprocess.run,
        [str(LAPORHAM), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def seeded(session: AsyncSession, data_dir: Path) -> None:
    place = await make_place(session, data_dir)
    kota = await report(session, place, place.world.office)
    await attach(session, place, kota, b"foto kota" * 50, "kota.jpg")
    bangka = await report(session, place, place.other_office)
    await attach(session, place, bangka, b"foto bangka" * 50, "bangka.jpg")
    await session.commit()


async def test_export_then_verify_then_tamper(
    session: AsyncSession, data_dir: Path, tmp_path: Path, database_url: str
) -> None:
    await seeded(session, data_dir)
    target = tmp_path / "b08-lampung.zip"

    done = await laporham(
        database_url, data_dir, tmp_path, "export", "evidence", "--period", "B08",
        "--region", "18", "-o", str(target),
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "B08 (Aksi HAM 2025, Lampung): 1 berkas" in done.stdout
    assert len(members(target)) == 1

    checked = await laporham(database_url, data_dir, tmp_path, "export", "verify", str(target))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == "" and "1 berkas diperiksa, 0 masalah." in checked.stderr

    (member,) = members(target)
    tampered = tmp_path / "tampered.zip"
    rewrite(target, tampered, {member: b"FOTO KOTA" * 50})  # same size, other bytes
    failed = await laporham(database_url, data_dir, tmp_path, "export", "verify", str(tampered))
    assert failed.returncode == 1
    assert failed.stdout.splitlines() == [f"{member}: SHA-256 tidak sama dengan manifest"]
    assert "Traceback" not in failed.stderr


async def test_mistakes_get_one_clear_line_and_write_nothing(
    session: AsyncSession, data_dir: Path, tmp_path: Path, database_url: str
) -> None:
    await seeded(session, data_dir)
    target = tmp_path / "x.zip"
    cases = [
        (["--period", "B13", "-o", str(target)], 'Periode "B13" tidak ditemukan'),
        (["--period", "B08", "--region", "99", "-o", str(target)], 'kode "99" tidak ditemukan'),
        (["--period", "B08", "-o", str(tmp_path / "no" / "x.zip")], "bukan berkas di folder"),
    ]
    for args, message in cases:
        result = await laporham(database_url, data_dir, tmp_path, "export", "evidence", *args)
        assert result.returncode == 1, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["data"]

    not_zip = tmp_path / "bukan.zip"
    not_zip.write_text("teks")
    result = await laporham(database_url, data_dir, tmp_path, "export", "verify", str(not_zip))
    assert result.returncode == 1 and "bukan arsip ZIP" in result.stderr
    assert zipfile.is_zipfile(not_zip) is False
