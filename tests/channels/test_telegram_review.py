"""The review loop through the real Telegram channel (python-telegram-bot against the fake Bot
API over HTTP, the product composed as `laporham run` does): a coordinator returns a report
with a note, the focal point is told at once with a button, revises and resubmits, and the
coordinator sees what changed and approves. Photos come back into the chat without EXIF."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import evidence_store
from bot.settings import Settings
from storage.models import AuditLog, ReviewDecision, ReviewEvent, Submission, SubmissionStatus
from tests.channels.test_telegram import Person, is_reply, running, settings_for
from tests.fakes.telegram_api import FakeTelegramAPI, contact_update, photo_update
from tests.support.factories import World, make_world
from tests.support.harness import jpeg_bytes
from tests.support.reviews import has_exif, submitted_report

Sessions = async_sessionmaker[AsyncSession]
COORDINATOR_PHONE = "+6281200000002"


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI() as fake:
        yield fake


@pytest.fixture
async def world(sessions: Sessions) -> World:
    async with sessions() as session:
        made = await make_world(session)
        await session.commit()
    return made


@pytest.fixture
def settings(api: FakeTelegramAPI, database_url: str, data_dir: Path) -> Settings:
    return settings_for(api, database_url, data_dir)


async def test_return_notify_revise_resubmit_approve_round_trip(
    api: FakeTelegramAPI, settings: Settings, sessions: Sessions, world: World
) -> None:
    submission_id = await submitted_report(
        sessions,
        evidence_store(settings),
        action_id=world.action.id or 0,
        office_id=world.office.id or 0,
        period_id=world.period.id or 0,
        focal_point=world.focal_point,
    )
    focal = Person(api, 710001)
    coordinator = Person(api, 720002, first_name="Budi")
    async with running(settings):
        await focal.register()
        await coordinator.text("halo", "Bagikan nomor saya")
        own = contact_update(
            coordinator.user_id, COORDINATOR_PHONE, contact_user_id=coordinator.user_id
        )
        await coordinator.push(own, "Budi Hukum")

        # The queue, then one report: its answers, its files, the decision under them.
        queue = await coordinator.command("periksa", "menunggu pemeriksaan: 1")
        start = len(api.requests)
        decide = await coordinator.tap(queue, f"o:{submission_id}", "Keputusan untuk laporan")
        shown = [r for r in api.requests[start:] if r.params.get("chat_id") == coordinator.user_id]
        photos = [r for r in shown if r.method == "sendPhoto" and not r.failed]
        documents = [r for r in shown if r.method == "sendDocument" and not r.failed]
        assert len(photos) == 1 and len(documents) == 1
        [photo_bytes] = photos[0].files.values()
        assert not has_exif(photo_bytes)  # the thumbnail: no EXIF, no GPS
        assert "Foto kegiatan" in photos[0].params["caption"]
        assert "Daftar penerima" in documents[0].params["caption"]
        assert shown[-1] is decide  # the buttons come last

        # Return with a note: the focal point is told at once, with a button.
        ask = await coordinator.tap(decide, "return", "Tulis catatan")
        start = len(api.requests)
        await coordinator.text("Foto penyerahan bantuan belum ada", "dikembalikan dengan catatan")
        notice = await api.wait_for(
            is_reply(focal.user_id, "Foto penyerahan bantuan belum ada"), start=start
        )
        assert ask.params["chat_id"] == coordinator.user_id
        assert "Budi Hukum" in notice.params["text"]

        # The focal point opens it from the notice, changes an answer, adds a photo, resubmits.
        summary = await focal.tap(notice, "Buka untuk revisi", "Semua sudah lengkap")
        assert "dikembalikan oleh pemeriksa" in summary.params["text"]
        first = await focal.tap(summary, "edit", "Berapa penerima")
        listed = await focal.text("30", "daftar penerima")
        note = await focal.tap(listed, "keep", "Catatan tambahan")
        await focal.tap(note, "keep", "Foto kegiatan")
        size = api.add_file("revised-photo", jpeg_bytes("blue"), kind="photo")
        receipt = await focal.push(photo_update(focal.user_id, [size]), "✅ Diterima")
        day = await focal.tap(receipt, "done", "Tanggal penetapan")
        kind = await focal.tap(day, "keep", "Jenis bantuan")
        listing = await focal.tap(kind, "keep", "Daftar penerima")
        summary = await focal.tap(listing, "done", "Semua sudah lengkap")
        confirm = await focal.tap(summary, "submit", "Kirim laporan ini?")
        await focal.tap(confirm, "yes", "versi 2")
        assert first.params["chat_id"] == focal.user_id

        # Back in the queue as a revision, with the changes shown; approved.
        queue = await coordinator.command("periksa", "revisi")
        start = len(api.requests)
        decide = await coordinator.tap(queue, f"o:{submission_id}", "Keputusan untuk laporan")
        changes = await api.wait_for(
            is_reply(coordinator.user_id, "Perubahan dari versi 1"), start=start
        )
        assert "Jawaban diubah: Berapa penerima bantuan?" in changes.params["text"]
        assert "Berkas baru" in changes.params["text"]
        start = len(api.requests)
        await coordinator.tap(decide, "approve", "disetujui (versi 2)")
        await api.wait_for(is_reply(focal.user_id, "disetujui"), start=start)

    async with sessions() as session:
        submission = await session.get(Submission, submission_id)
        assert submission is not None and submission.status is SubmissionStatus.approved
        decisions = (
            await session.exec(
                select(ReviewEvent.decision, ReviewEvent.version, ReviewEvent.note)
                .where(ReviewEvent.decision != ReviewDecision.reopened)
                .order_by(col(ReviewEvent.id))
            )
        ).all()
        audit = (await session.exec(select(AuditLog.action).order_by(col(AuditLog.id)))).all()
    assert [tuple(row) for row in decisions] == [
        (ReviewDecision.returned, 1, "Foto penyerahan bantuan belum ada"),
        (ReviewDecision.approved, 2, None),
    ]
    assert [a for a in audit if a.startswith("review.")] == ["review.returned", "review.approved"]

