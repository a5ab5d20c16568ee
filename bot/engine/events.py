"""One event model for every channel.

Channel adapters translate a platform payload into one of the `Inbound` events below and deliver
the `Outgoing` messages the engine puts in the outbox. Nothing here knows a chat library. Each
event keeps the platform payload in `raw` as an escape hatch (never for business decisions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from storage.types import utcnow

if TYPE_CHECKING:  # bot.engine.channel imports this module
    from bot.engine.channel import Channel


@dataclass(frozen=True, kw_only=True)
class Inbound:
    channel: Channel
    user_key: str  # the user's id on the channel: Telegram user id, WhatsApp wa_id, "console"
    chat_id: str  # where replies go (a private chat: usually the same as user_key)
    message_id: str  # unique per channel: the inbox deduplicates on it
    display_name: str | None = None
    received_at: datetime = field(default_factory=utcnow)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


class InboundFields(TypedDict):
    """The fields of `Inbound`, as keyword arguments: to build one kind of event from another
    (or from a channel's parse) with the types checked."""

    channel: Channel
    user_key: str
    chat_id: str
    message_id: str
    display_name: NotRequired[str | None]
    received_at: NotRequired[datetime]
    raw: NotRequired[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class TextReceived(Inbound):
    text: str


@dataclass(frozen=True, kw_only=True)
class CommandReceived(Inbound):
    name: str  # lower case, without the slash or @BotName
    args: str = ""


@dataclass(frozen=True, kw_only=True)
class ChoiceMade(Inbound):
    choice_id: str  # the id of a Choice the engine offered; hostile until checked


@dataclass(frozen=True, kw_only=True)
class FileReceived(Inbound):
    file_ref: str  # the channel's file id, to fetch the bytes with
    claimed_name: str | None = None  # untrusted: shown to people, never a path
    claimed_mime: str | None = None  # untrusted
    claimed_size: int | None = None  # untrusted, but lets us refuse before downloading
    is_photo: bool = False
    media_group_id: str | None = None  # Telegram albums: each item is its own event


@dataclass(frozen=True, kw_only=True)
class ContactShared(Inbound):
    phone: str
    is_own: bool  # Telegram: contact.user_id == from.id; anything else must not register


@dataclass(frozen=True, kw_only=True)
class LocationShared(Inbound):
    latitude: float
    longitude: float


@dataclass(frozen=True, kw_only=True)
class Unsupported(Inbound):
    kind: str  # sticker, voice, video_note, poll, edited, ...


@dataclass(frozen=True)
class Choice:
    id: str  # short (Telegram callback_data <= 64 bytes), never the label
    label: str


@dataclass(frozen=True, kw_only=True)
class OutText:
    """A text message. `text` is HTML-safe markup (<b>, <i> only); user values are escaped by
    bot.engine.texts when the text is made. Channels convert the markup to their own."""

    text: str
    choices: tuple[Choice, ...] = ()
    request_contact: bool = False  # Telegram: a "share my phone number" reply keyboard
    contact_label: str = ""  # that button's label, in the user's language
    choose_label: str = ""  # WhatsApp: the list's button, in the user's language
    # Reminders and broadcasts: WhatsApp must send these as an approved template.
    template: str | None = None
    template_params: tuple[str, ...] = ()
    # The recipient's interface language ("id", "en"): outside WhatsApp's 24-hour window the
    # template goes out in it. None: the channel's default. The engine sets it on its replies;
    # a job writing to a contact sets it from Contact.language.
    language: str | None = None


@dataclass(frozen=True, kw_only=True)
class OutFile:
    storage_key: str
    filename: str
    caption: str = ""
    as_photo: bool = False
    language: str | None = None  # as OutText.language


Outgoing = OutText | OutFile


def outgoing_to_payload(message: Outgoing) -> dict[str, Any]:
    """The outbox row's JSON. Built field by field: dataclasses.asdict deep-copies every value
    through a recursion, and this runs for every reply."""
    if isinstance(message, OutFile):
        return {"type": "file", **vars(message)}
    payload = {"type": "text", **vars(message)}
    payload["choices"] = [{"id": choice.id, "label": choice.label} for choice in message.choices]
    payload["template_params"] = list(message.template_params)
    return payload


def outgoing_from_payload(payload: dict[str, Any]) -> Outgoing:
    data = {key: value for key, value in payload.items() if key != "type"}
    if payload.get("type") == "file":
        return OutFile(**data)
    data["choices"] = tuple(Choice(**choice) for choice in data.get("choices", ()))
    data["template_params"] = tuple(data.get("template_params", ()))
    return OutText(**data)
