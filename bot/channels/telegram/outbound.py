"""Messages out to a chat: HTML texts split to Telegram's size, keyboards, rate limits, and
PTB's errors as the engine's SendErrors (which the outbox knows how to treat)."""

from __future__ import annotations

import contextlib
import html
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from aiolimiter import AsyncLimiter
from cachetools import LRUCache
from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    LinkPreviewOptions,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from bot.channels.pacing import PriorityPacer
from bot.channels.telegram.client import BotApi, Json
from bot.engine.channel import (
    PermanentSendError,
    RecipientUnreachable,
    SendError,
    TransientSendError,
)
from bot.engine.events import OutText
from bot.engine.texts import DEFAULT_LANGUAGE, LANGUAGES, t

log = logging.getLogger(__name__)

# Bot API limits, as the Bot API documents them for message text and callback data.
MAX_TEXT = 4096
MAX_CALLBACK_DATA_BYTES = 64
# The adapter's one own text: group messages never reach the engine, so it cannot answer them.
PRIVATE_ONLY = "LaporHAM hanya melayani chat pribadi. Silakan kirim pesan langsung ke bot ini."
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)  # slow mobile data: no link previews
_TAG = re.compile(r"<(/?)(b|i)>")

Sent = TypeVar("Sent")
Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove


@dataclass(frozen=True)
class Limits:
    """Our own send limits (PTB's AIORateLimiter resumes early in 22.8 and has no chat bucket).

    Telegram allows about 30 messages/s per bot, counted in any one second as they arrive,
    and about 1/s per chat with short bursts: a turn often answers with two or three messages,
    so a chat may burst 3, then 1/s. Overall, sends start evenly at `overall_per_second`, at
    most `overall_burst` of them making up for a late timer; and never more than
    `in_any_second` are started or unanswered within one second (PriorityPacer's window), so
    jitter and a stalled event loop cannot bunch 30 arrivals into one second (issue 14).
    A 429 holds every send for its retry_after (`pause_on_429`), as Telegram asks: another
    process on the same token (a deploy overlap) shares the 30/s, and only the answers say so."""

    overall_per_second: float = 29.5
    overall_burst: int = 2
    in_any_second: int = 30
    pause_on_429: bool = True
    chat_burst: float = 3
    chat_period: float = 3.0

    @property
    def overall_window(self) -> int:
        """The window's places: Telegram's count, or the pace when it is set above that
        (a local Bot API server, or tests that go faster than Telegram allows)."""
        return max(self.in_any_second, math.ceil(self.overall_per_second))


