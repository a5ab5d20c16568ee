"""The WhatsApp channel adapter: the ChannelAdapter lifecycle over the package's parts (the
webhook, inbound translation, outbound sends, media), sharing one HTTP client and one pace."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
from starlette.routing import BaseRoute

from bot.channels.whatsapp import inbound, shapes
from bot.channels.whatsapp.errors import RetryDelays, short_key
from bot.channels.whatsapp.media import Media
from bot.channels.whatsapp.outbound import Outbound, Pacing, Window
from bot.channels.whatsapp.transport import Webhook
from bot.engine.channel import Capabilities, Channel, ClosedWindows, FetchFailed, FileTooLarge
from bot.engine.events import FileReceived, Inbound, Outgoing
from bot.engine.lanes import Pace, Sleep
from storage.evidence import EvidenceStore
from storage.types import utcnow

if TYPE_CHECKING:
    from bot.engine.dispatch import Engine

log = logging.getLogger(__name__)


class WhatsAppChannel:
    name = Channel.whatsapp
    capabilities = Capabilities(
        max_text=shapes.MAX_TEXT,
        max_caption=shapes.MAX_CAPTION,
        max_choices=shapes.MAX_ROWS,  # buttons up to 3, a list up to 10: decided in send()
        max_choice_label=shapes.MAX_ROW_DESCRIPTION,
        inline_buttons=True,
        contact_button=False,
        max_download_bytes=100 * 1024 * 1024,  # documents; the engine applies its own cap too
        user_key_is_phone=True,
        needs_inbound_window=True,
        max_send_document_bytes=shapes.MAX_DOCUMENT_BYTES,
    )

    def __init__(
        self,
        *,
        token: str,
        phone_number_id: str,
        app_secret: str | None,
        verify_token: str | None,
        api_url: str,
        evidence_store: EvidenceStore,
        template_language: str = "id",
        template_languages: Mapping[str, str] | None = None,
        messages_per_second: float = 70.0,
        recipient_burst: int = 10,
        recipient_interval: float = 1.0,
        max_concurrent_handling: int = 8,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        inbound_pace: Pace | None = None,
        sleep: Sleep = asyncio.sleep,
        pace_clock: Callable[[], float] | None = None,
    ) -> None:
        """`client` replaces the HTTP client (it must carry the bearer token); `clock` (seconds)
        ages what is remembered, `now` decides the 24-hour window."""
        api_url = api_url.rstrip("/")
        self._client = client or httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(15.0, connect=5.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=40),
        )
        self.app_secret = app_secret
        self.delays = RetryDelays()
        self.pacing = Pacing(messages_per_second, recipient_burst, recipient_interval)
        self.window = Window(now)
        self.media = Media(
            client=self._client,
            api_url=api_url,
            phone_number_id=phone_number_id,
            store=evidence_store,
            limiter=self.pacing.number,
            delays=self.delays,
            clock=clock,
        )
        self.outbound = Outbound(
            client=self._client,
            messages_url=f"{api_url}/{phone_number_id}/messages",
            media=self.media,
            pacing=self.pacing,
            window=self.window,
            delays=self.delays,
            template_language=template_language,
            # Each interface language's template language; Indonesian is the default's.
            template_languages={"id": template_language, **(template_languages or {})},
            clock=clock,
        )
        self.webhook = Webhook(
            phone_number_id=phone_number_id,
            app_secret=app_secret,
            verify_token=verify_token,
            receipts=partial(
                inbound.record_receipts, delays=self.delays, window_closed=self.window.close
            ),
            handled=self.outbound.mark_read,
            seen=self.window.note_inbound,
            max_concurrent_handling=max_concurrent_handling,
            inbound_pace=inbound_pace,
            clock=pace_clock or clock,
            sleep=sleep,  # the inbound pace's clock and wait (tests inject theirs)
        )

    # --- lifecycle ---------------------------------------------------------------------------

    def routes(self, engine: Engine) -> list[BaseRoute]:
        return self.webhook.routes(engine)

    async def start(self, engine: Engine) -> None:
        """Nothing to connect: Meta posts to routes(); the token is checked at the first send."""
        if not self.app_secret:
            log.error("LAPORHAM_WHATSAPP_APP_SECRET is unset: every webhook POST is refused")

    async def run(self, engine: Engine) -> None:
        """Webhooks deliver everything: nothing runs here."""

    async def settle(self) -> None:
        """The HTTP server has stopped: wait for the handlers of what it received."""
        await self.webhook.idle()

    async def close(self) -> None:
        """Let running handlers finish (briefly), then release the HTTP connections."""
        await self.webhook.close()
        await self._client.aclose()

    async def idle(self) -> None:
        """Wait until every background handler started so far is done (tests, benchmarks)."""
        await self.webhook.idle()

    @property
    def handling(self) -> int:
        """Background handlers running now (tests, benchmarks)."""
        return self.webhook.in_flight

    def use_closed_windows(self, store: ClosedWindows) -> None:
        """Where closed windows outlive the process (given by the composition root)."""
        self.window.stored = store

    # --- the engine's side -------------------------------------------------------------------

    def parse_stored(self, payload: dict[str, Any]) -> Inbound | None:
        """An inbox payload as an engine event again (Engine.replay_stored after a restart)."""
        event = inbound.parse_stored(payload)
        if event is not None:  # the window of a message replayed after a restart
            self.window.note_inbound(event.chat_id, event.received_at)
        return event

    async def send(
        self, chat_id: str, message: Outgoing, *, last_inbound_at: datetime | None = None
    ) -> str | None:
        return await self.outbound.send(chat_id, message, last_inbound_at)

    async def fetch_file(self, event: FileReceived, *, max_bytes: int) -> bytes:
        try:
            return await self.media.fetch(event, max_bytes=max_bytes)
        except (FetchFailed, FileTooLarge) as error:
            # The one line of a failed download; the engine tells the user.
            reason = str(error) or type(error).__name__
            log.warning("whatsapp %s: download failed: %s", short_key(event.user_key), reason)
            raise
