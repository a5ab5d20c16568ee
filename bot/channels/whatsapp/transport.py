"""The webhook: Meta's subscription handshake, and signed notifications stored to the inbox
before Meta gets its 200, then handled in the background.

Nothing is parsed or stored from a body whose X-Hub-Signature-256 does not match, and a body is
read only up to MAX_WEBHOOK_BYTES.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot.channels.whatsapp import inbound
from bot.channels.whatsapp.errors import short_key
from bot.channels.whatsapp.payloads import Notification, Status
from bot.engine.channel import Channel
from bot.engine.events import Inbound
from bot.engine.health import DATABASE, short_reason
from bot.engine.lanes import Lanes, Pace, Sleep

if TYPE_CHECKING:
    from bot.engine.dispatch import Engine

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/whatsapp/webhook"
MAX_WEBHOOK_BYTES = 1024 * 1024  # Meta's notifications are a few kB
CLOSE_GRACE = 5.0  # seconds running handlers get at shutdown

Receipts = Callable[["Engine", list[Status]], Awaitable[None]]
Handled = Callable[[str], Awaitable[None]]
Seen = Callable[[str, datetime], None]


class Webhook:
    def __init__(
        self,
        *,
        phone_number_id: str,
        app_secret: str | None,
        verify_token: str | None,
        receipts: Receipts,
        handled: Handled,
        seen: Seen,
        max_concurrent_handling: int,
        inbound_pace: Pace | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.phone_number_id = phone_number_id
        self.app_secret = app_secret
        self.verify_token = verify_token
        self._receipts = receipts  # delivery statuses, recorded before Meta gets its 200
        self._handled = handled  # a message the engine handled (its read receipt)
        self._seen = seen  # a user wrote, at this time (the 24-hour window)
        self._tasks: set[asyncio.Task[None]] = set()  # background handlers, kept referenced
        # One lane per sender, a bounded number handling at once (a burst must not exhaust the
        # DB pool), and a flooding sender paced so they never hold the slots from the others.
        self._lanes = Lanes(
            self._spawn,
            pace=inbound_pace or Pace(),
            slots=max_concurrent_handling,
            clock=clock,
            sleep=sleep,
            label="whatsapp",
        )
        self._engine: Engine | None = None
        self._closing = False

    def routes(self, engine: Engine) -> list[BaseRoute]:
        self._engine = engine
        return [
            Route(WEBHOOK_PATH, self._verify, methods=["GET"]),
            Route(WEBHOOK_PATH, self._receive, methods=["POST"]),
        ]

    @property
    def in_flight(self) -> int:
        """Background handlers running now."""
        return len(self._tasks)

    async def idle(self) -> None:
        """Wait until every background handler started so far is done."""
        while self._tasks:
            await asyncio.gather(*set(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Refuse new notifications (Meta delivers them again); let handlers finish briefly."""
        self._closing = True
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=CLOSE_GRACE)
            for task in pending:
                task.cancel()

    def signature_ok(self, body: bytes, header: str | None) -> bool:
        if not self.app_secret or not header:
            return False
        digest = hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(f"sha256={digest}".encode(), header.strip().encode())

    async def _verify(self, request: Request) -> Response:
        """Meta's subscription handshake: echo hub.challenge when the verify token matches."""
        params = request.query_params
        token = params.get("hub.verify_token")
        challenge = params.get("hub.challenge")
        if (
            params.get("hub.mode") == "subscribe"
            and self.verify_token
            and token is not None
            and hmac.compare_digest(token.encode(), self.verify_token.encode())
            and challenge is not None
        ):
            return PlainTextResponse(challenge[:200])
        return PlainTextResponse("Forbidden", status_code=403)

    async def _receive(self, request: Request) -> Response:
        body = await read_capped(request, MAX_WEBHOOK_BYTES)
        if body is None:
            return PlainTextResponse("Payload too large", status_code=413)
        header = request.headers.get("x-hub-signature-256")
        if not self.signature_ok(body, header):
            status = 401 if not header else 403
            return PlainTextResponse("Invalid signature", status_code=status)
        try:
            note = Notification.model_validate_json(body)
        except ValidationError:
            return PlainTextResponse("Malformed notification", status_code=400)
        engine = self._engine
        if engine is None or self._closing:  # shutting down: Meta delivers again later
            return PlainTextResponse("Shutting down", status_code=503)
        if note.object != "whatsapp_business_account":
            return PlainTextResponse("ok")
        events, statuses = inbound.collect(note, self.phone_number_id)
        try:
            for event in events:
                self._seen(event.chat_id, event.received_at)
                # Stored first: a message in the inbox survives a crash before it is handled.
                if await engine.store_raw(Channel.whatsapp, event.message_id, event.raw):
                    self._lanes.submit(event.user_key, partial(self._handle, engine, event))
            await self._receipts(engine, statuses)
        except Exception as error:  # the database is away: Meta delivers it again later
            engine.health.failing(DATABASE, f"WhatsApp webhook not stored: {short_reason(error)}")
            return PlainTextResponse("Try again later", status_code=503)
        engine.health.ok(DATABASE)
        return PlainTextResponse("ok")

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, engine: Engine, event: Inbound) -> None:
        try:
            handled = await engine.handle(event)
        except Exception as error:
            log.error("whatsapp %s: handling failed: %r", short_key(event.user_key), error)
            return
        if handled:
            await self._handled(event.message_id)


async def read_capped(request: Request, limit: int) -> bytes | None:
    """The raw body (the signature covers these exact bytes), or None past `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
