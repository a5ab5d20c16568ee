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


class PriorityPacer:
    """At most one send per `1 / rate` seconds, most urgent first. Use as `async with pacer:`
    (the slot is taken on entry; nothing happens on exit)."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / rate
        self.clock = clock
        self._next_slot = 0.0  # the earliest time the next send may go
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    async def acquire(self) -> None:
        now = self.clock()
        if not self._waiting and now >= self._next_slot:
            self._next_slot = now + self.interval
            return
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (send_priority.get(), next(self._order), slot))
        self._arm()
        try:
            await slot
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():
                self._next_slot -= self.interval  # given a slot it will not use: give it back
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
        return sum(1 for _, _, slot in self._waiting if not slot.done())

    def _arm(self) -> None:
        if self._timer is None and self._waiting:
            delay = max(0.0, self._next_slot - self.clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._release)

    def _release(self) -> None:
        """The slot is free: to the most urgent waiter still waiting."""
        self._timer = None
        while self._waiting:
            _, _, slot = heapq.heappop(self._waiting)
            if not slot.done():  # a cancelled waiter left its entry behind
                # From now, not from the planned slot: a late wake-up never bunches sends.
                self._next_slot = self.clock() + self.interval
                slot.set_result(None)
                break
        self._arm()
