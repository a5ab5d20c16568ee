"""Typed answers: parse what a focal point typed into a normalised value, or say precisely what
is wrong, and hint at what fits. Pure functions, no I/O: easy to test with every odd input seen in
the field. Examples in hints and refusals always lie inside the question's own min/max."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from bot.engine.texts import DEFAULT_LANGUAGE, t
from storage.models import Question, QuestionKind

# "nihil" is the commonest reason a report fails: a word where a number was asked for. One
# list, shared with the score estimate (which counts such answers that got in another way).
from storage.scoring import NIL_WORDS

YES = {"ya", "y", "yes", "iya", "sudah", "ada", "benar", "betul", "ok"}
NO = {"tidak", "t", "no", "tdk", "belum", "tidak ada", "bukan", "n"}
MONTHS = {
    "januari": 1, "jan": 1, "februari": 2, "feb": 2, "pebruari": 2, "maret": 3, "mar": 3,
    "april": 4, "apr": 4, "mei": 5, "juni": 6, "jun": 6, "juli": 7, "jul": 7, "agustus": 8,
    "agu": 8, "agt": 8, "ags": 8, "september": 9, "sep": 9, "sept": 9, "oktober": 10, "okt": 10,
    "november": 11, "nov": 11, "desember": 12, "des": 12,
}  # fmt: skip
TEXT_MAX = 2000
NUMERIC = {QuestionKind.integer, QuestionKind.decimal}
# A question is about a percentage when its wording says so (the catalogue has no unit field).
PERCENT_WORDS = ("persen", "prosentase", "percent", "%")
PERCENT_SUFFIX = re.compile(r"\s*(%|persen|percent)$", re.IGNORECASE)


@dataclass(frozen=True)
class Invalid:
    """Why an answer was refused: a text key of bot/engine/locales and its values."""

    key: str
    values: dict[str, Any] = field(default_factory=dict)


def parse_answer(question: Question, raw: str, language: str = DEFAULT_LANGUAGE) -> str | Invalid:
    """The normalised value, or why not; `language` only formats the examples of a refusal."""
    text = raw.strip()
    if not text:
        return Invalid("answer.empty")
    if is_percent(question):
        # "87,5%" at a percent question is the number 87,5; elsewhere a % stays a mistake.
        text = PERCENT_SUFFIX.sub("", text) or text
    parser = PARSERS[question.kind]
    return parser(question, text, language)


def is_percent(question: Question) -> bool:
    if question.kind not in NUMERIC:
        return False
    wording = f"{question.text} {question.help_text or ''}".casefold()
    return any(word in wording for word in PERCENT_WORDS)


def _yes_no(_question: Question, text: str, _language: str) -> str | Invalid:
    word = text.casefold().rstrip(".!")
    if word in YES:
        return "yes"
    if word in NO:
        return "no"
    return Invalid("answer.yes_no")


def _integer(question: Question, text: str, language: str) -> str | Invalid:
    if _is_nil(text):
        return Invalid("answer.nihil")
    compact = text.replace(" ", ".")
    if PLAIN.fullmatch(compact):
        digits = compact
    elif GROUPED_DOT.fullmatch(compact) or GROUPED_COMMA.fullmatch(compact):
        digits = re.sub(r"[.,]", "", compact)  # 1.500 / 1,500 / 1 500 are fifteen hundred
    elif _indonesian_number(compact) is not None:  # a number, but with decimals
        return Invalid("answer.integer_not_decimal", {"example": examples(question, language)})
    else:
        return Invalid("answer.integer", {"example": examples(question, language)})
    return _bounded(question, Decimal(digits), str(int(digits)))


def _decimal(question: Question, text: str, language: str) -> str | Invalid:
    if _is_nil(text):
        return Invalid("answer.nihil")
    cleaned = re.sub(r"^(rp\.?|idr)\s*", "", text.casefold()).replace(" ", "")
    cleaned = re.sub(r"[.,]-$", "", cleaned)  # "Rp 1.500.000,-" is how amounts are written
    number = _indonesian_number(cleaned)
    if number is None:
        return Invalid("answer.decimal", {"example": examples(question, language)})
    return _bounded(question, number, format(number.normalize(), "f"))


PLAIN = re.compile(r"-?\d+")
# Thousands groups must be well formed: 1.500.000 yes, 1.500.00 or 0.500 no.
GROUPED_DOT = re.compile(r"-?[1-9]\d{0,2}(\.\d{3})+")
GROUPED_COMMA = re.compile(r"-?[1-9]\d{0,2}(,\d{3})+")
SIMPLE_DECIMAL = re.compile(r"-?\d+[.,]\d+")


def _indonesian_number(text: str) -> Decimal | None:
    """Read a number the way Indonesians write it, tolerating English habits.

    1.500.000,50 and 1,500,000.50 (grouping plus decimals), 1.500 (fifteen hundred: a single
    dot before exactly three digits groups thousands), 2,5 and 2.5 and 0.500 (decimals).
    """
    grouped = re.fullmatch(r"(-?[1-9]\d{0,2}(?:\.\d{3})+)(?:,(\d+))?", text) or re.fullmatch(
        r"(-?[1-9]\d{0,2}(?:,\d{3})+)(?:\.(\d+))?", text
    )
    single_comma = text.count(",") == 1 and "." not in text  # "1,500": an Indonesian decimal
    if PLAIN.fullmatch(text):
        integer, fraction = text, ""
    elif grouped and not single_comma:
        integer, fraction = re.sub(r"[.,]", "", grouped.group(1)), grouped.group(2) or ""
    elif SIMPLE_DECIMAL.fullmatch(text):
        integer, _, fraction = text.replace(",", ".").partition(".")
    else:
        return None
    try:
        return Decimal(f"{integer}.{fraction}" if fraction else integer)
    except InvalidOperation:
        return None


def _bounded(question: Question, number: Decimal, value: str) -> str | Invalid:
    low, high = question.min_value, question.max_value
    if low is not None and number < Decimal(str(low)):
        return Invalid("answer.too_small", {"min": _plain(low)})
    if high is not None and number > Decimal(str(high)):
        return Invalid("answer.too_large", {"max": _plain(high)})
    return value


def _text(question: Question, text: str, _language: str) -> str | Invalid:
    limit = int(question.max_value) if question.max_value else TEXT_MAX
    if len(text) > limit:
        return Invalid("answer.text_too_long", {"max": limit, "length": len(text)})
    if len(text) < 2 and question.required:
        return Invalid("answer.text_too_short")
    return text


def _date(_question: Question, text: str, _language: str) -> str | Invalid:
    parsed = parse_date(text)
    if parsed is None:
        return Invalid("answer.date")
    return parsed.isoformat()


def parse_date(text: str) -> date | None:
    cleaned = text.strip().casefold().replace(",", " ")
    for pattern in ("%d-%m-%Y", "%d/%m/%Y", "%d.%m.%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(cleaned, pattern).date()
        except ValueError:
            continue
    words = cleaned.split()
    if len(words) == 3 and words[0].isdigit() and words[1] in MONTHS and words[2].isdigit():
        try:
            return date(int(words[2]), MONTHS[words[1]], int(words[0]))
        except ValueError:
            return None
    return None


def _choice(question: Question, text: str, _language: str) -> str | Invalid:
    choices = question.choices or []
    for option in choices:
        if option.casefold() == text.casefold():
            return option
    return Invalid("answer.choice")


def _is_nil(text: str) -> bool:
    return text.casefold().strip(" .") in NIL_WORDS


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


# --- hints and examples that fit the question ------------------------------------------------


def answer_hint(question: Question, language: str) -> str:
    """The line under a question saying how to answer it, in the user's language."""
    if question.kind not in NUMERIC:
        return t(language, f"hint.{question.kind.value}")
    key = "hint.percent" if is_percent(question) else f"hint.{question.kind.value}"
    parts = [t(language, key, example=examples(question, language))]
    low, high = _bounds(question)
    if low is not None and high is not None:
        parts.append(
            t(language, "hint.between", min=_shown(low, language), max=_shown(high, language))
        )
    elif low is not None:
        parts.append(t(language, "hint.at_least", min=_shown(low, language)))
    elif high is not None:
        parts.append(t(language, "hint.at_most", max=_shown(high, language)))
    if _fits(Decimal(0), low, high) and not is_percent(question):
        parts.append(t(language, "hint.zero_if_none"))
    return " ".join(parts)


