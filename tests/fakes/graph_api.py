"""A fake WhatsApp Cloud (Graph) API for tests and benchmarks.

Runs a Starlette app under uvicorn inside the caller's event loop::

    async with FakeGraphAPI(token="test-token", phone_number_id="1234567890") as api:
        # point LAPORHAM_WHATSAPP_API_URL at api.url, i.e. http://127.0.0.1:PORT/v21.0
        ...
        await api.wait_for(lambda r: r.path.endswith("/messages"))
        assert api.sent_messages("6281234567890")[0]["type"] == "text"

It answers with the real Cloud API shapes (send response, Graph error envelope, media URL
lookup, bearer-protected media download) and rejects what the real API rejects that our
tests care about (interactive limits, body length, ``messaging_product``). Faults are
injected per send: :meth:`FakeGraphAPI.fail_next`, :meth:`FakeGraphAPI.delay_next` and
:meth:`FakeGraphAPI.outside_window` (24-hour customer-service window closed).

Standalone (benchmarks, manual runs)::

    python -m tests.fakes.graph_api --port 0 --token T --phone-number-id P

prints the base URL on the first stdout line and serves until killed; ``/_fake/...``
endpoints expose recording and fault injection over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import re
import secrets
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes.whatsapp_payloads import error_info, make_wamid

__all__ = ["FakeGraphAPI", "RecordedRequest", "StoredMedia", "graph_error_body", "main"]

Json = dict[str, Any]
Handler = Callable[[Request, Any], Awaitable[Response]]
Listener = Callable[["RecordedRequest"], None]

DEFAULT_VERSION = "v21.0"
MEDIA_URL_TTL = 300.0  # Meta's media download URLs live for five minutes
_VERSION_RE = re.compile(r"v\d+\.\d+")


@dataclass
class RecordedRequest:
    """One request the fake answered. ``at`` is ``time.monotonic()`` on arrival."""

    method: str
    path: str
    json: Json | None
    headers: dict[str, str]
    at: float
    failed: bool
    status: int = 200
    response: Json | None = None
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class StoredMedia:
    media_id: str
    data: bytes
    mime_type: str
    filename: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class _Rule:
    """A pending fault or delay, consumed by the next ``remaining`` matching sends."""

    remaining: int
    to: str | None
    code: int = 0
    status: int | None = None
    seconds: float = 0.0


class _Invalid(Exception):
    """A send body the real API would reject; carries the Graph code and details."""

    def __init__(self, details: str, code: int = 131009) -> None:
        super().__init__(details)
        self.details = details
        self.code = code


# --- Graph error envelopes -----------------------------------------------------------------


def _fbtrace_id() -> str:
    return secrets.token_urlsafe(17)[:23]


def graph_error_body(code: int, details: str | None = None) -> Json:
    """The Cloud API error envelope for ``code`` (``500`` means 131000 Something went wrong)."""
    info = error_info(code)
    return {
        "error": {
            "message": f"(#{info.code}) {info.title}",
            "type": "OAuthException",
            "code": info.code,
            "error_data": {"messaging_product": "whatsapp", "details": details or info.details},
            "fbtrace_id": _fbtrace_id(),
        }
    }


def _error_response(
    code: int, *, details: str | None = None, status: int | None = None
) -> Response:
    info = error_info(code)
    return JSONResponse(graph_error_body(code, details), status_code=status or info.http_status)


def _auth_error() -> Response:
    # Graph's answer to a missing or wrong token: code 190, no error_data.
    message = "Invalid OAuth access token - Cannot parse access token"
    body = {
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": 190,
            "fbtrace_id": _fbtrace_id(),
        }
    }
    challenge = f'OAuth "Facebook Platform" "invalid_token" "{message}"'
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": challenge})


def _unknown_object(object_id: str, method: str, status: int) -> Response:
    message = (
        f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not exist, "
        "cannot be loaded due to missing permissions, or does not support this operation. "
        "Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"
    )
    body = {
        "error": {
            "message": message,
            "type": "GraphMethodException",
            "code": 100,
            "error_subcode": 33,
            "fbtrace_id": _fbtrace_id(),
        }
    }
    return JSONResponse(body, status_code=status)


# --- send validation -----------------------------------------------------------------------


def _check_len(value: Any, limit: int, what: str, *, min_len: int = 1) -> None:
    if not isinstance(value, str) or not min_len <= len(value) <= limit:
        raise _Invalid(f"{what} length invalid. Min length: {min_len}, Max length: {limit}")


def _require_dict(parent: Json, key: str, where: str) -> Json:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise _Invalid(f"The parameter {where} is required.", code=100)
    return value


def _check_text(obj: Json) -> None:
    _check_len(obj.get("body"), 4096, "Text body")


def _check_media(obj: Json) -> None:
    if ("id" in obj) == ("link" in obj):
        raise _Invalid("Exactly one of media id or link is required.", code=100)
    link = obj.get("link")
    if link is not None and not (
        isinstance(link, str) and link.startswith(("http://", "https://"))
    ):
        raise _Invalid("Media link must be an http(s) URL.")
    if "caption" in obj:
        _check_len(obj["caption"], 1024, "Caption", min_len=0)


def _check_buttons(action: Json) -> None:
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise _Invalid("Invalid buttons count. Min allowed buttons: 1, Max allowed buttons: 3")
    ids: set[str] = set()
    titles: set[str] = set()
    for button in buttons:
        if not isinstance(button, dict) or button.get("type") != "reply":
            raise _Invalid("Each button must be of type 'reply'.", code=100)
        reply = _require_dict(button, "reply", "action['buttons'][]['reply']")
        _check_len(reply.get("title"), 20, "Button title")
        _check_len(reply.get("id"), 256, "Button id")
        if reply["id"] in ids or reply["title"] in titles:
            raise _Invalid("Button ids and titles must be unique.")
        ids.add(reply["id"])
        titles.add(reply["title"])


def _check_rows(rows: Any, row_ids: set[str]) -> int:
    if not isinstance(rows, list) or not rows:
        raise _Invalid("Each section needs at least one row.")
    for row in rows:
        if not isinstance(row, dict):
            raise _Invalid("Row must be an object.", code=100)
        _check_len(row.get("id"), 200, "Row id")
        _check_len(row.get("title"), 24, "Row title")
        if "description" in row:
            _check_len(row["description"], 72, "Row description", min_len=0)
        if row["id"] in row_ids:
            raise _Invalid("Row ids must be unique.")
        row_ids.add(row["id"])
    return len(rows)


def _check_list(action: Json) -> None:
    _check_len(action.get("button"), 20, "List button text")
    sections = action.get("sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
        raise _Invalid("Invalid sections count. Min allowed sections: 1, Max allowed sections: 10")
    row_ids: set[str] = set()
    total = 0
    for section in sections:
        if not isinstance(section, dict):
            raise _Invalid("Section must be an object.", code=100)
        if len(sections) > 1 or "title" in section:  # a title is mandatory once there are two
            _check_len(section.get("title"), 24, "Section title")
        total += _check_rows(section.get("rows"), row_ids)
    if total > 10:
        raise _Invalid("Total row count exceed max allowed count: 10")


def _check_interactive(obj: Json) -> None:
    kind = obj.get("type")
    if "header" in obj and isinstance(obj["header"], dict) and obj["header"].get("type") == "text":
        _check_len(obj["header"].get("text"), 60, "Header text")
    if "footer" in obj:
        _check_len(
            _require_dict(obj, "footer", "interactive['footer']").get("text"), 60, "Footer text"
        )
    if kind not in ("button", "list"):
        # cta_url, flow, product... are passed through untouched: the bot does not use them.
        if not isinstance(kind, str):
            raise _Invalid("The parameter interactive['type'] is required.", code=100)
        return
    _check_len(_require_dict(obj, "body", "interactive['body']").get("text"), 1024, "Body text")
    action = _require_dict(obj, "action", "interactive['action']")
    if kind == "button":
        _check_buttons(action)
    else:
        _check_list(action)


def _check_template(obj: Json) -> None:
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise _Invalid("The parameter template['name'] is required.", code=100)
    language = _require_dict(obj, "language", "template['language']")
    if not isinstance(language.get("code"), str):
        raise _Invalid("The parameter template['language']['code'] is required.", code=100)
    components = obj.get("components", [])
    if not isinstance(components, list):
        raise _Invalid("template['components'] must be a list.", code=100)
    for component in components:
        if not isinstance(component, dict) or not isinstance(component.get("type"), str):
            raise _Invalid("Each template component needs a type.", code=100)
        for parameter in component.get("parameters", []):
            if not isinstance(parameter, dict) or "type" not in parameter:
                raise _Invalid("Each template parameter needs a type.", code=100)


def _check_passthrough(obj: Json) -> None:
    del obj  # location, contacts, reaction: shape not exercised by our tests


_VALIDATORS: dict[str, Callable[[Json], None]] = {
    "text": _check_text,
    "image": _check_media,
    "document": _check_media,
    "audio": _check_media,
    "video": _check_media,
    "sticker": _check_media,
    "interactive": _check_interactive,
    "template": _check_template,
    "location": _check_passthrough,
    "contacts": _check_passthrough,
    "reaction": _check_passthrough,
}


def _validate_send(body: Any) -> None:
    """Raise :class:`_Invalid` for a ``/messages`` body the Cloud API would reject."""
    if not isinstance(body, dict):
        raise _Invalid("Request body must be a JSON object.", code=100)
    if body.get("messaging_product") != "whatsapp":
        raise _Invalid("messaging_product must be 'whatsapp'.")
    if body.get("status") == "read":  # read receipt (optionally with a typing indicator)
        if not isinstance(body.get("message_id"), str) or not body["message_id"]:
            raise _Invalid("The parameter message_id is required.", code=100)
        return
    if body.get("recipient_type", "individual") != "individual":
        raise _Invalid("recipient_type must be 'individual'.")
    if not isinstance(body.get("to"), str) or not _digits(body["to"]):
        raise _Invalid("The parameter to is required.", code=100)
    kind = body.get("type", "text")
    validator = _VALIDATORS.get(kind)
    if validator is None:
        raise _Invalid(f"Unsupported message type: {kind}.", code=100)
    validator(_require_dict(body, kind, kind))


# --- multipart (python-multipart is not a dependency, and uploads are tiny) ----------------


@dataclass(frozen=True)
class _Part:
    filename: str | None
    content_type: str | None
    data: bytes


def _header_param(header: str, key: str) -> str | None:
    match = re.search(rf'(?:^|;)\s*{key}="([^"]*)"', header)
    return match.group(1) if match else None


def _parse_multipart(body: bytes, content_type: str) -> dict[str, _Part]:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or match is None:
        raise ValueError("not multipart/form-data")
    parts: dict[str, _Part] = {}
    for chunk in body.split(b"--" + match.group(1).encode())[1:]:
        if chunk.startswith(b"--"):  # closing delimiter
            break
        head, sep, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            continue
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = _header_param(disposition, "name")
        if name is not None:
            filename = _header_param(disposition, "filename")
            parts[name] = _Part(filename, headers.get("content-type"), data.removesuffix(b"\r\n"))
    return parts


# --- the fake ------------------------------------------------------------------------------


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)


def _new_media_id() -> str:
    # Real media ids are 15-16 digit decimal strings.
    return str(10**15 + secrets.randbelow(9 * 10**15))


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


class _EmbeddedServer(uvicorn.Server):
    """uvicorn tuned for living inside a test's event loop."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.wake = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The fake must not steal Ctrl-C / SIGTERM from pytest or the benchmark.
        yield

    async def main_loop(self) -> None:
        # Same ticks as uvicorn's loop, but stop() wakes it at once instead of after up to
        # 0.1 s: that delay would be paid by every test that starts a fake.
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 0.1)


