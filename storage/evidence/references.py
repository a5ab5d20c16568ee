"""Which evidence blobs the database still refers to: what the daily sweep must keep.

Kept out of the package's __init__ on purpose: channels import `storage.evidence` for the
store's protocol and must not pull the tables in with it.
"""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import EvidenceFile, OutboxMessage, OutboxStatus

# An outbox row that may still be sent: waiting, in hand, or given back for a retry.
UNSENT = (OutboxStatus.pending, OutboxStatus.sending)


async def referenced_keys(*, session: AsyncSession) -> set[str]:
    """Every blob key a file row names (original, display copy and thumbnail), and every key
    an outbox row still to be sent carries (a recap chart, a workbook, an evidence ZIP: files
    no evidence row names, which must outlive the sender's retries). Removed files count too:
    their rows stay for the audit trail and a reviewer may still open them."""
    statement = select(
        EvidenceFile.storage_key, EvidenceFile.display_key, EvidenceFile.thumbnail_key
    )
    rows = (await session.exec(statement)).all()
    keys = {key for row in rows for key in row if key}
    return keys | await unsent_outbox_keys(session=session)


async def unsent_outbox_keys(*, session: AsyncSession) -> set[str]:
    """The storage keys of file messages not sent yet. The JSON field is read in SQL (SQLite's
    json_extract, PostgreSQL's ->>), so a broadcast's thousands of text rows are not loaded."""
    key = col(OutboxMessage.payload)["storage_key"].as_string()
    statement = select(key).where(col(OutboxMessage.status).in_(UNSENT), key.is_not(None))
    return {found for found in (await session.exec(statement)).all() if found}
