"""The catalogue file's format: the pydantic models a catalogue YAML document must fit
(docs/catalogue.md). What one item can check about itself is checked here; what needs the whole
file (codes, references) is in catalogue_checks.py.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from storage.models import ActionLevel, ProgrammeKind, QuestionKind
from storage.reminder_policy import ReminderPolicy

EVIDENCE_KINDS = ("photo", "pdf", "docx", "xlsx")
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


# Codes are Strict: YAML turns an unquoted 01 into the number 1 and 1.10 into 1.1, and a code
# silently mangled that way would not match on the next import.
Code = Annotated[
    str,
    Strict(),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=40, pattern=CODE_PATTERN),
]
PeriodCode = Annotated[
    str,
    Strict(),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=10, pattern=CODE_PATTERN),
]


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
OptionalText = Annotated[str | None, BeforeValidator(_blank_to_none)]
EvidenceKind = Literal["photo", "pdf", "docx", "xlsx"]  # as EVIDENCE_KINDS


class _Doc(BaseModel):
    # extra="forbid" catches a typo'd key (titel:) instead of silently dropping it.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, frozen=True)


class ProgrammeDoc(_Doc):
    code: Code
    kind: ProgrammeKind
    year: int = Field(ge=2000, le=2100)
    title: Text = Field(max_length=200)


class PeriodDoc(_Doc):
    code: PeriodCode
    title: Text = Field(max_length=120)
    opens_on: date | None = None
    due_on: date | None = None

    @field_validator("due_on")
    @classmethod
    def _due_not_before_opening(cls, value: date | None, info: ValidationInfo) -> date | None:
        opens_on = info.data.get("opens_on")
        if value is not None and opens_on is not None and value < opens_on:
            raise ValueError(f"due_on {value} lebih awal dari opens_on {opens_on}")
        return value


class QuestionDoc(_Doc):
    code: Code
    text: Text = Field(max_length=1000)
    type: QuestionKind
    required: bool = True
    min: float | None = None
    max: float | None = None
    # validate_default: a choice question without choices must fail, not pass as None.
    choices: list[Text] | None = Field(default=None, validate_default=True)
    help: OptionalText = None

    @field_validator("min", "max")
    @classmethod
    def _bounds_fit_type(cls, value: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("type")
        if value is None or kind is None:  # kind is None: `type` itself is wrong, reported there
            return value
        if kind not in (QuestionKind.integer, QuestionKind.decimal, QuestionKind.text):
            raise ValueError(f"{info.field_name} hanya untuk jenis integer, decimal atau text")
        if kind in (QuestionKind.integer, QuestionKind.text) and value != int(value):
            raise ValueError(f"{info.field_name} harus bilangan bulat untuk jenis {kind}")
        if kind is QuestionKind.text and value < 0:
            raise ValueError(f"{info.field_name} (panjang teks) tidak boleh negatif")
        low = info.data.get("min")
        if info.field_name == "max" and low is not None and value < low:
            raise ValueError(f"max ({value:g}) lebih kecil dari min ({low:g})")
        return value

    @field_validator("choices")
    @classmethod
    def _choices_fit_type(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        kind = info.data.get("type")
        if kind is None:
            return value
        if kind is not QuestionKind.choice:
            if value:
                raise ValueError("choices hanya untuk jenis choice")
            return None
        if value is None or len(value) < 2:
            raise ValueError("jenis choice butuh minimal 2 pilihan di choices")
        if len(set(value)) != len(value):
            raise ValueError("ada pilihan yang ditulis dua kali")
        return value


class EvidenceDoc(_Doc):
    code: Code
    label: Text = Field(max_length=200)
    kinds: list[EvidenceKind] = Field(min_length=1)
    min_count: int = Field(default=1, ge=0, le=50)
    help: OptionalText = None


class MeasureDoc(_Doc):
    code: Code
    period: PeriodCode
    title: Text = Field(max_length=1000)
    help: OptionalText = None
    questions: list[QuestionDoc] = Field(default_factory=list)
    evidence: list[EvidenceDoc] = Field(default_factory=list)


class ActionDoc(_Doc):
    code: Code
    level: ActionLevel
    title: Text = Field(max_length=500)
    target_group: OptionalText = Field(default=None, max_length=80)
    success_criterion: OptionalText = None
    measures: list[MeasureDoc] = Field(default_factory=list)


class CatalogueDoc(_Doc):
    programme: ProgrammeDoc
    periods: list[PeriodDoc] = Field(min_length=1)
    actions: list[ActionDoc] = Field(default_factory=list)
    # Optional: when focal points are reminded (storage/reminder_policy.py has the defaults).
    reminders: ReminderPolicy | None = None