class FakeGraphAPI:
    """In-process fake of the Cloud API; see the module docstring."""

    def __init__(
        self,
        token: str = "test-token",
        phone_number_id: str = "1234567890",
        *,
        version: str = DEFAULT_VERSION,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token
        self.phone_number_id = phone_number_id
        self.version = version
        self.host = host
        self.port = port
        self.media_url_ttl = MEDIA_URL_TTL
        self.requests: list[RecordedRequest] = []
        self.media: dict[str, StoredMedia] = {}
        self._urls: dict[str, tuple[str, float]] = {}  # opaque -> (media id, issued monotonic)
        self._faults: list[_Rule] = []
        self._delays: list[_Rule] = []
        self._outside: set[str] = set()
        self._changed = asyncio.Condition()
        self._listeners: list[Listener] = []
        self._closing = asyncio.Event()
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(routes=self._routes())

    # -- addresses --

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Graph base URL including the version, as LAPORHAM_WHATSAPP_API_URL holds it."""
        return f"{self.origin}/{self.version}"

    @property
    def messages_url(self) -> str:
        return f"{self.url}/{self.phone_number_id}/messages"

    # -- lifecycle --

    async def __aenter__(self) -> FakeGraphAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._closing.clear()  # the fake may be restarted after stop()
        # Bind ourselves so the chosen port is known before uvicorn starts serving.
        # proto must say TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
        # IPPROTO_TCP, and without it every response stalls ~40 ms on delayed ACKs.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_level="warning",
            # log_config=None: don't let uvicorn's dictConfig rewire the test process's logging.
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        async with asyncio.timeout(10):
            while not self._server.started:  # uvicorn exposes no startup event
                if self._task.done():
                    self._task.result()
                    raise RuntimeError("fake Graph API stopped during startup")
                await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._closing.set()  # wakes handlers sleeping in delay_next
        # force_exit: don't wait for clients' idle keep-alive connections to go away.
        self._server.should_exit = self._server.force_exit = True
        self._server.wake.set()
        await self._task
        self._server = self._task = None

    # -- test-facing controls --

    def add_media(
        self, media_id: str, data: bytes, mime_type: str, *, filename: str | None = None
    ) -> str:
        """Register media as if a user had sent it; ``GET /{version}/{media_id}`` will find it."""
        self.media[media_id] = StoredMedia(media_id, data, mime_type, filename)
        return media_id

    def fail_next(
        self, code: int, *, count: int = 1, to: str | None = None, status: int | None = None
    ) -> None:
        """Make the next ``count`` message sends (to ``to``, if given) fail with ``code``.

        Read receipts are never failed. ``status`` overrides the HTTP status from the catalogue.
        """
        self._faults.append(_Rule(count, _digits(to) if to else None, code=code, status=status))

    def delay_next(self, seconds: float, count: int = 1, *, to: str | None = None) -> None:
        """Hold the next ``count`` message sends for ``seconds`` before answering."""
        self._delays.append(_Rule(count, _digits(to) if to else None, seconds=seconds))

    def outside_window(self, wa_id: str) -> None:
        """Close the 24-hour window for ``wa_id``: non-template sends fail with 131047."""
        self._outside.add(_digits(wa_id))

    def inside_window(self, wa_id: str) -> None:
        """Reopen the window, as when the user writes again."""
        self._outside.discard(_digits(wa_id))

    def reset(self) -> None:
        self.requests.clear()
        self._faults.clear()
        self._delays.clear()
        self._outside.clear()

    # -- inspection --

    def sent_messages(self, to: str | None = None) -> list[Json]:
        """Bodies of successful message sends (read receipts excluded), oldest first."""
        wanted = _digits(to) if to else None
        return [
            body
            for body in self._sends()
            if body.get("status") != "read" and (wanted is None or _digits(body["to"]) == wanted)
        ]

    def read_receipts(self) -> list[str]:
        """``message_id`` of every successful read receipt, oldest first."""
        return [body["message_id"] for body in self._sends() if body.get("status") == "read"]

    def on_request(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with each recorded request as soon as the fake has answered it.

        For benchmarks that route replies to many waiting users as they arrive (``wait_for``
        rescans every recorded request for each waiter). ``record.at`` stays the arrival time.
        Returns a function that removes the listener.
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def wait_for(
        self,
        predicate: Callable[[RecordedRequest], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a per-call deadline is what tests want here
    ) -> RecordedRequest:
        """First recorded request matching ``predicate``, waiting for new ones as they arrive."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                found = await self._changed.wait_for(lambda: self._first(predicate))
                assert found is not None  # wait_for returns only once the predicate is truthy
                return found
        except TimeoutError:
            seen = [f"{r.method} {r.path} -> {r.status}" for r in self.requests]
            raise TimeoutError(f"no matching request within {timeout}s; recorded: {seen}") from None

    async def wait_for_sent(
        self,
        count: int = 1,
        *,
        to: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - same contract as wait_for
    ) -> list[Json]:
        """Wait until at least ``count`` messages were sent (to ``to``) and return them all."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(self.sent_messages(to)) >= count)
        except TimeoutError:
            got = len(self.sent_messages(to))
            raise TimeoutError(
                f"expected {count} sent messages within {timeout}s, got {got}"
            ) from None
        return self.sent_messages(to)

    def _first(self, predicate: Callable[[RecordedRequest], bool]) -> RecordedRequest | None:
        return next((r for r in self.requests if predicate(r)), None)

    def _sends(self) -> Iterator[Json]:
        """Bodies of successful POSTs to /messages (sends and read receipts)."""
        for r in self.requests:
            if r.method == "POST" and r.path.endswith("/messages") and not r.failed and r.json:
                yield r.json

    # -- plumbing --

    def _routes(self) -> list[Route]:
        # Specific prefixes first: "/_media/x" would otherwise match "/{version}/{media_id}".
        return [
            Route("/_fake/requests", self._fake_requests, methods=["GET"]),
            Route("/_fake/reset", self._fake_reset, methods=["POST"]),
            Route("/_fake/media", self._fake_media, methods=["POST"]),
            Route("/_fake/outside_window", self._fake_outside, methods=["POST"]),
            Route("/_fake/fail_next", self._fake_fail, methods=["POST"]),
            Route("/_fake/delay_next", self._fake_delay, methods=["POST"]),
            Route("/_media/{opaque}", self._recorded(self._download), methods=["GET"]),
            Route(
                "/{version}/{phone_number_id}/messages",
                self._recorded(self._send),
                methods=["POST"],
            ),
            Route(
                "/{version}/{phone_number_id}/media", self._recorded(self._upload), methods=["POST"]
            ),
            Route("/{version}/{media_id}", self._recorded(self._media_url), methods=["GET"]),
            Route("/{version}/{media_id}", self._recorded(self._delete_media), methods=["DELETE"]),
        ]

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(token.strip(), self.token)

    def _recorded(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            at = time.monotonic()
            raw = await request.body()
            multipart = request.headers.get("content-type", "").startswith("multipart/")
            payload = None if multipart else _json_or_none(raw)
            version = request.path_params.get("version")
            if not self._authorized(request):
                response = _auth_error()
            elif version is not None and not _VERSION_RE.fullmatch(version):
                response = _error_response(100, details=f"Unknown API version: {version}")
            else:
                response = await handler(request, payload)
            await self._record(request, payload, at, response)
            return response

        return endpoint

    async def _record(self, request: Request, payload: Any, at: float, response: Response) -> None:
        body = (
            _json_or_none(bytes(response.body))
            if response.media_type == "application/json"
            else None
        )
        record = RecordedRequest(
            method=request.method,
            path=request.url.path,
            json=payload if isinstance(payload, dict) else None,
            headers=dict(request.headers),
            at=at,
            failed=response.status_code >= 400,
            status=response.status_code,
            response=body,
            query=dict(request.query_params),
        )
        self.requests.append(record)
        for listener in list(self._listeners):
            listener(record)
        async with self._changed:
            self._changed.notify_all()

    @staticmethod
    def _take(rules: list[_Rule], to: str) -> _Rule | None:
        for rule in rules:
            if rule.to is None or rule.to == to:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    rules.remove(rule)
                return rule
        return None

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    # -- Graph routes --

    async def _send(self, request: Request, body: Any) -> Response:
        if request.path_params["phone_number_id"] != self.phone_number_id:
            return _unknown_object(request.path_params["phone_number_id"], "POST", 400)
        try:
            _validate_send(body)
        except _Invalid as exc:
            return _error_response(exc.code, details=exc.details)
        if body.get("status") == "read":
            return JSONResponse({"success": True})
        to = _digits(body["to"])
        if delay := self._take(self._delays, to):
            await self._pause(delay.seconds)
        if fault := self._take(self._faults, to):
            return _error_response(fault.code, status=fault.status)
        if to in self._outside and body.get("type") != "template":
            return _error_response(131047)
        message: Json = {"id": make_wamid(to, outbound=True)}
        if body.get("type") == "template":  # templates are acknowledged as queued, not sent
            message["message_status"] = "accepted"
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": to}],
                "messages": [message],
            }
        )

    async def _upload(self, request: Request, _body: Any) -> Response:
        if request.path_params["phone_number_id"] != self.phone_number_id:
            return _unknown_object(request.path_params["phone_number_id"], "POST", 400)
        try:
            form = _parse_multipart(await request.body(), request.headers.get("content-type", ""))
        except ValueError:
            return _error_response(100, details="Media upload must be multipart/form-data.")
        for name in ("messaging_product", "file", "type"):
            if name not in form:
                return _error_response(100, details=f"The parameter {name} is required.")
        if form["messaging_product"].data != b"whatsapp":
            return _error_response(131009, details="messaging_product must be 'whatsapp'.")
        media_id = _new_media_id()
        mime_type = (
            form["type"].data.decode() or form["file"].content_type or "application/octet-stream"
        )
        self.add_media(media_id, form["file"].data, mime_type, filename=form["file"].filename)
        return JSONResponse({"id": media_id})

    async def _media_url(self, request: Request, _body: Any) -> Response:
        media_id = request.path_params["media_id"]
        media = self.media.get(media_id)
        if media is None:
            return _unknown_object(media_id, "GET", 404)
        opaque = secrets.token_urlsafe(24)
        self._urls[opaque] = (media_id, time.monotonic())
        expires = int(time.time() + self.media_url_ttl)
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "url": f"{self.origin}/_media/{opaque}?expires={expires}",
                "mime_type": media.mime_type,
                "sha256": media.sha256,
                "file_size": len(media.data),
                "id": media_id,
            }
        )

    async def _delete_media(self, request: Request, _body: Any) -> Response:
        media_id = request.path_params["media_id"]
        if self.media.pop(media_id, None) is None:
            return _unknown_object(media_id, "DELETE", 404)
        return JSONResponse({"success": True})

    async def _download(self, request: Request, _body: Any) -> Response:
        issued = self._urls.get(request.path_params["opaque"])
        media = self.media.get(issued[0]) if issued else None
        if issued is None or media is None:
            return PlainTextResponse("Not Found", status_code=404)
        # TTL is read now, not at issue time, so a test can expire an already-issued URL.
        if time.monotonic() - issued[1] >= self.media_url_ttl:
            return PlainTextResponse("URL signature expired", status_code=404)
        return Response(media.data, media_type=media.mime_type)

    # -- /_fake control routes (standalone mode; unauthenticated, not recorded) --

    async def _fake_requests(self, _request: Request) -> Response:
        return JSONResponse({"requests": [dataclasses.asdict(r) for r in self.requests]})

    async def _fake_reset(self, _request: Request) -> Response:
        self.reset()
        return JSONResponse({"success": True})

    async def _fake_media(self, request: Request) -> Response:
        body = await request.json()
        media_id = body.get("id") or _new_media_id()
        data = base64.b64decode(body["data_b64"])
        self.add_media(media_id, data, body["mime_type"], filename=body.get("filename"))
        return JSONResponse({"id": media_id})

    async def _fake_outside(self, request: Request) -> Response:
        body = await request.json()
        if body.get("outside", True):
            self.outside_window(body["wa_id"])
        else:
            self.inside_window(body["wa_id"])
        return JSONResponse({"success": True})

    async def _fake_fail(self, request: Request) -> Response:
        body = await request.json()
        self.fail_next(
            int(body["code"]),
            count=body.get("count", 1),
            to=body.get("to"),
            status=body.get("status"),
        )
        return JSONResponse({"success": True})

    async def _fake_delay(self, request: Request) -> Response:
        body = await request.json()
        self.delay_next(float(body["seconds"]), body.get("count", 1), to=body.get("to"))
        return JSONResponse({"success": True})


# --- standalone ----------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Fake WhatsApp Cloud (Graph) API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--phone-number-id", default="1234567890")
    parser.add_argument("--version", default=DEFAULT_VERSION)
    return parser.parse_args(argv)


async def _serve_until_signalled(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    api = FakeGraphAPI(
        args.token, args.phone_number_id, version=args.version, host=args.host, port=args.port
    )
    async with api:
        # The first stdout line is the contract with whoever spawned us.
        sys.stdout.write(api.url + "\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(_serve_until_signalled(_parse_args(argv)))


if __name__ == "__main__":
    main()
