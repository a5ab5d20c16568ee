"""TelegramChannel: the ChannelAdapter, composed from the package's parts (see __init__)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute
from telegram import Update

from bot.channels.telegram import media, transport
from bot.channels.telegram.client import BotApi, Json
from bot.channels.telegram.inbound import (
    dedup_key,
    group_chat_id,
    lane_key,
    parse_update,
    translate,
)
from bot.channels.telegram.outbound import MAX_TEXT, Limits, Outbound
from bot.engine.channel import Capabilities, Channel, Lease, PermanentSendError
from bot.engine.events import ContactShared, FileReceived, Inbound, Outgoing, OutText
from bot.engine.lanes import Lanes, Pace
from storage.evidence import EvidenceStore

if TYPE_CHECKING:  # the engine is only called, never built, here
    from bot.engine.dispatch import Engine

log = logging.getLogger(__name__)


class TelegramChannel:
    name = Channel.telegram
    capabilities = Capabilities(
        max_text=MAX_TEXT,
        max_caption=media.MAX_CAPTION,
        max_choices=8,  # inline keyboard, one button per row: readable on a phone
        max_choice_label=40,
        inline_buttons=True,
        contact_button=True,
        max_download_bytes=media.MAX_DOWNLOAD_BYTES,
        max_send_document_bytes=media.MAX_SEND_DOCUMENT_BYTES,
    )

    def __init__(
        self,
        *,
        token: str,
        api_url: str,
        store: EvidenceStore,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        poll_timeout: int = transport.POLL_TIMEOUT,
        limits: Limits | None = None,
        download_timeout: float = media.DOWNLOAD_TIMEOUT,
        inbound_pace: Pace | None = None,
    ) -> None:
        self.api = BotApi(token, api_url)
        self.store = store
        self.webhook_url = webhook_url or None
        # Without a configured secret a random one is set with setWebhook at every start:
        # a webhook must never accept unauthenticated posts.
        self.webhook_secret = webhook_secret or secrets.token_urlsafe(32)
        self.poll_timeout = poll_timeout
        self.download_timeout = download_timeout
        self.out = Outbound(self.api, limits or Limits())
        self._background: set[asyncio.Task[None]] = set()
        # One lane per user; a user flooding the bot is handled at inbound_pace (bot/engine/lanes).
        self._lanes = Lanes(self._spawn, pace=inbound_pace or Pace(), label="telegram")
        # Given by the composition root when several processes may share the token.
        self._poll_lease: Lease | None = None

    # ------------------------------------------------------------------ sending

    async def send(
        self, chat_id: str, message: Outgoing, *, last_inbound_at: datetime | None = None
    ) -> str | None:
        try:
            chat = int(chat_id)
        except ValueError:
            raise PermanentSendError(f"not a Telegram chat id: {chat_id!r}") from None
        if isinstance(message, OutText):
            return await self.out.send_text(chat, message)
        return await media.send_file(self.out, self.store, chat, message)

    async def fetch_file(self, event: FileReceived, *, max_bytes: int) -> bytes:
        return await media.fetch_file(
            self.api, event, max_bytes=max_bytes, read_timeout=self.download_timeout
        )

    # ------------------------------------------------------------------ receiving

    def routes(self, engine: Engine) -> list[BaseRoute]:
        if not self.webhook_url:
            return []  # polling: nothing may post updates to us

        async def keep(update: Update, payload: Json) -> None:
            await self.keep(update, payload, engine)

        return [
            transport.webhook_route(
                self.api, secret=self.webhook_secret, keep=keep, health=engine.health
            )
        ]

    async def start(self, engine: Engine) -> None:
        """Check the token, then register the webhook, or drop any for long polling."""
        await transport.connect(self.api, webhook_url=self.webhook_url, secret=self.webhook_secret)

    async def run(self, engine: Engine) -> None:
        """Polling: fetch, keep, confirm, until cancelled. Webhook: updates come through
        routes(), so there is nothing to run."""
        if self.webhook_url:
            return

        async def keep(update: Update, payload: Json) -> None:
            await self.keep(update, payload, engine)

        health = engine.health if engine is not None else None  # tests poll engine-less
        if self._poll_lease is None:
            await transport.poll(self.api, keep, poll_timeout=self.poll_timeout, health=health)
            return
        await transport.poll_when_elected(
            self.api, keep, poll_timeout=self.poll_timeout, lease=self._poll_lease, health=health
        )

    def receiver_lease_name(self) -> str | None:
        """Polling: one getUpdates consumer per bot, named by the bot's id (the token's public
        part, never the token itself). Webhooks need no election."""
        if self.webhook_url:
            return None
        return f"telegram-poll:{self.api.bot.token.split(':', 1)[0]}"

    def use_lease(self, lease: Lease) -> None:
        self._poll_lease = lease

    async def settle(self) -> None:
        """Receiving has stopped: wait for the updates in hand (their lanes, button answers)."""
        while self._background:
            await asyncio.gather(*set(self._background), return_exceptions=True)

    async def keep(self, update: Update, payload: Json, engine: Engine) -> None:
        """Store the update in the inbox, then handle it in its user's lane, in the
        background. A redelivery of a stored update is dropped here: it is neither handled
        nor answered again (its button press already was, or replay_stored will be)."""
        if await engine.store_raw(Channel.telegram, dedup_key(update), payload):
            self._lanes.submit(lane_key(update), lambda: self.process(update, payload, engine))

    async def process(self, update: Update, payload: Json, engine: Engine) -> None:
        """Handle one update; never raises, so one bad update cannot stop its lane."""
        event: Inbound | None = None
        handled = False
        try:
            event = translate(update, payload)
            if event is None:
                log.debug("Telegram update %s is not for the engine", update.update_id)
                group = group_chat_id(update)
                if group is not None:
                    await self.out.tell_group(group)
            else:
                if isinstance(event, ContactShared) and event.is_own:
                    self.out.shared_own_number(int(event.chat_id))
                handled = await engine.handle(event)
        except Exception:
            log.exception("Telegram update %s failed", update.update_id)
        if update.callback_query is not None and (handled or event is None):
            # After handle(): the spinner stops once the choice is committed. A press the
            # inbox had handled already was answered then: no second answer, no second edit.
            self._spawn(self.out.settle_callback(update.callback_query, pressed=handled))

    def parse_stored(self, payload: dict[str, Any]) -> Inbound | None:
        """A stored webhook update as its event again (Engine.replay_stored)."""
        update = parse_update(payload, self.api.bot)
        return translate(update, payload) if update is not None else None

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        if self._background:
            _, pending = await asyncio.wait(self._background, timeout=2)
            for task in pending:
                task.cancel()
        await self.api.close()
