"""A turn's consecutive plain texts go out as one message; buttons stay under their question."""

from __future__ import annotations

from bot.engine.events import Choice, OutFile, OutText
from bot.engine.render import coalesce

INTRO = OutText(text="Mulai mengisi <b>Aksi 1</b>.")
QUESTION = OutText(text="Berapa penerima?", choices=(Choice(id="yes", label="Ya"),))


def test_an_intro_and_the_question_after_it_are_one_message() -> None:
    (joined,) = coalesce([INTRO, QUESTION], max_text=4096)
    assert joined.text == "Mulai mengisi <b>Aksi 1</b>.\n\nBerapa penerima?"
    assert joined.choices == QUESTION.choices  # the buttons of the question, under it


def test_nothing_is_joined_after_buttons_a_contact_request_or_a_file() -> None:
    after = OutText(text="Lalu ini.")
    asks_contact = OutText(text="Bagikan nomor Anda.", request_contact=True)
    photo = OutFile(storage_key="k", filename="foto.jpg")
    assert coalesce([QUESTION, after], max_text=4096) == [QUESTION, after]
    assert coalesce([asks_contact, after], max_text=4096) == [asks_contact, after]
    assert coalesce([photo, after], max_text=4096) == [photo, after]


def test_templates_are_never_joined() -> None:
    reminder = OutText(text="Batas laporan besok.", template="laporham_pengingat")
    assert coalesce([INTRO, reminder], max_text=4096) == [INTRO, reminder]
    assert coalesce([reminder, INTRO], max_text=4096) == [reminder, INTRO]


def test_texts_that_would_not_fit_one_message_stay_apart() -> None:
    long = OutText(text="x" * 4000)
    assert coalesce([long, OutText(text="y" * 200)], max_text=4096) == [
        long,
        OutText(text="y" * 200),
    ]
