"""Fair handling per sender (hardening issue #13, item 5): one sender's flood waits in its own
lane at a bounded pace; other senders go ahead; nothing is dropped. An injected clock and sleep:
the pace is measured in the clock's seconds, never on the wall."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from typing import Any

from bot.engine.lanes import Lanes, Pace


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


class Spawner:
    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def __call__(self, work: Coroutine[Any, Any, None]) -> None:
        self.tasks.add(asyncio.create_task(work))

    async def all_done(self) -> None:
        while pending := [t for t in self.tasks if not t.done()]:
            await asyncio.gather(*pending)


async def test_a_flood_from_one_sender_does_not_starve_another() -> None:
    time, spawn = FakeTime(), Spawner()
    lanes = Lanes(
        spawn,
        pace=Pace(burst=20, per_minute=30),
        slots=4,
        clock=time.clock,
        sleep=time.sleep,
        label="test",
    )
    handled: list[tuple[str, int, float]] = []

    def work(sender: str, n: int) -> Any:
        async def run() -> None:
            handled.append((sender, n, time.now))
            await asyncio.sleep(0)  # a turn awaits the database

        return run

    for n in range(500):
        lanes.submit("6281200000001", work("flooder", n))
    lanes.submit("6281200000002", work("other", 0))
    await spawn.all_done()

    order = [(sender, n) for sender, n, _ in handled]
    assert len(order) == 501 and len(set(order)) == 501  # every message handled, once
    assert order.index(("other", 0)) <= 20  # not behind the flood: at most its burst before
    flood = [(n, at) for sender, n, at in handled if sender == "flooder"]
    assert [n for n, _ in flood] == list(range(500))  # the flooder's own order is kept
    # The burst at once, then one every 60/30 = 2 clock seconds.
    assert all(at == 0.0 for _, at in flood[:20])
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(flood[19:])]
    assert min(gaps) >= 2.0 - 1e-9
    assert flood[-1][1] >= (500 - 20) * 2.0 - 1e-6


async def test_the_burst_comes_back_after_a_quiet_spell() -> None:
    time, spawn = FakeTime(), Spawner()
    lanes = Lanes(spawn, pace=Pace(burst=3, per_minute=60), clock=time.clock, sleep=time.sleep)
    handled: list[float] = []

    async def note() -> None:
        handled.append(time.now)

    for _ in range(4):
        lanes.submit("u", note)
    await spawn.all_done()
    assert handled == [0.0, 0.0, 0.0, 1.0]
    time.now += 60.0  # a minute later the bucket is full again
    for _ in range(3):
        lanes.submit("u", note)
    await spawn.all_done()
    assert handled[4:] == [61.0, 61.0, 61.0]
