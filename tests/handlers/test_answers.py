"""handlers/answers.py: typed answers parsed into normalised values, or refused with a text key.
Pure functions: Question objects are built in memory, no database."""

from __future__ import annotations

from datetime import date

import pytest

from bot.engine.texts import catalogue, t
from handlers.answers import (
    PARSERS,
    Invalid,
    answer_hint,
    display_value,
    examples,
    parse_answer,
    parse_date,
)
from storage.models import Question, QuestionKind


def question(kind: QuestionKind, **fields) -> Question:
    fields.setdefault("required", True)
    fields.setdefault("text", "Berapa?")
    return Question(measure_id=1, code="q", kind=kind, **fields)


def integer(**fields) -> Question:
    return question(QuestionKind.integer, **fields)


def decimal(**fields) -> Question:
    return question(QuestionKind.decimal, **fields)


BOUNDED = integer(min_value=0, max_value=1000)
ANY_INTEGER = integer()
ANY_DECIMAL = decimal()
YES_NO = question(QuestionKind.yes_no)
DATE = question(QuestionKind.date)
TEXT = question(QuestionKind.text)
CHOICE = question(QuestionKind.choice, choices=["Sudah", "Belum", "Dalam Proses"])


def invalid_key(result: str | Invalid) -> str:
    assert isinstance(result, Invalid), f"expected Invalid, got {result!r}"
    return result.key


# --- general --------------------------------------------------------------------------------


def test_every_question_kind_has_a_parser() -> None:
    assert set(PARSERS) == set(QuestionKind)


@pytest.mark.parametrize("kind", list(QuestionKind))
@pytest.mark.parametrize("raw", ["", " ", "\n\t "])
def test_empty_answer_is_refused_for_every_kind(kind: QuestionKind, raw: str) -> None:
    assert parse_answer(question(kind, choices=["A"]), raw) == Invalid("answer.empty")


def test_invalid_defaults_to_no_values_and_is_frozen() -> None:
    refusal = Invalid("answer.empty")
    assert refusal.values == {}
    with pytest.raises(AttributeError):
        refusal.key = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("q", "raw"),
    [
        (BOUNDED, "abc"),
        (BOUNDED, "nihil"),
        (BOUNDED, "2,5"),
        (BOUNDED, "5000"),
        (BOUNDED, "-1"),
        (ANY_DECIMAL, "abc"),
        (decimal(min_value=0.5), "0,1"),
        (YES_NO, "maybe"),
        (DATE, "besok"),
        (question(QuestionKind.text, max_value=5), "terlalu panjang"),
        (TEXT, "x"),
        (CHOICE, "lain"),
        (TEXT, " "),
    ],
)
@pytest.mark.parametrize("language", ["id", "en"])
def test_every_refusal_renders_in_both_languages(q: Question, raw: str, language: str) -> None:
    refusal = parse_answer(q, raw)
    assert isinstance(refusal, Invalid)
    assert refusal.key in catalogue(language)
    rendered = t(language, refusal.key, **refusal.values)
    assert "{" not in rendered


# --- integer --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12", "12"),
        ("0", "0"),
        (" 12 ", "12"),
        ("00012", "12"),
        ("1.500", "1500"),  # Indonesian grouping
        ("1,500", "1500"),  # English grouping: integers have no decimal part, so it is grouping
        ("1 500", "1500"),
        ("1.500.000", "1500000"),
        ("12.500.000", "12500000"),
        ("1,500,000", "1500000"),
        ("-5", "-5"),
        ("-0", "0"),
    ],
)
def test_integer_accepted(raw: str, expected: str) -> None:
    assert parse_answer(ANY_INTEGER, raw) == expected


@pytest.mark.parametrize(
    "raw", ["nihil", "Nihil", "Nihil.", "NIHIL", "-", " - ", "tidak ada", "Tidak ada.", "nil",
            "kosong", "none", "N/A", "na", "tidak", "nol"],
)  # fmt: skip
def test_integer_nil_words_get_the_nihil_explanation(raw: str) -> None:
    assert parse_answer(BOUNDED, raw) == Invalid("answer.nihil")


