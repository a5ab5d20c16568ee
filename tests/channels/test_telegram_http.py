"""AiohttpRequest, python-telegram-bot's transport on aiohttp, under a real ExtBot: against the
fake Bot API for calls, uploads, downloads and error envelopes, and against tiny local servers
for what the fake cannot show (a server that never answers, a closed port, headers and
connections)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from aiohttp import web
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Message, User
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import ExtBot
from telegram.request import BaseRequest

from bot.channels.telegram import seconds
from bot.channels.telegram_http import AiohttpRequest
from tests.fakes.telegram_api import BOT_USERNAME, DEFAULT_TOKEN, FakeTelegramAPI

CHAT = 424242
E = TypeVar("E", bound=Exception)


@contextlib.asynccontextmanager
async def bot_at(url: str, request: AiohttpRequest | None = None) -> AsyncIterator[ExtBot[None]]:
    """An ExtBot whose API calls and long polls both go through AiohttpRequest. Not initialized
    (that would call getMe): the transports open their sessions on first use."""
    requests = (request or AiohttpRequest(), AiohttpRequest(read_timeout=0.5))
    bot = ExtBot(
        DEFAULT_TOKEN,
        base_url=f"{url}/bot",
        base_file_url=f"{url}/file/bot",
        request=requests[0],
        get_updates_request=requests[1],
    )
    try:
        yield bot
    finally:
        for opened in requests:
            await opened.shutdown()


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI() as fake:
        yield fake


@pytest.fixture
async def bot(api) -> AsyncIterator[ExtBot[None]]:
    async with bot_at(api.url) as made:
        yield made


# --------------------------------------------------------------------------- tiny servers


@dataclass
class Seen:
    user_agent: str
    client_port: int  # a new port is a new connection
    body: bytes  # as sent, before any server's parsing


@dataclass
class EchoServer:
    """Records every call and answers it with a user (getMe) or a message (send*)."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = EchoServer()

    async def answer(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        user_agent = request.headers.get("User-Agent", "")
        server.seen.append(Seen(user_agent, peer[1] if peer else 0, await request.read()))
        if "/send" in request.path:
            result: dict[str, Any] = {
                "message_id": 1,
                "date": 0,
                "chat": {"id": CHAT, "type": "private"},
            }
        else:
            result = {"id": 123, "is_bot": True, "first_name": "Echo", "username": "EchoBot"}
        return web.json_response({"ok": True, "result": result})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.url = f"http://{host}:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
async def silent_url() -> AsyncIterator[str]:
    """A server that accepts connections, reads the request and never answers."""
    connections: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    """A local port nobody listens on (it was bound a moment ago, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def raises(expected: type[E], call: Callable[[], Awaitable[Any]]) -> E:
    with pytest.raises(expected) as caught:
        await call()
    return caught.value


# --------------------------------------------------------------------------- calls


async def test_calls_return_ptb_objects(api, bot) -> None:
    me = await bot.get_me()
    assert isinstance(me, User)
    assert me.username == BOT_USERNAME and me.is_bot

    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Ya", callback_data="yes")]])
    sent = await bot.send_message(CHAT, "<b>Halo</b> — apa kabar?", reply_markup=keyboard)

    assert isinstance(sent, Message)
    assert sent.chat.id == CHAT
    assert sent.text == "<b>Halo</b> — apa kabar?"
    record = await api.wait_for("sendMessage")
    assert sent.message_id == record.result["message_id"]
    # PTB's form fields (a JSON-encoded keyboard among them) arrive as PTB encoded them.
    assert record.params["chat_id"] == CHAT
    assert record.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Ya", "callback_data": "yes"}]]
    }


async def test_an_upload_reaches_the_api_with_its_bytes_and_filename(api, bot) -> None:
    data = os.urandom(200_000) + b"\r\n--not-a-boundary\r\n" + bytes(range(256))

    sent = await bot.send_document(
        CHAT, InputFile(data, filename="Laporan Agustus.pdf"), caption="Bukti — foto & daftar"
    )

    record = await api.wait_for("sendDocument")
    assert record.files["document"] == data
    assert record.params["caption"] == "Bukti — foto & daftar"
    assert sent.document is not None
    assert sent.document.file_name == "Laporan Agustus.pdf"
    assert sent.document.mime_type == "application/pdf"
    assert sent.document.file_size == len(data)


async def test_a_file_name_reaches_telegram_unquoted(echo) -> None:
    """Telegram's server reads filename="..." literally, without percent-decoding: the name
    must go as UTF-8, only `"` and control characters escaped (as httpx and browsers do)."""
    name = 'Daftar "final"\r\nX-Evil: 1 — Agustus.pdf'
    async with bot_at(echo.url) as bot:
        await bot.send_document(CHAT, InputFile(b"%PDF-1.4", filename=name))

    body = echo.seen[0].body
    assert 'filename="Daftar %22final%22%0D%0AX-Evil: 1 — Agustus.pdf"'.encode() in body
    assert b"\r\nX-Evil" not in body


async def test_a_download_returns_the_exact_bytes(api, bot) -> None:
    data = os.urandom(300_000)
    api.add_file("file-1", data, file_name="foto.jpg", mime_type="image/jpeg")

    file = await bot.get_file("file-1")
    downloaded = await file.download_as_bytearray()

    assert bytes(downloaded) == data
    download = await api.wait_for("downloadFile")
    assert file.file_path == f"{api.url}/file/bot{api.token}/{download.params['file_path']}"


async def test_a_long_poll_may_outlast_the_read_timeout(api, bot) -> None:
    """PTB adds the poll's `timeout` to `read_timeout` (read from the request's property):
    a 1 s poll through a transport with a 0.5 s read timeout is not cut short."""
    assert await bot.get_updates(timeout=1) == ()


# --------------------------------------------------------------------------- failures


async def test_a_server_that_never_answers_times_out(silent_url) -> None:
    request = AiohttpRequest(read_timeout=0.3, write_timeout=1, connect_timeout=1)
    async with bot_at(silent_url, request) as bot:
        await raises(TimedOut, bot.get_me)


async def test_a_closed_port_is_a_network_error_not_a_timeout() -> None:
    async with bot_at(f"http://127.0.0.1:{closed_port()}") as bot:
        error = await raises(NetworkError, bot.get_me)
    assert not isinstance(error, TimedOut)
    assert "aiohttp" in str(error)


async def test_a_blocked_user_is_forbidden(api, bot) -> None:
    api.fail_next("sendMessage", status=403)
    error = await raises(Forbidden, lambda: bot.send_message(CHAT, "halo"))
    assert "blocked" in str(error)


async def test_too_many_requests_is_retry_after_with_its_seconds(api, bot) -> None:
    api.fail_next("sendMessage", status=429, retry_after=7)
    error = await raises(RetryAfter, lambda: bot.send_message(CHAT, "halo"))
    assert seconds(error.retry_after) == 7


async def test_a_bad_request_is_bad_request(api, bot) -> None:
    api.fail_next("sendMessage", status=400, description="Bad Request: chat not found")
    error = await raises(BadRequest, lambda: bot.send_message(CHAT, "halo"))
    assert "chat not found" in str(error).lower()


async def test_a_server_error_is_a_network_error(api, bot) -> None:
    api.fail_next("sendMessage", status=502)
    error = await raises(NetworkError, lambda: bot.send_message(CHAT, "halo"))
    assert not isinstance(error, BadRequest | TimedOut)


# --------------------------------------------------------------------------- session


async def test_requests_carry_ptbs_user_agent(echo) -> None:
    async with bot_at(echo.url) as bot:
        await bot.get_me()
    assert echo.seen[0].user_agent == BaseRequest.USER_AGENT
    assert echo.seen[0].user_agent.startswith("python-telegram-bot")


async def test_shutdown_closes_the_session_and_a_later_call_opens_a_new_one(echo) -> None:
    request = AiohttpRequest()
    async with bot_at(echo.url, request) as bot:
        await bot.get_me()
        await bot.get_me()
        await request.shutdown()
        await request.shutdown()  # twice is harmless
        await bot.get_me()

    first, second, after_shutdown = (seen.client_port for seen in echo.seen)
    assert first == second  # one kept-alive connection of one session...
    assert after_shutdown != first  # ...closed by shutdown; the next call connected anew
