"""What is failing right now (the database, a channel's receiving), for /healthz and the logs.

A loop that retries through an outage reports every failure here; the log gets one line when a
part goes down and one when it recovers, never one per retry (a 30-second database outage once
wrote 6,000 lines).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

DATABASE = "database"


@dataclass
class Outage:
    reason: str
    since: float  # the clock's seconds
    failures: int = 1


class Health:
    """Up/down state per part, by name ("database", "telegram", "whatsapp"...)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._outages: dict[str, Outage] = {}

    def failing(self, part: str, reason: str) -> None:
        """A failure of `part`: logged only when it was up until now."""
        outage = self._outages.get(part)
        if outage is not None:
            outage.reason = reason
            outage.failures += 1
            return
        self._outages[part] = Outage(reason, self._clock())
        log.warning("%s down: %s", part, reason)

    def ok(self, part: str) -> None:
        """A success of `part`: logged only when it was down until now."""
        outage = self._outages.pop(part, None)
        if outage is not None:
            seconds = self._clock() - outage.since
            log.warning(
                "%s recovered after %.0f s (%d failed attempts)", part, seconds, outage.failures
            )

    def problems(self) -> dict[str, str]:
        """Each failing part with its latest reason."""
        return {part: outage.reason for part, outage in self._outages.items()}

    def is_down(self, part: str) -> bool:
        return part in self._outages

    def outage(self, part: str) -> Outage | None:
        """The current outage of `part`, if it is down."""
        return self._outages.get(part)


def short_reason(error: BaseException) -> str:
    """An exception in a few words for a log line or /healthz: its type and first line, cut
    short (database errors can carry the statement; parameters are hidden by the engine)."""
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
    return text[:160]