class Outbound:
    """Every message the channel sends goes through `limited`: the chat's bucket, then the
    bot's. In memory, bounded by least recent use: what a restart forgets costs at most one
    keyboard left shown or one more "private chats only" in a group."""

    def __init__(self, api: BotApi, limits: Limits) -> None:
        self.api = api
        self._limits = limits
        # Sends evenly spaced, one per 1/rate s. AsyncLimiter(rate, 1) would let a full
        # second's worth go at once and then keep leaking at the rate, so up to twice the rate
        # could land in one second (59-60 against Telegram's 30, issue 12); and its waiters go
        # first come first served, where a reply must pass a broadcast's queued sends.
        self.overall = PriorityPacer(
            limits.overall_per_second,
            burst=limits.overall_burst,
            in_any_second=limits.overall_window,
        )
        # A chat quiet long enough to be forgotten has an empty bucket anyway.
        self._per_chat: LRUCache[int, AsyncLimiter] = LRUCache(maxsize=10_000)
        # Chats that just shared their own number: the next plain text removes the
        # "Bagikan nomor saya" reply keyboard.
        self._close_keyboard: LRUCache[int, bool] = LRUCache(maxsize=10_000)
        self._told_groups: LRUCache[int, bool] = LRUCache(maxsize=1_000)

    async def limited(self, chat: int, call: Callable[[], Awaitable[Sent]]) -> Sent:
        bucket = self._per_chat.get(chat)
        if bucket is None:
            limits = self._limits
            bucket = self._per_chat[chat] = AsyncLimiter(limits.chat_burst, limits.chat_period)
        # The chat's bucket first: waiting for a busy chat must not hold overall capacity.
        async with bucket, self.overall:
            try:
                return await translate_errors(call)
            except SendError as error:
                if isinstance(error, TransientSendError) and error.retry_after:
                    self._flood_answered(error.retry_after)
                log_failure(chat, "send", error)
                raise

    def _flood_answered(self, retry_after: float) -> None:
        """Telegram said "too many": no send of this bot starts before it said. The answer
        does not say whether the bot's or one chat's limit was hit; holding every send for
        one chat's flood is the rarer mistake, and the cheaper one."""
        if self._limits.pause_on_429:
            self.overall.pause(retry_after)

    async def send_text(self, chat: int, message: OutText) -> str | None:
        parts = split_html(message.text, MAX_TEXT)
        sent: Json | None = None
        for index, part in enumerate(parts):
            markup = self._markup(chat, message) if index == len(parts) - 1 else None
            sent = await self._send_part(chat, part, markup)
            if isinstance(markup, ReplyKeyboardRemove | ReplyKeyboardMarkup):
                self._close_keyboard.pop(chat, None)  # removed, or freshly shown again
        return str(sent["message_id"]) if sent else None

    async def _send_part(self, chat: int, text: str, markup: Markup | None) -> Json:
        try:
            return await self._send_message(chat, text, markup, parse_mode=ParseMode.HTML)
        except PermanentSendError as error:
            if "can't parse entities" not in str(error).lower():
                raise
        # Broken markup must not cost the user the message (`limited` logged the refusal):
        # send it as plain text.
        return await self._send_message(chat, html.unescape(_TAG.sub("", text)), markup)

    async def _send_message(
        self, chat: int, text: str, markup: Markup | None, parse_mode: str | None = None
    ) -> Json:
        answer: Json = await self.limited(
            chat,
            lambda: self.api.call(
                "sendMessage",
                chat_id=chat,
                text=text,
                parse_mode=parse_mode,  # HTML: the engine escaped user values already
                reply_markup=markup,
                link_preview_options=NO_PREVIEW,
            ),
        )
        return answer

    def _markup(self, chat: int, message: OutText) -> Markup | None:
        if message.choices:
            return InlineKeyboardMarkup(
                [
                    [InlineKeyboardButton(choice.label, callback_data=callback_data(choice.id))]
                    for choice in message.choices
                ]
            )
        if message.request_contact:
            button = KeyboardButton(contact_label(message.text), request_contact=True)
            return ReplyKeyboardMarkup([[button]], one_time_keyboard=True, resize_keyboard=True)
        if chat in self._close_keyboard:
            return ReplyKeyboardRemove()
        return None

    def shared_own_number(self, chat: int) -> None:
        """The contact keyboard has done its job: the chat's next text takes it away."""
        self._close_keyboard[chat] = True

    async def settle_callback(self, query: CallbackQuery, *, pressed: bool) -> None:
        """Stop the button's spinner and take the pressed keyboard away (no double press)."""
        try:
            await self.api.call("answerCallbackQuery", callback_query_id=query.id)
        except TelegramError as error:  # e.g. too old: the spinner stopped on its own
            log_failure(query.from_user.id, "answerCallbackQuery", error)
        message = query.message
        if not pressed or not isinstance(message, Message) or message.reply_markup is None:
            return
        try:
            async with self.overall:
                await self.api.call(
                    "editMessageReplyMarkup", chat_id=message.chat.id, message_id=message.message_id
                )
        except TelegramError as error:
            log_failure(message.chat.id, "editMessageReplyMarkup", error)

    async def tell_group(self, chat: int) -> None:
        """Once per group that writes to the bot: never chatter in it."""
        if chat in self._told_groups:
            return
        self._told_groups[chat] = True
        with contextlib.suppress(SendError):
            await self.limited(chat, lambda: self.api.bot.send_message(chat, PRIVATE_ONLY))


