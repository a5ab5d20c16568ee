"""WhatsApp message shapes and inbound translation: pure functions, no server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.channels.whatsapp import WhatsAppChannel, inbound, shapes, templates
from bot.channels.whatsapp.payloads import Notification
from bot.engine.events import (
    Choice,
    ChoiceMade,
    CommandReceived,
    ContactShared,
    FileReceived,
    Inbound,
    LocationShared,
    TextReceived,
    Unsupported,
)
from storage.evidence import LocalEvidenceStore
from tests.fakes import whatsapp_payloads as wp

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "whatsapp"
PNID = wp.PHONE_NUMBER_ID


@pytest.fixture
async def channel(tmp_path: Path) -> AsyncIterator[WhatsAppChannel]:
    channel = WhatsAppChannel(
        token="t",
        phone_number_id=PNID,
        app_secret="s",
        verify_token="v",
        api_url="http://127.0.0.1:9/v21.0",
        evidence_store=LocalEvidenceStore(tmp_path),
    )
    yield channel
    await channel.close()


def _events(payload: dict[str, Any]) -> list[Inbound]:
    events, _statuses = inbound.collect(Notification.model_validate(payload), PNID)
    return events


def _fixture(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return payload


def test_markup_becomes_whatsapp_formatting() -> None:
    assert shapes.to_whatsapp("<b>Ukuran 1/2</b>: x &amp; y") == "*Ukuran 1/2*: x & y"
    assert shapes.to_whatsapp("tulis <b> 0 </b> saja") == "tulis  *0*  saja"
    assert shapes.to_whatsapp("<i>catatan</i> <b></b>") == "_catatan_ "
    assert shapes.to_whatsapp("<b><i>x</i></b> &lt;b&gt;") == "*_x_* <b>"


def test_button_titles_are_short_and_distinct() -> None:
    titles = shapes.button_titles(
        ["Bantuan usaha bagi perempuan kepala keluarga", "Bantuan usaha bagi penyandang"]
    )
    assert all(len(t) <= 20 for t in titles)
    assert len(set(titles)) == 2 and all(t.endswith("…") for t in titles)
    assert shapes.button_titles(["Ya, kirim", "Belum"]) == ["Ya, kirim", "Belum"]


def test_long_body_keeps_the_question_with_the_buttons() -> None:
    text = "\n".join(f"• baris ringkasan nomor {n}" for n in range(80)) + "\n\nKirim sekarang?"
    lead, body = shapes.split_body(text)
    assert len(body) <= 1024 and body.endswith("Kirim sekarang?")
    assert lead + "\n" in text or lead + "\n\n" in text
    assert shapes.split_body("x" * 2000) == ("x" * 2000, "Pilih:")


def test_template_parameters_are_one_line() -> None:
    param = templates.generic_param("<b>Tugas</b>\n• satu\n• dua\n\nLanjut\tya", ())
    assert "\n" not in param and "\t" not in param and "     " not in param
    assert param.startswith("*Tugas* • satu • dua")
    assert len(shapes.one_line("kata " * 400)) <= shapes.MAX_PARAM
    assert shapes.one_line("  ") == "-"


def test_every_default_template_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "whatsapp.md").read_text()
    for template in templates.TEMPLATES:
        assert template.name in doc
        assert len(template.example) == len(template.params)
        assert template.body.count("{{") == len(template.params)


def test_fixtures_translate_to_events() -> None:
    (text,) = _events(_fixture("text.json"))
    assert isinstance(text, TextReceived) and text.user_key == "6281234567890"
    assert text.display_name == "Siti Rahayu" and text.chat_id == text.user_key
    assert text.message_id.startswith("wamid.")
    (button,) = _events(_fixture("button_reply.json"))
    assert isinstance(button, ChoiceMade) and button.choice_id == "menu_lapor_aksi_ham"
    (row,) = _events(_fixture("list_reply.json"))
    assert isinstance(row, ChoiceMade) and row.choice_id == "kkpham_kriteria_3"
    (image,) = _events(_fixture("image.json"))
    assert isinstance(image, FileReceived) and image.is_photo
    assert image.file_ref == "1122334455667788" and image.claimed_mime == "image/jpeg"
    assert image.claimed_name == "Foto sosialisasi RANHAM di Aula Kantor Bupati.jpg"
    assert image.claimed_size is None
    (document,) = _events(_fixture("document_pdf.json"))
    assert isinstance(document, FileReceived) and not document.is_photo
    assert document.claimed_name == "Laporan_Aksi_HAM_TW2_2025.pdf"
    (contact,) = _events(_fixture("contacts.json"))
    assert isinstance(contact, ContactShared) and not contact.is_own
    assert contact.phone == "+62 813-9876-5432"
    (location,) = _events(_fixture("location.json"))
    assert isinstance(location, LocationShared) and location.latitude == -7.7165
    (sticker,) = _events(_fixture("sticker.json"))
    assert isinstance(sticker, Unsupported) and sticker.kind == "sticker"
    (voice,) = _events(_fixture("audio.json"))
    assert isinstance(voice, Unsupported) and voice.kind == "voice"
    assert _events(_fixture("reaction.json")) == []  # an emoji is not answered


def test_shared_own_contact_and_other_kinds() -> None:
    (own,) = _events(wp.contacts_message("6281200000001", "6281200000001"))
    assert isinstance(own, ContactShared) and own.is_own
    for kind in ("video", "unsupported"):
        (event,) = _events(wp.unsupported_message("6281200000001", kind))
        assert isinstance(event, Unsupported) and event.kind == kind
    photo = wp.image_message("6281200000001", "9988776655443322")
    (file,) = _events(photo)
    assert isinstance(file, FileReceived) and file.claimed_name == "foto_3322.jpg"
    quick = wp.text_message("6281200000001", "x")
    message = quick["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["text"]
    message |= {"type": "button", "button": {"text": "Lapor sekarang", "payload": "lapor"}}
    (tap,) = _events(quick)
    assert isinstance(tap, TextReceived) and tap.text == "lapor"
    message |= {"type": "request_welcome"}
    (hello,) = _events(quick)
    assert isinstance(hello, CommandReceived) and hello.name == "start"


async def test_other_numbers_and_stored_payloads(channel: WhatsAppChannel) -> None:
    other = wp.retarget(wp.text_message("6281200000001", "halo"), phone_number_id="999")
    assert _events(other) == []
    (event,) = _events(wp.text_message("6281200000001", "halo", name="Siti"))
    again = channel.parse_stored(json.loads(json.dumps(event.raw)))
    assert again == event
    assert channel.parse_stored({"message": {"id": "x"}}) is None


def test_the_list_button_speaks_the_users_language() -> None:
    choices = [Choice(f"c{n}", f"Pilihan {n}") for n in range(5)]
    (body,) = shapes.interactive_bodies("628", "Which one?", choices, choose_label="Choose")
    assert body["interactive"]["action"]["button"] == "Choose"
