"""Telegram update -> engine event.

Pure functions: no network, no state, no side effects. The same code serves long polling,
webhooks and the replay of stored webhook payloads, so a replayed update becomes exactly the
event it would have been the first time.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from telegram import Bot, CallbackQuery, Message, Update, User
from telegram.constants import ChatType

from bot.engine.channel import Channel
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

log = logging.getLogger(__name__)

# What we ask Telegram for. channel_post, inline queries, chat member changes and the rest are
# not requested: the engine has nothing to say to them.
ALLOWED_UPDATES = ("message", "edited_message", "callback_query")

# Message contents the engine answers with a polite "not understood" rather than silence.
UNSUPPORTED_KINDS = (
    "sticker",
    "voice",
    "video_note",
    "video",
    "audio",
    "poll",
    "dice",
    "game",
    "story",
    "paid_media",
)

# Telegram's own rule for command names (bot_command entities): Latin letters, digits, "_".
_COMMAND = re.compile(r"/([A-Za-z0-9_]{1,64})(?:@[A-Za-z0-9_]{1,64})?")


def parse_update(payload: dict[str, Any], bot: Bot | None = None) -> Update | None:
    """The PTB object for a raw update, or None (logged) when it cannot be understood."""
    try:
        return Update.de_json(payload, bot)
    except Exception:  # anything malformed is skipped, never fatal for the receiver
        log.warning("skipping a Telegram update that could not be parsed", exc_info=True)
        return None


def dedup_key(update: Update) -> str:
    """The inbox id of an update.

    Not the bare update_id: Telegram restarts update ids at a random number after a week
    without updates, which could collide with ids already in the inbox and silently drop new
    messages. (chat, message_id) and callback query ids never repeat."""
    if update.callback_query is not None:
        return f"cb:{update.callback_query.id}"
    if update.edited_message is not None:
        edited = update.edited_message
        stamp = int(edited.edit_date.timestamp()) if edited.edit_date else update.update_id
        return f"ed:{edited.chat.id}:{edited.message_id}:{stamp}"
    if update.message is not None:
        return f"msg:{update.message.chat.id}:{update.message.message_id}"
    return f"upd:{update.update_id}"


def lane_key(update: Update) -> str:
    """Whose turn an update belongs to: its user's updates are handled in order."""
    user = update.effective_user
    return str(user.id) if user else f"update:{update.update_id}"


def group_chat_id(update: Update) -> int | None:
    """The chat id when a user wrote in a group or supergroup (we serve private chats only)."""
    message = update.message
    if message is None or message.from_user is None or message.from_user.is_bot:
        return None
    if message.chat.type in (ChatType.GROUP, ChatType.SUPERGROUP):
        return message.chat.id
    return None


def translate(update: Update, raw: dict[str, Any]) -> Inbound | None:
    """The engine event for an update (`raw`: its payload as received, kept on the event), or
    None when there is nothing the engine should see."""
    key = dedup_key(update)
    if update.callback_query is not None:
        return _callback(update.callback_query, key, raw)
    if update.edited_message is not None:
        base = _base(update.edited_message, key, raw)
        return Unsupported(**base, kind="edited") if base else None
    if update.message is not None:
        base = _base(update.message, key, raw)
        return _message(update.message, base) if base else None
    return None


def _base(message: Message, key: str, raw: dict[str, Any]) -> dict[str, Any] | None:
    """The common event fields; None for anything but a person in a private chat."""
    user = message.from_user
    if user is None or user.is_bot or message.chat.type != ChatType.PRIVATE:
        return None
    return _fields(user, message.chat.id, key, raw)


def _fields(user: User, chat_id: int, key: str, raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "channel": Channel.telegram,
        "user_key": str(user.id),
        "chat_id": str(chat_id),
        "message_id": key,
        "display_name": user.full_name,
        "raw": raw,
    }


def _callback(query: CallbackQuery, key: str, raw: dict[str, Any]) -> Inbound | None:
    message = query.message
    # No message: an inline-mode button we never sent. No data: a game button.
    if message is None or query.data is None or message.chat.type != ChatType.PRIVATE:
        return None
    return ChoiceMade(**_fields(query.from_user, message.chat.id, key, raw), choice_id=query.data)


def _message(message: Message, base: dict[str, Any]) -> Inbound | None:
    user = message.from_user
    assert user is not None  # _base checked it
    if message.contact is not None:
        contact = message.contact
        # Only the sender's own number may register; the engine refuses is_own=False.
        is_own = contact.user_id is not None and contact.user_id == user.id
        return ContactShared(**base, phone=contact.phone_number, is_own=is_own)
    if message.location is not None:  # a venue carries its location too
        location = message.location
        return LocationShared(**base, latitude=location.latitude, longitude=location.longitude)
    if message.photo:
        return _photo(message, base)
    if message.animation is not None:  # a GIF also fills `document`: not evidence
        return Unsupported(**base, kind="animation")
    if message.document is not None:
        document = message.document
        return FileReceived(
            **base,
            file_ref=document.file_id,
            claimed_name=document.file_name,
            claimed_mime=document.mime_type,
            claimed_size=document.file_size,
            media_group_id=message.media_group_id,
        )
    if message.text is not None:
        return _text(message.text, base)
    for kind in UNSUPPORTED_KINDS:
        if getattr(message, kind, None):
            return Unsupported(**base, kind=kind)
    return None  # service messages (pinned, joined, ...): nothing to answer


def _photo(message: Message, base: dict[str, Any]) -> FileReceived:
    # Telegram lists sizes smallest first; the largest is the one worth keeping as evidence.
    largest = max(message.photo, key=lambda size: (size.width * size.height, size.file_size or 0))
    return FileReceived(
        **base,
        file_ref=largest.file_id,
        # Album items would all read "foto.jpg" in the acknowledgements; the id tells them apart.
        claimed_name=f"foto_{message.message_id}.jpg",
        claimed_mime="image/jpeg",
        claimed_size=largest.file_size,
        is_photo=True,
        media_group_id=message.media_group_id,
    )


def _text(text: str, base: dict[str, Any]) -> Inbound:
    command = parse_command(text)
    if command is None:
        return TextReceived(**base, text=text)
    name, args = command
    return CommandReceived(**base, name=name, args=args)


def parse_command(text: str) -> tuple[str, str] | None:
    """`/Lapor@LaporHAMBot  x y` -> ("lapor", "x y"). Which names exist is the engine's call."""
    stripped = text.strip()
    match = _COMMAND.match(stripped)
    if match is None:
        return None
    rest = stripped[match.end() :]
    if rest and not rest[0].isspace():
        return None  # "/home/user" is text, not the command "home"
    return match.group(1).lower(), rest.strip()
