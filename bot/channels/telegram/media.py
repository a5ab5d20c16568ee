"""Files in and out: downloads of what users send (getFile), and evidence sent back as a photo
or a document."""

from __future__ import annotations

import contextlib

from telegram import InputFile, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError

from bot.channels.telegram.client import BotApi
from bot.channels.telegram.outbound import Outbound, log_failure, utf16_len
from bot.engine.channel import (
    FetchFailed,
    FileTooLarge,
    PermanentSendError,
    RecipientUnreachable,
)
from bot.engine.events import FileReceived, OutFile, OutText
from storage.evidence import EvidenceNotFoundError, EvidenceStore

MAX_CAPTION = 1024
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # getFile serves nothing larger
MAX_SEND_DOCUMENT_BYTES = 50 * 1024 * 1024  # sendDocument: a bot uploads at most 50 MB
DOWNLOAD_TIMEOUT = 60.0  # seconds between bytes: 20 MB over a slow uplink


class _PhotoRefused(Exception):
    pass


async def fetch_file(
    api: BotApi, event: FileReceived, *, max_bytes: int, read_timeout: float = DOWNLOAD_TIMEOUT
) -> bytes:
    try:
        return await _fetch(api, event, max_bytes=max_bytes, read_timeout=read_timeout)
    except FetchFailed as failed:  # a refused size is the user's to hear, not a failure
        log_failure(event.user_key, "download", failed.__cause__ or failed)
        raise


async def _fetch(api: BotApi, event: FileReceived, *, max_bytes: int, read_timeout: float) -> bytes:
    limit = min(max_bytes, MAX_DOWNLOAD_BYTES)
    # Refuse before any request: getFile itself fails above 20 MB anyway.
    if event.claimed_size is not None and event.claimed_size > limit:
        raise FileTooLarge(event.claimed_size, limit)
    try:
        file = await api.bot.get_file(event.file_ref)
        if file.file_size is not None and file.file_size > limit:
            raise FileTooLarge(file.file_size, limit)
        data = await file.download_as_bytearray(read_timeout=read_timeout)
    except BadRequest as error:
        if "too big" in str(error).lower():
            raise FileTooLarge(event.claimed_size, limit) from error
        raise FetchFailed(str(error)) from error
    except (TelegramError, RuntimeError) as error:  # RuntimeError: no file_path given
        raise FetchFailed(str(error)) from error
    if len(data) > limit:  # the size Telegram claimed was wrong: still bounded
        raise FileTooLarge(len(data), limit)
    return bytes(data)


async def send_file(out: Outbound, store: EvidenceStore, chat: int, message: OutFile) -> str | None:
    try:
        data = await store.get(message.storage_key)
    except (EvidenceNotFoundError, ValueError) as error:
        raise PermanentSendError(f"evidence {message.storage_key!r}: {error}") from error
    caption = message.caption
    # Cutting HTML could break a tag: a caption too long goes as its own text instead.
    overflow = caption if utf16_len(caption) > MAX_CAPTION else ""
    caption = "" if overflow else caption
    sent = None
    if message.as_photo:
        with contextlib.suppress(_PhotoRefused):
            sent = await _send_photo(out, chat, data, message.filename, caption)
    if sent is None:
        document = InputFile(data, filename=message.filename)
        sent = await out.limited(
            chat,
            lambda: out.api.bot.send_document(
                chat, document, caption=caption or None, parse_mode=ParseMode.HTML
            ),
        )
    if overflow:
        await out.send_text(chat, OutText(text=overflow))
    return str(sent.message_id)


async def _send_photo(
    out: Outbound, chat: int, data: bytes, filename: str, caption: str
) -> Message:
    photo = InputFile(data, filename=filename)
    try:
        return await out.limited(
            chat,
            lambda: out.api.bot.send_photo(
                chat, photo, caption=caption or None, parse_mode=ParseMode.HTML
            ),
        )
    except RecipientUnreachable:
        raise
    except PermanentSendError as error:
        # Photos have size and dimension limits documents don't: send it as a document.
        raise _PhotoRefused from error
