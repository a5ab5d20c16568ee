"""/status, /belum and /rekap for every role against every region (nothing leaks), paging with
stale-safe buttons, drilling down and back, and the recap files sent through the outbox."""

from __future__ import annotations

import io
from datetime import timedelta
from itertools import count

import pytest
from openpyxl import load_workbook

from bot.engine.events import OutFile
from storage.evidence import LocalEvidenceStore
from storage.models import (
    Action,
    ActionLevel,
    Assignment,
    Measure,
    Period,
    Programme,
    ProgrammeKind,
    Role,
)
from tests.support.fake_channel import FakeChannel
from tests.support.harness import Harness
from tests.support.oversight_world import REGIONS, Country, add_report, make_country

_users = count(5000)
BACKWARDS = ("up", "pg:prev", "per:")


async def _country(sessions) -> Country:
    async with sessions() as session:
        country = await make_country(session)
        await add_report(session, country, region_code="91.01")
        await add_report(session, country, region_code="92.01", office_index=1, files=1)
        await session.commit()
    return country


async def _registered(sessions, data_dir, contact, channel: FakeChannel | None = None) -> Harness:
    h = Harness(sessions, data_dir, user=str(next(_users)))
    if channel is not None:
        h.channel = channel
        h.restart()
    await h.contact(contact.phone)
    return h


async def _everything_reachable(h: Harness, command: str) -> list[str]:
    """The command's answers, then every page and node its buttons lead to (each path replayed
    from the command, since pressing makes the earlier buttons stale)."""
    texts: list[str] = []
    paths: list[list[str]] = [[]]
    seen: set[tuple[str, ...]] = set()
    while paths:
        path = paths.pop()
        texts.append(await h.text(command))
        for choice in path:
            texts.append(await h.choose(choice))
        for wire, _label in h.last_choices():
            choice = wire.rpartition("#")[0]
            key = (*path, choice)
            if choice.startswith(BACKWARDS) or key in seen or len(key) > 6:
                continue
            seen.add(key)
            paths.append([*path, choice])
    return texts


async def _files_text(h: Harness, before: int) -> str:
    store = LocalEvidenceStore(h.data_dir / "evidence")
    parts = []
    for sent in h.channel.sent[before:]:
        message = sent.message
        if isinstance(message, OutFile):
            parts.append(message.caption)
            if message.filename.endswith(".xlsx"):
                book = load_workbook(io.BytesIO(await store.get(message.storage_key)))
                parts += [book.sheetnames[0], *book.sheetnames]
                for sheet in book.worksheets:
                    for row in sheet.iter_rows(values_only=True):
                        parts += [str(value) for value in row if value is not None]
    return "\n".join(parts)


def _forbidden(country: Country, visible: set[str]) -> set[str]:
    return {
        name for code, _, _ in REGIONS if code not in visible for name in country.names_of(code)
    }


@pytest.mark.parametrize("command", ["/status", "/belum", "/rekap"])
async def test_every_role_against_every_region_sees_nothing_outside_its_scope(
    sessions, data_dir, command
) -> None:
    country = await _country(sessions)
    for contact in country.contacts():
        h = await _registered(sessions, data_dir, contact)
        before = len(h.channel.sent)
        texts = await _everything_reachable(h, command)
        seen = "\n".join(texts) + "\n" + await _files_text(h, before)
        who = f"{contact.role.value} {contact.name}"
        if contact.role is Role.focal_point:
            # Their own tasks only; the oversight commands are refused.
            everyone = {name for code, _, _ in REGIONS for name in country.names_of(code)}
            own_region = next(r for r in country.regions.values() if r.id == contact.region_id)
            own = {
                own_region.name,
                contact.name,
                *(o.name for o in country.offices[own_region.code] if o.id == contact.office_id),
            }
            leaks = {name for name in everyone - own if name in seen}
            assert not leaks, (who, command, leaks)
            if command != "/status":
                assert "hanya untuk koordinator" in seen, who
            continue
        visible = country.visible_to(contact)
        leaks = {name for name in _forbidden(country, visible) if name in seen}
        assert not leaks, (who, command, leaks)
        # And not vacuous: every pemda in scope shows up somewhere in what was reachable.
        shown = {code for code in visible if country.regions[code].name in seen}
        if command == "/belum":
            assert shown == visible, (who, shown)  # every pemda still owes something
        else:
            assert shown == visible, (who, command, shown)


