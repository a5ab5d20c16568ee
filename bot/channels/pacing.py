"""A pace for a channel's sends, evenly spaced, that lets the most urgent waiting send go next,
and (optionally) never lets more sends reach the server in any one second than it allows.

aiolimiter (used for the per-chat buckets) wakes its waiters first come, first served: behind
a broadcast's hundred queued sends, a reply to a user would wait seconds. Here each waiter
carries its priority (bot.engine.channel.send_priority, lower first) and the next free slot
goes to the lowest; equal priorities keep their arrival order.

Why a window besides the pace (issue 14): a server counts requests as they ARRIVE, in any one
second. Sends started evenly still arrive bunched (network jitter, an event loop that stalls
and then catches up), so a pace just under the limit met 429s. The window counts, for each
send, the span in which it may arrive: from its start to its answer (a request cannot arrive
after its answer came back). A send holds a place from its start until one second after its
end; at most `in_any_second` places are held at once. Then any one second of arrivals holds at
most that many: take the send in it that started last; every other send in that second started
before it and was answered after the second began, so it still held its place when the last
one started.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

from bot.engine.channel import send_priority

# A timer may fire this much early (asyncio runs callbacks due within its clock resolution).
EARLY = 0.001
WINDOW = 1.0  # seconds: the span in which the server counts arrivals


class PriorityPacer:
    """`rate` sends a second, most urgent first; use as `async with pacer:` around the whole
    send (the slot is taken on entry; with `in_any_second`, the exit says the send is answered).

    Sends are spaced by the generic cell rate algorithm: each send moves a theoretical time
    on by 1 / rate, and a send may go while that time is at most `burst - 1` intervals ahead
    of now. So in any T seconds at most rate × T + burst sends start, and a timer that fires
    late (a busy event loop) is made up for within that allowance instead of slowing the pace.

    With `in_any_second` = N, a send also holds one of N places from its start until a second
    after its exit (see the module's docstring): no second of arrivals at the server holds more
    than N, however they bunch. The cost is the send's round trip: a place comes back every
    1 s + round trip, so the pace is at most N / (1 + round trip). Callers that only
    `acquire()` must not set it (nothing would give the places back).

    `pause(seconds)` holds every send (the server said "retry after").
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        in_any_second: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = 1.0 / rate
        self.clock = clock
        self.in_any_second = in_any_second
        self._slack = (burst - 1) * self.interval
        self._due = 0.0  # the theoretical time of the next send
        self._paused_until = float("-inf")
        self._in_flight = 0  # sends started and not yet answered (counted with a window only)
        self._ended: deque[float] = deque()  # when sends ended, within the last WINDOW
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
                self._give_back()  # given a slot it will not use
            else:  # gone from the queue (rare: a send cancelled at shutdown)
                self._waiting = [entry for entry in self._waiting if entry[2] is not slot]
                heapq.heapify(self._waiting)
            self._rearm()
            raise

    def done(self) -> None:
        """The send that took a slot has its answer (or gave up): its place in the window
        comes back a second from now."""
        if self.in_any_second is None:
            return
        self._in_flight = max(0, self._in_flight - 1)
        self._ended.append(self.clock())
        self._rearm()

    def pause(self, seconds: float) -> None:
        """No send starts for `seconds` (a 429's retry_after: the server wants a rest)."""
        self._paused_until = max(self._paused_until, self.clock() + seconds)
        self._rearm()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.done()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def resumes_at(self) -> float:
        """When the last `pause` ends (on `clock`; in the past when none holds sends)."""
        return self._paused_until

    @property
    def held(self) -> int:
        """Places of the window held now: sends in flight or answered within the last second."""
        self._forget_old(self.clock())
        return self._in_flight + len(self._ended)

    def _free(self, now: float) -> bool:
        free_at = self._free_at(now)
        return free_at is not None and free_at <= now

    def _free_at(self, now: float) -> float | None:
        """When the next send may start (maybe already), or None: when a send in flight ends."""
        paced = self._due - self._slack - min(EARLY, self.interval / 10)
        free_at = max(paced, self._paused_until)
        if self.in_any_second is None:
            return free_at
        self._forget_old(now)
        # Places that must come back before one more send may take one.
        short = self._in_flight + len(self._ended) + 1 - self.in_any_second
        if short <= 0:
            return free_at
        if short > len(self._ended):
            return None
        return max(free_at, self._ended[short - 1] + WINDOW)

    def _forget_old(self, now: float) -> None:
        # The same comparison as a server's sliding window: an arrival at t counts until t + 1.
        while self._ended and now - self._ended[0] >= WINDOW:
            self._ended.popleft()

    def _take(self, now: float) -> None:
        self._due = max(self._due, now) + self.interval
        if self.in_any_second is not None:
            self._in_flight += 1

    def _give_back(self) -> None:
        self._due -= self.interval
        if self.in_any_second is not None:
            self._in_flight = max(0, self._in_flight - 1)  # it never started: nothing to count

    def _arm(self) -> None:
        if self._timer is not None or not self._waiting:
            return
        now = self.clock()
        free_at = self._free_at(now)
        if free_at is None:
            return  # `done()` arms again
        delay = max(0.0, free_at - now)
        self._timer = asyncio.get_running_loop().call_later(delay, self._release)

    def _rearm(self) -> None:
        """Something changed when the next slot frees: time it again."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._arm()

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
