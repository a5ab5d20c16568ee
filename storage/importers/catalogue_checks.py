"""What no single catalogue item can check about itself: codes unique within their parent,
measures naming a period of the file, and (against the database) period windows still in order
once the file's dates are merged with the dates already stored.

The code and reference checks read the raw YAML data, not the validated document, so that they
run in the same pass as the structure checks: items whose own fields are wrong are skipped here
(their problems come from the structure checks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from storage.importers.catalogue_format import PeriodDoc
from storage.importers.common import Problems
from storage.models import Period

Loc = tuple[int | str, ...]

# Keys in the order a catalogue file usually writes them: problems are listed in that order
# within one item (a YAML mapping's order is not kept by the parsed data).
KEY_ORDER = (
    "programme",
    "periods",
    "actions",
    "code",
    "kind",
    "year",
    "level",
    "period",
    "title",
    "text",
    "label",
    "type",
    "target_group",
    "success_criterion",
    "opens_on",
    "due_on",
    "required",
    "min",
    "max",
    "choices",
    "kinds",
    "min_count",
    "help",
    "measures",
    "questions",
    "evidence",
)


def path_text(loc: Loc) -> str:
    """('actions', 2, 'measures', 0, 'title') -> actions[2].measures[0].title"""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def path_position(loc: Loc) -> tuple[int, ...]:
    """A sort key in the file's order: list indices as they are, keys by KEY_ORDER."""
    return tuple(
        part if isinstance(part, int) else (KEY_ORDER.index(part) if part in KEY_ORDER else 99)
        for part in loc
    )


def add_at(problems: Problems, loc: Loc, message: str) -> None:
    problems.add(path_text(loc), message, position=path_position(loc))


def check_codes_and_references(data: Any, problems: Problems) -> None:
    """Codes unique within their parent, measures naming a period of the file, measures asking
    for something."""
    periods = _items(data, "periods")
    actions = _items(data, "actions")
    _check_unique(periods, ("periods",), problems)
    _check_unique(actions, ("actions",), problems)
    # Each code once, even when the file repeats one (that is reported above).
    period_codes = list(dict.fromkeys(c for _, p in periods if (c := _code(p)) is not None))
    for a, action in actions:
        measures = _items(action, "measures")
        _check_unique(measures, ("actions", a, "measures"), problems)
        for m, measure in measures:
            loc: Loc = ("actions", a, "measures", m)
            period = _code(measure, "period")
            if period is not None and period not in period_codes:
                known = ", ".join(period_codes) if period_codes else "belum ada satu pun"
                add_at(
                    problems,
                    (*loc, "period"),
                    f'periode "{period}" tidak ada di periods (periode di berkas: {known})',
                )
            if not measure.get("questions") and not measure.get("evidence"):
                add_at(
                    problems, loc, "ukuran tanpa questions dan evidence: tak ada yang dilaporkan"
                )
            _check_unique(_items(measure, "questions"), (*loc, "questions"), problems)
            _check_unique(_items(measure, "evidence"), (*loc, "evidence"), problems)


def _items(parent: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    """The mappings of a list under `key`, with their indices; anything else is skipped (the
    structure checks report it)."""
    if not isinstance(parent, dict):
        return []
    value = parent.get(key)
    if not isinstance(value, list):
        return []
    return [(index, item) for index, item in enumerate(value) if isinstance(item, dict)]


def _code(item: dict[str, Any], key: str = "code") -> str | None:
    """A code as the validated document will hold it (stripped), or None when it is not text
    (the structure checks report that)."""
    value = item.get(key)
    return value.strip() or None if isinstance(value, str) else None


def _check_unique(items: list[tuple[int, dict[str, Any]]], where: Loc, problems: Problems) -> None:
    first_index: dict[str, int] = {}
    for index, item in items:
        code = _code(item)
        if code is None:
            continue
        if code in first_index:
            add_at(
                problems,
                (*where, index, "code"),
                f'kode "{code}" sudah dipakai di {path_text((*where, first_index[code]))}',
            )
        else:
            first_index[code] = index


def check_windows(periods: Sequence[PeriodDoc], old: dict[str, Period]) -> None:
    """A date the file leaves out keeps the database's; the merged window must still be in order.
    Checked before anything is written."""
    problems = Problems()
    for index, period in enumerate(periods):
        current = old.get(period.code)
        opens_on = period.opens_on or (current.opens_on if current else None)
        due_on = period.due_on or (current.due_on if current else None)
        if opens_on and due_on and opens_on > due_on:
            add_at(
                problems,
                ("periods", index),
                f"dengan tanggal di basis data, periode ini dibuka {opens_on} "
                f"setelah tenggatnya {due_on}; tulis opens_on dan due_on keduanya",
            )
    problems.raise_if_any()
