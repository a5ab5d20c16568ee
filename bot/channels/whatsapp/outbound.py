"""Outbound: one engine message to the Cloud API, free-form inside the 24-hour window and as a
template outside it, at a pace Meta accepts.

```mermaid
flowchart LR
    S[send] --> W{window open?}
    W -- no --> T[template]
    W -- yes --> F[free-form parts]
    F -- 131047 --> C[note the window closed] --> T
    F -- a part fails --> P[remember the parts sent, for the retry]
```

What is kept in memory, each bounded: the pace of each recent recipient, who Meta said is
outside the window (also written to the database when the composition root gives a store, so a
restart remembers it), and the parts of a split message already sent (for its retry).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import httpx
from aiolimiter import AsyncLimiter
from cachetools import LRUCache, TTLCache
from pydantic import ValidationError

from bot.channels.pacing import PriorityPacer
from bot.channels.whatsapp import shapes, templates
from bot.channels.whatsapp.errors import (
    OutsideWindow,
    RetryDelays,
    TooFast,
    log_send_failure,
    raise_for_error,
    short_key,
)
from bot.channels.whatsapp.media import Media
from bot.channels.whatsapp.payloads import SendResponse
from bot.channels.whatsapp.shapes import Json
from bot.engine.channel import ClosedWindows, SendError, TransientSendError
from bot.engine.events import OutFile, Outgoing, outgoing_to_payload
from storage.types import utcnow

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)
# Meta counts from its own timestamp of the user's message; ours is the same stamp, but the
# stored one is kept to the minute and the send takes a moment: close a little early.
WINDOW_MARGIN = timedelta(minutes=5)
PROGRESS_TTL = 15 * 60.0  # seconds a half-sent split message is remembered for its retry
MAX_RECIPIENTS = 10_000  # paces and closed windows remembered: bounded however many users
NUMBER_LIMIT = 80  # messages/s Meta lets one number send (its default throughput)
MAX_IN_PROGRESS = 1_000
IMAGE_MIMES = frozenset({"image/jpeg", "image/png"})  # what WhatsApp shows as a photo


class Pacing:
    """Under Meta's ~80 messages/s per number, and a burst-then-steady pace per recipient.

    Meta's pair rate is about 1 message per 6 s to one user, with bursts tolerated: a
    conversation's replies go out at once, a runaway loop is slowed to 1 message/s.

    Like Telegram's, Meta's count is of requests as they arrive: besides the even pace, never
    more than NUMBER_LIMIT requests are started or unanswered within one second (PriorityPacer's
    window, issue 14), and a 130429 holds every send of the number for its wait."""

    def __init__(
        self, messages_per_second: float, recipient_burst: int, recipient_interval: float
    ) -> None:
        # Evenly spaced, and the most urgent waiting send first (a reply passes a broadcast's
        # queued sends: bot.engine.channel.send_priority). Use as `async with` around the
        # request: its answer gives its place in the window back a second later.
        self.number = PriorityPacer(
            messages_per_second,
            in_any_second=max(NUMBER_LIMIT, math.ceil(messages_per_second)),
        )
        self.recipient_burst = recipient_burst
        self.recipient_interval = recipient_interval
        self._recipients: LRUCache[str, AsyncLimiter] = LRUCache(maxsize=MAX_RECIPIENTS)

    def too_fast(self, error: TooFast) -> None:
        """Meta said the number sends too fast: no send of it starts for the wait."""
        self.number.pause(error.retry_after or 0.0)

    def recipient(self, chat_id: str) -> AsyncLimiter:
        pace = self._recipients.get(chat_id)
        if pace is None:
            burst = self.recipient_burst
            pace = self._recipients[chat_id] = AsyncLimiter(burst, burst * self.recipient_interval)
        return pace


class Window:
    """Whether a free-form message may go to a user: within 24 h of their last message (by the
    message's own timestamp), unless Meta said otherwise since (131047, at send time or in a
    failed receipt).

    Besides the stored time the sender passes in (kept to the minute, and only for registered
    users), the window remembers each recent message's exact time itself: a user with no
    identity yet is answered free-form, and an answer to a fallback template reopens the window
    at once."""

    def __init__(
        self, now: Callable[[], datetime] = utcnow, stored: ClosedWindows | None = None
    ) -> None:
        self.now = now
        self.stored = stored  # the database's memory, beyond this process's
        self._closed: LRUCache[str, datetime] = LRUCache(maxsize=MAX_RECIPIENTS)
        self._wrote: LRUCache[str, datetime] = LRUCache(maxsize=MAX_RECIPIENTS)

    def note_inbound(self, chat_id: str, sent_at: datetime) -> None:
        """A message from the user, stamped by Meta when it was sent (a late delivery keeps
        its old time, so it opens no window that Meta considers closed)."""
        sent_at = _aware(sent_at)
        known = self._wrote.get(chat_id)
        if known is None or sent_at > known:
            self._wrote[chat_id] = sent_at

    async def is_open(self, chat_id: str, last_inbound_at: datetime | None) -> bool:
        times = [_aware(t) for t in (last_inbound_at, self._wrote.get(chat_id)) if t]
        if not times:
            return False
        wrote = max(times)
        if self.now() - wrote >= WINDOW - WINDOW_MARGIN:
            return False
        closed = self._closed.get(chat_id)
        if closed is None:
            closed = await self._stored_closing(chat_id)
        return closed is None or closed < wrote

    async def close(self, chat_id: str) -> None:
        """Meta refused a free-form message: closed until the user writes again."""
        at = self._closed[chat_id] = self.now()
        if self.stored is None:
            return
        try:
            await self.stored.note_closed(chat_id, at)
        except Exception as error:  # remembered in memory still; the database is away
            log.warning("whatsapp %s: closed window not stored: %s", short_key(chat_id), error)

    async def _stored_closing(self, chat_id: str) -> datetime | None:
        """What an earlier process learnt about this recipient, if anything."""
        if self.stored is None:
            return None
        try:
            closed = await self.stored.closed_at(chat_id)
        except Exception as error:  # unknown: the send itself will tell (131047 -> template)
            log.warning("whatsapp %s: closed window not read: %s", short_key(chat_id), error)
            return None
        if closed is not None:
            closed = self._closed[chat_id] = _aware(closed)
        return closed


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time here is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Outbound:
    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        messages_url: str,
        media: Media,
        pacing: Pacing,
        window: Window,
        delays: RetryDelays,
        template_language: str,
        template_languages: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.messages_url = messages_url
        self.media = media
        self.pacing = pacing
        self.window = window
        self.delays = delays
        self.template_language = template_language
        # The user's interface language -> the language code their templates are approved in.
        self.template_languages = dict(template_languages or {})
        # Progress key -> ids of the parts of a split message already sent.
        self._progress: TTLCache[str, list[str]] = TTLCache(
            maxsize=MAX_IN_PROGRESS, ttl=PROGRESS_TTL, timer=clock
        )

    async def send(
        self, chat_id: str, message: Outgoing, last_inbound_at: datetime | None
    ) -> str | None:
        try:
            return await self._send(chat_id, message, last_inbound_at)
        except SendError as error:
            log_send_failure(chat_id, error)
            raise

    async def _send(
        self, chat_id: str, message: Outgoing, last_inbound_at: datetime | None
    ) -> str | None:
        if not await self.window.is_open(chat_id, last_inbound_at):
            return await self._send_template(chat_id, message)
        try:
            return await self._send_free_form(chat_id, message, last_inbound_at)
        except OutsideWindow:
            # Meta's clock says the window closed: same message, as a template, right away.
            await self.window.close(chat_id)
            return await self._send_template(chat_id, message)

    async def mark_read(self, message_id: str) -> None:
        """Blue ticks for the user: best effort, a failure changes nothing."""
        try:
            # Not paced: a receipt is not a message, and must not delay one.
            response = await self._client.post(
                self.messages_url, json=shapes.read_receipt(message_id)
            )
            if response.status_code >= 400:
                log.debug("read receipt refused: %s", response.text[:200])
        except Exception as error:  # closed client at shutdown included: never worth a crash
            log.debug("read receipt failed: %r", error)

    async def _send_free_form(
        self, chat_id: str, message: Outgoing, last_inbound_at: datetime | None
    ) -> str | None:
        bodies = await self._free_form_bodies(chat_id, message)
        key = progress_key(chat_id, message, last_inbound_at)
        sent = self._progress.pop(key, [])
        for body in bodies[len(sent) :]:
            try:
                sent.append(await self._post(body, recipient=chat_id))
            except Exception:
                if sent:  # a retry of this outbox row continues after the parts that went out
                    self._progress[key] = sent
                raise
        return sent[-1] if sent else None  # nothing to send: a blank text

    async def _free_form_bodies(self, chat_id: str, message: Outgoing) -> list[Json]:
        if isinstance(message, OutFile):
            media_id, mime = await self.media.upload(message)
            caption = shapes.to_whatsapp(message.caption)
            as_image = message.as_photo and mime in IMAGE_MIMES
            body = shapes.media_body(
                chat_id, media_id, filename=message.filename, caption=caption, as_image=as_image
            )
            return [body]
        text = shapes.to_whatsapp(message.text)
        if message.choices:
            return shapes.interactive_bodies(
                chat_id,
                text,
                message.choices,
                choose_label=message.choose_label or shapes.LIST_BUTTON,
            )
        return shapes.text_bodies(chat_id, text)

    async def _send_template(self, chat_id: str, message: Outgoing) -> str:
        # In the user's language (it travels in the outbox row), else the default.
        language = self.template_languages.get(message.language or "", self.template_language)
        if isinstance(message, OutFile):
            media_id, _mime = await self.media.upload(message)
            caption = shapes.to_whatsapp(message.caption) or message.filename
            body = templates.template_body(
                chat_id,
                templates.FILE,
                [caption],
                language=language,
                document=(media_id, message.filename),
            )
        elif message.template:
            body = templates.template_body(
                chat_id, message.template, message.template_params, language=language
            )
        else:
            param = templates.generic_param(message.text, message.choices)
            body = templates.template_body(chat_id, templates.GENERIC, [param], language=language)
        return await self._post(body, recipient=chat_id)

    async def _post(self, body: Json, *, recipient: str) -> str:
        await self.pacing.recipient(recipient).acquire()
        async with self.pacing.number:
            try:
                response = await self._client.post(self.messages_url, json=body)
            except httpx.HTTPError as error:
                raise TransientSendError(f"network: {error!r}") from error
        try:
            raise_for_error(response, self.delays)
        except TooFast as error:
            self.pacing.too_fast(error)
            raise
        try:
            sent = SendResponse.model_validate_json(response.content)
        except ValidationError as error:
            raise TransientSendError("unreadable send response") from error
        if not sent.messages:
            raise TransientSendError("send response without a message id")
        return sent.messages[0].id


def progress_key(chat_id: str, message: Outgoing, last_inbound_at: datetime | None) -> str:
    """The same outbox row retried has the same message and the same last inbound time; a
    new message from the user changes the latter, so a deliberate repeat is never skipped."""
    seen = last_inbound_at.isoformat() if last_inbound_at else ""
    text = json.dumps(outgoing_to_payload(message), sort_keys=True, default=str)
    return hashlib.sha256(f"{chat_id}|{seen}|{text}".encode()).hexdigest()