def examples(question: Question, language: str) -> str:
    """One or two example answers inside the question's range, written the user's way."""
    low, high = _bounds(question)
    whole = question.kind is QuestionKind.integer
    if whole:
        preferred = [Decimal(12)]
    elif is_percent(question):
        preferred = [Decimal("87.5")]
    else:  # an amount, and a fraction to show the decimal comma
        preferred = [Decimal(1_500_000), Decimal("2.5")]
    fitting = [number for number in preferred if _fits(number, low, high)]
    shown = [_shown(number, language) for number in fitting or [_middle(low, high, whole)]]
    if len(shown) == 2:
        return t(language, "hint.either", first=shown[0], second=shown[1])
    return shown[0]


def _bounds(question: Question) -> tuple[Decimal | None, Decimal | None]:
    low, high = question.min_value, question.max_value
    return (
        None if low is None else Decimal(str(low)),
        None if high is None else Decimal(str(high)),
    )


def _fits(number: Decimal, low: Decimal | None, high: Decimal | None) -> bool:
    return (low is None or number >= low) and (high is None or number <= high)


def _middle(low: Decimal | None, high: Decimal | None, whole: bool) -> Decimal:
    """A plain number inside the range: its middle, else the one bound there is."""
    if low is not None and high is not None:
        middle = (low + high) / 2
    else:
        middle = low if low is not None else high if high is not None else Decimal(0)
    rounded = middle.quantize(Decimal(1), ROUND_HALF_UP)
    if whole or _fits(rounded, low, high):
        # A whole number reads best; for integers clamp it into the range's whole numbers.
        floor = low.quantize(Decimal(1), ROUND_CEILING) if low is not None else rounded
        ceiling = high.quantize(Decimal(1), ROUND_FLOOR) if high is not None else rounded
        return max(floor, min(rounded, ceiling)) if floor <= ceiling else middle
    return middle


