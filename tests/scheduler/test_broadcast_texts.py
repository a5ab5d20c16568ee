"""The texts a broadcast's author gets: progress at steps, and the delivery report with the
reasons of failures as the channels word them."""

from __future__ import annotations

import pytest

from bot.engine.texts import count_text
from scheduler.broadcasts import (
    failure_reasons,
    progress_step,
    progress_text,
    reason_of,
    recipient_payload,
    report_text,
)
from storage.broadcasts import Delivery, Recipient
from storage.models import Audience, Broadcast

BROADCAST = Broadcast(
    id=7, sender_label="Kanwil Lampung", audience=Audience.focal_points, text="x", without_channel=3
)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ("Forbidden: bot was blocked by the user", "blocked"),
        ("Forbidden: user is deactivated", "deactivated"),
        ("Chat not found", "no_chat"),
        ("Forbidden: bot can't initiate conversation with a user", "no_chat"),
        ("131026: Message undeliverable", "not_on_whatsapp"),
        ("gave up: Timed out", "gave_up"),
        ("400: Bad Request: message is too long", "other"),
        ("", "other"),
    ],
)
def test_a_refusal_becomes_a_reason_a_person_understands(error: str, reason: str) -> None:
    assert reason_of(error) == reason


def test_progress_reads_like_the_kanwil_writes_numbers() -> None:
    figures = Delivery(total=1500, sent=1200, failed=30, waiting=270)
    assert progress_text("id", BROADCAST, figures) == "📤 Siaran #7: terkirim 1.200 dari 1.500."
    assert progress_text("en", BROADCAST, figures) == "📤 Broadcast #7: 1,200 of 1,500 sent."


def test_progress_comes_each_quarter_and_never_for_a_handful() -> None:
    assert progress_step(1500) == 375
    assert progress_step(10_000) == 2500
    assert progress_step(40) == 25  # small broadcasts: hardly more than the report


def test_the_report_counts_failures_by_reason_most_actionable_first() -> None:
    figures = Delivery(
        total=1500,
        sent=1480,
        failed=17,
        waiting=0,
        errors=(
            ("131026: Message undeliverable", 5),
            ("Forbidden: bot was blocked by the user", 9),
            ("Forbidden: bot was blocked by the user ", 1),
            ("gave up: Timed out", 2),
        ),
    )
    assert failure_reasons(figures) == [("blocked", 10), ("not_on_whatsapp", 5), ("gave_up", 2)]
    assert report_text("id", BROADCAST, figures).splitlines() == [
        "<b>Laporan siaran #7</b>",
        "Terkirim: 1.480 dari 1.500",
        "Gagal: 17",
        "• memblokir bot: 10",
        "• tidak memakai WhatsApp: 5",
        "• gagal berulang kali: 2",
        "Belum terhubung ke bot (tidak dikirimi): 3",
    ]
    english = report_text("en", BROADCAST, figures)
    assert "Sent: 1,480 of 1,500" in english and "• blocked the bot: 10" in english


def test_counts_are_grouped_as_each_language_writes_them() -> None:
    assert [count_text("id", n) for n in (7, 1200, 25000)] == ["7", "1.200", "25.000"]
    assert count_text("en", 25000) == "25,000"


def test_each_recipient_row_carries_their_language_for_the_template() -> None:
    """Outside WhatsApp's window the template goes out in the language the row carries."""
    english = recipient_payload(BROADCAST, Recipient(1, "en", "whatsapp", "62811"))
    indonesian = recipient_payload(BROADCAST, Recipient(2, "id", "whatsapp", "62812"))
    assert (english["language"], indonesian["language"]) == ("en", "id")
