"""An outgoing message survives the outbox: to its JSON row and back, unchanged."""

from __future__ import annotations

import json

import pytest

from bot.engine.events import (
    Choice,
    OutFile,
    Outgoing,
    OutText,
    outgoing_from_payload,
    outgoing_to_payload,
)


@pytest.mark.parametrize(
    "message",
    [
        OutText(text="Halo"),
        OutText(
            text="Pilih <b>aksi</b>:",
            choices=(Choice(id="a:1", label="Aksi 1"), Choice(id="a:2", label="Aksi <2>")),
            choose_label="Pilih",
        ),
        OutText(text="Bagikan nomor", request_contact=True, contact_label="Bagikan nomor saya"),
        OutText(text="Batas besok", template="laporham_pengingat", template_params=("B08", "27")),
        OutFile(storage_key="ab/cd", filename="foto.jpg", caption="Foto <i>kegiatan</i>"),
    ],
)
def test_a_message_goes_to_its_row_and_back_unchanged(message: Outgoing) -> None:
    payload = outgoing_to_payload(message)
    assert outgoing_from_payload(payload) == message  # handed to the sender directly
    stored = json.loads(json.dumps(payload))  # or read back from the outbox's JSON column
    assert outgoing_from_payload(stored) == message


def test_the_payload_does_not_share_state_with_the_message() -> None:
    message = OutText(text="Halo", choices=(Choice(id="yes", label="Ya"),))
    payload = outgoing_to_payload(message)
    payload["text"] = "changed"
    payload["choices"].clear()
    assert message.text == "Halo" and message.choices == (Choice(id="yes", label="Ya"),)
