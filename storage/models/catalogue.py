"""The catalogue: programmes (Aksi HAM of a year, KKPHAM of a year), their periods, actions,
measures per period, questions and evidence requirements; and which offices own which action.

Catalogue content is data imported from files (storage/importers/), never code.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.models.enums import ActionLevel, ProgrammeKind, QuestionKind
from storage.types import UTCDateTime, enum_type, json_type, utcnow


class Programme(SQLModel, table=True):
    __tablename__ = "programme"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=40, unique=True, index=True)
    kind: ProgrammeKind = Field(sa_type=enum_type(ProgrammeKind))
    year: int
    title: str = Field(max_length=200)
    # The catalogue's `reminders:` block (storage/reminder_policy.py); None: the defaults.
    reminder_policy: dict[str, Any] | None = Field(default=None, sa_type=json_type())


class Period(SQLModel, table=True):
    """A reporting period (B04, B08, B12; or one annual period for KKPHAM).

    The window is configured each time by the ministry, so the dates are data. The deadline is the
    end of `due_on` in each region's own time zone (storage/periods.py).
    """

    __tablename__ = "period"
    __table_args__ = (sa.UniqueConstraint("programme_id", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    programme_id: int = Field(foreign_key="programme.id", ondelete="CASCADE", index=True)
    code: str = Field(max_length=10)
    title: str = Field(max_length=120)
    position: int = 0
    opens_on: date | None = None
    due_on: date | None = None


class Action(SQLModel, table=True):
    """An Aksi HAM (or a KKPHAM criterion): the unit an office reports on."""

    __tablename__ = "action"
    __table_args__ = (sa.UniqueConstraint("programme_id", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    programme_id: int = Field(foreign_key="programme.id", ondelete="CASCADE", index=True)
    code: str = Field(max_length=40)
    level: ActionLevel = Field(sa_type=enum_type(ActionLevel))
    title: str = Field(max_length=500)
    target_group: str | None = Field(default=None, max_length=80)
    success_criterion: str | None = Field(default=None, sa_type=sa.Text)
    position: int = 0


class Measure(SQLModel, table=True):
    """An ukuran keberhasilan: what an action must show in one period."""

    __tablename__ = "measure"
    __table_args__ = (sa.UniqueConstraint("action_id", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="action.id", ondelete="CASCADE", index=True)
    period_id: int = Field(foreign_key="period.id", ondelete="CASCADE", index=True)
    code: str = Field(max_length=40)
    position: int = 0
    title: str = Field(max_length=1000)
    help_text: str | None = Field(default=None, sa_type=sa.Text)


class Question(SQLModel, table=True):
    __tablename__ = "question"
    __table_args__ = (sa.UniqueConstraint("measure_id", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    measure_id: int = Field(foreign_key="measure.id", ondelete="CASCADE", index=True)
    code: str = Field(max_length=40)
    position: int = 0
    text: str = Field(max_length=1000)
    kind: QuestionKind = Field(sa_type=enum_type(QuestionKind))
    required: bool = True
    min_value: float | None = None
    max_value: float | None = None
    choices: list[str] | None = Field(default=None, sa_type=json_type())
    help_text: str | None = Field(default=None, sa_type=sa.Text)


class EvidenceRequirement(SQLModel, table=True):
    """A kind of data dukung a measure asks for, e.g. "Notulen rapat", PDF or photo, at least 1."""

    __tablename__ = "evidence_requirement"
    __table_args__ = (sa.UniqueConstraint("measure_id", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    measure_id: int = Field(foreign_key="measure.id", ondelete="CASCADE", index=True)
    code: str = Field(max_length=40)
    position: int = 0
    label: str = Field(max_length=200)
    kinds: list[str] = Field(default_factory=list, sa_type=json_type())
    min_count: int = Field(default=1, ge=0, le=50)
    help_text: str | None = Field(default=None, sa_type=sa.Text)


class Assignment(SQLModel, table=True):
    """An action assigned to one office of one region."""

    __tablename__ = "assignment"
    __table_args__ = (sa.UniqueConstraint("action_id", "office_id"),)

    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="action.id", ondelete="CASCADE", index=True)
    office_id: int = Field(foreign_key="office.id", ondelete="CASCADE", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
