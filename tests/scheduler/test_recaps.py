"""The recap-requests job: /rekap records a request and answers at once; the job makes the
files outside the turn (no write lock held while rendering), sends them exactly once even when
run twice at once or after a crash, re-checks the asker's scope, and sends an evidence ZIP when
it fits the channel (else says its size and the operator's command)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import threading
import zipfile
from dataclasses import replace
from datetime import timedelta
from itertools import count

import pytest
from sqlalchemy import text, update
from sqlmodel import col, select

from bot.engine.events import OutFile
from scheduler.recaps import RecapHooks, RecapJob
from storage.db import transaction
from storage.evidence import LocalEvidenceStore
from storage.models import (
    Contact,
    EvidenceFile,
    OutboxMessage,
    RecapRequest,
    RecapState,
    Role,
)
from storage.types import utcnow
from tests.support.fake_channel import BUTTONS, FakeChannel
from tests.support.harness import Harness
from tests.support.oversight_world import Country, add_report, make_country

_users = count(7000)


class Crash(BaseException):
    """The process dying mid-request: not an error the job handles."""


async def _country(sessions) -> Country:
    async with sessions() as session:
        country = await make_country(session)
        await add_report(session, country, region_code="91.01")
        await add_report(session, country, region_code="92.01", office_index=1, files=1)
        await session.commit()
    return country


async def _asker(sessions, data_dir, contact: Contact, channel: FakeChannel | None = None):
    h = Harness(sessions, data_dir, user=str(next(_users)), run_recaps=False)
    if channel is not None:
        h.channel = channel
        h.restart()
    await h.contact(contact.phone)
    return h


def _job(h: Harness, owner: str, **kwargs) -> RecapJob:
    return RecapJob(
        sessions=h.sessions,
        store=h.engine.evidence_store,
        owner=owner,
        capabilities=lambda channel: h.channel.capabilities,
        **kwargs,
    )


async def _recap_rows(sessions) -> list[OutboxMessage]:
    async with sessions() as session:
        statement = (
            select(OutboxMessage)
            .where(col(OutboxMessage.idempotency_key).startswith("recap:"))
            .order_by(col(OutboxMessage.id))
        )
        return list((await session.exec(statement)).all())


async def _requests(sessions) -> list[RecapRequest]:
    async with sessions() as session:
        return list((await session.exec(select(RecapRequest))).all())


def _files(h: Harness, before: int) -> list[OutFile]:
    return [s.message for s in h.channel.sent[before:] if isinstance(s.message, OutFile)]


async def test_rekap_answers_at_once_and_the_job_sends_two_files(sessions, data_dir) -> None:
    country = await _country(sessions)
    h = await _asker(sessions, data_dir, country.coordinators["91"])
    reply = await h.text("/rekap")
    assert "Rekap" in reply and "sedang disiapkan" in reply
    assert await _recap_rows(sessions) == []  # nothing rendered inside the turn
    [request] = await _requests(sessions)
    assert request.state is RecapState.pending and request.language == "id"
    before = len(h.channel.sent)
    assert await _job(h, "a").run() == 1
    await h.sender.drain_all()
    files = _files(h, before)
    assert [f.filename for f in files] == ["rekap-B08-91.png", "rekap-B08-91.xlsx"]
    assert files[0].as_photo and "per pemda" in files[0].caption
    rows = await _recap_rows(sessions)
    assert [row.idempotency_key for row in rows] == [
        f"recap:{request.id}:chart",
        f"recap:{request.id}:workbook",
    ]
    [request] = await _requests(sessions)
    assert request.state is RecapState.done and request.claimed_by is None


async def test_the_same_message_delivered_again_records_one_request(sessions, data_dir) -> None:
    country = await _country(sessions)
    h = await _asker(sessions, data_dir, country.coordinators["91.01"])
    h.duplicate_every_delivery = True
    await h.text("/rekap", message_id="rekap-once")
    assert len(await _requests(sessions)) == 1


async def test_no_write_lock_is_held_while_the_recap_renders(sessions, data_dir, monkeypatch):
    """While the job renders, another session writes (the request row itself, and an inbox
    row): with a write lock or a row lock held, that write would wait (and SQLite would end
    it with 'database is locked'). The chart is drawn on a worker thread, not the loop's."""
    country = await _country(sessions)
    h = await _asker(sessions, data_dir, country.coordinators["91"])
    await h.text("/rekap")
    written: list[int] = []
    threads: list[bool] = []

    async def write_meanwhile(request_id: int) -> None:
        async with transaction(sessions) as session:
            connection = await session.connection()
            if connection.dialect.name == "postgresql":  # a held row lock fails, not hangs
                await session.exec(text("SET LOCAL lock_timeout = '5s'"))
            await session.exec(
                update(RecapRequest).where(col(RecapRequest.id) == request_id).values(language="id")
            )
            await session.exec(
                text(
                    "INSERT INTO inbox_message (channel, message_id, status, received_at)"
                    " VALUES ('telegram', 'written-meanwhile', 'processed', :now)"
                ),
                params={"now": utcnow()},
            )
        written.append(request_id)

    from scheduler import recaps

    real_chart = recaps.recap_chart

    def chart_on_a_thread(*args, **kwargs):
        threads.append(threading.current_thread() is not threading.main_thread())
        return real_chart(*args, **kwargs)

    monkeypatch.setattr("scheduler.recaps.recap_chart", chart_on_a_thread)
    job = _job(h, "a", hooks=RecapHooks(before_render=write_meanwhile))
    assert await job.run() == 1
    assert written and threads == [True]
    assert len(await _recap_rows(sessions)) == 2


