"""A fake Telegram Bot API server for tests and benchmarks.

It speaks real HTTP on 127.0.0.1 (uvicorn + Starlette) so the real python-telegram-bot client
is exercised end to end; point it here with ``base_url=f"{api.url}/bot"`` and
``base_file_url=f"{api.url}/file/bot"``. Nothing here ever talks to the real Telegram.

In the test's own event loop::

    async with FakeTelegramAPI(token="123:ABC") as api:
        api.push_update(text_update(42, "halo"))
        record = await api.wait_for("sendMessage")

From another process: ``python -m tests.fakes.telegram_api --port 0`` prints its URL on the
first stdout line and is driven through the JSON endpoints under ``/_fake/``.

Deliberate simplifications: message ids are global rather than per chat, ``parse_mode`` text
is echoed verbatim (no entity parsing), and unknown file ids or edit targets are accepted
instead of failing, so tests need not pre-register everything they mention.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import hashlib
import html
import itertools
import json
import logging
import math
import mimetypes
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import Message as MimeHeaders
from email.parser import BytesHeaderParser
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = [
    "BOT_USERNAME",
    "DEFAULT_BOT_ID",
    "DEFAULT_TOKEN",
    "FakeTelegramAPI",
    "RecordedRequest",
    "SendLimits",
    "callback_update",
    "command_update",
    "contact_update",
    "document_update",
    "make_user",
    "photo_update",
    "text_update",
]

log = logging.getLogger(__name__)

Json = dict[str, Any]
FileKind = Literal["photo", "document", "voice"]
Predicate = Callable[["RecordedRequest"], bool]
Listener = Callable[["RecordedRequest"], None]

DEFAULT_TOKEN = "123:ABC"
DEFAULT_BOT_ID = 123
BOT_USERNAME = "LaporHAMTestBot"
BOT_FIRST_NAME = "LaporHAM Test"

# Limits of the real API that the fake enforces, because real bugs hide right at them.
MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024

CONFLICT_OTHER_POLL = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
BLOCKED = "Forbidden: bot was blocked by the user"

# Without allowed_updates the real API withholds exactly these update types.
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

# PTB sends every parameter as a form field whose value is json.dumps(value), or the raw
# string for str values; these tables turn them back into what a JSON body would carry.
_JSON_PARAMS = frozenset(
    {
        "allowed_updates",
        "caption_entities",
        "commands",
        "entities",
        "link_preview_options",
        "media",
        "message_ids",
        "reply_markup",
        "reply_parameters",
        "scope",
    }
)
_INT_PARAMS = frozenset(
    {
        "cache_time",
        "chat_id",
        "duration",
        "from_chat_id",
        "height",
        "limit",
        "max_connections",
        "message_id",
        "message_thread_id",
        "offset",
        "reply_to_message_id",
        "timeout",
        "user_id",
        "width",
    }
)
_BOOL_PARAMS = frozenset(
    {
        "allow_sending_without_reply",
        "disable_content_type_detection",
        "disable_notification",
        "disable_web_page_preview",
        "drop_pending_updates",
        "has_spoiler",
        "protect_content",
        "show_alert",
    }
)
_INT_TEXT = re.compile(r"-?\d+")

_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request: chat not found",
    403: BLOCKED,
    409: CONFLICT_OTHER_POLL,
    500: "Internal Server Error",
    502: "Bad Gateway",
}

# Real file ids start with a type-specific prefix; mimicking it keeps logs recognisable.
_FILE_ID_PREFIX = {
    "photo": "AgACAgUAAxkDAAI",
    "document": "BQACAgUAAxkDAAI",
    "voice": "AwACAgUAAxkDAAI",
}
_FILE_FOLDER = {"photo": "photos", "document": "documents", "voice": "voice"}
_FILE_DEFAULT_EXT = {"photo": ".jpg", "document": "", "voice": ".oga"}


@dataclass
class RecordedRequest:
    """One call to the fake, recorded on arrival; ``status`` is 0 while it is in flight."""

    method: str
    params: Json
    files: dict[str, bytes]
    at: float  # the fake's clock (time.monotonic() unless injected)
    failed: bool = False
    status: int = 0
    result: Any = None

    @property
    def finished(self) -> bool:
        return self.status != 0

    def to_json(self) -> Json:
        files = {
            name: {"size": len(data), "base64": base64.b64encode(data).decode()}
            for name, data in self.files.items()
        }
        return {
            "method": self.method,
            "params": self.params,
            "files": files,
            "at": self.at,
            "failed": self.failed,
            "status": self.status,
            "result": self.result,
        }


@dataclass(frozen=True)
class SendLimits:
    """Telegram's flood limits, enforced when given to the fake (off by default, so tests that
    are not about them never see a 429): at most `overall_per_second` messages in any one
    second, and per chat at most `chat_burst` in any `chat_burst / chat_per_second` seconds
    (about 1 a second, with the short bursts Telegram tolerates). Past either, the answer is
    429 with retry_after, as Telegram's. Only accepted messages count."""

    overall_per_second: int = 30
    chat_per_second: float = 1.0
    chat_burst: int = 3

    @property
    def chat_window(self) -> float:
        return self.chat_burst / self.chat_per_second


