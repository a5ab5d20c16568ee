"""Benchmark the engine: N focal points completing whole reports at once (issue 3).

    .venv/bin/python bench/engine.py [--users 50] [--think-ms 0] [--database-url URL] [--profile]

Two phases, each on a fresh database (a SQLite file in a temporary directory, migrated with
``storage.migrate.upgrade``; with ``--database-url`` a PostgreSQL database whose tables are
emptied first) holding one region with N offices, N focal points and two actions assigned to
every office:

* flow: every user runs the whole report of tests/engine/test_resilience.py's SCRIPT (hello,
  share contact, lapor, action, answers, a small JPEG, /selesai, date, choice, a small PDF,
  selesai, submit, confirm) through the real Engine, router and FakeChannel. Users run
  concurrently, each user's steps one after another; an OutboxSender runs beside them so the
  replies are really sent.
* echo: the same Engine and transaction wrapper with a router that only echoes the text, driven
  with the same users and number of messages (identities linked up front, as the flow's are
  after the contact step).

Latency is the time of one ``await engine.handle(event)``; msgs/s is messages handled over the
wall time of all users. By default users send their next message as soon as the previous one is
handled (a closed loop: latency is then mostly queueing, ~users / throughput); ``--think-ms T``
makes each user pause 0.5-1.5 T before each message, as people typing do (msgs/s and the ratio
then measure the pacing, not the engine). ``--profile`` adds a cProfile of the flow phase and
the SQL statements per step of one user's report.

A third phase repeats the flow with users pausing ~1 s between messages (``--paced-think-ms``),
as focal points on phones do. The JSON's msgs/s and ratio come from the saturated phases, its
p50/p95/p99 from the paced one (saturated latency is queueing, reported as saturated_p95_ms).
The last line printed is a single JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import logging
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Allow running as a plain script from the repository root or from bench/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.dispatch import Engine
from bot.engine.events import (
    ChoiceMade,
    ContactShared,
    FileReceived,
    Inbound,
    OutText,
    TextReceived,
)
from bot.engine.turn import Turn
from handlers.router import route, wants_file
from scheduler.outbox import OutboxSender
from storage import outbox
from storage.db import create_engine, empty_all_tables, is_sqlite, session_factory
from storage.evidence import LocalEvidenceStore
from storage.migrate import upgrade_async
from storage.models import (
    Assignment,
    ChannelIdentity,
    Contact,
    Office,
    OutboxStatus,
    Role,
    Submission,
    SubmissionStatus,
)
from tests.support.factories import World, make_world
from tests.support.fake_channel import FakeChannel
from tests.support.harness import jpeg_bytes, pdf_bytes

PHASE_TIMEOUT = 40.0  # seconds per phase: the whole run stays well under 90 s
DRAIN_TIMEOUT = 10.0
MAX_UPLOAD = 20 * 1024 * 1024
TARGET_P95_MS = 50.0
TARGET_RATIO = 0.30


# --------------------------------------------------------------------------- setup


def phone_of(index: int) -> str:
    return f"+62813{index:08d}"


def user_key_of(index: int) -> str:
    return str(500_000 + index)


async def make_users(
    sessions: async_sessionmaker[AsyncSession], users: int, *, link: bool
) -> World:
    """The factories' world plus N offices, each with its focal point and both actions."""
    async with sessions() as session:
        world = await make_world(session)
        offices = [
            Office(region_id=world.region.id or 0, code=f"opd-{i:04d}", name=f"Dinas Uji {i}")
            for i in range(users)
        ]
        session.add_all(offices)
        await session.flush()
        contacts = [
            Contact(
                name=f"Fokal {i}",
                phone=phone_of(i),
                role=Role.focal_point,
                region_id=world.region.id,
                office_id=office.id,
            )
            for i, office in enumerate(offices)
        ]
        session.add_all(contacts)
        session.add_all(
            Assignment(action_id=action.id or 0, office_id=office.id or 0)
            for office in offices
            for action in (world.action, world.second_action)
        )
        await session.flush()
        if link:
            session.add_all(
                ChannelIdentity(
                    contact_id=contact.id or 0,
                    channel=FakeChannel().name,
                    external_id=user_key_of(i),
                )
                for i, contact in enumerate(contacts)
            )
        await session.commit()
    return world


@dataclass
class Database:
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


