"""Inbound: Meta's webhook notifications as engine events, and delivery receipts as outbox
updates.

Each message is kept in the inbox as Meta sent it (the stored form made by `collect`) and is
translated from there, so a fresh webhook and a replay after a restart take the same path.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bot.channels.whatsapp import shapes
from bot.channels.whatsapp.errors import OUTSIDE_WINDOW, UNDELIVERABLE, RetryDelays, short_key
from bot.channels.whatsapp.payloads import (
    Message,
    Notification,
    Status,
    StatusError,
    StoredMessage,
)
from bot.engine.channel import Channel
from bot.engine.delivery import DeliveryUpdate, Outcome, record_statuses
from bot.engine.events import (
    ChoiceMade,
    CommandReceived,
    ContactShared,
    FileReceived,
    Inbound,
    LocationShared,
    TextReceived,
    Unsupported,
)
from storage.types import utcnow

if TYPE_CHECKING:
    from bot.engine.dispatch import Engine

log = logging.getLogger(__name__)


def collect(note: Notification, phone_number_id: str) -> tuple[list[Inbound], list[Status]]:
    """Messages (as events carrying their stored form) and receipts for our number only."""
    events: list[Inbound] = []
    statuses: list[Status] = []
    for entry in note.entry:
        for change in entry.changes:
            value = change.value
            if change.field != "messages" or value.metadata is None:
                continue
            if value.metadata.phone_number_id != phone_number_id:
                log.debug("webhook for number %s ignored", value.metadata.phone_number_id)
                continue
            for error in value.errors:
                log.warning("whatsapp: webhook error %s: %s", error.code, error.title)
            names = {contact.wa_id: contact.profile.name for contact in value.contacts}
            for raw in value.messages:
                sender = raw.get("from")
                stored = {
                    "message": raw,
                    "name": names.get(sender) if isinstance(sender, str) else None,
                    "phone_number_id": phone_number_id,
                }
                if (event := parse_stored(stored)) is not None:
                    events.append(event)
            statuses += value.statuses
    return events, statuses


def parse_stored(payload: dict[str, Any]) -> Inbound | None:
    """An inbox payload (see `collect`) as an engine event; None when nothing is to be done."""
    try:
        stored = StoredMessage.model_validate(payload)
        message = Message.model_validate(stored.message)
    except ValidationError:
        log.warning("whatsapp: unreadable message dropped")
        return None
    return to_event(message, name=stored.name, stored=payload)


def to_event(message: Message, *, name: str | None, stored: dict[str, Any]) -> Inbound | None:
    """One Cloud API message as an engine event. `raw` keeps the stored payload, which is what
    the inbox holds until the event is handled."""
    base: dict[str, Any] = {
        "channel": Channel.whatsapp,
        "user_key": message.sender,
        "chat_id": message.sender,
        "message_id": message.id,
        "display_name": name,
        "received_at": _timestamp(message.timestamp),
        "raw": stored,
    }
    kind = message.type
    if kind == "text" and message.text is not None:
        return TextReceived(**base, text=message.text.body)
    if kind == "interactive" and message.interactive is not None:
        reply = message.interactive.button_reply or message.interactive.list_reply
        if reply is not None:
            return ChoiceMade(**base, choice_id=reply.id)
        return Unsupported(**base, kind=f"interactive:{message.interactive.type}")
    if kind == "button" and message.button is not None:
        # A template's quick-reply button: its payload is a command word ("lapor"), so a tap
        # acts as if the user typed it.
        text = message.button.payload or message.button.text
        return TextReceived(**base, text=text) if text else Unsupported(**base, kind="button")
    if kind in {"image", "document"}:
        return _file_event(message, base)
    if kind == "contacts":
        return _contact_event(message, base)
    if kind == "location" and message.location is not None:
        location = message.location
        return LocationShared(**base, latitude=location.latitude, longitude=location.longitude)
    if kind == "request_welcome":  # the user opened the chat for the first time
        return CommandReceived(**base, name="start")
    if kind in {"reaction", "system", "ephemeral"}:
        # An emoji on our message or a number change is not something to answer.
        return None
    if kind == "audio" and message.audio is not None and message.audio.voice:
        return Unsupported(**base, kind="voice")
    return Unsupported(**base, kind=kind)


def _file_event(message: Message, base: dict[str, Any]) -> Inbound:
    is_photo = message.type == "image"
    media = message.image if is_photo else message.document
    if media is None:
        return Unsupported(**base, kind=message.type)
    if is_photo:
        # Photos come without a name: the caption (what the user wrote) makes a readable one.
        extension = mimetypes.guess_extension(media.mime_type or "image/jpeg") or ".jpg"
        extension = ".jpg" if extension in {".jpe", ".jpeg"} else extension
        stem = shapes.shorten(media.caption or "", 60) or f"foto_{media.id[-4:]}"
        name = stem + extension
    else:
        name = shapes.shorten(media.filename or "", 120) or "dokumen"
    return FileReceived(
        **base,
        file_ref=media.id,
        claimed_name=name,
        claimed_mime=media.mime_type,
        is_photo=is_photo,
    )


def _contact_event(message: Message, base: dict[str, Any]) -> Inbound:
    """A shared contact card. Its fields are typed by the sender: a card only tells whether it
    is the sender's own (one of its wa_ids is the sender's), and then the number is the sender's
    own `from`, never the card's `phone`, which can name anyone."""
    sender = _digits(message.sender)
    phones = [phone for contact in message.contacts for phone in contact.phones]
    if any(_digits(phone.wa_id or "") == sender for phone in phones):
        return ContactShared(**base, phone=f"+{sender}", is_own=True)
    for phone in phones:
        if number := phone.phone or phone.wa_id:
            return ContactShared(**base, phone=number, is_own=False)
    return Unsupported(**base, kind="contacts")