class ApiError(Exception):
    """Raised inside a method handler to answer with the Bot API's error envelope."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


@dataclass
class _Upload:
    data: bytes
    filename: str
    content_type: str


@dataclass
class _StoredFile:
    file_id: str
    data: bytes
    file_path: str
    file_size: int
    meta: Json  # the PhotoSize/Document/Voice dict as it appears inside a Message


class _Signal:
    """Wakes everyone currently waiting; a fresh Event per round keeps later waiters blocked."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seconds: float | None = None) -> None:
        event = self._event
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()


Handler = Callable[[Json, dict[str, _Upload]], Awaitable[Any]]


class FakeTelegramAPI:
    """In-process fake of the Bot API; see the module docstring for usage."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_username: str = BOT_USERNAME,
        bot_first_name: str = BOT_FIRST_NAME,
        clock: Callable[[], float] = time.monotonic,
        limits: SendLimits | None = None,
    ) -> None:
        self.token = token
        self.limits = limits
        self.rate_limited = 0  # 429s answered because `limits` were exceeded
        self._accepted: deque[float] = deque()  # arrival times of accepted messages (1 s)
        self._accepted_per_chat: dict[int, deque[float]] = {}
        # Stamps each request's arrival (`RecordedRequest.at`); tests may inject their own.
        self.clock = clock
        self.host = host
        self.port = port
        # The Message.from of bot messages; getMe adds the capability flags on top.
        self.bot_user: Json = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }
        self.requests: list[RecordedRequest] = []
        self.commands: list[Json] = []
        self.webhook_url = ""
        self.blocked_chats: set[int] = set()
        self._updates: list[Json] = []
        self._last_update_id = 0
        self._allowed_updates: frozenset[str] | None = None
        self._poll_generation = 0
        self._messages: dict[tuple[int, int], Json] = {}
        self._chats: dict[int, Json] = {}
        self._files: dict[str, _StoredFile] = {}
        self._paths: dict[str, _StoredFile] = {}
        self._faults: dict[str, list[ApiError]] = {}
        self._delays: dict[str, list[float]] = {}
        self._message_ids = itertools.count(10_001)
        self._file_seq = itertools.count(1)
        self._update_signal = _Signal()
        self._request_signal = _Signal()
        self._listeners: list[Listener] = []
        self._closed = asyncio.Event()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._methods = self._method_table()
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._bot_endpoint, methods=["GET", "POST"]),
                Route("/file/bot{token}/{file_path:path}", self._file_endpoint, methods=["GET"]),
                Route("/_fake/requests", self._control_requests, methods=["GET"]),
                Route("/_fake/{action}", self._control_action, methods=["POST"]),
            ]
        )

    # ---------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeTelegramAPI is not started")
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> FakeTelegramAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> str:
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            lifespan="off",
            log_level="warning",
            # log_config=None: don't let uvicorn's dictConfig rewire the test process's logging.
            log_config=None,
            access_log=False,
            ws="none",
            timeout_graceful_shutdown=2,
        )
        self._closed.clear()
        self._server = uvicorn.Server(config)
        # A task in the caller's loop (not a thread) so the fake shares the test's loop.
        self._task = asyncio.create_task(self._server.serve(), name="fake-telegram-api")
        while not self._server.started:
            if self._task.done():
                await self._task  # re-raises whatever broke the startup
                raise RuntimeError("fake Telegram API stopped during startup")
            await asyncio.sleep(0.005)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self.url

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        # Release long polls and injected delays first, or uvicorn waits for them to drain.
        self._closed.set()
        self._update_signal.fire()
        self._server.should_exit = True
        await self._task
        self._server = None
        self._task = None

    async def serve_forever(self) -> None:
        if self._task is not None:
            await self._task

    # ---------------------------------------------------------------- test-facing API

    def push_update(self, update: Json) -> Json:
        """Queue an update for getUpdates and return it with its update_id.

        A given update_id is kept only if it is newer than every previous one; otherwise it is
        renumbered, so fixtures with arbitrary ids can be pushed in any order.
        """
        pushed = copy.deepcopy(update)
        update_id = pushed.get("update_id")
        if not isinstance(update_id, int) or update_id <= self._last_update_id:
            update_id = self._last_update_id + 1
        pushed["update_id"] = self._last_update_id = update_id
        self._remember_chats(pushed)
        self._updates.append(pushed)
        self._update_signal.fire()
        return copy.deepcopy(pushed)

    @property
    def pending_updates(self) -> list[Json]:
        """Updates pushed but not yet confirmed by a getUpdates offset."""
        return copy.deepcopy(self._updates)

    def add_file(
        self,
        file_id: str,
        data: bytes,
        *,
        kind: FileKind = "document",
        file_name: str | None = None,
        mime_type: str | None = None,
        width: int = 1280,
        height: int = 960,
        file_size: int | None = None,
    ) -> Json:
        """Make ``data`` downloadable via getFile; returns the dict to embed in an update.

        ``file_size`` overrides the declared size, e.g. to test the 20 MB getFile limit
        without allocating 20 MB.
        """
        stored = self._store_file(
            kind,
            data,
            file_id=file_id,
            file_name=file_name,
            mime_type=mime_type,
            width=width,
            height=height,
            file_size=file_size,
        )
        return copy.deepcopy(stored.meta)

    def fail_next(
        self,
        method: str,
        *,
        status: int,
        description: str | None = None,
        retry_after: int | None = None,
        count: int = 1,
    ) -> None:
        """Make the next ``count`` calls of ``method`` fail with the given error envelope."""
        if status == HTTPStatus.TOO_MANY_REQUESTS and retry_after is None:
            retry_after = 1  # a real 429 always tells the client how long to back off
        if description is None:
            description = _DEFAULT_DESCRIPTIONS.get(status) or _default_description(
                status, retry_after
            )
        queue = self._faults.setdefault(method.lower(), [])
        queue.extend(ApiError(status, description, retry_after) for _ in range(count))

    def delay_next(self, method: str, seconds: float, count: int = 1) -> None:
        """Hold the next ``count`` responses of ``method`` for ``seconds`` (then process)."""
        self._delays.setdefault(method.lower(), []).extend([seconds] * count)

    def block(self, chat_id: int) -> None:
        """Every later send to ``chat_id`` fails with 403, as for a user who blocked the bot."""
        self.blocked_chats.add(chat_id)

    def sent(self, method: str | None = None, chat_id: int | str | None = None) -> list[Json]:
        """Params of successful send* calls (sendChatAction excluded), in arrival order."""
        return [
            record.params
            for record in self.requests
            if record.finished
            and not record.failed
            and record.method.startswith("send")
            and record.method != "sendChatAction"
            and (method is None or record.method == method)
            and (chat_id is None or str(record.params.get("chat_id")) == str(chat_id))
        ]

    def on_request(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with each request's record as soon as the fake has answered it.

        For benchmarks that route replies to many waiting users as they arrive (``wait_for``
        rescans the recorded requests for every waiter). ``record.at`` stays the arrival time.
        Returns a function that removes the listener.
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def most_in_one_second(self, predicate: Predicate | str = "sendMessage") -> int:
        """The most requests matching ``predicate`` that arrived within any one second
        (half-open windows ``[t, t + 1)``, on the fake's clock): Telegram's "30 per second"
        as a server would count it. Failed attempts count too, as they do for Telegram."""
        matches = _as_predicate(predicate)
        times = sorted(record.at for record in self.requests if matches(record))
        most, first = 0, 0
        for last, arrived in enumerate(times):
            while arrived - times[first] >= 1.0:
                first += 1
            most = max(most, last - first + 1)
        return most

    async def wait_for(
        self,
        predicate: Predicate | str,
        timeout: float = 5.0,  # noqa: ASYNC109 - the brief's API; it bounds a condition wait
        *,
        start: int = 0,
        finished: bool = True,
    ) -> RecordedRequest:
        """First recorded request (from index ``start``) matching ``predicate``.

        A string predicate matches the method name. By default only answered requests match,
        so ``result``/``failed`` are final; pass ``finished=False`` to catch in-flight ones.
        """
        matches = _as_predicate(predicate)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for record in self.requests[start:]:
                        if (record.finished or not finished) and matches(record):
                            return record
                    await self._request_signal.wait()
        except TimeoutError:
            seen = ", ".join(r.method for r in self.requests[start:]) or "nothing"
            raise TimeoutError(f"no matching request within {timeout}s; saw: {seen}") from None

    # ---------------------------------------------------------------- HTTP layer

    async def _bot_endpoint(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return _error_response(ApiError(401, "Unauthorized"))
        name: str = request.path_params["method"]
        entry = self._methods.get(name.lower())
        method = entry[0] if entry else name
        parse_error: ApiError | None = None
        try:
            params, uploads = await _read_params(request)
        except ApiError as exc:
            params, uploads, parse_error = {}, {}, exc
        record = self._record(method, params, {key: up.data for key, up in uploads.items()})
        if parse_error is not None:
            return self._finish_error(record, parse_error)
        if entry is None:
            return self._finish_error(record, ApiError(404, "Not Found: method not found"))
        return await self._run(record, lambda: entry[1](params, uploads))

    async def _file_endpoint(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return _error_response(ApiError(401, "Unauthorized"))
        file_path: str = request.path_params["file_path"]
        # Recorded under a pseudo-method so tests can assert downloads or inject faults.
        record = self._record("downloadFile", {"file_path": file_path}, {})
        response = await self._run(record, lambda: self._download(file_path))
        stored = self._paths.get(file_path)
        if record.failed or stored is None:
            return response
        return Response(stored.data, media_type="application/octet-stream")

    async def _run(self, record: RecordedRequest, call: Callable[[], Awaitable[Any]]) -> Response:
        try:
            await self._apply_delay(record.method)
            self._raise_injected_fault(record.method)
            self._enforce_limits(record)
            result = await call()
        except ApiError as exc:
            return self._finish_error(record, exc)
        except Exception as exc:
            # A bug in the fake must not look like a Telegram answer; make it loud instead.
            log.exception("fake Telegram API crashed in %s", record.method)
            crash = ApiError(500, f"Internal Server Error: fake crashed: {exc!r}")
            return self._finish_error(record, crash)
        record.status, record.result = 200, copy.deepcopy(result)
        self._answered(record)
        return JSONResponse({"ok": True, "result": result})

    def _record(self, method: str, params: Json, files: dict[str, bytes]) -> RecordedRequest:
        record = RecordedRequest(method, params, files, self.clock())
        self.requests.append(record)
        self._request_signal.fire()
        return record

    def _finish_error(self, record: RecordedRequest, error: ApiError) -> Response:
        record.status, record.failed = error.status, True
        self._answered(record)
        return _error_response(error)

    def _answered(self, record: RecordedRequest) -> None:
        self._request_signal.fire()
        for listener in list(self._listeners):
            listener(record)

    async def _apply_delay(self, method: str) -> None:
        delays = self._delays.get(method.lower())
        if delays:
            # Waiting on _closed rather than sleeping lets stop() cut a long delay short.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delays.pop(0)):
                    await self._closed.wait()

    def _enforce_limits(self, record: RecordedRequest) -> None:
        """With `limits`: a message past Telegram's flood limits is answered 429."""
        limits = self.limits
        is_message = record.method.startswith("send") and record.method != "sendChatAction"
        chat = record.params.get("chat_id")
        if limits is None or not is_message or not isinstance(chat, int):
            return
        now = record.at
        while self._accepted and now - self._accepted[0] >= 1.0:
            self._accepted.popleft()
        in_chat = self._accepted_per_chat.setdefault(chat, deque())
        while in_chat and now - in_chat[0] >= limits.chat_window:
            in_chat.popleft()
        if len(self._accepted) >= limits.overall_per_second:
            wait = 1.0 - (now - self._accepted[0])
        elif len(in_chat) >= limits.chat_burst:
            wait = limits.chat_window - (now - in_chat[0])
        else:
            self._accepted.append(now)
            in_chat.append(now)
            return
        self.rate_limited += 1
        retry_after = max(1, math.ceil(wait))
        raise ApiError(429, _default_description(429, retry_after), retry_after)

    def _raise_injected_fault(self, method: str) -> None:
        faults = self._faults.get(method.lower())
        if faults:
            raise faults.pop(0)

    # ---------------------------------------------------------------- control endpoints

    async def _control_requests(self, request: Request) -> Response:
        since = int(request.query_params.get("since", "0"))
        return JSONResponse({"ok": True, "result": [r.to_json() for r in self.requests[since:]]})

    async def _control_action(self, request: Request) -> Response:
        action: str = request.path_params["action"]
        try:
            body = await request.json()
            result = self._control(action, body)
        except (KeyError, TypeError, ValueError) as exc:
            return _error_response(ApiError(400, f"Bad Request: {exc!r}"))
        return JSONResponse({"ok": True, "result": result})

    def _control(self, action: str, body: Any) -> Any:
        if action == "updates":
            items = body if isinstance(body, list) else [body]
            pushed = [self.push_update(item) for item in items]
            return pushed if isinstance(body, list) else pushed[0]
        if action == "files":
            return self.add_file(
                body["file_id"],
                base64.b64decode(body["data_base64"]),
                kind=body.get("kind", "document"),
                file_name=body.get("file_name"),
                mime_type=body.get("mime_type"),
                width=body.get("width", 1280),
                height=body.get("height", 960),
                file_size=body.get("file_size"),
            )
        if action == "fail":
            self.fail_next(
                body["method"],
                status=body["status"],
                description=body.get("description"),
                retry_after=body.get("retry_after"),
                count=body.get("count", 1),
            )
            return True
        if action == "delay":
            self.delay_next(body["method"], body["seconds"], body.get("count", 1))
            return True
        if action == "block":
            self.block(body["chat_id"])
            return True
        raise ValueError(f"unknown control action {action!r}")

    # ---------------------------------------------------------------- Bot API methods

    def _method_table(self) -> dict[str, tuple[str, Handler]]:
        handlers: dict[str, Handler] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "sendMediaGroup": self._send_media_group,
            "sendChatAction": self._true,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._true,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getFile": self._get_file,
            "close": self._true,
            "logOut": self._true,
        }
        # The real API matches method names case-insensitively.
        return {name.lower(): (name, handler) for name, handler in handlers.items()}

    async def _true(self, params: Json, uploads: dict[str, _Upload]) -> bool:
        return True

    async def _get_me(self, params: Json, uploads: dict[str, _Upload]) -> Json:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: Json, uploads: dict[str, _Upload]) -> list[Json]:
        if self.webhook_url:
            raise ApiError(409, CONFLICT_WEBHOOK)
        self._confirm(params.get("offset"))
        limit = min(max(_as_int(params.get("limit"), 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) or None
        # A newer getUpdates terminates an older pending one with 409, like the real API.
        self._poll_generation += 1
        generation = self._poll_generation
        self._update_signal.fire()
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if generation != self._poll_generation:
                raise ApiError(409, CONFLICT_OTHER_POLL)
            batch = [u for u in self._updates if self._is_allowed(u)][:limit]
            if batch or self._closed.is_set():
                return copy.deepcopy(batch)
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return []
            await self._update_signal.wait(remaining)

    def _confirm(self, offset: Any) -> None:
        if offset is None:
            return
        offset = _as_int(offset, 0)
        if offset < 0:
            # Negative offset: keep only the last -offset updates, forget the rest.
            self._updates = self._updates[offset:]
        else:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]

    def _is_allowed(self, update: Json) -> bool:
        kind = next((key for key in update if key != "update_id"), "")
        if self._allowed_updates is None:
            return kind not in _OPT_IN_UPDATES
        return kind in self._allowed_updates

    async def _send_message(self, params: Json, uploads: dict[str, _Upload]) -> Json:
        chat_id = self._chat_id(params)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if _visible_length(text, params.get("parse_mode")) > MAX_TEXT_LENGTH:
            raise ApiError(400, "Bad Request: message is too long")
        content: Json = {"text": text}
        if params.get("entities"):
            content["entities"] = params["entities"]
        return self._new_message(chat_id, {**content, **_markup_content(params)})

    async def _send_photo(self, params: Json, uploads: dict[str, _Upload]) -> Json:
        chat_id = self._chat_id(params)
        stored = self._incoming_file("photo", params.get("photo"), uploads.get("photo"), uploads)
        content = {"photo": self._photo_sizes(stored), **_caption_content(params)}
        return self._new_message(chat_id, {**content, **_markup_content(params)})

    async def _send_document(self, params: Json, uploads: dict[str, _Upload]) -> Json:
        chat_id = self._chat_id(params)
        stored = self._incoming_file(
            "document", params.get("document"), uploads.get("document"), uploads
        )
        content = {"document": copy.deepcopy(stored.meta), **_caption_content(params)}
        return self._new_message(chat_id, {**content, **_markup_content(params)})

    async def _send_media_group(self, params: Json, uploads: dict[str, _Upload]) -> list[Json]:
        chat_id = self._chat_id(params)
        media = params.get("media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise ApiError(400, "Bad Request: wrong number of messages in the media group")
        group_id = str(13_000_000_000_000_000 + next(self._file_seq))
        messages = []
        for item in media:
            kind = item.get("type")
            if kind not in ("photo", "document"):
                raise ApiError(400, f"Bad Request: unsupported media type {kind!r} in the fake")
            stored = self._incoming_file(kind, item.get("media"), None, uploads)
            body: Any = self._photo_sizes(stored) if kind == "photo" else stored.meta
            content = {"media_group_id": group_id, kind: copy.deepcopy(body)}
            messages.append(self._new_message(chat_id, {**content, **_caption_content(item)}))
        return messages

    async def _edit_message_text(self, params: Json, uploads: dict[str, _Upload]) -> Json | bool:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if _visible_length(text, params.get("parse_mode")) > MAX_TEXT_LENGTH:
            raise ApiError(400, "Bad Request: message is too long")
        if params.get("inline_message_id"):
            return True
        message = self._edit_target(params)
        if "text" not in message:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        markup = _markup_content(params).get("reply_markup")
        _ensure_modified(message, text=text, markup=markup)
        message["text"] = text
        return self._apply_markup_edit(message, markup)

    async def _edit_message_reply_markup(
        self, params: Json, uploads: dict[str, _Upload]
    ) -> Json | bool:
        if params.get("inline_message_id"):
            return True
        message = self._edit_target(params)
        markup = _markup_content(params).get("reply_markup")
        _ensure_modified(message, text=message.get("text"), markup=markup)
        return self._apply_markup_edit(message, markup)

    async def _delete_message(self, params: Json, uploads: dict[str, _Upload]) -> bool:
        chat_id = self._chat_id(params)
        self._messages.pop((chat_id, _as_int(params.get("message_id"), 0)), None)
        return True

    async def _set_webhook(self, params: Json, uploads: dict[str, _Upload]) -> bool:
        self.webhook_url = str(params.get("url") or "")
        return True

    async def _delete_webhook(self, params: Json, uploads: dict[str, _Upload]) -> bool:
        self.webhook_url = ""
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _get_webhook_info(self, params: Json, uploads: dict[str, _Upload]) -> Json:
        info: Json = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook_url:
            info["max_connections"] = 40
            info["ip_address"] = "127.0.0.1"
        return info

    async def _set_my_commands(self, params: Json, uploads: dict[str, _Upload]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        self.commands = commands
        return True

    async def _get_my_commands(self, params: Json, uploads: dict[str, _Upload]) -> list[Json]:
        return copy.deepcopy(self.commands)

    async def _delete_my_commands(self, params: Json, uploads: dict[str, _Upload]) -> bool:
        self.commands = []
        return True

    async def _get_file(self, params: Json, uploads: dict[str, _Upload]) -> Json:
        stored = self._files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if stored.file_size > MAX_DOWNLOAD_BYTES:
            raise ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.meta["file_unique_id"],
            "file_size": stored.file_size,
            "file_path": stored.file_path,
        }

    async def _download(self, file_path: str) -> None:
        if file_path not in self._paths:
            raise ApiError(404, "Not Found")

    # ---------------------------------------------------------------- state helpers

    def _chat_id(self, params: Json) -> int:
        value = params.get("chat_id")
        if value is None or value == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiError(400, "Bad Request: chat not found")  # @usernames are not modelled
        return value

    def _chat_for(self, chat_id: int) -> Json:
        if chat_id in self._chats:
            return copy.deepcopy(self._chats[chat_id])
        if chat_id > 0:
            return {"id": chat_id, "first_name": "Pengguna", "type": "private"}
        if chat_id <= -1_000_000_000_000:
            return {"id": chat_id, "title": "Supergrup LaporHAM", "type": "supergroup"}
        return {"id": chat_id, "title": "Grup LaporHAM", "type": "group"}

    def _remember_chats(self, update: Json) -> None:
        # Bot replies then carry the same chat object (names, type) the user's update had.
        for payload in update.values():
            if not isinstance(payload, dict):
                continue
            for message in (payload, payload.get("message")):
                if isinstance(message, dict) and isinstance(message.get("chat"), dict):
                    chat = message["chat"]
                    self._chats[chat["id"]] = copy.deepcopy(chat)

    def _new_message(self, chat_id: int, content: Json) -> Json:
        if chat_id in self.blocked_chats:
            raise ApiError(403, BLOCKED)
        message: Json = {
            "message_id": next(self._message_ids),
            "from": dict(self.bot_user),
            "chat": self._chat_for(chat_id),
            "date": int(time.time()),
            **content,
        }
        self._messages[(chat_id, message["message_id"])] = message
        return copy.deepcopy(message)

    def _edit_target(self, params: Json) -> Json:
        chat_id = self._chat_id(params)
        message_id = _as_int(params.get("message_id"), 0)
        if message_id <= 0:
            raise ApiError(400, "Bad Request: message identifier is not specified")
        key = (chat_id, message_id)
        if key not in self._messages:
            # Lenient: the message may come from a fixture rather than an earlier send.
            self._messages[key] = {
                "message_id": message_id,
                "from": dict(self.bot_user),
                "chat": self._chat_for(chat_id),
                "date": int(time.time()),
                "text": "",
            }
        return self._messages[key]

    def _apply_markup_edit(self, message: Json, markup: Json | None) -> Json:
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    def _incoming_file(
        self, kind: FileKind, value: Any, upload: _Upload | None, uploads: dict[str, _Upload]
    ) -> _StoredFile:
        if isinstance(value, str) and value.startswith("attach://"):
            upload = uploads.get(value.removeprefix("attach://"))
            if upload is None:
                raise ApiError(400, f"Bad Request: file {value} not found in the request")
        if upload is not None:
            return self._store_file(
                kind, upload.data, file_name=upload.filename, mime_type=upload.content_type
            )
        if not isinstance(value, str) or not value:
            raise ApiError(400, f"Bad Request: there is no {kind} in the request")
        if value.startswith(("http://", "https://")):
            name = urlsplit(value).path.rsplit("/", 1)[-1] or None
            return self._store_file(kind, b"", file_name=name)
        # Lenient for unknown file_ids, as if they had been sent to the bot earlier.
        return self._files.get(value) or self._store_file(kind, b"", file_id=value)

    def _photo_sizes(self, full: _StoredFile) -> list[Json]:
        # Telegram answers an upload with several sizes, smallest first.
        thumb = self._store_file("photo", full.data, width=90, height=68)
        return [copy.deepcopy(thumb.meta), copy.deepcopy(full.meta)]

    def _store_file(
        self,
        kind: FileKind,
        data: bytes,
        *,
        file_id: str | None = None,
        file_name: str | None = None,
        mime_type: str | None = None,
        width: int = 1280,
        height: int = 960,
        file_size: int | None = None,
    ) -> _StoredFile:
        seq = next(self._file_seq)
        file_id = file_id or _new_file_id(kind, seq)
        size = len(data) if file_size is None else file_size
        ext = _extension(kind, file_name, mime_type)
        meta: Json = {"file_id": file_id, "file_unique_id": _unique_id(file_id), "file_size": size}
        if kind == "photo":
            meta.update(width=width, height=height)
        elif kind == "voice":
            meta.update(duration=3, mime_type=mime_type or "audio/ogg")
        else:
            if file_name:
                meta["file_name"] = file_name
            guessed = mimetypes.guess_type(file_name)[0] if file_name else None
            meta["mime_type"] = mime_type or guessed or "application/octet-stream"
        stored = _StoredFile(file_id, data, f"{_FILE_FOLDER[kind]}/file_{seq}{ext}", size, meta)
        self._files[file_id] = stored
        self._paths[stored.file_path] = stored
        return stored


# -------------------------------------------------------------------- module helpers


def _error_response(error: ApiError) -> JSONResponse:
    body: Json = {"ok": False, "error_code": error.status, "description": error.description}
    if error.retry_after is not None:
        body["parameters"] = {"retry_after": error.retry_after}
    return JSONResponse(body, status_code=error.status)


def _default_description(status: int, retry_after: int | None) -> str:
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        return f"Too Many Requests: retry after {retry_after}"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Error {status}"


def _as_predicate(predicate: Predicate | str) -> Predicate:
    if isinstance(predicate, str):
        return lambda record: record.method == predicate
    return predicate


def _as_int(value: Any, default: int) -> int:
    if isinstance(value, bool) or value is None or value == "":
        return default
    return int(value)


async def _read_params(request: Request) -> tuple[Json, dict[str, _Upload]]:
    raw: dict[str, Any] = dict(request.query_params)
    uploads: dict[str, _Upload] = {}
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    if body and content_type.startswith("application/json"):
        try:
            decoded = json.loads(body)
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse JSON") from None
        if not isinstance(decoded, dict):
            raise ApiError(400, "Bad Request: request body must be a JSON object")
        raw.update(decoded)
    elif body and content_type.startswith("multipart/form-data"):
        fields, uploads = _parse_multipart(body, content_type)
        raw.update(fields)
    elif body:  # PTB without files: application/x-www-form-urlencoded
        raw.update(parse_qsl(body.decode(), keep_blank_values=True))
    return {name: _coerce(name, value) for name, value in raw.items()}, uploads


def _parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, _Upload]]:
    # Hand-rolled because Starlette's form parser needs python-multipart, not a dependency.
    headers = MimeHeaders()
    headers["content-type"] = content_type
    boundary = headers.get_boundary()
    if not boundary:
        raise ApiError(400, "Bad Request: multipart boundary is missing")
    fields: dict[str, str] = {}
    uploads: dict[str, _Upload] = {}
    for part in body.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head, _, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")  # that CRLF belongs to the next delimiter
        part_headers = BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
        name = part_headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        filename = part_headers.get_filename()
        if filename is None:
            fields[name] = content.decode()
        else:
            uploads[name] = _Upload(content, filename, part_headers.get_content_type())
    return fields, uploads


