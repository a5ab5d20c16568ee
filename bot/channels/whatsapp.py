"""The WhatsApp channel: the WhatsApp Cloud API over plain httpx, with signed webhooks.

```mermaid
sequenceDiagram
    participant M as Meta
    participant W as /whatsapp/webhook
    participant E as Engine
    participant O as Outbox sender
    participant G as Graph API
    M->>W: POST (X-Hub-Signature-256)
    W->>W: HMAC of the raw body, else 401/403
    W->>E: store_raw(wamid, message) for each message
    W->>E: record_statuses(statuses[])
    W-->>M: 200
    W->>E: handle(event) in a background task
    W->>G: mark as read (best effort)
    O->>G: send: text / buttons / list / media, or a template outside 24 h
```

The adapter is thin: it translates payloads to engine events and engine messages to Cloud API
bodies (bot/channels/whatsapp_templates.py), and knows the platform's limits and error codes.
It makes no business decision and never queries the database itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import mimetypes
import time
from collections import OrderedDict
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from aiolimiter import AsyncLimiter
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot.channels import whatsapp_templates as shapes
from bot.channels.whatsapp_models import (
    GraphErrorEnvelope,
    MediaInfo,
    Message,
    Notification,
    SendResponse,
    Status,
    StoredMessage,
    Uploaded,
)
from bot.engine.channel import (
    Capabilities,
    Channel,
    FetchFailed,
    FileTooLarge,
    PermanentSendError,
    RecipientUnreachable,
    TransientSendError,
)
from bot.engine.delivery import DeliveryUpdate, Outcome, record_statuses
from bot.engine.events import (
    ChoiceMade,
    CommandReceived,
    ContactShared,
    FileReceived,
    Inbound,
    LocationShared,
    OutFile,
    Outgoing,
    TextReceived,
    Unsupported,
    outgoing_to_payload,
)
from storage.evidence import EvidenceNotFoundError, EvidenceStore
from storage.types import utcnow

if TYPE_CHECKING:
    from bot.engine.dispatch import Engine

log = logging.getLogger(__name__)

Json = dict[str, Any]

WEBHOOK_PATH = "/whatsapp/webhook"
MAX_WEBHOOK_BYTES = 1024 * 1024  # Meta's notifications are a few kB
WINDOW = timedelta(hours=24)
# Our last_inbound_at is when we handled the message, a little after the user sent it.
WINDOW_MARGIN = timedelta(minutes=5)
PROGRESS_TTL = 15 * 60.0  # seconds a half-sent split message is remembered for its retry
IMAGE_MIMES = frozenset({"image/jpeg", "image/png"})  # what WhatsApp shows as a photo

# Graph error codes (developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).
OUTSIDE_WINDOW = 131047
TOO_FAST = 130429
PAIR_RATE = 131056
SPAM_RATE = 131048
UNDELIVERABLE = 131026
ACCESS_TOKEN = 190
TRANSIENT_CODES = frozenset({1, 2, 4, 80007, 131000, 131016, 133004})


class OutsideWindow(PermanentSendError):
    """131047: free-form messages are refused; the same message goes out as a template."""


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
    )

    # Seconds to wait before a resend, by cause. Class attributes so tests can shorten them.
    throughput_retry = 3.0  # 130429: the number's ~80 msg/s
    pair_rate_retry = 60.0  # 131056: too many to one user; Meta asks for a real pause
    spam_retry = 900.0  # 131048: the number is restricted for a while
    token_retry = 300.0  # 190: the operator must renew the token; keep the messages meanwhile
    server_retry = 30.0  # 131000 and friends in a failed receipt

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
        messages_per_second: float = 70.0,
        recipient_burst: int = 10,
        recipient_interval: float = 1.0,
        max_concurrent_handling: int = 8,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.phone_number_id = phone_number_id
        self.app_secret = app_secret
        self.verify_token = verify_token
        self.api_url = api_url.rstrip("/")
        self.evidence_store = evidence_store
        self.template_language = template_language
        self._client = client or httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(15.0, connect=5.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=40),
        )
        # Under Meta's ~80 messages/s per number, and a burst-then-steady pace per recipient.
        self._limiter = AsyncLimiter(messages_per_second, 1.0)
        # Meta's pair rate is about 1 message per 6 s to one user, with bursts tolerated: a
        # conversation's replies go out at once, a runaway loop is slowed to 1 message/s.
        self.recipient_burst = recipient_burst
        self.recipient_interval = recipient_interval
        self._paces: OrderedDict[str, AsyncLimiter] = OrderedDict()
        # Recipients whose window Meta reported closed (131047) after their last message.
        self._closed: OrderedDict[str, datetime] = OrderedDict()
        # Parts of a split message already sent, so a retry doesn't repeat them.
        self._progress: OrderedDict[str, tuple[float, list[str]]] = OrderedDict()
        self._uploads: OrderedDict[str, tuple[float, str, str]] = OrderedDict()
        self._handling = asyncio.Semaphore(max_concurrent_handling)
        self._tasks: set[asyncio.Task[None]] = set()  # background handlers, kept referenced
        self._engine: Engine | None = None
        self._closing = False

    @property
    def messages_url(self) -> str:
        return f"{self.api_url}/{self.phone_number_id}/messages"

    async def start(self, engine: Engine) -> None:
        """Nothing to connect: Meta posts to routes(); the token is checked at the first send."""
        if not self.app_secret:
            log.error("LAPORHAM_WHATSAPP_APP_SECRET is unset: every webhook POST is refused")

    async def run(self, engine: Engine) -> None:
        """Webhooks deliver everything: nothing runs here."""

    async def close(self) -> None:
        """Let running handlers finish (briefly), then release the HTTP connections."""
        self._closing = True
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=5.0)
            for task in pending:
                task.cancel()
        await self._client.aclose()

    async def idle(self) -> None:
        """Wait until every background handler started so far is done (tests, benchmarks)."""
        while self._tasks:
            await asyncio.gather(*set(self._tasks), return_exceptions=True)

    # --- webhook ---------------------------------------------------------------------------

    def routes(self, engine: Engine) -> list[BaseRoute]:
        self._engine = engine
        return [
            Route(WEBHOOK_PATH, self._verify, methods=["GET"]),
            Route(WEBHOOK_PATH, self._receive, methods=["POST"]),
        ]

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

    def signature_ok(self, body: bytes, header: str | None) -> bool:
        if not self.app_secret or not header:
            return False
        digest = hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(f"sha256={digest}".encode(), header.strip().encode())

    async def _receive(self, request: Request) -> Response:
        body = await _read_capped(request, MAX_WEBHOOK_BYTES)
        if body is None:
            return PlainTextResponse("Payload too large", status_code=413)
        header = request.headers.get("x-hub-signature-256")
        if not self.signature_ok(body, header):
            # Nothing is parsed or stored from an unsigned body.
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
        events, statuses = self._collect(note)
        for event in events:
            stored = event.raw
            if await engine.store_raw(Channel.whatsapp, event.message_id, stored):
                self._spawn(self._handle(engine, event))
        await self._record(engine, statuses)
        return PlainTextResponse("ok")

    def _collect(self, note: Notification) -> tuple[list[Inbound], list[Status]]:
        """Messages (as events carrying their stored form) and receipts for our number only."""
        events: list[Inbound] = []
        statuses: list[Status] = []
        for entry in note.entry:
            for change in entry.changes:
                value = change.value
                if change.field != "messages" or value.metadata is None:
                    continue
                if value.metadata.phone_number_id != self.phone_number_id:
                    log.debug("webhook for number %s ignored", value.metadata.phone_number_id)
                    continue
                for error in value.errors:
                    log.warning("WhatsApp webhook error %s: %s", error.code, error.title)
                names = {contact.wa_id: contact.profile.name for contact in value.contacts}
                for raw in value.messages:
                    sender = raw.get("from")
                    stored = {
                        "message": raw,
                        "name": names.get(sender) if isinstance(sender, str) else None,
                        "phone_number_id": self.phone_number_id,
                    }
                    event = self.parse_stored(stored)
                    if event is not None:
                        events.append(event)
                statuses += value.statuses
        return events, statuses

    def parse_stored(self, payload: dict[str, Any]) -> Inbound | None:
        """An inbox payload (see _collect) as an engine event; None when nothing is to be done.
        Also used by Engine.replay_stored after a restart."""
        try:
            stored = StoredMessage.model_validate(payload)
            message = Message.model_validate(stored.message)
        except ValidationError:
            log.warning("unreadable WhatsApp message dropped")
            return None
        return to_event(message, name=stored.name, stored=payload)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, engine: Engine, event: Inbound) -> None:
        try:
            async with self._handling:  # bounded: a burst must not exhaust the DB pool
                handled = await engine.handle(event)
        except Exception:
            log.exception("handling WhatsApp message %s failed", event.message_id)
            return
        if handled:
            await self.mark_read(event.message_id)

    async def mark_read(self, message_id: str) -> None:
        """Blue ticks for the user: best effort, a failure changes nothing."""
        try:
            # Not under the message limiter: a receipt is not a message, and must not delay one.
            response = await self._client.post(
                self.messages_url, json=shapes.read_receipt(message_id)
            )
            if response.status_code >= 400:
                log.debug("read receipt refused: %s", response.text[:200])
        except Exception as error:  # closed client at shutdown included: never worth a crash
            log.debug("read receipt failed: %r", error)

    async def _record(self, engine: Engine, statuses: list[Status]) -> None:
        updates = [self._delivery_update(status) for status in statuses]
        outcomes = await record_statuses(engine.sessions, updates)
        if Outcome.requeued in outcomes:
            engine.outbox_ready.set()

    def _delivery_update(self, status: Status) -> DeliveryUpdate:
        error = status.errors[0] if status.errors else None
        retry_after = None
        if status.status == "failed" and error is not None:
            retry_after = self._receipt_retry(error.code)
            if error.code == OUTSIDE_WINDOW and status.recipient_id:
                self._remember(self._closed, status.recipient_id, utcnow(), 10_000)
        return DeliveryUpdate(
            provider_message_id=status.id,
            status=status.status,
            error_code=error.code if error else None,
            error_title=(error.title or error.message) if error else None,
            retry_after=retry_after,
        )

    def _receipt_retry(self, code: int) -> float | None:
        """A failed receipt a resend can fix: 131047 goes again at once, as a template."""
        return {
            OUTSIDE_WINDOW: 0.0,
            TOO_FAST: self.throughput_retry,
            PAIR_RATE: self.pair_rate_retry,
            131000: self.server_retry,
            131016: self.server_retry,
        }.get(code)

    # --- sending ---------------------------------------------------------------------------

    async def send(
        self, chat_id: str, message: Outgoing, *, last_inbound_at: datetime | None = None
    ) -> str | None:
        if not self.window_open(chat_id, last_inbound_at):
            return await self._send_template(chat_id, message)
        try:
            return await self._send_free_form(chat_id, message, last_inbound_at)
        except OutsideWindow:
            # Meta's clock says the window closed: same message, as a template, right away.
            self._remember(self._closed, chat_id, utcnow(), 10_000)
            return await self._send_template(chat_id, message)

    def window_open(self, chat_id: str, last_inbound_at: datetime | None) -> bool:
        """Free-form messages only within 24 h of the user's last message."""
        if last_inbound_at is None:
            return False
        if last_inbound_at.tzinfo is None:
            last_inbound_at = last_inbound_at.replace(tzinfo=UTC)
        if utcnow() - last_inbound_at >= WINDOW - WINDOW_MARGIN:
            return False
        closed = self._closed.get(chat_id)
        return closed is None or closed < last_inbound_at

    async def _send_free_form(
        self, chat_id: str, message: Outgoing, last_inbound_at: datetime | None
    ) -> str | None:
        bodies = await self._free_form_bodies(chat_id, message)
        key = _progress_key(chat_id, message, last_inbound_at)
        at, done = self._progress.pop(key, (0.0, []))
        sent = list(done) if time.monotonic() - at < PROGRESS_TTL else []
        for body in bodies[len(sent) :]:
            try:
                sent.append(await self._post_message(body, recipient=chat_id))
            except Exception:
                if sent:  # a retry of this outbox row continues after the parts that went out
                    self._remember(self._progress, key, (time.monotonic(), sent), 1_000)
                raise
        return sent[-1] if sent else None

    async def _free_form_bodies(self, chat_id: str, message: Outgoing) -> list[Json]:
        if isinstance(message, OutFile):
            media_id, mime = await self._upload(message)
            caption = shapes.to_whatsapp(message.caption)
            as_image = message.as_photo and mime in IMAGE_MIMES
            body = shapes.media_body(
                chat_id, media_id, filename=message.filename, caption=caption, as_image=as_image
            )
            return [body]
        text = shapes.to_whatsapp(message.text)
        if message.choices:
            return shapes.interactive_bodies(
                chat_id,
                text,
                message.choices,
                choose_label=message.choose_label or shapes.LIST_BUTTON,
            )
        return shapes.text_bodies(chat_id, text)

    async def _send_template(self, chat_id: str, message: Outgoing) -> str:
        language = self.template_language
        if isinstance(message, OutFile):
            media_id, _mime = await self._upload(message)
            caption = shapes.to_whatsapp(message.caption) or message.filename
            body = shapes.template_body(
                chat_id,
                shapes.FILE,
                [caption],
                language=language,
                document=(media_id, message.filename),
            )
        elif message.template:
            body = shapes.template_body(
                chat_id, message.template, message.template_params, language=language
            )
        else:
            param = shapes.generic_param(message.text, message.choices)
            body = shapes.template_body(chat_id, shapes.GENERIC, [param], language=language)
        return await self._post_message(body, recipient=chat_id)

    async def _post_message(self, body: Json, *, recipient: str) -> str:
        await self._pace(recipient).acquire()
        await self._limiter.acquire()
        try:
            response = await self._client.post(self.messages_url, json=body)
        except httpx.HTTPError as error:
            raise TransientSendError(f"network: {error!r}") from error
        self._raise_for_error(response)
        try:
            sent = SendResponse.model_validate_json(response.content)
        except ValidationError as error:
            raise TransientSendError("unreadable send response") from error
        if not sent.messages:
            raise TransientSendError("send response without a message id")
        return sent.messages[0].id

    def _pace(self, recipient: str) -> AsyncLimiter:
        pace = self._paces.get(recipient)
        if pace is None:
            burst = self.recipient_burst
            pace = AsyncLimiter(burst, burst * self.recipient_interval)
        self._remember(self._paces, recipient, pace, 10_000)
        return pace

    def _raise_for_error(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        code, reason = _graph_error(response)
        if code == OUTSIDE_WINDOW:
            raise OutsideWindow(reason)
        if code == UNDELIVERABLE:  # not on WhatsApp (or can't receive): stop sending there
            raise RecipientUnreachable(reason)
        retry = {
            TOO_FAST: self.throughput_retry,
            PAIR_RATE: self.pair_rate_retry,
            SPAM_RATE: self.spam_retry,
            ACCESS_TOKEN: self.token_retry,
        }
        if code in retry:
            if code == ACCESS_TOKEN:
                log.error("WhatsApp access token refused (%s): renew it", reason)
            raise TransientSendError(reason, retry_after=retry[code])
        if code in TRANSIENT_CODES or response.status_code >= 500 or response.status_code == 429:
            raise TransientSendError(reason)
        log.warning("WhatsApp refused a message: %s", reason)
        raise PermanentSendError(reason)

    async def _upload(self, message: OutFile) -> tuple[str, str]:
        """Upload a stored file once; its media id is reused for 7 days (Meta keeps 30)."""
        cached = self._uploads.get(message.storage_key)
        if cached and time.monotonic() - cached[0] < 7 * 86_400:
            return cached[1], cached[2]
        try:
            data = await self.evidence_store.get(message.storage_key)
        except (EvidenceNotFoundError, ValueError) as error:
            raise PermanentSendError(f"file {message.storage_key} not in the store") from error
        mime = mimetypes.guess_type(message.filename)[0] or "application/octet-stream"
        await self._limiter.acquire()
        try:
            response = await self._client.post(
                f"{self.api_url}/{self.phone_number_id}/media",
                data={"messaging_product": "whatsapp", "type": mime},
                files={"file": (message.filename, data, mime)},
                timeout=httpx.Timeout(120.0, connect=5.0),
            )
        except httpx.HTTPError as error:
            raise TransientSendError(f"upload: {error!r}") from error
        self._raise_for_error(response)
        try:
            media_id = Uploaded.model_validate_json(response.content).id
        except ValidationError as error:
            raise TransientSendError("unreadable upload response") from error
        self._remember(self._uploads, message.storage_key, (time.monotonic(), media_id, mime), 500)
        return media_id, mime

    @staticmethod
    def _remember(cache: OrderedDict[str, Any], key: str, value: Any, limit: int) -> None:
        """A small LRU: memory stays bounded however many users there are."""
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > limit:
            cache.popitem(last=False)

    # --- media -----------------------------------------------------------------------------

    async def fetch_file(self, event: FileReceived, *, max_bytes: int) -> bytes:
        """Media id -> short-lived URL -> bytes, refusing anything over `max_bytes` early."""
        info = await self._media_info(event.file_ref)
        if info.file_size is not None and info.file_size > max_bytes:
            raise FileTooLarge(info.file_size, max_bytes)
        if not self._trusted_media_url(info.url):
            raise FetchFailed(f"unexpected media URL for {event.file_ref}")
        try:
            return await self._download(info.url, max_bytes)
        except httpx.HTTPError as error:
            raise FetchFailed(f"download of {event.file_ref}: {error!r}") from error

    async def _media_info(self, media_id: str) -> MediaInfo:
        try:
            response = await self._client.get(f"{self.api_url}/{media_id}")
        except httpx.HTTPError as error:
            raise FetchFailed(f"media {media_id}: {error!r}") from error
        if response.status_code >= 400:
            raise FetchFailed(f"media {media_id}: {_graph_error(response)[1]}")
        try:
            return MediaInfo.model_validate_json(response.content)
        except ValidationError as error:
            raise FetchFailed(f"media {media_id}: unreadable answer") from error

    def _trusted_media_url(self, url: str) -> bool:
        """The bearer token goes with the download: only to https, or to the API's own host."""
        parts = urlsplit(url)
        return parts.scheme == "https" or parts.netloc == urlsplit(self.api_url).netloc

    async def _download(self, url: str, max_bytes: int) -> bytes:
        timeout = httpx.Timeout(60.0, connect=5.0)
        async with self._client.stream("GET", url, timeout=timeout) as response:
            if response.status_code >= 400:  # 404 also means the 5-minute URL expired
                raise FetchFailed(f"media download answered {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise FileTooLarge(int(declared), max_bytes)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FileTooLarge(size, max_bytes)
                chunks.append(chunk)
        return b"".join(chunks)


# --- translating inbound messages ------------------------------------------------------------


def to_event(message: Message, *, name: str | None, stored: dict[str, Any]) -> Inbound | None:
    """One Cloud API message as an engine event. `raw` keeps the stored payload, which is what
    the inbox holds until the event is handled."""
    base: dict[str, Any] = {
        "channel": Channel.whatsapp,
        "user_key": message.sender,
        "chat_id": message.sender,
        "message_id": message.id,
        "display_name": name,
        "received_at": _timestamp(message.timestamp),
        "raw": stored,
    }
    kind = message.type
    if kind == "text" and message.text is not None:
        return TextReceived(**base, text=message.text.body)
    if kind == "interactive" and message.interactive is not None:
        reply = message.interactive.button_reply or message.interactive.list_reply
        if reply is not None:
            return ChoiceMade(**base, choice_id=reply.id)
        return Unsupported(**base, kind=f"interactive:{message.interactive.type}")
    if kind == "button" and message.button is not None:
        # A template's quick-reply button: its payload is a command word ("lapor"), so a tap
        # acts as if the user typed it.
        text = message.button.payload or message.button.text
        return TextReceived(**base, text=text) if text else Unsupported(**base, kind="button")
    if kind in {"image", "document"}:
        return _file_event(message, base)
    if kind == "contacts":
        return _contact_event(message, base)
    if kind == "location" and message.location is not None:
        location = message.location
        return LocationShared(**base, latitude=location.latitude, longitude=location.longitude)
    if kind == "request_welcome":  # the user opened the chat for the first time
        return CommandReceived(**base, name="start")
    if kind in {"reaction", "system", "ephemeral"}:
        # An emoji on our message or a number change is not something to answer.
        return None
    if kind == "audio" and message.audio is not None and message.audio.voice:
        return Unsupported(**base, kind="voice")
    return Unsupported(**base, kind=kind)


def _file_event(message: Message, base: dict[str, Any]) -> Inbound:
    is_photo = message.type == "image"
    media = message.image if is_photo else message.document
    if media is None:
        return Unsupported(**base, kind=message.type)
    if is_photo:
        # Photos come without a name: the caption (what the user wrote) makes a readable one.
        extension = mimetypes.guess_extension(media.mime_type or "image/jpeg") or ".jpg"
        extension = ".jpg" if extension in {".jpe", ".jpeg"} else extension
        stem = shapes.shorten(media.caption or "", 60) or f"foto_{media.id[-4:]}"
        name = stem + extension
    else:
        name = shapes.shorten(media.filename or "", 120) or "dokumen"
    return FileReceived(
        **base,
        file_ref=media.id,
        claimed_name=name,
        claimed_mime=media.mime_type,
        is_photo=is_photo,
    )


def _contact_event(message: Message, base: dict[str, Any]) -> Inbound:
    """A shared contact card. Its fields are typed by the sender: a card only tells whether it
    is the sender's own (one of its wa_ids is the sender's), and then the number is the sender's
    own `from`, never the card's `phone`, which can name anyone."""
    sender = _digits(message.sender)
    phones = [phone for contact in message.contacts for phone in contact.phones]
    if any(_digits(phone.wa_id or "") == sender for phone in phones):
        return ContactShared(**base, phone=f"+{sender}", is_own=True)
    for phone in phones:
        if number := phone.phone or phone.wa_id:
            return ContactShared(**base, phone=number, is_own=False)
    return Unsupported(**base, kind="contacts")


def _timestamp(value: str | None) -> datetime:
    if value and value.isdigit():
        return datetime.fromtimestamp(int(value), UTC)
    return utcnow()


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


# --- helpers ---------------------------------------------------------------------------------


def _graph_error(response: httpx.Response) -> tuple[int, str]:
    """(code, "code: title") from a Graph error envelope, or from the HTTP status."""
    try:
        error = GraphErrorEnvelope.model_validate_json(response.content).error
    except ValidationError:
        return 0, f"HTTP {response.status_code}: {response.text[:200]}"
    title = error.message
    prefix = f"(#{error.code}) "
    if title.startswith(prefix):
        title = title[len(prefix) :]
    details = error.error_data.details if error.error_data else None
    reason = f"{error.code}: {title}"
    if details and details not in title:
        reason += f" ({details})"
    return error.code, reason


def _progress_key(chat_id: str, message: Outgoing, last_inbound_at: datetime | None) -> str:
    """The same outbox row retried has the same message and the same last inbound time; a
    new message from the user changes the latter, so a deliberate repeat is never skipped."""
    seen = last_inbound_at.isoformat() if last_inbound_at else ""
    text = json.dumps(outgoing_to_payload(message), sort_keys=True, default=str)
    return hashlib.sha256(f"{chat_id}|{seen}|{text}".encode()).hexdigest()


async def _read_capped(request: Request, limit: int) -> bytes | None:
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


__all__ = ["WEBHOOK_PATH", "OutsideWindow", "WhatsAppChannel", "to_event"]