async def test_a_kabkota_coordinator_sees_each_action_and_office_of_their_pemda(
    sessions, data_dir
) -> None:
    country = await _country(sessions)
    h = await _registered(sessions, data_dir, country.coordinators["91.01"])
    reply = await h.text("/status")
    assert "<b>Status Periode B08</b> — Kabupaten Alfasatu" in reply
    assert "Terkirim 1/2" in reply and "hari lagi" in reply
    assert "Perkiraan nilai administrasi ≈" in reply and "target 80" in reply
    assert "Dinas Sosial Kabupaten Alfasatu" in reply and "terkirim · 100%" in reply
    assert "kurang: 1 jawaban, Notulen 2, Daftar hadir 2" in reply
    assert "Penurun nilai:" in reply
    reply = await h.text("/belum")
    assert "Dinas Pendidikan Kabupaten Alfasatu" in reply
    assert "Dinas Sosial Kabupaten Alfasatu" not in reply  # sent: owes nothing
    assert "belum ada focal point terdaftar" in reply


async def test_the_kanwil_drills_into_a_pemda_and_back(sessions, data_dir) -> None:
    country = await _country(sessions)
    h = await _registered(sessions, data_dir, country.kanwil["91"])
    reply = await h.text("/status")
    assert "— Provinsi Alfa" in reply and "Kabupaten Alfasatu</b>: 1/2 terkirim" in reply
    alfasatu = country.regions["91.01"]
    reply = await h.choose(f"in:{alfasatu.id}")
    assert "<b>Status Periode B08</b> — Kabupaten Alfasatu" in reply
    assert "Dinas Sosial Kabupaten Alfasatu" in reply
    reply = await h.choose("up")
    assert "— Provinsi Alfa" in reply


async def test_an_admin_starts_with_one_line_per_province(sessions, data_dir) -> None:
    country = await _country(sessions)
    h = await _registered(sessions, data_dir, country.admin)
    reply = await h.text("/status")
    assert "seluruh Indonesia" in reply
    assert "Provinsi Alfa</b>: 1/6 terkirim" in reply
    assert "Provinsi Beta</b>: 1/4 terkirim" in reply
    assert "Kabupaten Alfasatu" not in reply  # one line per province
    reply = await h.choose(f"in:{country.regions['92'].id}")
    assert "— Provinsi Beta" in reply and "Kabupaten Betasatu" in reply


async def test_a_forged_or_old_button_changes_nothing(sessions, data_dir) -> None:
    country = await _country(sessions)
    h = await _registered(sessions, data_dir, country.kanwil["91"])
    await h.text("/status")
    tag = h.last_choices()[0][0].rpartition("#")[2]
    beta = country.regions["92.01"]
    reply = await h.press(f"in:{beta.id}#{tag}")  # not offered: forged
    assert "Tombol itu sudah tidak berlaku" in reply and "Betasatu" not in reply
    old = h.last_choices()[0][0]
    await h.choose(f"in:{country.regions['91.01'].id}")
    reply = await h.press(old)  # a button of the earlier view
    assert "Tombol itu sudah tidak berlaku" in reply


async def test_long_lists_are_paged_with_next_and_previous(sessions, data_dir) -> None:
    """As many pemda lines per page as the channel shows buttons beside previous and next."""
    country = await _country(sessions)
    h = await _registered(sessions, data_dir, country.admin)
    await h.text("/status")
    await h.choose(f"in:{country.regions['91'].id}")  # 3 pemda: one page
    assert "Halaman" not in h.channel.sent[-1].text
    channel = FakeChannel()
    from dataclasses import replace

    channel.capabilities = replace(channel.capabilities, max_choices=3)  # 1 line per page
    h = await _registered(sessions, data_dir, country.kanwil["91"], channel=channel)
    reply = await h.text("/status")
    assert "Halaman 1 dari 3." in reply
    labels = [label for _, label in h.last_choices()]
    assert labels[-1] == "berikutnya ›" and "‹ sebelumnya" not in labels
    reply = await h.choose("pg:next")
    assert "Halaman 2 dari 3." in reply
    assert [label for _, label in h.last_choices()][-2:] == ["‹ sebelumnya", "berikutnya ›"]
    first_page_next = h.buttons_sent()[0]
    reply = await h.choose("pg:next")
    assert "Halaman 3 dari 3." in reply
    assert "berikutnya ›" not in [label for _, label in h.last_choices()]
    reply = await h.press(first_page_next)
    assert "Tombol itu sudah tidak berlaku" in reply
    reply = await h.choose("pg:prev")
    assert "Halaman 2 dari 3." in reply
    for text in h.channel.texts():
        assert len(text) <= 4096