async def test_two_runs_at_once_send_each_file_once(sessions, data_dir) -> None:
    country = await _country(sessions)
    h = await _asker(sessions, data_dir, country.coordinators["91"])
    await h.text("/rekap")
    results = await asyncio.gather(_job(h, "a").run(), _job(h, "b").run())
    assert sorted(results) == [0, 1]
    assert await _job(h, "c").run() == 0
    assert len(await _recap_rows(sessions)) == 2


async def test_a_crash_after_storing_the_files_is_made_again_after_the_lease(
    sessions, data_dir
) -> None:
    country = await _country(sessions)
    h = await _asker(sessions, data_dir, country.coordinators["91"])
    await h.text("/rekap")

    async def die(_request_id: int) -> None:
        raise Crash

    with pytest.raises(Crash):
        await _job(h, "dead", hooks=RecapHooks(after_store=die)).run()
    [request] = await _requests(sessions)
    assert request.state is RecapState.working and request.claimed_by == "dead"
    assert await _recap_rows(sessions) == []
    # Another process, while the dead one's lease still runs: nothing to do.
    assert await _job(h, "live").run() == 0
    later = utcnow() + timedelta(minutes=11)
    assert await _job(h, "live", clock=lambda: later).run() == 1
    assert await _job(h, "late", clock=lambda: later + timedelta(minutes=11)).run() == 0
    before = len(h.channel.sent)
    await h.sender.drain_all()
    assert [f.filename for f in _files(h, before)] == ["rekap-B08-91.png", "rekap-B08-91.xlsx"]
    [request] = await _requests(sessions)
    assert request.state is RecapState.done and request.attempts == 2


async def test_scope_is_checked_again_when_the_recap_is_made(sessions, data_dir) -> None:
    country = await _country(sessions)
    coordinator = country.coordinators["91"]
    h = await _asker(sessions, data_dir, coordinator)
    await h.text("/rekap")
    async with transaction(sessions) as session:
        await session.exec(
            update(Contact).where(col(Contact.id) == coordinator.id).values(role=Role.focal_point)
        )
    before = len(h.channel.sent)
    await _job(h, "a").run()
    await h.sender.drain_all()
    assert _files(h, before) == []
    assert "peran Anda saat ini tidak mencakup rekap" in h.channel.sent[-1].text


async def test_a_recap_in_english_for_an_english_speaker(sessions, data_dir) -> None:
    country = await _country(sessions)
    h = await _asker(sessions, data_dir, country.coordinators["91.01"])
    await h.text("/bahasa")
    await h.choose("lang:en")
    reply = await h.text("/recap")
    assert "is being prepared" in reply
    before = len(h.channel.sent)
    await _job(h, "a").run()
    await h.sender.drain_all()
    files = _files(h, before)
    assert files and "per OPD" in files[0].caption and "Recap" in files[0].caption


# ------------------------------------------------------------------ evidence ZIP


async def _real_blobs(sessions, store: LocalEvidenceStore) -> int:
    """The world's evidence rows pointed at real blobs; returns their total size."""
    total = 0
    async with transaction(sessions) as session:
        for index, row in enumerate((await session.exec(select(EvidenceFile))).all()):
            data = b"%PDF-1.4 evidence " + str(index).encode() + b"x" * 3000
            row.storage_key = await store.put(data, extension="pdf")
            row.sha256, row.size = hashlib.sha256(data).hexdigest(), len(data)
            session.add(row)
            total += len(data)
    return total


async def test_a_coordinator_gets_their_pemda_evidence_zip(sessions, data_dir) -> None:
    country = await _country(sessions)
    h = await _asker(sessions, data_dir, country.coordinators["91.01"])
    await _real_blobs(sessions, LocalEvidenceStore(data_dir / "evidence"))
    reply = await h.text("rekap bukti")  # typed bare, as on WhatsApp
    assert "ZIP data dukung" in reply and "sedang disiapkan" in reply
    before = len(h.channel.sent)
    assert await _job(h, "a").run() == 1
    await h.sender.drain_all()
    [document] = _files(h, before)
    assert document.filename == "bukti-B08-91.01.zip" and not document.as_photo
    assert "Kabupaten Alfasatu" in document.caption and "2 berkas" in document.caption
    data = await LocalEvidenceStore(data_dir / "evidence").get(document.storage_key)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "manifest.csv" in names and len(names) == 3
    assert all("Betasatu" not in name for name in names)
    [row] = await _recap_rows(sessions)
    assert row.idempotency_key.endswith(":zip")