def _coerce(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if name in _JSON_PARAMS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    if name in _INT_PARAMS and _INT_TEXT.fullmatch(value):
        return int(value)
    if name in _BOOL_PARAMS and value in ("true", "false"):
        return value == "true"
    return value


def _visible_length(text: str, parse_mode: Any) -> int:
    # Telegram counts characters after markup parsing; only HTML is cheap to approximate.
    if isinstance(parse_mode, str) and parse_mode.lower() == "html":
        return len(html.unescape(re.sub(r"<[^>]+>", "", text)))
    return len(text)


def _markup_content(params: Json) -> Json:
    markup = params.get("reply_markup")
    if markup is None:
        return {}
    if not isinstance(markup, dict):
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    keyboard = markup.get("inline_keyboard")
    if keyboard is None:
        return {}  # reply keyboards are not echoed inside the returned Message
    if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
        raise ApiError(
            400,
            'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup '
            "must be an Array of Arrays",
        )
    for row in keyboard:
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA_BYTES:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    return {"reply_markup": markup}


def _caption_content(params: Json) -> Json:
    caption = params.get("caption")
    if not caption:
        return {}
    if _visible_length(str(caption), params.get("parse_mode")) > MAX_CAPTION_LENGTH:
        raise ApiError(400, "Bad Request: message caption is too long")
    content: Json = {"caption": caption}
    if params.get("caption_entities"):
        content["caption_entities"] = params["caption_entities"]
    return content


def _ensure_modified(message: Json, *, text: Any, markup: Json | None) -> None:
    if message.get("text") == text and message.get("reply_markup") == markup:
        raise ApiError(
            400,
            "Bad Request: message is not modified: specified new message content and reply "
            "markup are exactly the same as a current content and reply markup of the message",
        )


def _new_file_id(kind: FileKind, seq: int) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(f"{kind}:{seq}".encode()).digest())
    return _FILE_ID_PREFIX[kind] + digest.decode().rstrip("=")[:40]


