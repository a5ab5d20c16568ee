"""What the catalogue and contacts importers share: the error an operator reads, the report of
what changed, the progress hook the CLI passes a progress bar through, and the upsert step.

An import file is written by hand by an operator, so all its errors are collected in one pass
(the file's own and those found against the database) and raised together, in the file's order
(sheet, row, column; or the YAML path): fixing a file in one go beats one error per attempt. The
first MAX_PROBLEMS are shown, with how many more there are.

A checked file is written in batches (BATCH_ROWS rows each), with a `Checkpoint` between them:
the CLI commits each batch in its own short transaction (storage.db.batched_writes) so that an
import of national size never holds SQLite's write lock for long. Every write is an upsert by
natural keys, so an import interrupted between batches and run again ends where one clean run
would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

MAX_PROBLEMS = 20
# Beyond this many the file is surely the wrong one: stop collecting (memory stays bounded).
MAX_COLLECTED = 10_000
# Rows written between checkpoints. bench/import_lock.py, national size (31,390 rows) on a busy
# two-core machine: in one transaction the bot waited 15 s; in batches of 500 at most 0.85 s
# (p99 0.47 s), with 1000 up to 1.8 s. The import takes about twice as long: an operator's
# progress bar, not a user's wait.
BATCH_ROWS = 500

ENTITY_LABELS = {
    "programme": "Program",
    "period": "Periode",
    "action": "Aksi",
    "measure": "Ukuran keberhasilan",
    "question": "Pertanyaan",
    "evidence_requirement": "Data dukung",
    "region": "Wilayah",
    "office": "OPD",
    "contact": "Kontak",
    "assignment": "Penugasan",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an import file, e.g. location `Sheet "Kontak", baris 7, kolom "telepon"`
    and message `"0812" bukan nomor telepon yang valid`."""

    location: str
    message: str
    # Where in the file, for sorting problems into the file's order (sheet, row, column; or
    # the YAML path's indices and keys).
    position: tuple[int, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class ImportFileError(ValueError):
    """An import file that cannot be imported. Nothing was written."""

    def __init__(self, problems: Iterable[Problem], *, hidden: int = 0) -> None:
        self.problems = list(problems)
        self.hidden = hidden  # further problems found but not shown
        super().__init__(str(self))

    @classmethod
    def single(cls, location: str, message: str) -> ImportFileError:
        return cls([Problem(location, message)])

    def __str__(self) -> str:
        lines = [str(problem) for problem in self.problems]
        if self.hidden:
            lines.append(
                f"(dan {self.hidden} masalah lain sesudahnya; perbaiki yang di atas lalu "
                "impor ulang untuk melihatnya)"
            )
        return "\n".join(lines)


class Problems:
    """Collects problems, all of them (up to MAX_COLLECTED), and raises them in the file's
    order; only the first MAX_PROBLEMS are shown, since past that the file is likely the wrong
    one altogether and a longer list helps nobody."""

    def __init__(self, found: Iterable[Problem] = (), *, shown: int = MAX_PROBLEMS) -> None:
        self.items: list[Problem] = list(found)
        self.shown = shown

    def add(self, location: str, message: str, *, position: tuple[int, ...] = ()) -> None:
        if len(self.items) < MAX_COLLECTED:
            self.items.append(Problem(location, message, position))

    def in_file_order(self) -> list[Problem]:
        # Stable: problems of the same place keep the order they were found in.
        return sorted(self.items, key=lambda problem: problem.position)

    def raise_if_any(self) -> None:
        if self.items:
            ordered = self.in_file_order()
            shown = ordered[: self.shown]
            raise ImportFileError(shown, hidden=len(ordered) - len(shown))

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    # Rows in the database the file does not mention. They are kept: answers may refer to them.
    not_in_file: int = 0


@dataclass
class ImportReport:
    """What an import did, per entity (table name: "action", "contact", ...)."""

    entities: dict[str, Counts] = field(default_factory=dict)

    def __getitem__(self, entity: str) -> Counts:
        return self.entities.setdefault(entity, Counts())

    @property
    def created(self) -> int:
        return sum(c.created for c in self.entities.values())

    @property
    def updated(self) -> int:
        return sum(c.updated for c in self.entities.values())

    @property
    def unchanged(self) -> int:
        return sum(c.unchanged for c in self.entities.values())

    @property
    def not_in_file(self) -> int:
        return sum(c.not_in_file for c in self.entities.values())

    def summary(self) -> list[str]:
        """One line per entity, in Indonesian, for the CLI."""
        return [
            f"{ENTITY_LABELS.get(name, name)}: {c.created} baru, {c.updated} diubah, "
            f"{c.unchanged} tetap, {c.not_in_file} tidak ada di berkas"
            for name, c in self.entities.items()
        ]


class Checkpoint(Protocol):
    """Called by a writer between batches: the caller may commit what is written so far."""

    async def __call__(self) -> None: ...


async def no_checkpoint() -> None:
    """The default Checkpoint: the whole import stays in the caller's one transaction."""


class Batches:
    """Counts rows written; every `size` rows it flushes them and calls the checkpoint."""

    def __init__(self, session: AsyncSession, checkpoint: Checkpoint, size: int) -> None:
        self.session = session
        self.checkpoint = checkpoint
        self.size = size
        self.pending = 0

    async def written(self, rows: int = 1) -> None:
        self.pending += rows
        if self.pending >= self.size:
            self.pending = 0
            await self.session.flush()
            await self.checkpoint()


class Progress(Protocol):
    """Told about work done: `advance` steps since the last call, of `total` (None: unknown)."""

    def __call__(self, advance: int, total: int | None, label: str) -> None: ...


def noop_progress(advance: int, total: int | None, label: str) -> None:
    """The default Progress: tells nobody."""


ModelT = TypeVar("ModelT", bound=SQLModel)
KeyT = TypeVar("KeyT")


class HasId(Protocol):
    @property
    def id(self) -> int | None: ...


def row_id(row: HasId) -> int:
    """A flushed row's id, typed as set: the database assigned it at the flush, so None here is
    a bug in the importer, never a problem with the file."""
    if row.id is None:
        raise RuntimeError(f"{type(row).__name__} has no id yet: flush before using it")
    return row.id


def apply_changes(row: SQLModel, values: Mapping[str, Any]) -> bool:
    """Set the fields that differ; True when anything changed. Equal values are not re-set, so
    re-importing the same file leaves rows (and their updated timestamps) alone."""
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def upsert_row(
    session: AsyncSession,
    existing: dict[KeyT, ModelT],
    key: KeyT,
    model: type[ModelT],
    values: Mapping[str, Any],
    counts: Counts,
) -> ModelT:
    """Update the row under `key` in `existing` (popping it, so that what is left afterwards is
    what the file did not mention) or add a new one; count the outcome."""
    row = existing.pop(key, None)
    if row is None:
        row = model(**values)
        session.add(row)
        counts.created += 1
    elif apply_changes(row, values):
        counts.updated += 1
    else:
        counts.unchanged += 1
    return row