async def test_an_evidence_zip_over_the_channel_limit_is_answered_with_its_size(
    sessions, data_dir
) -> None:
    country = await _country(sessions)
    small = FakeChannel(capabilities=replace(BUTTONS, max_send_document_bytes=2000))
    h = await _asker(sessions, data_dir, country.coordinators["91.01"], channel=small)
    total = await _real_blobs(sessions, LocalEvidenceStore(data_dir / "evidence"))
    assert total > 2000
    await h.text("/rekap bukti")
    before = len(h.channel.sent)
    await _job(h, "a").run()
    await h.sender.drain_all()
    assert _files(h, before) == []
    answer = h.channel.sent[-1].text
    assert "melebihi batas" in answer and "2 KB" in answer
    assert "laporham export evidence --period B08 --region 91.01" in answer


async def test_a_kanwil_chooses_a_pemda_within_the_province(sessions, data_dir) -> None:
    country = await _country(sessions)
    h = await _asker(sessions, data_dir, country.kanwil["91"])
    await _real_blobs(sessions, LocalEvidenceStore(data_dir / "evidence"))
    listing = await h.text("/rekap bukti")
    assert "91.01 Kabupaten Alfasatu" in listing and "92.01" not in listing
    refused = await h.text("/rekap bukti 92.01")  # another province's pemda
    assert "di luar wilayah Anda" in refused
    assert await _requests(sessions) == []
    await h.text("/rekap bukti 91.01")
    before = len(h.channel.sent)
    await _job(h, "a").run()
    await h.sender.drain_all()
    [document] = _files(h, before)
    assert document.filename == "bukti-B08-91.01.zip"


async def test_an_evidence_zip_in_english(sessions, data_dir) -> None:
    country = await _country(sessions)
    h = await _asker(sessions, data_dir, country.coordinators["92.01"])
    await _real_blobs(sessions, LocalEvidenceStore(data_dir / "evidence"))
    await h.text("/bahasa")
    await h.choose("lang:en")
    reply = await h.text("/recap evidence")
    assert "evidence ZIP" in reply
    before = len(h.channel.sent)
    await _job(h, "a").run()
    await h.sender.drain_all()
    [document] = _files(h, before)
    assert "Evidence of Kabupaten Betasatu" in document.caption and "1 files" in document.caption


async def test_a_tick_starts_one_run_at_a_time(sessions, data_dir) -> None:
    """The scheduler's tick returns at once; while a run is in hand, a tick starts none."""
    country = await _country(sessions)
    h = await _asker(sessions, data_dir, country.coordinators["91"])
    await h.text("/rekap")
    held, release = asyncio.Event(), asyncio.Event()

    async def hold(_request_id: int) -> None:
        held.set()
        await release.wait()

    job = _job(h, "a", hooks=RecapHooks(before_render=hold))
    assert await job.tick() is True
    await held.wait()
    assert await job.tick() is False  # the first run is still rendering
    release.set()
    assert job.current_run is not None and await job.current_run == 1
    assert len(await _recap_rows(sessions)) == 2


async def test_a_run_cancelled_mid_render_gives_the_request_back(sessions, data_dir) -> None:
    country = await _country(sessions)
    h = await _asker(sessions, data_dir, country.coordinators["91"])
    await h.text("/rekap")
    held = asyncio.Event()

    async def hold(_request_id: int) -> None:
        held.set()
        await asyncio.Event().wait()  # until cancelled

    job = _job(h, "stopping", hooks=RecapHooks(before_render=hold))
    await job.tick()
    await held.wait()
    assert job.current_run is not None
    job.current_run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job.current_run
    [request] = await _requests(sessions)
    assert request.state is RecapState.pending and request.claimed_by is None
    assert await _job(h, "next").run() == 1


async def test_a_coordinator_gets_the_zip_with_the_button_under_the_recap_answer(
    sessions, data_dir
) -> None:
    country = await _country(sessions)
    h = await _asker(sessions, data_dir, country.coordinators["91.01"])
    await _real_blobs(sessions, LocalEvidenceStore(data_dir / "evidence"))
    await h.text("/rekap")
    assert [label for _, label in h.last_choices()] == ["ZIP data dukung"]
    reply = await h.choose("bukti")
    assert "ZIP data dukung" in reply and "sedang disiapkan" in reply
    again = await h.choose("bukti")  # the same button again: stale, no second request
    assert "sedang disiapkan" not in again
    before = len(h.channel.sent)
    assert await _job(h, "a").run() == 2  # the recap, then the ZIP
    await h.sender.drain_all()
    names = [f.filename for f in _files(h, before)]
    assert names == ["rekap-B08-91.01.png", "rekap-B08-91.01.xlsx", "bukti-B08-91.01.zip"]


async def test_a_kanwil_gets_no_zip_button_but_the_command_to_type(sessions, data_dir) -> None:
    country = await _country(sessions)
    h = await _asker(sessions, data_dir, country.kanwil["91"])
    reply = await h.text("/rekap")
    assert "/rekap bukti" in reply and h.last_choices() == []
