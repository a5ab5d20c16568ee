"""Which evidence blobs the database still refers to: what the daily sweep must keep.

Kept out of the package's __init__ on purpose: channels import `storage.evidence` for the
store's protocol and must not pull the tables in with it.
"""

from __future__ import annotations

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import EvidenceFile


async def referenced_keys(*, session: AsyncSession) -> set[str]:
    """Every blob key a file row names: original, display copy and thumbnail. Removed files
    count too: their rows stay for the audit trail and a reviewer may still open them."""
    statement = select(
        EvidenceFile.storage_key, EvidenceFile.display_key, EvidenceFile.thumbnail_key
    )
    rows = (await session.exec(statement)).all()
    return {key for row in rows for key in row if key}
