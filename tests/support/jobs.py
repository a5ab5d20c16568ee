"""Stand-ins for building the scheduler's job list without a running engine."""

from __future__ import annotations

import asyncio


class IdleEngine:
    """What `scheduler.jobs.scheduled_jobs` reads of the engine: nothing stored to replay,
    the event the reminder and broadcast jobs set to wake the sender, and no channels."""

    def __init__(self) -> None:
        self.outbox_ready = asyncio.Event()
        self.channels: dict[str, object] = {}

    async def replay_stored(self) -> int:
        return 0
