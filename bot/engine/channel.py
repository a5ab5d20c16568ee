"""The interface every channel adapter implements, and the errors it reports in.

The engine asks "the channel" for things; it never imports Telegram or WhatsApp code. Adapters
live in bot/channels/ and make no business decisions.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bot.engine.events import FileReceived, Inbound, Outgoing

if TYPE_CHECKING:  # the engine imports this module
    from starlette.routing import BaseRoute

    from bot.engine.dispatch import Engine


class Channel(StrEnum):
    """A chat channel. Stored in the database as its value (a plain string column)."""

    console = "console"
    telegram = "telegram"
    whatsapp = "whatsapp"


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
    # The largest document the bot may send (an evidence ZIP asked for in chat); None: no limit.
    max_send_document_bytes: int | None = None


# How urgent the message being sent is, lower first (0: a reply to someone waiting; the outbox's
# PRIORITY). Set by the outbox sender in the task that calls `send`; a channel whose rate
# limiter makes sends wait serves the lowest first, so a reply passes queued broadcast sends.
send_priority: ContextVar[int] = ContextVar("send_priority", default=0)


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
    """A chat channel, as the composition root (bot/app.py) and the engine use it.

    Lifecycle: `routes` before the HTTP server starts; then `start` and `run` in one task of
    their own; `close` at shutdown. Settings and the evidence store are given to the
    constructor by the composition root: an adapter reads no settings and builds no store."""

    name: Channel
    capabilities: Capabilities

    def routes(self, engine: Engine) -> list[BaseRoute]:
        """The HTTP routes this channel receives on (webhooks); empty when it has none."""
        ...

    async def start(self, engine: Engine) -> None:
        """Connect: check the credentials, register (or drop) a webhook. Retries on its own."""
        ...

    async def run(self, engine: Engine) -> None:
        """Receive until cancelled (long polling); returns at once where webhooks deliver."""
        ...

    async def settle(self) -> None:
        """Receiving has stopped (a graceful stop): wait for the turns in hand to finish.
        Sending still works; the caller bounds the wait."""
        ...

    async def close(self) -> None:
        """Let work in hand finish briefly, then release connections."""
        ...

    def parse_stored(self, payload: dict[str, Any]) -> Inbound | None:
        """An inbox payload kept by `Engine.store_raw` as an event again (replay after a
        crash); None when there is nothing to act on."""
        ...

    async def send(
        self, chat_id: str, message: Outgoing, *, last_inbound_at: datetime | None = None
    ) -> str | None:
        """Deliver one message; return the provider's message id. Raise a SendError on failure.

        `last_inbound_at` is when this user last wrote to us (WhatsApp's 24-hour window)."""
        ...

    async def fetch_file(self, event: FileReceived, *, max_bytes: int) -> bytes:
        """Download the bytes of a received file; raise FileTooLarge or FetchFailed."""
        ...


class Lease(Protocol):
    """A job only one process may do at a time, held through the database (bot/app.py gives
    it; storage/leases.py keeps it). The holder calls `hold` at least every `renew_seconds`."""

    renew_seconds: float

    async def hold(self) -> bool:
        """Take or renew the lease: True while this process holds it."""
        ...

    async def release(self) -> None:
        """Give it up now (a graceful stop), so another process need not wait for it."""
        ...


@runtime_checkable
class ExclusiveReceiver(Protocol):
    """A channel whose receiving only one process may do (Telegram's getUpdates: one consumer
    per bot token). The composition root gives it a lease before `run`."""

    def receiver_lease_name(self) -> str | None:
        """The lease to hold while receiving; None when no election is needed (webhooks)."""
        ...

    def use_lease(self, lease: Lease) -> None: ...


class ClosedWindows(Protocol):
    """Where a channel keeps who the platform said is outside its free-form window (WhatsApp),
    so a restart does not forget who needs a template (bot/engine/windows.py)."""

    async def closed_at(self, chat_id: str) -> datetime | None: ...

    async def note_closed(self, chat_id: str, at: datetime) -> None: ...


@runtime_checkable
class KeepsClosedWindows(Protocol):
    """A channel that remembers closed windows: the composition root gives it the store."""

    def use_closed_windows(self, store: ClosedWindows) -> None: ...
