"""The interface every channel adapter implements, and the errors it reports in.

The engine asks "the channel" for things; it never imports Telegram or WhatsApp code. Adapters
live in bot/channels/ and make no business decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.engine.events import FileReceived, Outgoing
from storage.models import Channel


@dataclass(frozen=True)
class Capabilities:
    max_text: int  # longer texts are split
    max_caption: int
    max_choices: int  # more choices than this become a numbered list answered by number
    max_choice_label: int  # longer labels are shortened; the full text goes in the body
    inline_buttons: bool
    contact_button: bool  # can ask for the user's own phone number with a button
    max_download_bytes: int
    user_key_is_phone: bool = False  # WhatsApp: the sender's id is their phone number
    contact_command: str | None = None  # console: the typed command that shares a number
    needs_inbound_window: bool = False  # WhatsApp: send() needs when the user last wrote


class FileTooLarge(Exception):
    def __init__(self, size: int | None, limit: int) -> None:
        super().__init__(f"file of {size} bytes exceeds {limit}")
        self.size = size
        self.limit = limit


class FetchFailed(Exception):
    """The file could not be downloaded (expired link, network): the user should send it again.

    `code` picks the user's explanation: "fetch_failed" (send again) or "not_found"."""

    def __init__(self, reason: str, code: str = "fetch_failed") -> None:
        super().__init__(reason)
        self.code = code


class ChannelConfigError(RuntimeError):
    """The platform refused our settings (token, webhook URL): an operator must fix them."""


class SendError(Exception):
    """Base of delivery failures. `retry_after` is seconds to wait before trying again."""

    retry_after: float | None = None


class TransientSendError(SendError):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentSendError(SendError):
    """Retrying will not help (bad request, unknown template): the message is marked failed."""


class RecipientUnreachable(PermanentSendError):
    """The user blocked the bot or is gone: stop sending to them on this channel."""


class ChannelAdapter(Protocol):
    name: Channel
    capabilities: Capabilities

    async def send(
        self, chat_id: str, message: Outgoing, *, last_inbound_at: datetime | None = None
    ) -> str | None:
        """Deliver one message; return the provider's message id. Raise a SendError on failure.

        `last_inbound_at` is when this user last wrote to us (WhatsApp's 24-hour window)."""
        ...

    async def fetch_file(self, event: FileReceived, *, max_bytes: int) -> bytes:
        """Download the bytes of a received file; raise FileTooLarge or FetchFailed."""
        ...