async def translate_errors(call: Callable[[], Awaitable[Sent]]) -> Sent:
    """PTB's errors as the engine's SendErrors, which the outbox knows how to treat."""
    try:
        return await call()
    except RetryAfter as error:
        raise TransientSendError(str(error), retry_after=seconds(error.retry_after)) from error
    except Forbidden as error:  # blocked by the user, or the account is gone
        raise RecipientUnreachable(str(error)) from error
    except ChatMigrated as error:
        raise PermanentSendError(str(error)) from error
    except BadRequest as error:  # before NetworkError: BadRequest is a subclass of it
        if "chat not found" in str(error).lower():
            raise RecipientUnreachable(str(error)) from error
        raise PermanentSendError(str(error)) from error
    except (TimedOut, NetworkError) as error:  # timeouts, 5xx, connection errors
        raise TransientSendError(str(error)) from error
    except TelegramError as error:  # includes a rejected token: wait, don't drop messages
        raise TransientSendError(str(error)) from error


def log_failure(user: int | str, what: str, error: BaseException) -> None:
    """One line per failure: the channel, a short user key and the reason. Never the chat
    id whole, a phone number or message text (Bot API error texts carry neither)."""
    log.warning("telegram %s: %s failed: %s", short_key(user), what, reason(error))


def short_key(user: int | str) -> str:
    """Enough to tell users apart in a log, not enough to identify one."""
    return f"…{str(user)[-4:]}"


def reason(error: BaseException) -> str:
    """What went wrong, in a few words: PTB's error behind a SendError when there is one."""
    cause = error.__cause__ if isinstance(error.__cause__, TelegramError) else error
    if isinstance(cause, RetryAfter):
        return f"429 too many requests, retry after {seconds(cause.retry_after):g} s"
    if isinstance(cause, Forbidden):
        return f"403 {cause.message}"
    if isinstance(cause, InvalidToken):
        return "token rejected"  # PTB's text may carry the token itself
    text = str(cause) or type(cause).__name__
    return text if len(text) <= 200 else f"{text[:200]}…"


def seconds(value: float | timedelta) -> float:
    """RetryAfter.retry_after is an int or a timedelta in PTB 22 (PTB_TIMEDELTA)."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def callback_data(choice_id: str) -> str:
    """Choice ids are short by design; cut defensively rather than fail the whole message."""
    encoded = choice_id.encode()
    if len(encoded) <= MAX_CALLBACK_DATA_BYTES:
        return choice_id
    log.warning("choice id longer than %s bytes: %r", MAX_CALLBACK_DATA_BYTES, choice_id)
    return encoded[:MAX_CALLBACK_DATA_BYTES].decode(errors="ignore")


def contact_label(text: str) -> str:
    """The engine's own label for the button, in the language its question is written in."""
    for language in LANGUAGES:
        label = t(language, "button.share_contact")
        if label in text:
            return label
    return t(DEFAULT_LANGUAGE, "button.share_contact")


def utf16_len(text: str) -> int:
    # Telegram counts UTF-16 code units: an emoji counts twice.
    return len(text.encode("utf-16-le")) // 2


def split_html(text: str, limit: int) -> list[str]:
    """Split <b>/<i> markup into parts of at most `limit`, at line breaks or spaces when it
    can, never inside a tag or an entity, closing and reopening tags across the cut."""
    parts: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        cut = _cut_point(rest, limit - len("</b></i>"))
        head, rest = rest[:cut], rest[cut:].lstrip("\n")
        still_open = _open_tags(head)
        parts.append(head + "".join(f"</{tag}>" for tag in reversed(still_open)))
        rest = "".join(f"<{tag}>" for tag in still_open) + rest
    parts.append(rest)
    return [part for part in parts if _TAG.sub("", part).strip()] or [text[:limit]]


def _cut_point(text: str, limit: int) -> int:
    cut = limit
    while utf16_len(text[:cut]) > limit:
        cut -= 1
    window = text[:cut]
    for separator in ("\n", " "):
        found = window.rfind(separator)
        if found > cut // 2:
            cut = found
            break
    window = text[:cut]
    # Never split "<b>" or "&amp;".
    if window.rfind("<") > window.rfind(">"):
        cut = window.rfind("<")
    elif window.rfind("&") > window.rfind(";"):
        cut = window.rfind("&")
    return max(cut, 1)


def _open_tags(markup: str) -> list[str]:
    stack: list[str] = []
    for closing, tag in _TAG.findall(markup):
        if not closing:
            stack.append(tag)
        elif tag in stack:
            stack.remove(tag)
    return stack
