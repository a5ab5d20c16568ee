"""One lane per user: a user's updates are handled one after another, in the order they came
(album items, quick answers), while every user has their own lane, so one user's slow
download never holds another's reply, nor the next getUpdates."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

Work = Callable[[], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, None]], None]


class Lanes:
    """Work queued per key; a lane's task lives while its queue has work. Lanes and their
    queues are in memory only: what a crash loses is in the inbox, for replay_stored."""

    def __init__(self, spawn: Spawn) -> None:
        self._spawn = spawn  # the channel's: its close() waits for (or cancels) the tasks
        self._queues: dict[str, deque[Work]] = {}

    def submit(self, key: str, work: Work) -> None:
        queue = self._queues.get(key)
        if queue is not None:  # the lane is running: it takes this after what it has
            queue.append(work)
            return
        self._queues[key] = deque([work])
        self._spawn(self._drain(key))

    async def _drain(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                await queue[0]()  # never raises: the channel's `process` catches everything
                queue.popleft()
        finally:
            del self._queues[key]
