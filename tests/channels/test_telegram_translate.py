"""Telegram update -> engine event, on recorded real payloads (tests/fixtures/telegram)."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.channels.telegram import TelegramChannel
from bot.channels.telegram.inbound import (
    dedup_key,
    group_chat_id,
    parse_command,
    parse_update,
    translate,
)
from bot.engine.channel import Channel
from bot.engine.events import (
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

FIXTURES = Path(__file__).parent.parent / "fixtures" / "telegram"
BUDI = "5123456789"


def fixture(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return payload


def event_of(payload: dict[str, Any]) -> Inbound | None:
    update = parse_update(payload)
    assert update is not None
    return translate(update, payload)


def test_the_event_keeps_the_payload_as_received() -> None:
    payload = fixture("callback_query")
    event = event_of(payload)
    assert event is not None and event.raw is payload


def test_text_keeps_user_chat_and_a_stable_inbox_id() -> None:
    event = event_of(fixture("text_message"))
    assert isinstance(event, TextReceived)
    assert event.channel is Channel.telegram
    assert (event.user_key, event.chat_id) == (BUDI, BUDI)
    assert event.message_id == f"msg:{BUDI}:1201"
    assert event.display_name == "Budi Santoso"
    assert event.text.startswith("Selamat pagi")


def test_redelivery_under_a_new_update_id_has_the_same_inbox_id() -> None:
    first = fixture("text_message")
    again = copy.deepcopy(first)
    again["update_id"] += 1000
    events = [event_of(first), event_of(again)]
    assert len({event.message_id for event in events if event is not None}) == 1


@pytest.mark.parametrize(
    ("name", "command", "args"),
    [("command_start", "start", ""), ("command_with_botname", "lapor", "")],
)
def test_commands(name: str, command: str, args: str) -> None:
    event = event_of(fixture(name))
    assert isinstance(event, CommandReceived)
    assert (event.name, event.args) == (command, args)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/lapor", ("lapor", "")),
        ("/Lapor@LaporHAMTestBot", ("lapor", "")),
        ("/daftar@LaporHAMTestBot  AB12-CD34 ", ("daftar", "AB12-CD34")),
        ("/REPORT\nsesuatu", ("report", "sesuatu")),
        ("/home/user/berkas.pdf", None),
        ("/", None),
        ("lapor", None),  # bare words are the engine's business
        ("25 / 30", None),
    ],
)
def test_parse_command(text: str, expected: tuple[str, str] | None) -> None:
    assert parse_command(text) == expected


def test_callback_query_is_a_choice() -> None:
    event = event_of(fixture("callback_query"))
    assert isinstance(event, ChoiceMade)
    assert event.choice_id == "jenis:aksi_ham"
    assert event.message_id == "cb:2203957241876130456"
    assert (event.user_key, event.chat_id) == (BUDI, BUDI)


def test_photo_takes_the_largest_size() -> None:
    payload = fixture("photo_several_sizes")
    sizes = payload["message"]["photo"]
    largest = max(sizes, key=lambda size: size["width"] * size["height"])
    event = event_of(payload)
    assert isinstance(event, FileReceived)
    assert event.is_photo and event.file_ref == largest["file_id"]
    assert event.claimed_size == largest["file_size"]
    assert event.claimed_name == "foto_1204.jpg"


def test_album_items_are_separate_events_sharing_the_group() -> None:
    events = [event_of(fixture(f"album_photo_{n}")) for n in (1, 2, 3)]
    files = [event for event in events if isinstance(event, FileReceived)]
    assert len(files) == 3
    assert {event.media_group_id for event in files} == {"13793842115820463"}
    assert len({event.message_id for event in files}) == 3
    assert len({event.claimed_name for event in files}) == 3


def test_document_keeps_the_claims_as_untrusted_metadata() -> None:
    event = event_of(fixture("document_pdf"))
    assert isinstance(event, FileReceived) and not event.is_photo
    assert event.claimed_name == "Laporan_Aksi_HAM_Triwulan_III_2024.pdf"
    assert event.claimed_mime == "application/pdf"
    assert event.claimed_size == 482113


def test_animation_is_not_taken_for_a_document() -> None:
    payload = fixture("document_pdf")
    document = payload["message"]["document"]
    payload["message"]["animation"] = {
        **{k: document[k] for k in ("file_id", "file_unique_id")},
        "width": 320,
        "height": 240,
        "duration": 2,
    }
    event = event_of(payload)
    assert isinstance(event, Unsupported) and event.kind == "animation"


@pytest.mark.parametrize(("name", "own"), [("contact_own", True), ("contact_other", False)])
def test_contact_is_own_only_when_the_sender_shared_themselves(name: str, own: bool) -> None:
    event = event_of(fixture(name))
    assert isinstance(event, ContactShared)
    assert event.is_own is own


def test_contact_without_user_id_is_not_own() -> None:
    payload = fixture("contact_own")
    del payload["message"]["contact"]["user_id"]
    event = event_of(payload)
    assert isinstance(event, ContactShared) and not event.is_own


def test_own_contact_without_plus_keeps_the_number_as_given() -> None:
    event = event_of(fixture("contact_own_no_plus"))
    assert isinstance(event, ContactShared) and event.is_own
    assert event.phone == "6281398765432"  # the engine normalises numbers


def test_location() -> None:
    event = event_of(fixture("location"))
    assert isinstance(event, LocationShared)
    assert (event.latitude, event.longitude) == (-7.771628, 110.387714)


@pytest.mark.parametrize(
    ("name", "kind"), [("sticker", "sticker"), ("voice", "voice"), ("edited_message", "edited")]
)
def test_unsupported_kinds(name: str, kind: str) -> None:
    event = event_of(fixture(name))
    assert isinstance(event, Unsupported) and event.kind == kind


def test_group_messages_never_reach_the_engine() -> None:
    payload = fixture("group_message")
    update = parse_update(payload)
    assert update is not None
    assert translate(update, payload) is None
    assert group_chat_id(update) == -4521876390


def test_button_pressed_in_a_group_is_not_a_choice() -> None:
    payload = fixture("callback_query")
    payload["callback_query"]["message"]["chat"] = {
        "id": -100123,
        "type": "supergroup",
        "title": "x",
    }
    assert event_of(payload) is None


def test_service_messages_and_garbage_are_skipped() -> None:
    payload = fixture("text_message")
    del payload["message"]["text"]
    payload["message"]["new_chat_title"] = "Judul baru"
    assert event_of(payload) is None
    assert parse_update({"update_id": 1, "message": {"message_id": 1}}) is None


def test_inbox_ids_differ_per_kind_of_update() -> None:
    keys = {
        dedup_key(update)
        for name in ("text_message", "edited_message", "callback_query")
        if (update := parse_update(fixture(name))) is not None
    }
    assert len(keys) == 3  # an edit of message 1201 is not message 1201 again


async def test_parse_stored_rebuilds_the_event(tmp_path: Path) -> None:
    channel = TelegramChannel(
        token="1:A", api_url="http://127.0.0.1:9", store=LocalEvidenceStore(tmp_path)
    )
    try:
        payload = fixture("callback_query")
        event = channel.parse_stored(payload)
        expected = event_of(payload)
        assert event is not None and expected is not None
        assert replace(event, received_at=expected.received_at) == expected
        assert channel.parse_stored({"update_id": 3}) is None
        assert channel.parse_stored({"message": "not an object"}) is None
    finally:
        await channel.close()