def _unique_id(file_id: str) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(file_id.encode()).digest())
    return "AQAD" + digest.decode()[:12]


def _extension(kind: FileKind, file_name: str | None, mime_type: str | None) -> str:
    if file_name and "." in file_name:
        return "." + file_name.rsplit(".", 1)[1].lower()
    if mime_type:
        return mimetypes.guess_extension(mime_type) or _FILE_DEFAULT_EXT[kind]
    return _FILE_DEFAULT_EXT[kind]


# -------------------------------------------------------------------- update builders

_message_ids = itertools.count(1)
_callback_ids = itertools.count(1)


def make_user(
    user_id: int,
    first_name: str = "Budi",
    username: str | None = None,
    *,
    last_name: str | None = None,
) -> Json:
    user: Json = {"id": user_id, "is_bot": False, "first_name": first_name}
    if last_name:
        user["last_name"] = last_name
    if username:
        user["username"] = username
    user["language_code"] = "id"
    return user


def _chat(chat_id: int, user: Json) -> Json:
    if chat_id == user["id"]:
        names: Json = {k: user[k] for k in ("first_name", "last_name", "username") if k in user}
        return {"id": chat_id, **names, "type": "private"}
    if chat_id <= -1_000_000_000_000:
        return {"id": chat_id, "title": "Supergrup LaporHAM", "type": "supergroup"}
    if chat_id < 0:
        return {"id": chat_id, "title": "Grup LaporHAM", "type": "group"}
    return {"id": chat_id, "first_name": "Pengguna", "type": "private"}