async def test_a_typed_message_leaves_the_view(sessions, data_dir) -> None:
    country = await _country(sessions)
    h = await _registered(sessions, data_dir, country.kanwil["91"])
    await h.text("/status")
    reply = await h.text("halo")
    assert "Anda sedang tidak mengisi laporan" in reply or "Status" in reply


async def test_recap_sends_a_chart_and_a_workbook_through_the_outbox(sessions, data_dir) -> None:
    country = await _country(sessions)
    h = await _registered(sessions, data_dir, country.coordinators["91"])
    before = len(h.channel.sent)
    await h.text("/rekap")
    files = [s.message for s in h.channel.sent[before:] if isinstance(s.message, OutFile)]
    assert [f.filename for f in files] == ["rekap-B08-91.png", "rekap-B08-91.xlsx"]
    assert files[0].as_photo and "per pemda" in files[0].caption
    store = LocalEvidenceStore(data_dir / "evidence")
    assert (await store.get(files[0].storage_key)).startswith(b"\x89PNG")
    book = load_workbook(io.BytesIO(await store.get(files[1].storage_key)))
    assert book.sheetnames == [
        "Ringkasan",
        "91 Provinsi Alfa",
        "91.01 Kabupaten Alfasatu",
        "91.71 Kota Alfadua",
        "Keterangan",
    ]


async def test_a_recap_that_cannot_be_made_gets_an_answer(sessions, data_dir, monkeypatch) -> None:
    country = await _country(sessions)
    h = await _registered(sessions, data_dir, country.coordinators["91.01"])

    def broken(*args, **kwargs):
        raise MemoryError("too big")

    monkeypatch.setattr("scheduler.recaps.recap_chart", broken)
    before = len(h.channel.sent)
    reply = await h.text("/rekap")  # the first try fails in the job run after the turn
    assert "sedang disiapkan" in reply and "tidak dapat dibuat" not in reply
    await h.recaps.run()  # the second try
    await h.recaps.run()  # the third: given up, and the asker told
    await h.sender.drain_all()
    texts = [s.text for s in h.channel.sent[before:]]
    assert "Rekap tidak dapat dibuat sekarang" in texts[-1]
    assert not [s for s in h.channel.sent[before:] if isinstance(s.message, OutFile)]


async def test_a_focal_point_keeps_their_own_status_and_cannot_ask_for_the_recap(
    sessions, data_dir
) -> None:
    country = await _country(sessions)
    h = await _registered(sessions, data_dir, country.focal_points["91.01"])
    reply = await h.text("/status")
    assert "<b>Tugas Anda — Periode B08</b>" in reply
    reply = await h.text("rekap")  # the bare word, as typed on WhatsApp
    assert "hanya untuk koordinator" in reply


async def test_a_second_open_period_is_one_button_away(sessions, data_dir) -> None:
    country = await _country(sessions)
    async with sessions() as session:
        programme = Programme(
            code="kkpham-uji", kind=ProgrammeKind.kkpham, year=2026, title="KKPHAM"
        )
        session.add(programme)
        await session.flush()
        first = country.period
        annual = Period(
            programme_id=programme.id or 0,
            code="TAHUNAN",
            title="KKPHAM tahunan",
            opens_on=first.opens_on,
            due_on=first.due_on + timedelta(days=30),
        )
        session.add(annual)
        await session.flush()
        action = Action(
            programme_id=programme.id or 0,
            code="K01",
            level=ActionLevel.kabkota,
            title="Bantuan hukum",
        )
        session.add(action)
        await session.flush()
        session.add(
            Measure(action_id=action.id or 0, period_id=annual.id or 0, code="1", title="M")
        )
        office = country.offices["91.01"][0]
        session.add(Assignment(action_id=action.id or 0, office_id=office.id or 0))
        await session.commit()
    h = await _registered(sessions, data_dir, country.coordinators["91.01"])
    reply = await h.text("/status")
    assert "<b>Status Periode B08</b>" in reply  # the soonest deadline first
    reply = await h.choose(f"per:{annual.id}")
    assert "<b>Status KKPHAM tahunan</b>" in reply and "K01 Bantuan hukum" in reply
    assert "AK-01" not in reply
