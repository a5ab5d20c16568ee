"""The Bot API client: python-telegram-bot's `ExtBot` on PTB's own httpx transport.

`ExtBot` builds every call, checks every answer and raises PTB's typed errors (`RetryAfter`,
`Forbidden`, `BadRequest`, `TimedOut`, `NetworkError`); `BotApi.call` reads an answer as plain
JSON through the public `Bot.do_api_request`, for calls whose answer we barely read.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

from telegram.ext import ExtBot
from telegram.request import BaseRequest, HTTPXRequest
from telegram.warnings import PTBUserWarning

Json = dict[str, Any]

# do_api_request on a method PTB has makes PTB suggest its own method; here that is deliberate
# (see `BotApi.call`).
warnings.filterwarnings("ignore", message=r"Please use 'Bot\.", category=PTBUserWarning)


class BotApi:
    """One bot's client: `bot` for PTB's methods, `call` for answers read as JSON."""

    def __init__(self, token: str, api_url: str) -> None:
        api_url = api_url.rstrip("/")
        # Two connection pools: a long poll holds its connection for up to its timeout, so
        # sends never queue behind it.
        self._requests = (
            HTTPXRequest(
                # Telegram takes ~30 messages/s: 16 connections cover that at 0.5 s a call.
                connection_pool_size=16,
                connect_timeout=5,
                read_timeout=15,
                write_timeout=15,
                # A send that waits longer for a free connection fails as TimedOut, which the
                # outbox retries: better than holding every other chat's reply.
                pool_timeout=5,
                media_write_timeout=60,  # evidence files up to 20 MB over slow uplinks
            ),
            # getUpdates passes its own read timeout: the poll's timeout plus a margin.
            HTTPXRequest(
                connection_pool_size=2, connect_timeout=5, read_timeout=10, pool_timeout=5
            ),
        )
        self.bot: ExtBot[None] = ExtBot(
            token,
            base_url=f"{api_url}/bot",
            base_file_url=f"{api_url}/file/bot",
            request=self._requests[0],
            get_updates_request=self._requests[1],
        )

    async def call(self, endpoint: str, *, read_timeout: float | None = None, **params: Any) -> Any:
        """A Bot API call whose answer is read as JSON. PTB builds the call, checks the answer
        and raises its typed errors as for its own methods, but skips turning the answer into
        objects: only a message_id is ever read from a reply's answer, and getUpdates keeps
        its payloads as they came. Parameters that are None are left out."""
        given = {name: value for name, value in params.items() if value is not None}
        timeout = BaseRequest.DEFAULT_NONE if read_timeout is None else read_timeout
        return await self.bot.do_api_request(endpoint, api_kwargs=given, read_timeout=timeout)

    async def close(self) -> None:
        """Release both pools. Not bot.shutdown(): it skips a bot that was never initialized,
        as a channel that only sent (tests, tools) is."""
        await asyncio.gather(*(request.shutdown() for request in self._requests))
