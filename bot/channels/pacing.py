"""A pace for a channel's sends, evenly spaced, that lets the most urgent waiting send go next.

aiolimiter (used for the per-chat buckets) wakes its waiters first come, first served: behind
a broadcast's hundred queued sends, a reply to a user would wait seconds. Here each waiter
carries its priority (bot.engine.channel.send_priority, lower first) and the next free slot
goes to the lowest; equal priorities keep their arrival order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from types import TracebackType

from bot.engine.channel import send_priority

# A timer may fire this much early (asyncio runs callbacks due within its clock resolution).
EARLY = 0.001


class PriorityPacer:
    """`rate` sends a second, most urgent first; use as `async with pacer:` (the slot is taken
    on entry; nothing happens on exit).

    Sends are spaced by the generic cell rate algorithm: each send moves a theoretical time
    on by 1 / rate, and a send may go while that time is at most `burst - 1` intervals ahead
    of now. So in any T seconds at most rate × T + burst sends go out, and a timer that fires
    late (a busy event loop) is made up for within that allowance instead of slowing the pace.
    """

    def __init__(
        self, rate: float, *, burst: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = 1.0 / rate
        self.clock = clock
        self._slack = (burst - 1) * self.interval
        self._due = 0.0  # the theoretical time of the next send
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    async def acquire(self) -> None:
        now = self.clock()
        if not self._waiting and self._free(now):
            self._take(now)
            return
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (send_priority.get(), next(self._order), slot))
        self._arm()
        try:
            await slot
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():
                self._due -= self.interval  # given a slot it will not use: give it back
            else:  # gone from the queue (rare: a send cancelled at shutdown)
                self._waiting = [entry for entry in self._waiting if entry[2] is not slot]
                heapq.heapify(self._waiting)
            self._arm()
            raise

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _free(self, now: float) -> bool:
        return self._due - now <= self._slack + min(EARLY, self.interval / 10)

    def _take(self, now: float) -> None:
        self._due = max(self._due, now) + self.interval

    def _arm(self) -> None:
        if self._timer is None and self._waiting:
            delay = max(0.0, self._due - self._slack - self.clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._release)

    def _release(self) -> None:
        """A slot is free: to the most urgent waiter still waiting."""
        self._timer = None
        now = self.clock()
        while self._waiting and self._free(now):
            _, _, slot = heapq.heappop(self._waiting)
            if slot.done():  # cancelled; its task has not yet taken it out of the queue
                continue
            self._take(now)
            slot.set_result(None)
        self._arm()