@pytest.mark.parametrize("raw", ["2,5", "2.5", "1,5", "1.50", "1.5000", "1.500,00", "1,500.00"])
def test_integer_with_a_decimal_part_is_refused(raw: str) -> None:
    assert invalid_key(parse_answer(ANY_INTEGER, raw)) == "answer.integer_not_decimal"


@pytest.mark.parametrize("raw", ["abc", "12 orang", "dua belas", "12.", "+12", "1.2.3", "1e3"])
def test_integer_not_a_number(raw: str) -> None:
    assert invalid_key(parse_answer(ANY_INTEGER, raw)) == "answer.integer"


def test_integer_bounds() -> None:
    assert parse_answer(BOUNDED, "0") == "0"
    assert parse_answer(BOUNDED, "1000") == "1000"
    assert parse_answer(BOUNDED, "1.000") == "1000"
    assert parse_answer(BOUNDED, "-1") == Invalid("answer.too_small", {"min": "0"})
    assert parse_answer(BOUNDED, "1001") == Invalid("answer.too_large", {"max": "1000"})
    assert parse_answer(BOUNDED, "1.500") == Invalid("answer.too_large", {"max": "1000"})


def test_integer_fractional_bounds_are_shown_plainly() -> None:
    q = integer(min_value=0.5, max_value=2.5)
    assert parse_answer(q, "0") == Invalid("answer.too_small", {"min": "0.5"})
    assert parse_answer(q, "3") == Invalid("answer.too_large", {"max": "2.5"})
    assert parse_answer(q, "1") == "1"


def test_integer_nil_check_comes_before_bounds() -> None:
    assert invalid_key(parse_answer(integer(min_value=1), "-")) == "answer.nihil"


@pytest.mark.parametrize("raw", ["0.500", "0,500", "0.050"])
def test_integer_zero_point_something_is_not_grouping(raw: str) -> None:
    assert invalid_key(parse_answer(ANY_INTEGER, raw)) == "answer.integer_not_decimal"


# --- decimal --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Rp 1.500.000", "1500000"),
        ("Rp. 1.500.000", "1500000"),
        ("rp1.500.000", "1500000"),
        ("IDR 1,500,000", "1500000"),
        ("1 500 000", "1500000"),
        ("2,5", "2.5"),
        ("2.5", "2.5"),
        ("2,50", "2.5"),
        ("0,25", "0.25"),
        ("-2,5", "-2.5"),
        ("1.500.000,50", "1500000.5"),
        ("1,500,000.50", "1500000.5"),
        ("1.500.000,00", "1500000"),
        ("1.500", "1500"),  # one dot + exactly three digits: grouping
        ("1,500", "1.5"),  # one comma: always a decimal comma (documented rule)
        ("1.5", "1.5"),  # one dot, not three digits: decimal point
        ("12", "12"),
        ("0", "0"),
    ],
)
def test_decimal_accepted(raw: str, expected: str) -> None:
    assert parse_answer(ANY_DECIMAL, raw) == expected


@pytest.mark.parametrize("raw", ["nihil", "Nihil.", "-", "tidak ada", "kosong"])
def test_decimal_nil_words(raw: str) -> None:
    assert parse_answer(ANY_DECIMAL, raw) == Invalid("answer.nihil")


@pytest.mark.parametrize("raw", ["abc", "10%", "1e5", ".5", ",5", "Rp", "2,5 juta"])
def test_decimal_not_a_number(raw: str) -> None:
    assert invalid_key(parse_answer(ANY_DECIMAL, raw)) == "answer.decimal"