def _user_message(
    user_id: int,
    content: Json,
    *,
    chat_id: int | None,
    message_id: int | None,
    first_name: str,
    username: str | None,
) -> Json:
    user = make_user(user_id, first_name, username)
    return {
        "message_id": message_id if message_id is not None else next(_message_ids),
        "from": user,
        "chat": _chat(user_id if chat_id is None else chat_id, user),
        "date": int(time.time()),
        **content,
    }


def text_update(
    user_id: int,
    text: str,
    *,
    chat_id: int | None = None,
    message_id: int | None = None,
    first_name: str = "Budi",
    username: str | None = None,
) -> Json:
    """A message update without update_id (push_update assigns one)."""
    message = _user_message(
        user_id,
        {"text": text},
        chat_id=chat_id,
        message_id=message_id,
        first_name=first_name,
        username=username,
    )
    return {"message": message}


def command_update(
    user_id: int,
    command: str,
    args: str = "",
    *,
    bot_username: str | None = None,
    chat_id: int | None = None,
    message_id: int | None = None,
    first_name: str = "Budi",
    username: str | None = None,
) -> Json:
    """``/command[@bot] args`` with the bot_command entity PTB's CommandHandler needs."""
    head = "/" + command.removeprefix("/") + (f"@{bot_username}" if bot_username else "")
    content: Json = {
        "text": f"{head} {args}" if args else head,
        "entities": [{"offset": 0, "length": len(head), "type": "bot_command"}],
    }
    message = _user_message(
        user_id,
        content,
        chat_id=chat_id,
        message_id=message_id,
        first_name=first_name,
        username=username,
    )
    return {"message": message}


