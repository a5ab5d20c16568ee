"""/siaran end to end through the real engine, router, storage, broadcast job and outbox sender
(a fake channel records what is sent): composing, audiences, scope refusals, stale buttons."""

from __future__ import annotations

from sqlmodel import func, select

from scheduler.broadcasts import advance_broadcasts
from storage.models import Broadcast, BroadcastState, OutboxMessage
from tests.support.audience import ADMIN_PHONE, KANWIL_PHONE, Audience, chat_of, make_audience
from tests.support.factories import FOCAL_PHONE
from tests.support.harness import Harness


async def _audience(sessions, **kwargs) -> Audience:
    async with sessions() as session:
        made = await make_audience(session, **kwargs)
        await session.commit()
    return made


async def _registered(sessions, data_dir, phone: str) -> Harness:
    h = Harness(sessions, data_dir)
    await h.text("halo")
    await h.contact(phone)
    return h


async def _broadcasts(sessions) -> list[Broadcast]:
    async with sessions() as session:
        return list((await session.exec(select(Broadcast))).all())


async def _deliver(h: Harness) -> None:
    """What `laporham run` does on its own: the job writes the rows, the sender sends them,
    the job sees them delivered and reports."""
    await advance_broadcasts(h.sessions)
    await h.sender.drain_all()
    await advance_broadcasts(h.sessions)
    await h.sender.drain_all()


async def test_kanwil_broadcasts_to_the_province_focal_points(sessions, data_dir) -> None:
    people = await _audience(sessions)
    h = await _registered(sessions, data_dir, KANWIL_PHONE)
    reply = await h.text("/siaran")
    assert "Siaran</b> untuk Lampung" in reply
    reply = await h.text("Bimtek RANHAM hari Senin, 18 Agustus, pukul 09.00 <wajib>.")
    assert "Kirim kepada siapa?" in reply
    reply = await h.choose("focal_points")
    assert "Penerima: <b>2</b> kontak" in reply  # the two of Kota Bandar Lampung, not Babel's
    assert "📢 <b>Pesan dari Kanwil Lampung</b>" in reply
    assert "&lt;wajib&gt;" in reply  # the author's text is escaped, never markup
    reply = await h.choose("send")
    (broadcast,) = await _broadcasts(sessions)
    assert f"Siaran #{broadcast.id} dijadwalkan untuk 2 kontak" in reply

    await _deliver(h)
    world = people.world
    for contact in (world.focal_point, people.submitted_focal):
        (got,) = h.channel.texts(chat_of(contact))
        assert "Bimtek RANHAM hari Senin" in got
    assert h.channel.texts(chat_of(people.outsider)) == []
    assert h.channel.texts(chat_of(world.coordinator)) == []
    report = h.channel.texts(h.user)[-1]
    assert f"Laporan siaran #{broadcast.id}" in report and "Terkirim: 2 dari 2" in report
    (done,) = await _broadcasts(sessions)
    assert done.state is BroadcastState.done


async def test_the_message_can_follow_the_command(sessions, data_dir) -> None:
    await _audience(sessions)
    h = await _registered(sessions, data_dir, KANWIL_PHONE)
    reply = await h.text("siaran Batas B08 tanggal 25 Agustus")  # typed, without the slash
    assert "Kirim kepada siapa?" in reply
    reply = await h.choose("coordinators")
    assert "Penerima: <b>1</b> kontak" in reply
    assert "Batas B08 tanggal 25 Agustus" in reply


async def test_not_yet_submitted_leaves_out_the_office_that_submitted(sessions, data_dir) -> None:
    people = await _audience(sessions)
    h = await _registered(sessions, data_dir, KANWIL_PHONE)
    await h.text("/siaran Tolong kirim laporan B08 sebelum tanggal 25.")
    reply = await h.choose("not_submitted")
    assert "Penerima: <b>1</b> kontak" in reply
    assert "Yang belum mengirim laporan Periode B08" in reply
    await h.choose("send")
    await _deliver(h)
    assert len(h.channel.texts(chat_of(people.world.focal_point))) == 1
    assert h.channel.texts(chat_of(people.submitted_focal)) == []


async def test_a_focal_point_cannot_broadcast(sessions, data_dir) -> None:
    await _audience(sessions)
    h = await _registered(sessions, data_dir, FOCAL_PHONE)
    reply = await h.text("/siaran Halo semua")
    assert "hanya untuk Kanwil, koordinator dan admin" in reply
    assert await _broadcasts(sessions) == []


async def test_the_kanwil_cannot_reach_another_province(sessions, data_dir) -> None:
    people = await _audience(sessions)
    h = await _registered(sessions, data_dir, KANWIL_PHONE)
    await h.text("/siaran Pesan untuk satu pemda")
    reply = await h.choose("pemda")
    offered = [label for _, label in h.last_choices()]
    assert any("Kota Bandar Lampung" in label for label in offered)
    assert not any("Pangkalpinang" in label for label in offered)
    reply = await h.text(people.other_region.code)  # typed: looked up in scope only
    assert 'Pemda "19.71" tidak ada di wilayah Anda' in reply
    reply = await h.text("Kota Pangkalpinang")
    assert "tidak ada di wilayah Anda" in reply
    # A forged button for the other province, tagged like a real one: refused, nothing sent.
    tag = h.last_choices()[0][0].rpartition("#")[2]
    reply = await h.press(f"r:{people.other_region.id}#{tag}")
    assert "Tombol itu sudah tidak berlaku" in reply
    reply = await h.text("kota bandar lampung")  # a pemda in scope, by name, any case
    assert "Penerima: <b>3</b> kontak" in reply  # its two focal points and its coordinator
    assert await _broadcasts(sessions) == []