def test_decimal_bounds() -> None:
    q = decimal(min_value=0.5, max_value=2.5)
    assert parse_answer(q, "0,5") == "0.5"
    assert parse_answer(q, "2,5") == "2.5"
    assert parse_answer(q, "0,49") == Invalid("answer.too_small", {"min": "0.5"})
    assert parse_answer(q, "2,51") == Invalid("answer.too_large", {"max": "2.5"})
    assert parse_answer(decimal(max_value=1_000_000), "Rp 1.500.000") == Invalid(
        "answer.too_large", {"max": "1000000"}
    )


@pytest.mark.parametrize("raw", ["1.500.00", "Rp 1.500.00", "1.2.3", "1,2,3", "12.34.567", "1,5,"])
def test_decimal_malformed_grouping_is_refused(raw: str) -> None:
    assert invalid_key(parse_answer(ANY_DECIMAL, raw)) == "answer.decimal"


def test_decimal_zero_point_five_hundred() -> None:
    assert parse_answer(ANY_DECIMAL, "0.500") == "0.5"


def test_decimal_refusal_in_english_has_no_indonesian_words() -> None:
    refusal = parse_answer(ANY_DECIMAL, "abc", "en")
    assert isinstance(refusal, Invalid)
    assert "atau" not in t("en", refusal.key, **refusal.values)


# --- percent questions and hints that fit the range (issue #12, item 9) ----------------------

PERCENT = decimal(text="Berapa persen anak yang sudah memiliki akta kelahiran?", min_value=0,
                  max_value=100)  # fmt: skip
WHOLE_PERCENT = integer(text="Persentase OPD yang hadir?", min_value=0, max_value=100)


@pytest.mark.parametrize(
    ("q", "raw", "expected"),
    [(PERCENT, "87,5%", "87.5"), (PERCENT, "87,5 %", "87.5"), (PERCENT, "100%", "100"),
     (PERCENT, "0%", "0"), (PERCENT, "87.5 persen", "87.5"), (PERCENT, "87,5", "87.5"),
     (WHOLE_PERCENT, "75%", "75")],
)  # fmt: skip
def test_percent_question_accepts_a_trailing_percent_sign(
    q: Question, raw: str, expected: str
) -> None:
    assert parse_answer(q, raw) == expected


def test_percent_sign_keeps_the_range_and_is_refused_where_no_percent_is_asked() -> None:
    assert parse_answer(PERCENT, "101%") == Invalid("answer.too_large", {"max": "100"})
    assert invalid_key(parse_answer(PERCENT, "%")) == "answer.decimal"
    assert invalid_key(parse_answer(WHOLE_PERCENT, "87,5%")) == "answer.integer_not_decimal"
    assert invalid_key(parse_answer(ANY_DECIMAL, "10%")) == "answer.decimal"  # an amount


RANGES = [
    integer(),
    integer(min_value=0, max_value=1000),
    integer(min_value=20, max_value=30),
    integer(min_value=100),
    integer(max_value=5),
    integer(min_value=0.5, max_value=2.5),
    integer(min_value=1_000_000, max_value=2_000_000),
    decimal(),
    decimal(min_value=0, max_value=100),
    decimal(min_value=0.1, max_value=0.9),
    decimal(min_value=5_000_000),
    decimal(max_value=1),
    PERCENT,
    WHOLE_PERCENT,
    decimal(text="Berapa persen?", min_value=90, max_value=95),
]


@pytest.mark.parametrize("q", RANGES)
@pytest.mark.parametrize(("language", "either"), [("id", " atau "), ("en", " or ")])
def test_every_example_in_hints_and_refusals_is_an_accepted_answer(
    q: Question, language: str, either: str
) -> None:
    shown = examples(q, language)
    assert shown in answer_hint(q, language)
    refusal = parse_answer(q, "abc", language)
    assert isinstance(refusal, Invalid) and refusal.values["example"] == shown
    for example in shown.split(either):
        assert isinstance(parse_answer(q, example, language), str), (example, q)


