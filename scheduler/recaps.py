"""The `recap-requests` job: make the recaps and evidence ZIPs asked for in chat, outside the
chat turn, and send them through the outbox.

/rekap only records a request and answers at once (handlers/oversight.py). This job then, for
each due request:

```mermaid
sequenceDiagram
    participant J as recap-requests job
    participant DB as Database
    participant T as worker thread
    participant ST as Evidence store
    participant O as Outbox
    J->>DB: claim: state working, owner, lease +10 min (one short write transaction)
    J->>DB: read (no write transaction): contact, role and scope now, period, period_reports
    J->>T: chart PNG and workbook XLSX (asyncio.to_thread: the event loop stays free)
    J->>ST: put(png), put(xlsx)
    J->>DB: one short transaction: outbox rows recap:{id}:chart / :workbook, request done
    O-->>J: the sender delivers them, like every reply
    Note over J,DB: a crash before the end: the lease expires, the next run makes it again
```

An evidence request (`/rekap bukti`) reads the plan of `laporham export evidence` for its pemda
the same way, refuses at once when the files alone exceed the channel's document limit, else
writes the ZIP to a temporary file (streamed, memory bounded), puts it in the store in pieces
and sends it as a document (`recap:{id}:zip`), or, when the archive still turns out too large,
answers with its size and the operator's command.

No write lock is held while anything is rendered, zipped or stored: on SQLite the one writer
lock stays free for the users' turns. Files are kept in the evidence store, not referenced by
any evidence row: the daily sweep keeps them while an outbox row still to be sent names them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.channel import Capabilities
from bot.engine.events import OutFile, Outgoing, OutText, outgoing_to_payload
from bot.engine.texts import human_size, t
from storage import identities, oversight, recap_requests, reports
from storage.db import transaction
from storage.evidence import EvidenceStore
from storage.evidence_export import (
    ExportError,
    ExportPlan,
    evidence_plan,
    write_evidence_archive,
)
from storage.models import Contact, Period, RecapKind, RecapState, Region, RegionKind, Role
from storage.outbox import outbox_row
from storage.oversight import PeriodReports, ReportRow, Scope
from storage.periods import days_left, deadline, zone_abbreviation
from storage.recap import Bar, recap_chart, recap_workbook
from storage.recap_requests import MAX_ATTEMPTS, ClaimedRequest
from storage.types import utcnow

log = logging.getLogger(__name__)

Sessions = async_sessionmaker[AsyncSession]
OVERSIGHT_ROLES = frozenset({Role.coordinator, Role.kanwil, Role.admin})
SAFE_NAME = re.compile(r"[^A-Za-z0-9.-]+")
# How many requests one run makes at most: the next run (seconds later) takes the rest.
PER_RUN = 5
Hook = Callable[[int], Awaitable[None]]


@dataclass
class RecapHooks:
    """Points where a test holds or breaks the job (an event, an exception), instead of
    timing: before rendering (another session writes meanwhile) and after the files are
    stored (a crash before the outbox rows)."""

    before_render: Hook | None = None
    after_store: Hook | None = None


@dataclass(frozen=True)
class Answer:
    """What one request sends back: messages keyed by their part ("chart", "workbook")."""

    parts: tuple[tuple[str, Outgoing], ...]
    state: RecapState = RecapState.done


class RecapJob:
    def __init__(
        self,
        *,
        sessions: Sessions,
        store: EvidenceStore,
        owner: str,
        capabilities: Callable[[str], Capabilities | None] = lambda _channel: None,
        clock: Callable[[], datetime] = utcnow,
        wakeup: asyncio.Event | None = None,
        hooks: RecapHooks | None = None,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.owner = owner
        self.capabilities = capabilities
        self.clock = clock
        self.wakeup = wakeup
        self.hooks = hooks or RecapHooks()
        # The run the scheduler's tick started, while it is in hand.
        self.current_run: asyncio.Task[int] | None = None

    async def tick(self) -> bool:
        """The scheduler's entry: start a run unless one is still in hand, and return at once.
        A long run (a national recap, a ZIP) then never makes APScheduler skip a tick with a
        warning in the log every 2 s. True when a run was started."""
        if self.current_run is not None and not self.current_run.done():
            return False
        self.current_run = asyncio.create_task(self.run(), name="recap-requests")
        self.current_run.add_done_callback(_log_failure)
        return True

    async def run(self) -> int:
        """Make the due requests (at most PER_RUN); returns how many were answered."""
        async with self.sessions() as session:
            if not await recap_requests.any_due(session=session, now=self.clock()):
                return 0
        answered = 0
        for _ in range(PER_RUN):
            async with transaction(self.sessions) as session:
                request = await recap_requests.claim_next(
                    session=session, owner=self.owner, now=self.clock()
                )
            if request is None:
                break
            done = await self._one(request)
            if done is None:
                break  # it failed and waits for the next run: not tried again at once
            answered += done
        return answered

    async def _one(self, request: ClaimedRequest) -> int | None:
        """1: answered; 0: answered by another run already; None: failed, tried again later."""
        try:
            answer = await self._make(request)
        except asyncio.CancelledError:
            # A graceful stop: give the request back now rather than after its lease. If the
            # database is already closed, the lease still hands it on later.
            with contextlib.suppress(Exception):
                async with transaction(self.sessions) as session:
                    await recap_requests.release(
                        session=session, request_id=request.id, owner=self.owner
                    )
            raise
        except Exception as error:  # one request's trouble must not stop the others
            log.warning(
                "recap %d failed (try %d): %s user %s: %s",
                request.id,
                request.attempts,
                request.channel,
                request.chat_id[-4:],
                type(error).__name__,
            )
            if request.attempts < MAX_ATTEMPTS:
                async with transaction(self.sessions) as session:
                    await recap_requests.release(
                        session=session, request_id=request.id, owner=self.owner
                    )
                return None
            answer = _text_answer(request, "oversight.recap_unavailable", state=RecapState.failed)
        rows = [
            outbox_row(
                idempotency_key=f"recap:{request.id}:{part}",
                channel=request.channel,
                recipient=request.chat_id,
                contact_id=request.contact_id,
                payload=outgoing_to_payload(message),
            )
            for part, message in answer.parts
        ]
        async with transaction(self.sessions) as session:
            written = await recap_requests.finish(
                session=session,
                request_id=request.id,
                rows=rows,
                now=self.clock(),
                state=answer.state,
            )
        if written and self.wakeup is not None:
            self.wakeup.set()
        return int(written)

    async def _make(self, request: ClaimedRequest) -> Answer:
        work = await self._read(request)
        if isinstance(work, Answer):
            return work
        if isinstance(work, EvidenceInput):
            return await self._zip(request, work)
        return await self._render(request, work)

    async def _read(self, request: ClaimedRequest) -> Answer | RecapInput | EvidenceInput:
        """Everything the answer is made from, in a plain session: on SQLite a reader takes
        no lock, on PostgreSQL it holds no row locks, and it ends before any rendering."""
        async with self.sessions() as session:
            contact, period = await _asker_and_period(session, request)
            if contact is None or contact.role not in OVERSIGHT_ROLES:
                return _text_answer(request, "oversight.recap_not_allowed")
            if period is None:
                return _text_answer(request, "oversight.no_period")
            scope = await oversight.scope_of(session=session, contact=contact)
            if request.kind is RecapKind.evidence:
                return await _read_evidence(session, request, scope, period)
            recap = await _read_recap(session, request, contact, scope, period, self.clock())
        return recap if recap is not None else _text_answer(request, "oversight.empty")

    async def _render(self, request: ClaimedRequest, recap: RecapInput) -> Answer:
        if self.hooks.before_render is not None:
            await self.hooks.before_render(request.id)
        # The bars' scores too: for the country that is every report scored, seconds of CPU
        # that would otherwise stop the event loop.
        chart = await asyncio.to_thread(_draw_chart, recap)
        workbook = await asyncio.to_thread(recap_workbook, recap.found, now=recap.now)
        chart_key = await self.store.put(chart, extension="png")
        workbook_key = await self.store.put(workbook, extension="xlsx")
        if self.hooks.after_store is not None:
            await self.hooks.after_store(request.id)
        language = request.language
        values = {"period": recap.period_title, "scope": recap.scope_name}
        return Answer(
            (
                (
                    "chart",
                    OutFile(
                        storage_key=chart_key,
                        filename=f"{recap.stem}.png",
                        caption=t(language, "oversight.recap_caption", unit=_unit(recap), **values),
                        as_photo=True,
                        language=language,
                    ),
                ),
                (
                    "workbook",
                    OutFile(
                        storage_key=workbook_key,
                        filename=f"{recap.stem}.xlsx",
                        caption=t(language, "oversight.recap_workbook", **values),
                        language=language,
                    ),
                ),
            )
        )

    async def _zip(self, request: ClaimedRequest, work: EvidenceInput) -> Answer:
        """The evidence ZIP, if small enough for the channel: refused before writing when
        the files alone exceed the limit, and again if the archive does."""
        plan, period, region = work.plan, work.period, work.region
        capabilities = self.capabilities(request.channel)
        limit = capabilities.max_send_document_bytes if capabilities else None
        values = {"region": region.name, "period": period.title, "code": region.code}
        # Photos go as their display copies (smaller than the originals, size unknown until
        # read): only the documents, sent as received, tell before writing that it can't fit.
        if limit is not None and plan.document_bytes > limit:
            return _too_big(request, plan.document_bytes, limit, period.code, values)
        if self.hooks.before_render is not None:
            await self.hooks.before_render(request.id)
        stem = SAFE_NAME.sub("-", f"bukti-{period.code}-{region.code}").strip("-")
        folder = Path(tempfile.mkdtemp(prefix="laporham-zip-"))
        try:
            target = folder / f"{stem}.zip"
            result = await write_evidence_archive(
                plan, store=self.store, target=target, for_chat=True
            )
            size = target.stat().st_size
            if limit is not None and size > limit:
                return _too_big(request, size, limit, period.code, values)
            key = await self.store.put_file(target, extension="zip")
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)
        if self.hooks.after_store is not None:
            await self.hooks.after_store(request.id)
        caption = t(
            request.language,
            "oversight.evidence_caption",
            files=result.files,
            size=human_size(size),
            period_code=period.code,
            **values,
        )
        if result.missing or result.damaged or result.withheld:
            caption += "\n" + t(
                request.language,
                "oversight.evidence_problems",
                count=len(result.missing) + len(result.damaged) + len(result.withheld),
            )
        document = OutFile(
            storage_key=key, filename=f"{stem}.zip", caption=caption, language=request.language
        )
        return Answer((("zip", document),))


def _log_failure(task: asyncio.Task[int]) -> None:
    """A run that failed as a whole (the database away): one line; the next tick tries again."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("recap-requests: run failed: %s", type(error).__name__)