@contextlib.asynccontextmanager
async def fresh_database(url: str | None, workdir: Path, name: str):
    if url is None:
        url = f"sqlite+aiosqlite:///{workdir / name}.db"
    await upgrade_async(url)
    engine = create_engine(url)
    if not is_sqlite(url):
        await empty_all_tables(engine)
    try:
        yield Database(url, engine, session_factory(engine))
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- users


@dataclass
class User:
    index: int
    channel: FakeChannel
    world: World
    counter: int = 0

    @property
    def key(self) -> str:
        return user_key_of(self.index)

    def base(self) -> dict[str, Any]:
        self.counter += 1
        return {
            "channel": self.channel.name,
            "user_key": self.key,
            "chat_id": self.key,
            "message_id": f"u{self.index}-m{self.counter}",
            "display_name": f"Fokal {self.index}",
        }

    def text(self, text: str) -> Inbound:
        return TextReceived(**self.base(), text=text)

    def choose(self, choice_id: str) -> Inbound:
        return ChoiceMade(**self.base(), choice_id=choice_id)

    def file(self, data: bytes, name: str, *, photo: bool = False) -> Inbound:
        base = self.base()
        ref = f"file-{base['message_id']}"
        self.channel.files[ref] = data
        return FileReceived(
            **base,
            file_ref=ref,
            claimed_name=name,
            claimed_size=len(data),
            is_photo=photo,
        )


JPEG = jpeg_bytes()
PDF = pdf_bytes()

# The whole report of the main action, one user message per step (test_resilience.SCRIPT).
SCRIPT: list[tuple[str, Callable[[User], Inbound]]] = [
    ("hello", lambda u: u.text("halo")),
    ("contact", lambda u: ContactShared(**u.base(), phone=phone_of(u.index), is_own=True)),
    ("report", lambda u: u.text("lapor")),
    ("action", lambda u: u.choose(f"a:{u.world.action.id}")),
    ("count", lambda u: u.text("25")),
    ("yes", lambda u: u.choose("yes")),
    ("skip note", lambda u: u.choose("skip")),
    ("photo", lambda u: u.file(JPEG, "foto.jpg", photo=True)),
    ("done 1", lambda u: u.text("/selesai")),
    ("date", lambda u: u.text("25-08-2025")),
    ("kind", lambda u: u.text("Pelatihan")),
    ("pdf", lambda u: u.file(PDF, "daftar.pdf")),
    ("done 2", lambda u: u.text("selesai")),
    ("submit", lambda u: u.choose("submit")),
    ("confirm", lambda u: u.choose("yes")),
]


async def echo(turn: Turn) -> None:
    """The baseline router: one reply, no flow, no reads or writes of its own."""
    text = getattr(turn.event, "text", None) or type(turn.event).__name__
    turn.outgoing.append(OutText(text=text))


def echo_script() -> list[tuple[str, Callable[[User], Inbound]]]:
    return [(name, lambda u, n=name: u.text(f"echo {n}")) for name, _ in SCRIPT]


# --------------------------------------------------------------------------- phases


