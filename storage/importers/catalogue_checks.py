"""What no single catalogue item can check about itself: codes unique within their parent,
measures naming a period of the file, and (against the database) period windows still in order
once the file's dates are merged with the dates already stored.
"""

from __future__ import annotations

from collections.abc import Sequence

from storage.importers.catalogue_format import CatalogueDoc, PeriodDoc
from storage.importers.common import Problems
from storage.models import Period


def check_codes_and_references(doc: CatalogueDoc, problems: Problems) -> None:
    """Codes unique within their parent, measures naming a period of the file, measures asking
    for something."""
    _check_unique([p.code for p in doc.periods], "periods", problems)
    _check_unique([a.code for a in doc.actions], "actions", problems)
    period_codes = [period.code for period in doc.periods]
    for a, action in enumerate(doc.actions):
        _check_unique([m.code for m in action.measures], f"actions[{a}].measures", problems)
        for m, measure in enumerate(action.measures):
            where = f"actions[{a}].measures[{m}]"
            if measure.period not in period_codes:
                problems.add(
                    f"{where}.period",
                    f'periode "{measure.period}" tidak ada di periods '
                    f"(yang ada: {', '.join(period_codes)})",
                )
            if not measure.questions and not measure.evidence:
                problems.add(where, "ukuran tanpa questions dan evidence: tak ada yang dilaporkan")
            _check_unique([q.code for q in measure.questions], f"{where}.questions", problems)
            _check_unique([e.code for e in measure.evidence], f"{where}.evidence", problems)


def _check_unique(codes: Sequence[str], where: str, problems: Problems) -> None:
    first_index: dict[str, int] = {}
    for index, code in enumerate(codes):
        if code in first_index:
            problems.add(
                f"{where}[{index}].code",
                f'kode "{code}" sudah dipakai di {where}[{first_index[code]}]',
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
            problems.add(
                f"periods[{index}]",
                f"dengan tanggal di basis data, periode ini dibuka {opens_on} "
                f"setelah tenggatnya {due_on}; tulis opens_on dan due_on keduanya",
            )
    problems.raise_if_any()
