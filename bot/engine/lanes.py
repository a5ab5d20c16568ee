"""One lane per sender: a sender's messages are handled one after another, in the order they
came, while every sender has their own lane, so one sender's slow download or flood never holds
another's reply (hardening issue #13, item 5).

A sender past `Pace.burst` messages is handled at `Pace.per_minute`: a flood from one number
waits in its own lane (every message of it is already stored in the inbox: none is dropped),
and the handling slots stay free for everyone else.

```mermaid
flowchart LR
    W[webhook / poll: stored in the inbox] --> S{sender's lane}
    S -- running --> Q[queued behind the sender's earlier messages]
    S -- idle --> L[new lane task]
    Q & L --> T{sender's tokens}
    T -- a token --> H[handle, in one of the shared slots]
    T -- none: past the burst --> P[wait for the next token] --> H
```
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Work = Callable[[], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, None]], None]
Sleep = Callable[[float], Awaitable[None]]
MAX_IDLE_BUCKETS = 10_000  # forget the pace of idle senders beyond this many


@dataclass(frozen=True)
class Pace:
    """How fast one sender's messages are handled: `burst` at once, then `per_minute`."""

    burst: int = 20
    per_minute: float = 30.0


@dataclass
class _Bucket:
    tokens: float
    at: float  # the clock's seconds when `tokens` was counted


class Lanes:
    """Work queued per sender key; a lane's task lives while its queue has work. Lanes and
    their queues are in memory only: what a crash loses is in the inbox, for replay_stored."""

    def __init__(
        self,
        spawn: Spawn,
        *,
        pace: Pace | None = None,
        slots: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        label: str = "",
    ) -> None:
        self._spawn = spawn  # the channel's: its close() waits for (or cancels) the tasks
        self._pace = pace
        # Shared by all lanes: a burst of senders must not exhaust the database pool.
        self._slots = asyncio.Semaphore(slots) if slots else None
        self._clock = clock
        self._sleep = sleep
        self._label = label  # the channel, for the log line
        self._queues: dict[str, deque[Work]] = {}
        self._buckets: dict[str, _Bucket] = {}

    def submit(self, key: str, work: Work) -> None:
        queue = self._queues.get(key)
        if queue is not None:  # the lane is running: it takes this after what it has
            queue.append(work)
            return
        self._queues[key] = deque([work])
        self._spawn(self._drain(key))

    def queued(self, key: str) -> int:
        """Messages of this sender waiting or in hand."""
        return len(self._queues.get(key, ()))

    async def _drain(self, key: str) -> None:
        queue = self._queues[key]
        paced = False
        try:
            while queue:
                wait = self._take_token(key)
                if wait > 0:
                    if not paced:
                        paced = True
                        log.warning(
                            "%s …%s over the inbound pace: %d queued, handled at %g a minute",
                            self._label,
                            key[-4:],
                            len(queue),
                            self._pace.per_minute if self._pace else 0,
                        )
                    await self._sleep(wait)
                    continue
                async with self._slot():
                    await queue[0]()  # never raises: the channel's handler catches everything
                queue.popleft()
        finally:
            del self._queues[key]
            self._forget_idle_buckets()

    def _slot(self) -> AbstractAsyncContextManager[Any]:
        return self._slots if self._slots is not None else nullcontext()

    def _take_token(self, key: str) -> float:
        """0 and a token taken, or the seconds until the sender's next token."""
        if self._pace is None:
            return 0.0
        now = self._clock()
        rate = self._pace.per_minute / 60.0
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self._pace.burst), now)
        bucket.tokens = min(float(self._pace.burst), bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate

    def _forget_idle_buckets(self) -> None:
        if len(self._buckets) <= MAX_IDLE_BUCKETS or self._pace is None:
            return
        now, burst = self._clock(), float(self._pace.burst)
        rate = self._pace.per_minute / 60.0
        self._buckets = {
            key: bucket
            for key, bucket in self._buckets.items()
            if key in self._queues or bucket.tokens + (now - bucket.at) * rate < burst
        }