@dataclass(frozen=True)
class EvidenceInput:
    """The files of one pemda's evidence ZIP (small rows: names, keys, sizes)."""

    plan: ExportPlan
    period: Period
    region: Region


async def _read_evidence(
    session: AsyncSession, request: ClaimedRequest, scope: Scope, period: Period
) -> Answer | EvidenceInput:
    """The plan of `laporham export evidence` for the request's pemda, if it is still in the
    asker's scope."""
    region = (
        await reports.get_region(session=session, region_id=request.region_id)
        if request.region_id is not None
        else None
    )
    if region is None or region.id is None or not scope.covers(region.id):
        return _text_answer(request, "oversight.evidence_not_in_scope")
    programme = await reports.get_programme(session=session, programme_id=period.programme_id)
    try:
        plan = await evidence_plan(
            session=session,
            period_code=period.code,
            programme_code=programme.code if programme else None,
            region_code=region.code,
        )
    except ExportError:
        plan = None
    if plan is None or not plan.files:
        return _text_answer(
            request, "oversight.evidence_none", region=region.name, period=period.title
        )
    return EvidenceInput(plan, period, region)


@dataclass(frozen=True)
class RecapInput:
    """What the chart and the workbook are made from, read before rendering starts."""

    found: PeriodReports
    level: str  # "national", "province", "region": what one bar stands for
    language: str
    period_title: str
    scope_name: str
    subtitle: str
    stem: str
    now: datetime