class ErrorCounter(logging.Handler):
    """Counts (and swallows) error records: handler bugs and send failures."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


@dataclass
class Result:
    name: str
    messages: int
    seconds: float
    latencies: list[float]
    by_step: dict[str, list[float]] = field(default_factory=dict)
    sent: int = 0
    unsent: int = 0
    submitted: int = 0
    drain_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


async def unsent_count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return await outbox.count_outbox(
            session=session, statuses=(*outbox.WAITING, OutboxStatus.failed)
        )


async def run_phase(
    name: str,
    db: Database,
    workdir: Path,
    users: int,
    *,
    router: Callable[[Turn], Awaitable[None]],
    script: list[tuple[str, Callable[[User], Inbound]]],
    link: bool,
    profiler: cProfile.Profile | None = None,
    think_ms: float = 0.0,
) -> Result:
    world = await make_users(db.sessions, users, link=link)
    channel = FakeChannel()
    channels = {channel.name: channel}
    engine = Engine(
        sessions=db.sessions,
        channels=channels,
        router=router,
        wants_file=wants_file,
        evidence_store=LocalEvidenceStore(workdir / f"{name}-evidence"),
        max_upload_bytes=MAX_UPLOAD,
    )
    sender = OutboxSender(sessions=db.sessions, channels=channels, wakeup=engine.outbox_ready)
    latencies: list[float] = []
    by_step: dict[str, list[float]] = {step: [] for step, _ in script}

    async def one_user(index: int) -> None:
        user = User(index, channel, world)
        pace = random.Random(index)
        for step, make in script:
            if think_ms:
                await asyncio.sleep(think_ms * pace.uniform(0.5, 1.5) / 1000)
            event = make(user)
            started = time.perf_counter()
            await engine.handle(event)
            elapsed = (time.perf_counter() - started) * 1000
            latencies.append(elapsed)
            by_step[step].append(elapsed)

    sender_task = asyncio.create_task(sender.run())
    if profiler:
        profiler.enable()
    started = time.perf_counter()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(one_user(i) for i in range(users))), timeout=PHASE_TIMEOUT
        )
    except TimeoutError:
        print(f"{name}: stopped after {PHASE_TIMEOUT:.0f} s", file=sys.stderr)
    seconds = time.perf_counter() - started
    if profiler:
        profiler.disable()

    # Let the sender finish what was enqueued, then stop it.
    drain_started = time.perf_counter()
    unsent = await unsent_count(db.sessions)
    while unsent and time.perf_counter() - drain_started < DRAIN_TIMEOUT:
        await asyncio.sleep(0.05)
        unsent = await unsent_count(db.sessions)
    drain_seconds = time.perf_counter() - drain_started
    sender_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sender_task

    async with db.sessions() as session:
        statement = (
            select(func.count())
            .select_from(Submission)
            .where(Submission.status == SubmissionStatus.submitted)
        )
        submitted = int((await session.exec(statement)).one())
    return Result(
        name=name,
        messages=len(latencies),
        seconds=seconds,
        latencies=latencies,
        by_step=by_step,
        sent=len(channel.sent),
        unsent=unsent,
        submitted=submitted,
        drain_seconds=drain_seconds,
    )


# --------------------------------------------------------------------------- profiling


class QueryCounter:
    """Counts SQL statements per label while a label is set (one user at a time)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.label: str | None = None
        self.counts: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        sa_event.listen(engine.sync_engine, "before_cursor_execute", self._count)

    def _count(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.label is not None:
            self.counts[self.label] += 1
            self.kinds[statement.split(None, 1)[0].upper()] += 1


async def queries_per_step(url: str | None, workdir: Path) -> tuple[Counter[str], Counter[str]]:
    """One user's report, alone: SQL statements of each engine.handle (the sender's apart)."""
    async with fresh_database(url, workdir, "queries") as db:
        world = await make_users(db.sessions, 1, link=False)
        channel = FakeChannel()
        engine = Engine(
            sessions=db.sessions,
            channels={channel.name: channel},
            router=route,
            wants_file=wants_file,
            evidence_store=LocalEvidenceStore(workdir / "queries-evidence"),
            max_upload_bytes=MAX_UPLOAD,
        )
        sender = OutboxSender(sessions=db.sessions, channels={channel.name: channel})
        counter = QueryCounter(db.engine)
        user = User(0, channel, world)
        for step, make in SCRIPT:
            counter.label = step
            await engine.handle(make(user))
            counter.label = "(sender)"
            await sender.drain_all()
            counter.label = None
        return counter.counts, counter.kinds


def print_profile(profiler: cProfile.Profile, limit: int = 25) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime")
    stats.print_stats(limit)
    print("\ncProfile of the flow phase (event loop thread, by own time):")
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    print("\n".join(line for line in lines[start:] if line.strip()))


# --------------------------------------------------------------------------- report


def print_table(flow: Result, echo_result: Result, users: int, url: str, think_ms: float) -> None:
    ratio = flow.rate / echo_result.rate if echo_result.rate else 0.0
    backend = "sqlite (temp file)" if is_sqlite(url) else url.split("@")[-1]
    pace = f"think {think_ms:.0f} ms" if think_ms else "no think time"
    print(f"engine benchmark: {users} users, {len(SCRIPT)} messages each, {pace}, {backend}")
    print(
        f"{'':8} {'msgs':>6} {'secs':>7} {'msgs/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8}"
    )
    for result in (flow, echo_result):
        lat = result.latencies
        print(
            f"{result.name:8} {result.messages:>6} {result.seconds:>7.2f} {result.rate:>8.1f} "
            f"{percentile(lat, 50):>8.1f} {percentile(lat, 95):>8.1f} "
            f"{percentile(lat, 99):>8.1f} {max(lat, default=float('nan')):>8.1f}"
        )
    p95 = percentile(flow.latencies, 95)
    print(
        f"ratio flow/echo {ratio:.2f} (target >= {TARGET_RATIO:.2f}: "
        f"{'ok' if ratio >= TARGET_RATIO else 'MISSED'}); "
        f"flow p95 {p95:.1f} ms (target < {TARGET_P95_MS:.0f}: "
        f"{'ok' if p95 < TARGET_P95_MS else 'MISSED'})"
    )
    for result in (flow, echo_result):
        print(
            f"{result.name}: {result.sent} replies sent, {result.unsent} unsent "
            f"(outbox emptied {result.drain_seconds:.2f} s after the last message), "
            f"{result.submitted} reports submitted"
        )
    print("flow latency by step (ms, p50 / p95):")
    for step, values in flow.by_step.items():
        print(f"  {step:10} {percentile(values, 50):7.1f} / {percentile(values, 95):7.1f}")


async def main(args: argparse.Namespace) -> int:
    errors = ErrorCounter()
    logging.getLogger().addHandler(errors)
    logging.getLogger().setLevel(logging.ERROR)
    for noisy in ("sqlalchemy", "alembic", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    logging.lastResort = None  # the counter above is the only output of log records

    profiler = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="laporham-bench-") as tmp:
        workdir = Path(tmp)
        async with fresh_database(args.database_url, workdir, "flow") as db:
            url = db.url
            flow = await run_phase(
                "flow",
                db,
                workdir,
                args.users,
                router=route,
                script=SCRIPT,
                link=False,
                profiler=profiler,
                think_ms=args.think_ms,
            )
        async with fresh_database(args.database_url, workdir, "echo") as db:
            echo_result = await run_phase(
                "echo",
                db,
                workdir,
                args.users,
                router=echo,
                script=echo_script(),
                link=True,
                think_ms=args.think_ms,
            )
        paced = None
        if args.paced_think_ms:
            async with fresh_database(args.database_url, workdir, "paced") as db:
                paced = await run_phase(
                    "paced",
                    db,
                    workdir,
                    args.users,
                    router=route,
                    script=SCRIPT,
                    link=False,
                    think_ms=args.paced_think_ms,
                )
        counts = kinds = None
        if args.profile:
            counts, kinds = await queries_per_step(args.database_url, workdir)

    print_table(flow, echo_result, args.users, url, args.think_ms)
    if errors.count:
        print(f"{errors.count} error log records (handler failures or send errors)")
    if profiler:
        print_profile(profiler)
    if counts is not None and kinds is not None:
        handled = sum(v for k, v in counts.items() if k != "(sender)")
        print(
            f"\nSQL statements of one user's report: {handled} in engine.handle "
            f"({handled / len(SCRIPT):.1f} per message), {counts['(sender)']} in the sender"
        )
        print("  " + ", ".join(f"{step} {counts[step]}" for step, _ in SCRIPT))
        print("  by kind: " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))

    if paced:
        print(
            f"\npaced ({args.users} users pausing ~{args.paced_think_ms:.0f} ms like people on "
            f"phones): p50 {percentile(paced.latencies, 50):.1f} ms, "
            f"p95 {percentile(paced.latencies, 95):.1f} ms, "
            f"p99 {percentile(paced.latencies, 99):.1f} ms"
        )
    # Throughput and its ratio come from the saturated phases (a paced rate measures the pause);
    # latency at N concurrent users comes from the paced phase (saturated latency is queueing).
    latency = paced or flow
    ratio = flow.rate / echo_result.rate if echo_result.rate else 0.0
    summary = {
        "msgs_per_s": round(flow.rate, 1),
        "echo_msgs_per_s": round(echo_result.rate, 1),
        "ratio": round(ratio, 3),
        "p50_ms": round(percentile(latency.latencies, 50), 2),
        "p95_ms": round(percentile(latency.latencies, 95), 2),
        "p99_ms": round(percentile(latency.latencies, 99), 2),
        "saturated_p95_ms": round(percentile(flow.latencies, 95), 2),
    }
    print(json.dumps(summary))
    complete = flow.submitted == args.users and not flow.unsent and not errors.count
    complete = complete and (paced is None or paced.submitted == args.users)
    return 0 if complete else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=50, help="concurrent focal points")
    parser.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="mean pause before each message of a user (0: none; keep <= 2000 for the time cap)",
    )
    parser.add_argument(
        "--paced-think-ms",
        type=float,
        default=1000.0,
        help="a third phase where users pause ~T ms, for latency at N users (0: skip it)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/bench (its tables are emptied)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the flow and count SQL per step"
    )
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