def test_percent_hint_fits_the_question() -> None:
    hint = answer_hint(PERCENT, "id")
    assert "1.500.000" not in hint
    assert "87,5" in hint and "%" in hint and "Antara 0 dan 100" in hint
    assert answer_hint(PERCENT, "en").startswith("Answer with a percentage, e.g. 87.5")


def test_hint_of_an_unbounded_amount_keeps_its_two_examples() -> None:
    assert answer_hint(ANY_DECIMAL, "id") == (
        "Jawab dengan angka, misalnya 1.500.000 atau 2,5. Tulis 0 bila tidak ada."
    )
    assert answer_hint(ANY_INTEGER, "en") == (
        "Answer with a whole number, e.g. 12. Write 0 if there is none."
    )


def test_hint_says_the_range_and_offers_zero_only_when_zero_fits() -> None:
    hint = answer_hint(integer(min_value=20, max_value=30), "id")
    assert hint == "Jawab dengan angka bulat, misalnya 25. Antara 20 dan 30."
    assert "Paling sedikit 1.000" in answer_hint(integer(min_value=1000), "id")
    assert "At most 5" in answer_hint(integer(max_value=5), "en")


# --- yes / no -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["ya", "Ya", "YA", "Y", "y", "Ya.", "ya!", "iya", "sudah", "Sudah.", "ada", "benar",
            "betul", "ok", "OK", "yes", "  ya  "],
)  # fmt: skip
def test_yes(raw: str) -> None:
    assert parse_answer(YES_NO, raw) == "yes"


@pytest.mark.parametrize(
    "raw", ["tidak", "Tidak", "TIDAK.", "tdk", "t", "belum", "Belum", "tidak ada", "bukan", "no",
            "No", "n"],
)  # fmt: skip
def test_no(raw: str) -> None:
    assert parse_answer(YES_NO, raw) == "no"


@pytest.mark.parametrize("raw", ["maybe", "mungkin", "oke", "ya sudah", "1", "?"])
def test_yes_no_unclear(raw: str) -> None:
    assert parse_answer(YES_NO, raw) == Invalid("answer.yes_no")


# --- date -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["25-08-2025", "25/08/2025", "25.08.2025", "2025-08-25", "25-8-2025", "25 Agustus 2025",
     "25 agustus 2025", "25 AGUSTUS 2025", "25 agt 2025", "25 Agu 2025", "25 ags 2025",
     "25 Agustus, 2025", "25  agustus  2025", " 25-08-2025 "],
)  # fmt: skip
def test_date_accepted(raw: str) -> None:
    assert parse_answer(DATE, raw) == "2025-08-25"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1 Mei 2025", date(2025, 5, 1)),
        ("5-8-2025", date(2025, 8, 5)),
        ("29-02-2024", date(2024, 2, 29)),
        ("3 des 2024", date(2024, 12, 3)),
        ("10 Pebruari 2025", date(2025, 2, 10)),
        ("17 sept 2025", date(2025, 9, 17)),
    ],
)
def test_parse_date(raw: str, expected: date) -> None:
    assert parse_date(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["31-02-2025", "29-02-2025", "32 Agustus 2025", "0 Jan 2025", "25 13 2025", "besok",
     "kemarin", "05-08-25", "2025/08/25", "Senin, 25 Agustus 2025", "25 Agustus 0",
     "25 Agustus", "Agustus 2025"],
)  # fmt: skip
def test_date_refused(raw: str) -> None:
    assert parse_date(raw) is None
    assert parse_answer(DATE, raw) == Invalid("answer.date")


# --- text -----------------------------------------------------------------------------------


def test_text_is_stripped() -> None:
    assert parse_answer(TEXT, "  Rapat koordinasi  ") == "Rapat koordinasi"


def test_text_limit_from_max_value() -> None:
    q = question(QuestionKind.text, max_value=10)
    assert parse_answer(q, "a" * 10) == "a" * 10
    assert parse_answer(q, "a" * 11) == Invalid("answer.text_too_long", {"max": 10, "length": 11})