async def _asker_and_period(
    session: AsyncSession, request: ClaimedRequest
) -> tuple[Contact | None, Period | None]:
    contact = (
        await identities.get_contact(session=session, contact_id=request.contact_id)
        if request.contact_id is not None
        else None
    )
    if contact is not None and not contact.active:
        contact = None
    period = (
        await reports.get_period(session=session, period_id=request.period_id)
        if request.period_id is not None
        else None
    )
    return contact, period


async def _read_recap(
    session: AsyncSession,
    request: ClaimedRequest,
    contact: Contact,
    scope: Scope,
    period: Period,
    now: datetime,
) -> RecapInput | None:
    """The asker's whole scope as it is now (the role may have changed since they asked)."""
    found = await oversight.period_reports(
        session=session, period=period, scope=scope, with_focal_points=True
    )
    if not found.reports:
        return None
    language = request.language
    region = (
        await reports.get_region(session=session, region_id=contact.region_id)
        if contact.region_id is not None and contact.role is not Role.admin
        else None
    )
    if region is None:
        level, scope_name, code = "national", t(language, "oversight.everywhere"), "nasional"
    else:
        level = "province" if region.kind is RegionKind.provinsi else "region"
        scope_name, code = region.name, region.code
    timezone = region.timezone if region is not None else "Asia/Jakarta"
    return RecapInput(
        found=found,
        level=level,
        language=language,
        period_title=period.title,
        scope_name=scope_name,
        subtitle=_deadline_line(language, period, timezone, now),
        stem=SAFE_NAME.sub("-", f"rekap-{period.code}-{code}").strip("-"),
        now=now,
    )


