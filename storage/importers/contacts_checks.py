"""What no single contacts row can check about itself: keys written twice in the file, and
references (regions, offices, programmes, actions) that must exist in the file or the database,
with each role's scope fitting the region it names. The database rows an import refers to are
loaded once, up front, and handed on to contacts_write.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.importers.common import Problems, row_id
from storage.importers.contacts_format import (
    AssignmentRow,
    ContactRow,
    ContactsDoc,
    RegionRow,
    Where,
)
from storage.models import Action, Assignment, Contact, Office, Programme, Region, RegionKind, Role

# --- within the file --------------------------------------------------------------------------


def check_duplicates(doc: ContactsDoc, problems: Problems) -> None:
    """Two rows for one key would make the result depend on row order: name both rows."""
    checks: list[tuple[list[tuple[tuple[str, ...], Where]], str, str]] = [
        ([((r.code,), r.where) for r in doc.regions], "kode", "kode wilayah"),
        ([((o.region_code, o.code), o.where) for o in doc.offices], "kode", "kode OPD"),
        ([((c.phone,), c.where) for c in doc.contacts], "telepon", "nomor"),
    ]
    for rows, column, label in checks:
        seen: dict[tuple[str, ...], Where] = {}
        for key, where in rows:
            if key in seen:
                problems.add(
                    where.at(column),
                    f'{label} "{key[-1]}" sudah dipakai di baris {seen[key].row}',
                    position=where.position(column),
                )
            else:
                seen[key] = where


# --- checking against the database ------------------------------------------------------------


@dataclass
class Known:
    """The rows an import refers to, loaded up front: a few thousand even nationally."""

    regions: dict[str, Region]  # code
    offices: dict[tuple[str, str], Office]  # (region code, office code)
    contacts: dict[str, Contact]  # phone
    programmes: dict[str, Programme]  # code, lower case
    actions: dict[tuple[int, str], Action]  # (programme id, code in lower case)
    assignments: dict[tuple[int, int], Assignment]  # (action id, office id)


async def load_known(session: AsyncSession) -> Known:
    regions = {region.code: region for region in (await session.exec(select(Region))).all()}
    codes = {region.id: region.code for region in regions.values()}
    offices = {
        (codes[office.region_id], office.code.upper()): office
        for office in (await session.exec(select(Office))).all()
    }
    contacts = {c.phone: c for c in (await session.exec(select(Contact))).all() if c.phone}
    programmes = {p.code.lower(): p for p in (await session.exec(select(Programme))).all()}
    actions = {
        (action.programme_id, action.code.lower()): action
        for action in (await session.exec(select(Action))).all()
    }
    assignments = {
        (a.action_id, a.office_id): a for a in (await session.exec(select(Assignment))).all()
    }
    return Known(regions, offices, contacts, programmes, actions, assignments)


@dataclass
class _Scope:
    """Regions and offices as they will be after the import: the file's over the database's."""

    kinds: dict[str, RegionKind]
    offices: set[tuple[str, str]]

    @classmethod
    def of(cls, doc: ContactsDoc, known: Known) -> _Scope:
        kinds = {code: region.kind for code, region in known.regions.items()}
        kinds.update({row.code: row.kind for row in doc.regions})
        offices = set(known.offices) | {(row.region_code, row.code) for row in doc.offices}
        return cls(kinds, offices)

    def check_region(self, where: Where, column: str, code: str, problems: Problems) -> bool:
        if code in self.kinds:
            return True
        problems.add(
            where.at(column),
            f'wilayah "{code}" tidak ada di sheet Wilayah maupun di basis data',
            position=where.position(column),
        )
        return False

    def check_office(self, where: Where, region: str, office: str, problems: Problems) -> bool:
        if (region, office) in self.offices:
            return True
        elsewhere = sorted(r for r, o in self.offices if o == office)
        hint = f" (ada di wilayah {', '.join(elsewhere[:3])})" if elsewhere else ""
        problems.add(
            where.at("opd"),
            f'OPD "{office}" tidak ada di wilayah {region}{hint}',
            position=where.position("opd"),
        )
        return False


def check_references(doc: ContactsDoc, known: Known) -> None:
    """Raises every problem of the file at once: those found while reading it (doc.problems)
    and those found here against the database, in the file's order."""
    problems = Problems(doc.problems)
    scope = _Scope.of(doc, known)
    for region in doc.regions:
        _check_parent(region, scope, problems)
    for office in doc.offices:
        scope.check_region(office.where, "wilayah", office.region_code, problems)
    for contact in doc.contacts:
        _check_contact(contact, scope, problems)
    for assignment in doc.assignments:
        _check_assignment(assignment, scope, known, problems)
    problems.raise_if_any()


def _check_parent(row: RegionRow, scope: _Scope, problems: Problems) -> None:
    parent = row.parent_code
    if parent is None or not scope.check_region(row.where, "induk", parent, problems):
        return
    if scope.kinds[parent] is not RegionKind.provinsi:
        _add(problems, row.where, "induk", f'induk "{parent}" bukan provinsi')


def _check_contact(row: ContactRow, scope: _Scope, problems: Problems) -> None:
    region = row.region_code
    if region is None or not scope.check_region(row.where, "wilayah", region, problems):
        return
    if row.office_code is not None:
        scope.check_office(row.where, region, row.office_code, problems)
    if row.role is Role.kanwil and scope.kinds[region] is not RegionKind.provinsi:
        _add(
            problems,
            row.where,
            "wilayah",
            f'kanwil mencakup satu provinsi, sedangkan "{region}" bukan provinsi',
        )


def _check_assignment(row: AssignmentRow, scope: _Scope, known: Known, problems: Problems) -> None:
    action = _find_action(row, known, problems)
    if not scope.check_region(row.where, "wilayah", row.region_code, problems):
        return
    if not scope.check_office(row.where, row.region_code, row.office_code, problems):
        return
    kind = scope.kinds[row.region_code]
    if action is not None and action.level.value != kind.value:
        _add(
            problems,
            row.where,
            "aksi",
            f"aksi {action.code} untuk tingkat {action.level}, sedangkan wilayah "
            f"{row.region_code} adalah {kind}",
        )


def _find_action(row: AssignmentRow, known: Known, problems: Problems) -> Action | None:
    programme = known.programmes.get(row.programme_code.lower())
    if programme is None:
        _add(
            problems,
            row.where,
            "program",
            f'program "{row.programme_code}" tidak ada di basis data; impor katalognya dulu',
        )
        return None
    action = known.actions.get((row_id(programme), row.action_code.lower()))
    if action is None:
        _add(
            problems,
            row.where,
            "aksi",
            f'aksi "{row.action_code}" tidak ada di program {programme.code}',
        )
    return action


def _add(problems: Problems, where: Where, column: str, message: str) -> None:
    problems.add(where.at(column), message, position=where.position(column))