def callback_update(
    user_id: int,
    data: str,
    *,
    message_id: int,
    chat_id: int | None = None,
    message_text: str = "Silakan pilih:",
    reply_markup: Json | None = None,
    first_name: str = "Budi",
    username: str | None = None,
    bot_id: int = DEFAULT_BOT_ID,
) -> Json:
    """A button press on bot message ``message_id``."""
    user = make_user(user_id, first_name, username)
    message: Json = {
        "message_id": message_id,
        "from": {
            "id": bot_id,
            "is_bot": True,
            "first_name": BOT_FIRST_NAME,
            "username": BOT_USERNAME,
        },
        "chat": _chat(user_id if chat_id is None else chat_id, user),
        "date": int(time.time()),
        "text": message_text,
    }
    if reply_markup is not None:
        message["reply_markup"] = reply_markup
    query: Json = {
        "id": f"{user_id}{next(_callback_ids):06d}",
        "from": user,
        "message": message,
        "chat_instance": f"-{user_id}7919",
        "data": data,
    }
    return {"callback_query": query}


def contact_update(
    user_id: int,
    phone: str,
    *,
    contact_user_id: int | None,
    contact_first_name: str = "Budi",
    chat_id: int | None = None,
    message_id: int | None = None,
    first_name: str = "Budi",
    username: str | None = None,
) -> Json:
    """A shared contact; ``contact_user_id == user_id`` is the user's own number."""
    contact: Json = {"phone_number": phone, "first_name": contact_first_name}
    if contact_user_id is not None:
        contact["user_id"] = contact_user_id
    message = _user_message(
        user_id,
        {"contact": contact},
        chat_id=chat_id,
        message_id=message_id,
        first_name=first_name,
        username=username,
    )
    return {"message": message}