def test_text_default_limit_is_2000() -> None:
    assert parse_answer(TEXT, "a" * 2000) == "a" * 2000
    assert parse_answer(TEXT, "a" * 2001) == Invalid(
        "answer.text_too_long", {"max": 2000, "length": 2001}
    )


def test_text_too_short_only_when_required() -> None:
    assert parse_answer(TEXT, "x") == Invalid("answer.text_too_short")
    assert parse_answer(TEXT, "ok") == "ok"
    assert parse_answer(question(QuestionKind.text, required=False), "x") == "x"


# --- choice ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Sudah", "Sudah"), ("sudah", "Sudah"), ("BELUM", "Belum"), ("dalam proses", "Dalam Proses")],
)
def test_choice_matches_case_insensitively_and_returns_the_option(raw: str, expected: str) -> None:
    assert parse_answer(CHOICE, raw) == expected


@pytest.mark.parametrize("raw", ["lain", "Sudah.", "Dalam  Proses", "1"])
def test_choice_refused(raw: str) -> None:
    # Numbers are turned into the chosen option by the engine (bot/engine/dispatch.py), not here.
    assert parse_answer(CHOICE, raw) == Invalid("answer.choice")


def test_choice_without_options_refuses_everything() -> None:
    assert parse_answer(question(QuestionKind.choice), "Sudah") == Invalid("answer.choice")


# --- display_value --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "language", "shown"),
    [("yes", "id", "Ya"), ("no", "id", "Tidak"), ("yes", "en", "Yes"), ("no", "en", "No")],
)
def test_display_yes_no(value: str, language: str, shown: str) -> None:
    assert display_value(YES_NO, value, language) == shown


@pytest.mark.parametrize("language", ["id", "en"])
def test_display_date_is_day_month_year(language: str) -> None:
    assert display_value(DATE, "2025-08-05", language) == "05-08-2025"


@pytest.mark.parametrize(
    ("value", "id_shown", "en_shown"),
    [
        ("0", "0", "0"),
        ("999", "999", "999"),
        ("1000", "1.000", "1,000"),
        ("1500", "1.500", "1,500"),
        ("1500000", "1.500.000", "1,500,000"),
        ("-1500", "-1.500", "-1,500"),
    ],
)
def test_display_integer_grouped(value: str, id_shown: str, en_shown: str) -> None:
    assert display_value(ANY_INTEGER, value, "id") == id_shown
    assert display_value(ANY_INTEGER, value, "en") == en_shown


@pytest.mark.parametrize(
    ("value", "id_shown", "en_shown"),
    [
        ("1500000.5", "1.500.000,5", "1,500,000.5"),
        ("2.5", "2,5", "2.5"),
        ("-2.5", "-2,5", "-2.5"),
        ("0.25", "0,25", "0.25"),
        ("1500", "1.500", "1,500"),
    ],
)
def test_display_decimal(value: str, id_shown: str, en_shown: str) -> None:
    assert display_value(ANY_DECIMAL, value, "id") == id_shown
    assert display_value(ANY_DECIMAL, value, "en") == en_shown


def test_display_text_and_choice_unchanged() -> None:
    assert display_value(TEXT, "Rapat <b>x</b>", "en") == "Rapat <b>x</b>"
    assert display_value(CHOICE, "Sudah", "en") == "Sudah"


@pytest.mark.parametrize(
    ("q", "raw"),
    [
        (ANY_INTEGER, "1.500.000"),
        (ANY_DECIMAL, "Rp 1.500.000,50"),
        (ANY_DECIMAL, "-0,25"),
        (DATE, "25 Agustus 2025"),
        (YES_NO, "sudah"),
    ],
)
def test_parse_then_display_round_trip_in_indonesian(q: Question, raw: str) -> None:
    value = parse_answer(q, raw)
    assert isinstance(value, str)
    shown = display_value(q, value, "id")
    assert parse_answer(q, shown) == value
