"""Single-use, expiring registration codes (`laporham invite create`, `/daftar KODE`).

A code has about 40 bits: guessable by brute force if tries were free, and recoverable from a
bare SHA-256 if the database leaked. So codes are stored as HMAC-SHA256 with the server's
LAPORHAM_INVITE_SECRET, and wrong tries are throttled: at most `max_wrong_tries` per sender and
per code within `window` (hardening issue #13, item 2). Rows from before keying hold a bare
SHA-256 (`keyed` false): they cannot be rehashed, so they are honoured until they expire.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import and_, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.importers.contacts_format import ROLE_WORDS
from storage.models import Contact, InviteAttempt, InviteCode, Office, Region, RegionKind, Role
from storage.types import utcnow

# No 0/O, 1/I/L: codes are read aloud and typed on phones.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
# The key when none is configured, in development only: production refuses it (bot/settings.py).
DEVELOPMENT_KEY = b"laporham-development-invite-key"


class InviteError(ValueError):
    pass


@dataclass(frozen=True)
class InvitePolicy:
    """The server's key for code hashes, and how many wrong tries it allows."""

    key: bytes = DEVELOPMENT_KEY
    max_wrong_tries: int = 5
    window: timedelta = timedelta(hours=1)


class ThrottledBy(StrEnum):
    sender = "sender"  # this sender tried too many wrong codes
    code = "code"  # this code was tried wrongly too often (by anyone)


@dataclass(frozen=True)
class Throttled:
    by: ThrottledBy
    until: datetime  # when a try is counted again


def _keyed(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def code_hash(code: str, key: bytes) -> str:
    """What is stored for a code: HMAC-SHA256 of its normalised form with the server key."""
    return _keyed(key, normalise_code(code))


def _legacy_hash(code: str) -> str:
    """Rows from before keying (see the module docstring)."""
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
    key: bytes,
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
            code_hash=code_hash(code, key),
            keyed=True,
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
    *, session: AsyncSession, code: str, key: bytes, now: datetime | None = None
) -> InviteCode | None:
    """The invite for this code if it exists, is unused and unexpired; locked for the redeemer."""
    matches = or_(
        and_(col(InviteCode.keyed), col(InviteCode.code_hash) == code_hash(code, key)),
        and_(~col(InviteCode.keyed), col(InviteCode.code_hash) == _legacy_hash(code)),
    )
    statement = (
        select(InviteCode)
        .where(matches, col(InviteCode.used_at).is_(None))
        .with_for_update()
    )
    invite = (await session.exec(statement)).first()
    if invite is None or invite.expires_at <= (now or utcnow()):
        return None
    return invite


async def redeem_invite(
    *, session: AsyncSession, code: str, key: bytes, name: str, language: str, now: datetime
) -> Contact | None:
    """Use a code: a new contact with the invite's role and scope (and its name, when the
    invite has one), the invite marked used by them. None when the code is unknown, used or
    expired."""
    invite = await find_usable_invite(session=session, code=code, key=key, now=now)
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


def _sender_key(policy: InvitePolicy, sender: str) -> str:
    return _keyed(policy.key, f"sender:{sender}")


def _try_key(policy: InvitePolicy, code: str) -> str:
    return _keyed(policy.key, f"try:{normalise_code(code)}")


async def throttled(
    *, session: AsyncSession, policy: InvitePolicy, sender: str, code: str, now: datetime
) -> Throttled | None:
    """Whether a try of `code` by `sender` (e.g. "telegram:12345") is refused unchecked,
    because the sender or the code has had `max_wrong_tries` wrong tries in the window."""
    for by, column, value in (
        (ThrottledBy.sender, InviteAttempt.sender_key, _sender_key(policy, sender)),
        (ThrottledBy.code, InviteAttempt.code_key, _try_key(policy, code)),
    ):
        # The latest `max_wrong_tries` tries in the window: when there are that many, a try
        # counts again once the oldest of them leaves the window.
        statement = (
            select(InviteAttempt.attempted_at)
            .where(column == value, InviteAttempt.attempted_at > now - policy.window)
            .order_by(col(InviteAttempt.attempted_at).desc())
            .limit(policy.max_wrong_tries)
        )
        recent = list((await session.exec(statement)).all())
        if len(recent) >= policy.max_wrong_tries:
            return Throttled(by, recent[-1] + policy.window)
    return None


async def record_wrong_try(
    *, session: AsyncSession, policy: InvitePolicy, sender: str, code: str, now: datetime
) -> int:
    """Count a wrong try (keyed hashes only: neither the code nor the sender is stored).
    Returns the sender's wrong tries in the window, this one included."""
    sender_key = _sender_key(policy, sender)
    session.add(
        InviteAttempt(sender_key=sender_key, code_key=_try_key(policy, code), attempted_at=now)
    )
    await session.flush()
    statement = select(func.count()).where(
        InviteAttempt.sender_key == sender_key, InviteAttempt.attempted_at > now - policy.window
    )
    return (await session.exec(statement)).one()


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