def photo_update(
    user_id: int,
    sizes: list[Json],
    *,
    caption: str | None = None,
    media_group_id: str | None = None,
    chat_id: int | None = None,
    message_id: int | None = None,
    first_name: str = "Budi",
    username: str | None = None,
) -> Json:
    """A photo message; ``sizes`` are PhotoSize dicts, e.g. from ``add_file(kind="photo")``."""
    content: Json = {"photo": copy.deepcopy(sizes)}
    return {
        "message": _media_message(
            user_id,
            content,
            caption,
            media_group_id,
            chat_id=chat_id,
            message_id=message_id,
            first_name=first_name,
            username=username,
        )
    }


def document_update(
    user_id: int,
    doc: Json,
    *,
    caption: str | None = None,
    media_group_id: str | None = None,
    chat_id: int | None = None,
    message_id: int | None = None,
    first_name: str = "Budi",
    username: str | None = None,
) -> Json:
    """A document message; ``doc`` is a Document dict, e.g. from ``add_file()``."""
    content: Json = {"document": copy.deepcopy(doc)}
    return {
        "message": _media_message(
            user_id,
            content,
            caption,
            media_group_id,
            chat_id=chat_id,
            message_id=message_id,
            first_name=first_name,
            username=username,
        )
    }


def _media_message(
    user_id: int,
    content: Json,
    caption: str | None,
    media_group_id: str | None,
    *,
    chat_id: int | None,
    message_id: int | None,
    first_name: str,
    username: str | None,
) -> Json:
    if media_group_id is not None:
        content["media_group_id"] = media_group_id
    if caption is not None:
        content["caption"] = caption
    return _user_message(
        user_id,
        content,
        chat_id=chat_id,
        message_id=message_id,
        first_name=first_name,
        username=username,
    )


# -------------------------------------------------------------------- standalone entry point


async def _serve(host: str, port: int, token: str, limits: SendLimits | None = None) -> None:
    async with FakeTelegramAPI(token, host=host, port=port, limits=limits) as api:
        print(api.url, flush=True)  # the first stdout line is the contract with the parent
        await api.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Telegram Bot API server for tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument(
        "--enforce-limits", action="store_true", help="answer 429 past 30 msg/s, ~1/s per chat"
    )
    args = parser.parse_args(argv)
    limits = SendLimits() if args.enforce_limits else None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.token, limits))


if __name__ == "__main__":
    main()
