"""Broadcasts after the author confirmed: write one outbox row per recipient in resumable
batches, tell the author how far delivery got, and at the end send the delivery report.

```mermaid
stateDiagram-v2
    [*] --> writing: /siaran confirmed, or `laporham broadcast` (the broadcast row)
    writing --> writing: a batch of outbox rows + the cursor, one transaction
    writing --> sending: the last batch (a crash in between: the next run goes on from the cursor)
    sending --> sending: "terkirim 1.200 dari 1.500" each quarter of the way
    sending --> done: no row waits any more: the delivery report to the author
```

The job `broadcast-progress` (scheduler/jobs.py) runs `advance_broadcasts` every few seconds;
the CLI calls `write_rows` itself. Both are safe to run twice or at once: the broadcast row is
locked for each step and each row's idempotency key is unique. The sender delivers the rows
(purpose "broadcast": after replies and reminders); progress and the report are written with
purpose "reply", so they reach the author before the rest of their own broadcast.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.events import OutText, outgoing_to_payload
from bot.engine.texts import count_text, t
from storage import broadcasts, identities, outbox
from storage.broadcasts import Delivery, Recipient
from storage.db import transaction
from storage.models import Broadcast, BroadcastState
from storage.types import utcnow

log = logging.getLogger(__name__)

# The WhatsApp template a broadcast goes out as outside the 24-hour window
# (bot/channels/whatsapp/templates.py; a test checks the name is there).
BROADCAST_TEMPLATE = "laporham_siaran"
BATCH_SIZE = 500
# Progress each quarter of the way, and never for fewer than this many deliveries.
PROGRESS_PARTS = 4
PROGRESS_MIN_STEP = 25
REASONS = ("blocked", "deactivated", "no_chat", "not_on_whatsapp", "gave_up", "other")

Sessions = async_sessionmaker[AsyncSession]


def recipient_payload(broadcast: Broadcast, recipient: Recipient) -> dict[str, object]:
    """The message one recipient gets, in their language; on WhatsApp outside the 24-hour
    window the same sender and text fill the broadcast template."""
    text = t(
        recipient.language, "broadcast.message", sender=broadcast.sender_label, text=broadcast.text
    )
    message = OutText(
        text=text,
        template=BROADCAST_TEMPLATE,
        template_params=(broadcast.sender_label, broadcast.text),
        language=recipient.language,  # the template's language, outside WhatsApp's window
    )
    return outgoing_to_payload(message)


async def write_rows(
    sessions: Sessions,
    broadcast_id: int,
    *,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[], None] | None = None,
) -> None:
    """Write the broadcast's remaining rows, one transaction per batch (`on_batch` after each:
    the CLI's progress bar, the sender's wake-up)."""
    done = False
    while not done:
        async with transaction(sessions) as session:
            done = await broadcasts.write_next_batch(
                session=session,
                broadcast_id=broadcast_id,
                limit=batch_size,
                payload_for=recipient_payload,
            )
        if on_batch is not None:
            on_batch()


async def advance_broadcasts(
    sessions: Sessions,
    *,
    clock: Callable[[], datetime] = utcnow,
    wakeup: asyncio.Event | None = None,
    batch_size: int = BATCH_SIZE,
) -> int:
    """The job: finish writing every unfinished broadcast's rows (waking the sender), then
    report progress or the end to each author. Returns how many broadcasts were looked at."""
    async with sessions() as session:
        ids = await broadcasts.unfinished_broadcast_ids(session=session)
    for broadcast_id in ids:
        try:
            await _advance(
                sessions, broadcast_id, clock=clock, wakeup=wakeup, batch_size=batch_size
            )
        except Exception as error:  # one broadcast's trouble must not stop the others
            log.error("broadcast %d: step failed, retried at the next run: %r", broadcast_id, error)
    return len(ids)


async def _advance(
    sessions: Sessions,
    broadcast_id: int,
    *,
    clock: Callable[[], datetime],
    wakeup: asyncio.Event | None,
    batch_size: int,
) -> None:
    await write_rows(
        sessions, broadcast_id, batch_size=batch_size, on_batch=wakeup.set if wakeup else None
    )
    async with transaction(sessions) as session:
        told = await report_progress(session, broadcast_id, now=clock())
    if told and wakeup:
        wakeup.set()


def progress_step(total: int) -> int:
    return max(PROGRESS_MIN_STEP, math.ceil(total / PROGRESS_PARTS))


async def report_progress(session: AsyncSession, broadcast_id: int, *, now: datetime) -> bool:
    """Progress to the author when another step is delivered; once nothing waits, the
    broadcast is done and the delivery report goes. True when a message was written."""
    broadcast = await broadcasts.lock_broadcast(session=session, broadcast_id=broadcast_id)
    if broadcast is None or broadcast.state is not BroadcastState.sending:
        return False
    figures = await broadcasts.delivery(session=session, broadcast_id=broadcast_id)
    if figures.waiting == 0:
        broadcast.state, broadcast.finished_at = BroadcastState.done, now
        session.add(broadcast)
        return await _tell_author(session, broadcast, "report", figures)
    if figures.finished - broadcast.progress_reported < progress_step(figures.total):
        return False
    broadcast.progress_reported = figures.finished
    session.add(broadcast)
    return await _tell_author(session, broadcast, f"progress:{figures.finished}", figures)


async def _tell_author(
    session: AsyncSession, broadcast: Broadcast, what: str, figures: Delivery
) -> bool:
    if broadcast.author_channel is None or broadcast.author_chat_id is None:
        return False  # from the CLI: `laporham broadcast status ID` shows the report
    author = (
        await identities.get_contact(session=session, contact_id=broadcast.author_id)
        if broadcast.author_id
        else None
    )
    language = author.language if author else "id"
    text = (
        report_text(language, broadcast, figures)
        if what == "report"
        else progress_text(language, broadcast, figures)
    )
    outbox.enqueue(
        session=session,
        idempotency_key=f"broadcast:{broadcast.id}:{what}",
        channel=broadcast.author_channel,
        recipient=broadcast.author_chat_id,
        contact_id=broadcast.author_id,
        purpose="reply",
        payload=outgoing_to_payload(OutText(text=text, language=language)),
    )
    return True


def progress_text(language: str, broadcast: Broadcast, figures: Delivery) -> str:
    return t(
        language,
        "broadcast.progress",
        id=broadcast.id,
        sent=count_text(language, figures.sent),
        total=count_text(language, figures.total),
    )


def report_text(language: str, broadcast: Broadcast, figures: Delivery) -> str:
    lines = [
        t(
            language,
            "broadcast.report",
            id=broadcast.id,
            sent=count_text(language, figures.sent),
            total=count_text(language, figures.total),
            failed=count_text(language, figures.failed),
        )
    ]
    for reason, count in failure_reasons(figures):
        lines.append(
            t(
                language,
                "broadcast.report_reason",
                reason=t(language, f"broadcast.reason.{reason}"),
                count=count_text(language, count),
            )
        )
    if broadcast.without_channel:
        lines.append(
            t(
                language,
                "broadcast.report_without",
                without=count_text(language, broadcast.without_channel),
            )
        )
    return "\n".join(lines)


def failure_reasons(figures: Delivery) -> list[tuple[str, int]]:
    """The failed rows by reason, in a fixed order: what the Kanwil can act on first."""
    counted: Counter[str] = Counter()
    for error, count in figures.errors:
        counted[reason_of(error)] += count
    return [(reason, counted[reason]) for reason in REASONS if counted[reason]]


def reason_of(error: str) -> str:
    """The platform's refusal (as the channels word it in `last_error`) as a reason a person
    understands: Telegram's 403s and 400s, WhatsApp's 131026, the sender giving up."""
    lowered = error.lower()
    if lowered.startswith("gave up"):
        return "gave_up"
    if "blocked" in lowered:
        return "blocked"
    if "deactivated" in lowered:
        return "deactivated"
    if "chat not found" in lowered or "can't initiate" in lowered:
        return "no_chat"
    if lowered.startswith("131026"):
        return "not_on_whatsapp"
    return "other"
