"""Single-use, expiring registration codes (`laporham invite create`, `/daftar KODE`)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.importers.contacts_format import ROLE_WORDS
from storage.models import Contact, InviteCode, Office, Region, RegionKind, Role
from storage.types import utcnow

# No 0/O, 1/I/L: codes are read aloud and typed on phones.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8


class InviteError(ValueError):
    pass


def _hash(code: str) -> str:
    return hashlib.sha256(normalise_code(code).encode()).hexdigest()


def normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def parse_role(word: str) -> Role:
    """A role as the operator types it, in the spellings the contacts workbook accepts
    (docs/contacts.md): `focal point`, `operator`, `koordinator`..."""
    spaced = " ".join(word.lower().replace("_", " ").split())
    found = ROLE_WORDS.get(spaced) or ROLE_WORDS.get(word.strip().lower())
    if found is None:
        allowed = ", ".join(dict.fromkeys(ROLE_WORDS))
        raise InviteError(f'peran "{word}" tidak dikenal: pilih {allowed}')
    return found


async def create_invite(
    *,
    session: AsyncSession,
    role: Role,
    region_code: str | None,
    office_code: str | None,
    name: str | None = None,
    valid_for: timedelta = timedelta(days=7),
    now: datetime | None = None,
) -> str:
    """Store a new invite and return its code (shown once; only the hash is kept)."""
    region, office = await _resolve_scope(
        session=session, role=role, region_code=region_code, office_code=office_code
    )
    code = new_code()
    session.add(
        InviteCode(
            code_hash=_hash(code),
            role=role,
            region_id=region.id if region else None,
            office_id=office.id if office else None,
            name=name,
            expires_at=(now or utcnow()) + valid_for,
        )
    )
    await session.flush()
    return code


async def find_usable_invite(
    *, session: AsyncSession, code: str, now: datetime | None = None
) -> InviteCode | None:
    """The invite for this code if it exists, is unused and unexpired; locked for the redeemer."""
    statement = (
        select(InviteCode)
        .where(InviteCode.code_hash == _hash(code), col(InviteCode.used_at).is_(None))
        .with_for_update()
    )
    invite = (await session.exec(statement)).first()
    if invite is None or invite.expires_at <= (now or utcnow()):
        return None
    return invite


async def redeem_invite(
    *, session: AsyncSession, code: str, name: str, language: str, now: datetime
) -> Contact | None:
    """Use a code: a new contact with the invite's role and scope (and its name, when the
    invite has one), the invite marked used by them. None when the code is unknown, used or
    expired."""
    invite = await find_usable_invite(session=session, code=code, now=now)
    if invite is None:
        return None
    contact = Contact(
        name=(invite.name or name)[:120],
        role=invite.role,
        region_id=invite.region_id,
        office_id=invite.office_id,
        language=language,
    )
    session.add(contact)
    await session.flush()
    invite.used_at, invite.used_by_id = now, contact.id
    return contact


async def _resolve_scope(
    *, session: AsyncSession, role: Role, region_code: str | None, office_code: str | None
) -> tuple[Region | None, Office | None]:
    if role is Role.admin:
        return None, None
    if not region_code:
        raise InviteError(f"peran {role.value} membutuhkan --region (kode wilayah)")
    region = (await session.exec(select(Region).where(Region.code == region_code))).first()
    if region is None:
        raise InviteError(f"wilayah dengan kode {region_code!r} tidak ditemukan")
    # As the contacts import checks it (storage/importers/contacts_checks.py).
    if role is Role.kanwil and region.kind is not RegionKind.provinsi:
        raise InviteError(
            f'kanwil mencakup satu provinsi, sedangkan "{region_code}" bukan provinsi'
        )
    office = None
    if office_code:
        office = (
            await session.exec(
                select(Office).where(Office.region_id == region.id, Office.code == office_code)
            )
        ).first()
        if office is None:
            raise InviteError(f"OPD {office_code!r} tidak ada di wilayah {region_code}")
    if role is Role.focal_point and office is None:
        raise InviteError("peran focal_point membutuhkan --office (kode OPD)")
    return region, office
