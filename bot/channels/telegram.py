"""The Telegram channel: python-telegram-bot's `ExtBot` as a thin Bot API client.

Thin on purpose: it translates updates into engine events and delivers the engine's messages.
Conversation state, texts and every business decision are the engine's; PTB's Application,
ConversationHandler and persistence are not used.

```mermaid
sequenceDiagram
    participant T as Telegram
    participant A as TelegramChannel
    participant E as Engine
    participant O as Outbox sender
    alt long polling (default)
        A->>T: getUpdates(offset, timeout)
        T-->>A: updates
        A->>E: handle(event) (committed when it returns)
        A->>T: next getUpdates: offset confirms the handled batch
    else webhook (LAPORHAM_TELEGRAM_WEBHOOK_URL)
        T->>A: POST /telegram/webhook (secret header)
        A->>E: store_raw (inbox) before answering 200
        A-->>E: handle(event) in the background; replay_stored covers a crash
    end
    O->>A: send(chat, message)
    A->>T: sendMessage / sendPhoto / sendDocument (rate limited)
```
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import logging
import re
import secrets
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVar

from aiolimiter import AsyncLimiter
from cachetools import LRUCache
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    KeyboardButton,
    LinkPreviewOptions,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import ExtBot
from telegram.request import BaseRequest, HTTPXRequest
from telegram.warnings import PTBUserWarning

from bot.channels.telegram_translate import (
    ALLOWED_UPDATES,
    dedup_key,
    group_chat_id,
    parse_update,
    translate,
)
from bot.engine.channel import (
    Capabilities,
    Channel,
    ChannelConfigError,
    FetchFailed,
    FileTooLarge,
    PermanentSendError,
    RecipientUnreachable,
    SendError,
    TransientSendError,
)
from bot.engine.dispatch import Engine
from bot.engine.events import (
    ContactShared,
    FileReceived,
    Inbound,
    OutFile,
    Outgoing,
    OutText,
)
from bot.engine.texts import DEFAULT_LANGUAGE, LANGUAGES, t
from storage.evidence import EvidenceNotFoundError, EvidenceStore

log = logging.getLogger(__name__)

# Bot API limits (DOMAIN.md, "Channel facts").
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # getFile serves nothing larger

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
# The adapter's one own text: group messages never reach the engine, so it cannot answer them.
PRIVATE_ONLY = "LaporHAM hanya melayani chat pribadi. Silakan kirim pesan langsung ke bot ini."

POLL_TIMEOUT = 25  # seconds; under the 30 s idle cut-off of many proxies
# A long poll's read timeout is its `timeout` plus this: Telegram answers an empty poll at
# `timeout`, so only a dropped connection waits longer.
POLL_READ_MARGIN = 10
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)  # slow mobile data: no link previews
_TAG = re.compile(r"<(/?)(b|i)>")

Sent = TypeVar("Sent")
Json = dict[str, Any]


class Received(NamedTuple):
    """One update of a getUpdates batch: its payload as sent, and PTB's parse of it (None when
    it could not be parsed)."""

    update_id: int
    payload: Json
    update: Update | None


# do_api_request on a method PTB has makes PTB suggest its own method; here that is deliberate
# (see TelegramChannel._call and _fetch).
warnings.filterwarnings("ignore", message=r"Please use 'Bot\.", category=PTBUserWarning)


@dataclass(frozen=True)
class Limits:
    """Our own send limits (PTB's AIORateLimiter resumes early in 22.8 and has no chat bucket).

    Telegram allows about 30 messages/s per bot and about 1/s per chat with short bursts: a
    turn often answers with two or three messages, so a chat may burst 3, then 1/s."""

    overall_per_second: float = 30
    chat_burst: float = 3
    chat_period: float = 3.0


class TelegramConfigError(ChannelConfigError):
    """Telegram refused the token or the webhook URL: nothing will work until the operator
    fixes the settings, so the channel stops instead of retrying forever."""


class TelegramChannel:
    name = Channel.telegram
    capabilities = Capabilities(
        max_text=MAX_TEXT,
        max_caption=MAX_CAPTION,
        max_choices=8,  # inline keyboard, one button per row: readable on a phone
        max_choice_label=40,
        inline_buttons=True,
        contact_button=True,
        max_download_bytes=MAX_DOWNLOAD_BYTES,
    )

    def __init__(
        self,
        *,
        token: str,
        api_url: str,
        store: EvidenceStore,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        poll_timeout: int = POLL_TIMEOUT,
        limits: Limits | None = None,
    ) -> None:
        api_url = api_url.rstrip("/")
        # PTB's own httpx transport. Two pools: a long poll holds its connection for up to
        # POLL_TIMEOUT, so sends never queue behind it.
        self._requests = (
            HTTPXRequest(
                # Telegram takes ~30 messages/s: 16 connections cover that at 0.5 s a call.
                connection_pool_size=16,
                connect_timeout=5,
                read_timeout=15,
                write_timeout=15,
                # A send that waits longer for a free connection fails as TimedOut, which the
                # outbox retries: better than holding every other chat's reply.
                pool_timeout=5,
                media_write_timeout=60,  # evidence files up to 20 MB on slow uplinks
            ),
            # getUpdates passes its own read timeout (poll_timeout + POLL_READ_MARGIN).
            HTTPXRequest(
                connection_pool_size=2, connect_timeout=5, read_timeout=10, pool_timeout=5
            ),
        )
        self.bot = ExtBot(
            token,
            base_url=f"{api_url}/bot",
            base_file_url=f"{api_url}/file/bot",
            request=self._requests[0],
            get_updates_request=self._requests[1],
        )
        self.store = store
        self.webhook_url = webhook_url or None
        # Without a configured secret a random one is set with setWebhook at every start:
        # a webhook must never accept unauthenticated posts.
        self.webhook_secret = webhook_secret or secrets.token_urlsafe(32)
        self.poll_timeout = poll_timeout
        limits = limits or Limits()
        self._overall = AsyncLimiter(limits.overall_per_second, 1)
        self._chat_limits = limits
        # Bounded by least recent use: a chat quiet long enough to be forgotten has an empty
        # bucket anyway.
        self._per_chat: LRUCache[int, AsyncLimiter] = LRUCache(maxsize=10_000)
        # Chats that just shared their own number: the next plain text removes the
        # "Bagikan nomor saya" reply keyboard. In memory: a restart only leaves the (one-time,
        # already hidden) keyboard in place.
        self._close_keyboard: LRUCache[int, bool] = LRUCache(maxsize=10_000)
        self._told_groups: LRUCache[int, bool] = LRUCache(maxsize=1_000)
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ sending

    async def send(
        self, chat_id: str, message: Outgoing, *, last_inbound_at: datetime | None = None
    ) -> str | None:
        try:
            chat = int(chat_id)
        except ValueError:
            raise PermanentSendError(f"not a Telegram chat id: {chat_id!r}") from None
        if isinstance(message, OutText):
            return await self._send_text(chat, message)
        return await self._send_file(chat, message)

    async def _send_text(self, chat: int, message: OutText) -> str | None:
        parts = split_html(message.text, MAX_TEXT)
        sent: Json | None = None
        for index, part in enumerate(parts):
            markup = self._markup(chat, message) if index == len(parts) - 1 else None
            sent = await self._send_part(chat, part, markup)
            if isinstance(markup, ReplyKeyboardRemove | ReplyKeyboardMarkup):
                self._close_keyboard.pop(chat, None)  # removed, or freshly shown again
        return str(sent["message_id"]) if sent else None

    async def _send_part(self, chat: int, text: str, markup: Any) -> Json:
        try:
            return await self._limited(
                chat,
                lambda: self._call(
                    "sendMessage",
                    chat_id=chat,
                    text=text,
                    parse_mode=ParseMode.HTML,  # the engine escaped user values already
                    reply_markup=markup,
                    link_preview_options=NO_PREVIEW,
                ),
            )
        except PermanentSendError as error:
            if "can't parse entities" not in str(error).lower():
                raise
        # Broken markup must not cost the user the message: send it as plain text.
        log.error("Telegram refused the markup of a message; sending it as plain text")
        return await self._limited(
            chat,
            lambda: self._call(
                "sendMessage",
                chat_id=chat,
                text=html.unescape(_TAG.sub("", text)),
                reply_markup=markup,
                link_preview_options=NO_PREVIEW,
            ),
        )

    async def _call(
        self, endpoint: str, *, read_timeout: float | None = None, **params: Any
    ) -> Any:
        """A Bot API call whose answer is only read as JSON (Bot.do_api_request, public). PTB
        builds the call, checks the answer and raises its typed errors as for its own methods,
        but skips turning the answer into objects: only a message_id is ever read from it."""
        given = {name: value for name, value in params.items() if value is not None}
        timeout = BaseRequest.DEFAULT_NONE if read_timeout is None else read_timeout
        return await self.bot.do_api_request(endpoint, api_kwargs=given, read_timeout=timeout)

    def _markup(
        self, chat: int, message: OutText
    ) -> InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None:
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

    async def _send_file(self, chat: int, message: OutFile) -> str | None:
        try:
            data = await self.store.get(message.storage_key)
        except (EvidenceNotFoundError, ValueError) as error:
            raise PermanentSendError(f"evidence {message.storage_key!r}: {error}") from error
        caption = message.caption
        # Cutting HTML could break a tag: a caption too long goes as its own text instead.
        overflow = caption if utf16_len(caption) > MAX_CAPTION else ""
        caption = "" if overflow else caption
        sent = None
        if message.as_photo:
            with contextlib.suppress(_PhotoRefused):
                sent = await self._send_photo(chat, data, message.filename, caption)
        if sent is None:
            sent = await self._limited(
                chat,
                lambda: self.bot.send_document(
                    chat,
                    InputFile(data, filename=message.filename),
                    caption=caption or None,
                    parse_mode=ParseMode.HTML,
                ),
            )
        if overflow:
            await self._send_text(chat, OutText(text=overflow))
        return str(sent.message_id)

    async def _send_photo(self, chat: int, data: bytes, filename: str, caption: str) -> Message:
        try:
            return await self._limited(
                chat,
                lambda: self.bot.send_photo(
                    chat,
                    InputFile(data, filename=filename),
                    caption=caption or None,
                    parse_mode=ParseMode.HTML,
                ),
            )
        except RecipientUnreachable:
            raise
        except PermanentSendError as error:
            # Photos have size and dimension limits documents don't: send it as a document.
            raise _PhotoRefused from error

    async def _limited(self, chat: int, call: Callable[[], Awaitable[Sent]]) -> Sent:
        bucket = self._per_chat.get(chat)
        if bucket is None:
            limits = self._chat_limits
            bucket = self._per_chat[chat] = AsyncLimiter(limits.chat_burst, limits.chat_period)
        # The chat's bucket first: waiting for a busy chat must not hold overall capacity.
        async with bucket, self._overall:
            return await translate_errors(call)

    # ------------------------------------------------------------------ files

    async def fetch_file(self, event: FileReceived, *, max_bytes: int) -> bytes:
        limit = min(max_bytes, MAX_DOWNLOAD_BYTES)
        # Refuse before any request: getFile itself fails above 20 MB anyway.
        if event.claimed_size is not None and event.claimed_size > limit:
            raise FileTooLarge(event.claimed_size, limit)
        try:
            file = await self.bot.get_file(event.file_ref)
            if file.file_size is not None and file.file_size > limit:
                raise FileTooLarge(file.file_size, limit)
            data = await file.download_as_bytearray(read_timeout=60)
        except BadRequest as error:
            if "too big" in str(error).lower():
                raise FileTooLarge(event.claimed_size, limit) from error
            raise FetchFailed(str(error)) from error
        except (TelegramError, RuntimeError) as error:  # RuntimeError: no file_path given
            raise FetchFailed(str(error)) from error
        if len(data) > limit:  # the size Telegram claimed was wrong: still bounded
            raise FileTooLarge(len(data), limit)
        return bytes(data)

    # ------------------------------------------------------------------ receiving

    async def start(self, engine: Engine) -> None:
        """Check the token, then register the webhook, or drop any for long polling."""
        await self._retrying("getMe", self.bot.initialize)
        if self.webhook_url:
            url = self.webhook_url
            await self._retrying(
                "setWebhook",
                lambda: self.bot.set_webhook(
                    url, secret_token=self.webhook_secret, allowed_updates=ALLOWED_UPDATES
                ),
            )
            log.info("Telegram webhook set to %s", url)
            return
        await self._retrying("deleteWebhook", self.bot.delete_webhook)
        log.info("Telegram long polling as @%s", self.bot.username)

    async def run(self, engine: Engine) -> None:
        """Polling: fetch, handle, confirm, until cancelled. Webhook: updates come through
        routes(), so there is nothing to run."""
        if not self.webhook_url:
            await self._poll(engine)

    async def _poll(self, engine: Engine) -> None:
        offset: int | None = None
        failures = 0
        while True:
            try:
                batch = await self._fetch(offset)
            except TimedOut:
                continue  # a long poll that outlived its read timeout: just ask again
            except InvalidToken:
                raise TelegramConfigError("Telegram rejected LAPORHAM_TELEGRAM_TOKEN") from None
            except Exception as error:  # network, 5xx, 409 (another instance polling), bugs
                failures += 1
                delay = min(30.0, 0.5 * 2**failures)
                hint = (
                    " (is another instance using this token?)"
                    if isinstance(error, Conflict)
                    else ""
                )
                log.warning("getUpdates failed: %s%s; retrying in %.1f s", error, hint, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            if batch:
                await self._handle_batch(batch, engine)
                # Only now: the next getUpdates confirms the batch. A crash before this point
                # re-reads it and the inbox absorbs what was already handled.
                offset = batch[-1][0] + 1

    async def _fetch(self, offset: int | None) -> list[Received]:
        """One long poll. The batch is read as JSON and each update parsed on its own: PTB's
        get_updates parses a batch as a whole, so one update it cannot parse would block the
        queue forever; and the payload is kept as the event's `raw` without re-serialising."""
        payloads = await self._call(
            "getUpdates",
            read_timeout=self.poll_timeout + POLL_READ_MARGIN,
            offset=offset,
            timeout=self.poll_timeout,
            allowed_updates=ALLOWED_UPDATES,
        )
        return [
            Received(int(payload["update_id"]), payload, parse_update(payload, self.bot))
            for payload in payloads
        ]

    async def _handle_batch(self, batch: Iterable[Received], engine: Engine) -> None:
        """Users in parallel, each user's updates in order (album items, quick answers)."""
        queues: dict[str, list[Received]] = {}
        for received in batch:
            if received.update is None:
                log.warning("skipped Telegram update %s: not understood", received.update_id)
                continue
            user = received.update.effective_user
            key = str(user.id) if user else f"update:{received.update_id}"
            queues.setdefault(key, []).append(received)
        await asyncio.gather(*(self._handle_in_order(queue, engine) for queue in queues.values()))

    async def _handle_in_order(self, queue: list[Received], engine: Engine) -> None:
        for received in queue:
            assert received.update is not None  # _handle_batch skipped the others
            await self.process(received.update, received.payload, engine)

    async def process(self, update: Update, payload: dict[str, Any], engine: Engine) -> None:
        """Handle one update; never raises, so one bad update cannot stop the receiver."""
        event: Inbound | None = None
        try:
            event = translate(update, payload)
            if event is None:
                log.info("Telegram update %s is not for the engine", update.update_id)
                await self._answer_group(update)
            else:
                self._note_inbound(event)
                await engine.handle(event)
        except Exception:
            log.exception("Telegram update %s failed", update.update_id)
        if update.callback_query is not None:
            # After handle(): the spinner stops once the choice is committed.
            self._spawn(self._settle_callback(update.callback_query, pressed=event is not None))

    def parse_stored(self, payload: dict[str, Any]) -> Inbound | None:
        """A stored webhook update as its event again (Engine.replay_stored)."""
        update = parse_update(payload, self.bot)
        return translate(update, payload) if update is not None else None

    def _note_inbound(self, event: Inbound) -> None:
        if isinstance(event, ContactShared) and event.is_own:
            self._close_keyboard[int(event.chat_id)] = True

    async def _settle_callback(self, query: CallbackQuery, *, pressed: bool) -> None:
        """Stop the button's spinner and take the pressed keyboard away (no double press)."""
        with contextlib.suppress(TelegramError):
            await self._call("answerCallbackQuery", callback_query_id=query.id)
        message = query.message
        if not pressed or not isinstance(message, Message) or message.reply_markup is None:
            return
        with contextlib.suppress(TelegramError):
            async with self._overall:
                await self._call(
                    "editMessageReplyMarkup", chat_id=message.chat.id, message_id=message.message_id
                )

    async def _answer_group(self, update: Update) -> None:
        chat = group_chat_id(update)
        if chat is None or chat in self._told_groups:
            return
        self._told_groups[chat] = True  # once per group: never chatter in it
        with contextlib.suppress(SendError):
            await self._limited(chat, lambda: self.bot.send_message(chat, PRIVATE_ONLY))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _retrying(self, what: str, call: Callable[[], Awaitable[Any]]) -> None:
        """Start-up calls: a network hiccup is waited out, a rejected token is fatal."""
        failures = 0
        while True:
            try:
                await call()
                return
            except InvalidToken:
                # PTB's message carries the token itself: keep it out of logs.
                raise TelegramConfigError(
                    "Telegram rejected LAPORHAM_TELEGRAM_TOKEN; check it with @BotFather"
                ) from None
            except BadRequest as error:  # e.g. setWebhook: "HTTPS url must be provided"
                raise TelegramConfigError(f"Telegram refused {what}: {error}") from error
            except TelegramError as error:
                failures += 1
                delay = min(30.0, 0.5 * 2**failures)
                log.warning("%s failed (%s); retrying in %.1f s", what, error, delay)
                await asyncio.sleep(delay)

    # ------------------------------------------------------------------ webhook

    def routes(self, engine: Engine) -> list[Route]:
        if not self.webhook_url:
            return []  # polling: nothing may post updates to us

        async def webhook(request: Request) -> Response:
            return await self._webhook(request, engine)

        return [Route(WEBHOOK_PATH, webhook, methods=["POST"])]

    async def _webhook(self, request: Request, engine: Engine) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.webhook_secret.encode()):
            return Response(status_code=403)
        try:
            payload = await request.json()
        except ValueError:
            return Response(status_code=400)
        update = parse_update(payload, self.bot) if isinstance(payload, dict) else None
        if update is None:
            return Response(status_code=200)  # Telegram re-sending it would not help
        # Kept in the inbox before the 200: if we die now, replay_stored handles it later.
        if await engine.store_raw(Channel.telegram, dedup_key(update), payload):
            self._spawn(self.process(update, payload, engine))
        return Response(status_code=200)

    async def close(self) -> None:
        if self._background:
            _, pending = await asyncio.wait(self._background, timeout=2)
            for task in pending:
                task.cancel()
        # Not bot.shutdown(): it skips clients that were used without bot.initialize().
        await asyncio.gather(*(request.shutdown() for request in self._requests))


class _PhotoRefused(Exception):
    pass


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
