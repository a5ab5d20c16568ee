"""Receiving: start-up (getMe, then setWebhook or deleteWebhook), long polling, and the webhook
route. What an update means is inbound.py's; keeping and handling it is the channel's `Keep`."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NamedTuple

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import Update
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    InvalidToken,
    TelegramError,
    TimedOut,
)

from bot.channels.telegram.client import BotApi, Json
from bot.channels.telegram.inbound import ALLOWED_UPDATES, parse_update
from bot.engine.channel import ChannelConfigError, Lease
from bot.engine.health import DATABASE, Health, short_reason

TELEGRAM = "telegram"  # this channel's part in Health

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
POLL_TIMEOUT = 25  # seconds; under the 30 s idle cut-off of many proxies
# A long poll's read timeout is its `timeout` plus this: Telegram answers an empty poll at
# `timeout`, so only a dropped connection waits longer.
POLL_READ_MARGIN = 10
# Updates are small (a message, a caption, file ids): anything bigger is not from Telegram.
MAX_WEBHOOK_BODY = 1024 * 1024

# Keeps one update (PTB's parse, and the payload as received): stores it in the inbox and
# queues its handling in the background. Raises only when it could not be stored.
Keep = Callable[[Update, Json], Awaitable[None]]


class TelegramConfigError(ChannelConfigError):
    """Telegram refused the token or the webhook URL: nothing will work until the operator
    fixes the settings, so the channel stops instead of retrying forever."""


class Received(NamedTuple):
    """One update of a getUpdates batch: its payload as sent, and PTB's parse of it (None when
    it could not be parsed)."""

    update_id: int
    payload: Json
    update: Update | None


async def connect(api: BotApi, *, webhook_url: str | None, secret: str) -> None:
    """Check the token, then register the webhook, or drop any for long polling."""
    bot = api.bot
    await _retrying("getMe", bot.initialize)
    if webhook_url:
        url: str = webhook_url
        await _retrying(
            "setWebhook",
            lambda: bot.set_webhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES),
        )
        log.info("Telegram webhook set to %s", url)
        return
    await _retrying("deleteWebhook", bot.delete_webhook)
    log.info("Telegram long polling as @%s", bot.username)


async def poll(api: BotApi, keep: Keep, *, poll_timeout: int, health: Health | None = None) -> None:
    """Fetch, keep, confirm, until cancelled. Handling goes on in the background, so the
    next getUpdates never waits for a download or a slow turn. An outage (Telegram's or the
    database's) is reported to `health`: one log line when it starts, one when it ends."""
    health = health or Health()
    offset: int | None = None
    failures = 0
    while True:
        try:
            batch = await _fetch(api, offset, poll_timeout)
        except TimedOut:
            continue  # a long poll that outlived its read timeout: just ask again
        except (InvalidToken, EndPointNotFound):
            # getUpdates exists: once the bot is initialized, do_api_request reports a
            # rejected token (a 401/404) as EndPointNotFound.
            raise TelegramConfigError("Telegram rejected LAPORHAM_TELEGRAM_TOKEN") from None
        except Exception as error:  # network, 5xx, 409 (another instance polling), bugs
            failures += 1
            hint = " (is another instance using this token?)" if isinstance(error, Conflict) else ""
            health.failing(TELEGRAM, f"getUpdates failed: {short_reason(error)}{hint}")
            await asyncio.sleep(_delay(failures))
            continue
        health.ok(TELEGRAM)
        try:
            await _keep_batch(batch, keep)
        except Exception as error:  # the database is away: confirm nothing, fetch it again
            failures += 1
            health.failing(DATABASE, f"Telegram updates not stored: {short_reason(error)}")
            await asyncio.sleep(_delay(failures))
            continue
        if batch:
            health.ok(DATABASE)
        failures = 0
        if batch:
            # Only now: the next getUpdates confirms the batch, every update of it in the
            # inbox. A crash before this point re-reads it and the inbox absorbs the repeats;
            # a crash after it leaves the unhandled ones to replay_stored.
            offset = batch[-1].update_id + 1


async def poll_when_elected(
    api: BotApi, keep: Keep, *, poll_timeout: int, lease: Lease, health: Health | None = None
) -> None:
    """Poll only while this process holds the lease: Telegram allows one getUpdates consumer
    per token, and two processes on one database (a deploy overlap, a second worker) would
    fight with 409s. The other process waits and takes over when the lease expires (its holder
    died) or is released (a graceful stop). An update fetched but not confirmed when polling
    stops is fetched again by the next holder: the inbox absorbs the repeat."""
    try:
        while True:
            if not await lease.hold():
                await asyncio.sleep(lease.renew_seconds)
                continue
            poller = asyncio.create_task(
                poll(api, keep, poll_timeout=poll_timeout, health=health)
            )
            try:
                while True:
                    await asyncio.wait([poller], timeout=lease.renew_seconds)
                    if poller.done():
                        poller.result()  # a rejected token: raised to the channel's task
                    if not await lease.hold():
                        break  # lost it (the database was away too long): stop polling
            finally:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
    finally:
        await lease.release()


def _delay(failures: int) -> float:
    return min(30.0, 0.5 * 2.0**failures)


async def _pause(failures: int, reason: str) -> None:
    delay = _delay(failures)
    log.warning("%s; retrying in %.1f s", reason, delay)
    await asyncio.sleep(delay)


async def _fetch(api: BotApi, offset: int | None, poll_timeout: int) -> list[Received]:
    """One long poll. The batch is read as JSON and each update parsed on its own: PTB's
    get_updates parses a batch as a whole, so one update it cannot parse would block the
    queue forever; and the payload is kept as the event's `raw` without re-serialising."""
    payloads: list[Json] = await api.call(
        "getUpdates",
        read_timeout=poll_timeout + POLL_READ_MARGIN,
        offset=offset,
        timeout=poll_timeout,
        allowed_updates=ALLOWED_UPDATES,
    )
    return [
        Received(int(payload["update_id"]), payload, parse_update(payload, api.bot))
        for payload in payloads
    ]


async def _keep_batch(batch: Iterable[Received], keep: Keep) -> None:
    """Each update kept in turn, in the order Telegram sent them."""
    for received in batch:
        if received.update is None:
            log.warning("skipped Telegram update %s: not understood", received.update_id)
            continue
        await keep(received.update, received.payload)


def webhook_route(api: BotApi, *, secret: str, keep: Keep, health: Health) -> Route:
    """POST /telegram/webhook: checks the secret header, has the update kept (in the inbox,
    handled in the background), then answers 200."""

    async def webhook(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return Response(status_code=403)
        body = await _read_capped(request, MAX_WEBHOOK_BODY)
        if body is None:
            return Response(status_code=413)
        try:
            payload: Any = json.loads(body)
        except ValueError:
            return Response(status_code=400)
        update = parse_update(payload, api.bot) if isinstance(payload, dict) else None
        if update is None:
            return Response(status_code=200)  # Telegram re-sending it would not help
        # Kept in the inbox before the 200: if we die now, replay_stored handles it later.
        try:
            await keep(update, payload)
        except Exception as error:  # the database is away: Telegram delivers it again later
            health.failing(DATABASE, f"Telegram webhook not stored: {short_reason(error)}")
            return Response(status_code=503)
        health.ok(DATABASE)
        return Response(status_code=200)

    return Route(WEBHOOK_PATH, webhook, methods=["POST"])


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, read chunk by chunk; None as soon as it is over `limit` bytes, so a huge
    post costs at most `limit` of memory (Content-Length may be absent or false)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def _retrying(what: str, call: Callable[[], Awaitable[Any]]) -> None:
    """Start-up calls: a network hiccup is waited out, a rejected token is fatal."""
    failures = 0
    while True:
        try:
            await call()
            return
        except InvalidToken:
            # PTB's message carries the token itself: keep it out of logs.
            raise TelegramConfigError(
                "Telegram rejected LAPORHAM_TELEGRAM_TOKEN; check it with @BotFather"
            ) from None
        except BadRequest as error:  # e.g. setWebhook: "HTTPS url must be provided"
            raise TelegramConfigError(f"Telegram refused {what}: {error}") from error
        except TelegramError as error:
            failures += 1
            await _pause(failures, f"{what} failed ({error})")