def _unit(recap: RecapInput) -> str:
    """What one bar stands for, in the caption."""
    if recap.level == "national":
        return t(recap.language, "oversight.unit_province")
    if recap.level == "province":
        return t(recap.language, "oversight.unit_pemda")
    return t(recap.language, "oversight.unit_office")


def _draw_chart(recap: RecapInput) -> bytes:
    """The chart's PNG, on a worker thread: one bar per province for the country, per pemda
    for a province, per office for one pemda."""
    found, now = recap.found, recap.now
    if recap.level == "region":
        offices: dict[str, list[ReportRow]] = defaultdict(list)
        for row in found.reports:
            offices[row.office_name].append(row)
        bars = [
            Bar(name, oversight.figures(found, rows, now).score.points)
            for name, rows in offices.items()
        ]
    else:
        groups = (
            oversight.by_province(found)
            if recap.level == "national"
            else oversight.by_region(found.reports)
        )
        bars = [
            Bar(found.regions[region_id].name, oversight.figures(found, rows, now).score.points)
            for region_id, rows in groups.items()
            if region_id in found.regions
        ]
    return recap_chart(
        bars,
        title=f"Rekap {recap.period_title} — {recap.scope_name}",
        subtitle=recap.subtitle,
        axis_label="Perkiraan nilai administrasi (0-100), target 80",
    )


def _deadline_line(language: str, period: Period, timezone: str, now: datetime) -> str:
    """The deadline under the chart's title, without markup."""
    if period.due_on is None:
        return ""
    last_minute = (deadline(period.due_on, timezone) - timedelta(minutes=1)).astimezone(
        ZoneInfo(timezone)
    )
    left = days_left(period.due_on, now, timezone)
    if left < 0:
        key, days = "deadline.overdue", -left
    else:
        key, days = ("deadline.today" if left == 0 else "deadline.days_left"), left
    text = t(
        language,
        key,
        date=f"{last_minute:%d-%m-%Y}",
        zone=zone_abbreviation(timezone),
        days=days,
    )
    return re.sub(r"</?[bi]>", "", text)


def _text_answer(
    request: ClaimedRequest,
    key: str,
    *,
    state: RecapState = RecapState.done,
    **values: Any,
) -> Answer:
    message = OutText(text=t(request.language, key, **values), language=request.language)
    return Answer((("text", message),), state)


def _too_big(
    request: ClaimedRequest, size: int, limit: int, period_code: str, values: Mapping[str, str]
) -> Answer:
    return _text_answer(
        request,
        "oversight.evidence_too_big",
        size=human_size(size),
        limit=human_size(limit),
        period_code=period_code,
        region=values["region"],
        code=values["code"],
    )