def _timestamp(value: str | None) -> datetime:
    if value and value.isdigit():
        return datetime.fromtimestamp(int(value), UTC)
    return utcnow()


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


# --- delivery receipts -------------------------------------------------------------------------


async def record_receipts(
    engine: Engine,
    statuses: list[Status],
    *,
    delays: RetryDelays,
    window_closed: Callable[[str], Awaitable[None]],
) -> None:
    """Receipts onto their outbox rows. A failure a resend can fix requeues its row, and the
    sender is woken; `window_closed` hears first of each user Meta found outside the window, so
    that resend goes out as a template."""
    for status in statuses:
        if (error := _failure(status)) is None:
            continue
        reason = f"{error.code}: {error.title or error.message or ''}".strip()
        log.warning("whatsapp %s: delivery failed: %s", short_key(status.recipient_id), reason)
        if error.code == OUTSIDE_WINDOW and status.recipient_id:
            await window_closed(status.recipient_id)
    updates = [delivery_update(status, delays) for status in statuses]
    outcomes = await record_statuses(engine.sessions, updates)
    if Outcome.requeued in outcomes:
        engine.outbox_ready.set()


def delivery_update(status: Status, delays: RetryDelays) -> DeliveryUpdate:
    error = status.errors[0] if status.errors else None
    failure = _failure(status)
    return DeliveryUpdate(
        provider_message_id=status.id,
        status=status.status,
        error_code=error.code if error else None,
        error_title=(error.title or error.message) if error else None,
        retry_after=delays.after_failed_receipt(failure.code) if failure else None,
        unreachable=_unreachable(status, failure),
    )


def _unreachable(status: Status, failure: StatusError | None) -> tuple[str, str] | None:
    """131026 in a receipt means what it means at send time: stop sending there."""
    if failure is None or failure.code != UNDELIVERABLE or not status.recipient_id:
        return None
    return (Channel.whatsapp, status.recipient_id)


def _failure(status: Status) -> StatusError | None:
    """The error of a failed receipt (the first one: Meta sends one)."""
    return status.errors[0] if status.status == "failed" and status.errors else None
