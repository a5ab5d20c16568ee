"""python-telegram-bot's networking on aiohttp instead of httpx.

PTB makes its HTTP backend pluggable through `telegram.request.BaseRequest`: PTB still builds
every request, parses every answer and raises its typed errors (`RetryAfter`, `Forbidden`, ...)
from the status code and body we return. Only the transport changes.

Why: on the 2-core servers this runs on, one Bot API call through httpx (httpcore on anyio, h11
in pure Python) costs about 3 ms of CPU, through aiohttp (C parser) about 0.7 ms. A report step
makes two or three calls (the reply, answerCallbackQuery, the keyboard edit), so the transport was
a third of the bot's CPU. httpx stays for WhatsApp, where calls are few.

Timeouts map onto aiohttp's as closely as its model allows: `connect_timeout` bounds opening the
socket, `pool_timeout + connect_timeout` bounds getting a connection at all, `read_timeout` bounds
each wait for data; aiohttp has no write timeout, so `write_timeout` only widens the overall bound.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData


class AiohttpRequest(BaseRequest):
    """A `BaseRequest` on one aiohttp session, opened on first use (it needs a running loop)."""

    __slots__ = (
        "_connect_timeout",
        "_media_write_timeout",
        "_pool_size",
        "_pool_timeout",
        "_read_timeout",
        "_session",
        "_write_timeout",
    )

    def __init__(
        self,
        *,
        connection_pool_size: int = 16,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        self._open()

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT},
            )
        return self._session

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        has_files = bool(request_data and request_data.contains_files)
        timeout = self._timeout(
            read=_given(read_timeout, self._read_timeout),
            write=_given(
                write_timeout, self._media_write_timeout if has_files else self._write_timeout
            ),
            connect=_given(connect_timeout, self._connect_timeout),
            pool=_given(pool_timeout, self._pool_timeout),
        )
        body = _body(request_data)
        headers = _FORM_HEADERS if isinstance(body, bytes) else None
        try:
            async with self._open().request(
                method, url, data=body, headers=headers, timeout=timeout
            ) as response:
                return response.status, await response.read()
        except TimeoutError as error:  # aiohttp's timeouts subclass it
            raise TimedOut from error
        except aiohttp.ClientError as error:
            raise NetworkError(f"aiohttp.{type(error).__name__}: {error}") from error

    @staticmethod
    def _timeout(
        *, read: float | None, write: float | None, connect: float | None, pool: float | None
    ) -> aiohttp.ClientTimeout:
        parts = (read, write, connect, pool)
        total = None if None in parts else sum(p for p in parts if p is not None)
        return aiohttp.ClientTimeout(
            total=total,
            connect=None if connect is None or pool is None else connect + pool,
            sock_connect=connect,
            sock_read=read,
        )


def _given(value: ODVInput[float], default: float | None) -> float | None:
    return default if isinstance(value, DefaultValue) else value


_FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def _body(request_data: RequestData | None) -> Any:
    """Form fields as PTB encodes them; files as multipart parts (name, bytes, MIME type).
    Without files the body is PTB's own urlencoding, as bytes: aiohttp's FormData would build
    the same body at several times the CPU, and this is every reply's request."""
    if request_data is None:
        return None
    if not request_data.contains_files:
        return request_data.url_encoded_parameters().encode() or None
    fields = request_data.json_parameters
    # Not aiohttp's default quoting: it percent-encodes file names, and Telegram takes
    # filename="..." literally ("Daftar%20Penerima.pdf"). Raw UTF-8 as httpx and browsers send.
    form = aiohttp.FormData(fields, quote_fields=False)
    for name, (filename, content, mime_type) in request_data.multipart_data.items():
        form.add_field(name, content, filename=_form_filename(filename), content_type=mime_type)
    return form


def _form_filename(filename: str | None) -> str | None:
    """HTML5's escaping of a multipart file name (as httpx does): `"` and control characters
    percent-encoded, so that none can end the header; aiohttp then escapes backslashes."""
    if filename is None:
        return None
    return "".join(
        f"%{ord(char):02X}" if char == '"' or ord(char) < 0x20 else char for char in filename
    )