def _shown(number: Decimal, language: str) -> str:
    return _group_thousands(format(number.normalize(), "f"), language)


def display_value(question: Question, value: str, language: str) -> str:
    """How a stored answer is shown back to people."""
    if question.kind is QuestionKind.yes_no:
        return {
            "yes": "Ya" if language == "id" else "Yes",
            "no": "Tidak" if language == "id" else "No",
        }[value]
    if question.kind is QuestionKind.date:
        return date.fromisoformat(value).strftime("%d-%m-%Y")
    if question.kind in {QuestionKind.integer, QuestionKind.decimal}:
        return _group_thousands(value, language)
    return value


def _group_thousands(value: str, language: str) -> str:
    integer, _, fraction = value.partition(".")
    sign = "-" if integer.startswith("-") else ""
    digits = integer.lstrip("-")
    grouped = f"{int(digits):,}".replace(",", "." if language == "id" else ",")
    mark = "," if language == "id" else "."
    return f"{sign}{grouped}{mark}{fraction}" if fraction else f"{sign}{grouped}"


PARSERS = {
    QuestionKind.yes_no: _yes_no,
    QuestionKind.integer: _integer,
    QuestionKind.decimal: _decimal,
    QuestionKind.text: _text,
    QuestionKind.date: _date,
    QuestionKind.choice: _choice,
}