async def test_a_coordinator_reaches_only_their_own_pemda(sessions, data_dir) -> None:
    people = await _audience(sessions)
    h = await _registered(sessions, data_dir, people.world.coordinator.phone or "")
    await h.text("/siaran Rapat koordinasi OPD besok")
    offered = [wire.rpartition("#")[0] for wire, _ in h.last_choices()]
    assert offered == ["focal_points", "not_submitted"]
    reply = await h.choose("focal_points")
    assert "Kota Bandar Lampung" in reply and "Penerima: <b>2</b> kontak" in reply
    assert "Pesan dari Koordinator Kota Bandar Lampung" in reply
    forged = await h.choose("coordinators")  # not offered to a coordinator: a forged press
    assert "Tombol itu sudah tidak berlaku" in forged


async def test_the_admin_reaches_the_whole_country(sessions, data_dir) -> None:
    await _audience(sessions)
    h = await _registered(sessions, data_dir, ADMIN_PHONE)
    await h.text("/siaran Pemberitahuan nasional")
    reply = await h.choose("focal_points")
    assert "seluruh wilayah" in reply and "Penerima: <b>3</b> kontak" in reply


async def test_a_second_tap_on_send_is_refused_and_sends_once(sessions, data_dir) -> None:
    people = await _audience(sessions)
    h = await _registered(sessions, data_dir, KANWIL_PHONE)
    await h.text("/siaran Sekali saja")
    await h.choose("focal_points")
    send = next(wire for wire, _ in h.last_choices() if wire.startswith("send#"))
    await h.press(send)
    again = await h.press(send)
    assert "Tombol itu sudah tidak berlaku" in again
    assert len(await _broadcasts(sessions)) == 1
    await _deliver(h)
    assert len(h.channel.texts(chat_of(people.world.focal_point))) == 1


async def test_bad_input_is_explained_and_changes_nothing(sessions, data_dir) -> None:
    await _audience(sessions)
    h = await _registered(sessions, data_dir, KANWIL_PHONE)
    await h.text("/siaran")
    reply = await h.text("x" * 901)
    assert "901 karakter, paling banyak 900" in reply and "Tulis pesan" in reply
    reply = await h.file(b"%PDF-1.4", "undangan.pdf")
    assert "Siaran hanya bisa berupa teks" in reply
    await h.text("Pesan yang benar")
    reply = await h.text("semua orang")
    assert "belum saya mengerti" in reply and "Kirim kepada siapa?" in reply
    await h.choose("focal_points")
    reply = await h.text("mungkin")
    assert "belum saya mengerti" in reply and "Kirim siaran ini ke 2 kontak?" in reply
    reply = await h.choose("cancel")
    assert "Siaran dibatalkan" in reply
    assert await _broadcasts(sessions) == []


async def test_change_message_goes_back_to_the_text(sessions, data_dir) -> None:
    await _audience(sessions)
    h = await _registered(sessions, data_dir, KANWIL_PHONE)
    await h.text("/siaran Pesan pertama")
    await h.choose("focal_points")
    reply = await h.choose("edit")
    assert "Tulis pesan" in reply
    await h.text("Pesan kedua")
    reply = await h.choose("focal_points")
    assert "Pesan kedua" in reply and "Pesan pertama" not in reply


async def test_progress_comes_at_steps_and_the_report_at_the_end(sessions, data_dir) -> None:
    people = await _audience(sessions, extra_focal_points=118)  # 120 focal points in Lampung
    h = await _registered(sessions, data_dir, KANWIL_PHONE)
    await h.text("/siaran Seratus dua puluh penerima")
    reply = await h.choose("focal_points")
    assert "Penerima: <b>120</b> kontak" in reply
    await h.choose("send")
    (broadcast,) = await _broadcasts(sessions)
    await advance_broadcasts(sessions, batch_size=50)
    async with sessions() as session:
        rows = (
            await session.exec(select(func.count()).where(OutboxMessage.purpose == "broadcast"))
        ).one()
    assert rows == 120
    # Half delivered: one progress message, not one per recipient.
    await h.sender.drain()  # one claim: the sender's batch of 100 rows
    await advance_broadcasts(sessions)
    await advance_broadcasts(sessions)
    await h.sender.drain_all()
    progress = [text for text in h.channel.texts(h.user) if "📤" in text]
    assert progress == [f"📤 Siaran #{broadcast.id}: terkirim 100 dari 120."]
    await advance_broadcasts(sessions)
    await h.sender.drain_all()
    report = h.channel.texts(h.user)[-1]
    assert "Terkirim: 120 dari 120" in report and "Gagal: 0" in report
    assert all(len(h.channel.texts(chat)) == 1 for chat in people.focal_chats.values())
