"""Benchmark the Telegram channel against a bare python-telegram-bot echo bot.

    .venv/bin/python bench/telegram.py [--users 50] [--rounds 7]

Each bot runs in its own process, as in production; this process runs the fake Bot API
(tests/fakes/telegram_api.py, a fresh one per round) and the simulated users, who see every
reply the moment the fake receives it.

* product: the real composition (bot.app.run_channels) polling the fake, over a fresh SQLite
  database in a temporary directory, seeded with one office and one focal point per user.
  Every user walks the first steps of a report as a person would, each step sent only after the
  reply to the previous one arrived: "halo", share own number, /lapor, tap the action, "25",
  tap "Ya", tap "Lewati", send a photo. Every step is persisted (inbox, state, answers, the
  photo through the evidence pipeline, outbox) before its reply goes out; a tap is also
  answered (answerCallbackQuery) and its keyboard removed (editMessageReplyMarkup).
* baseline: an ExtBot echo bot with PTB's default transport (getUpdates loop, each batch
  answered concurrently, one sendMessage per update, no database), driven by the same users
  with the same updates.

Echo and product rounds alternate (--rounds of each, 7 by default). This machine's speed drifts
by tens of percent within a minute, so each product round is compared with the echo round run
just before it: the ratio reported is the median of those paired ratios, which a drift between
pairs does not move. Single echo rounds still range over nearly a factor of two (the echo bot
answers each getUpdates batch as a whole, so its rate depends on how batches fall): seven pairs
keep one or two odd rounds from deciding the median. The rates reported are each bot's median
round (their ratio is printed too). Both run without send-rate limits (the fake has none; the
product's 30/s and per-chat limits would only measure themselves). updates/s = updates / wall
time from the first push to the last reply; latency = from pushing an update to the fake
receiving its reply (the first one that answers the step); CPU ms per update = the bot
process's CPU time from its first poll to the last reply, per update (both bots are CPU-bound
here, so this is the steadier figure); peak RSS is the product process's own
(resource.getrusage in that process; Linux starts a child's high-water mark at its parent's
RSS, so this process spawns it while still small). The last line printed is one JSON object:
updates_per_s, echo_updates_per_s, ratio, p95_ms (over all product rounds), peak_rss_mb.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Run as a script, bench/ is first on sys.path, and this file would shadow the `telegram`
# package: put the repository root there instead.
REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

from tests.fakes.telegram_api import (  # noqa: E402
    DEFAULT_TOKEN,
    FakeTelegramAPI,
    RecordedRequest,
    callback_update,
    contact_update,
    photo_update,
    text_update,
)

Json = dict[str, Any]
FIRST_USER = 800_000
STEPS = 8
TIME_LIMIT = 25  # seconds per round of a bot: a hang fails the benchmark, not the machine


def phone(index: int) -> str:
    return f"+62812{index:07d}"


def jpeg(index: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (index % 256, (index // 256) % 256, 77)).save(buffer, "JPEG")
    return buffer.getvalue()


# --------------------------------------------------------------------------- the bots (children)


async def serve_product(api_url: str, database_url: str, data_dir: str) -> None:
    from bot.app import evidence_store, run_channels, telegram_channel
    from bot.channels.telegram import Limits
    from bot.settings import Settings

    settings = Settings(
        telegram_token=DEFAULT_TOKEN,
        telegram_api_url=api_url,
        database_url=database_url,
        data_dir=Path(data_dir),
        http_port=0,
    )
    unlimited = Limits(overall_per_second=1_000_000, chat_burst=1_000_000, chat_period=1)
    channel = telegram_channel(settings, evidence_store(settings), limits=unlimited)
    await run_channels(settings, [channel])


async def serve_echo(api_url: str) -> None:
    """The baseline: the least a PTB bot does for an update, with no database."""
    from telegram.ext import ExtBot
    from telegram.request import HTTPXRequest

    bot = ExtBot(
        DEFAULT_TOKEN,
        base_url=f"{api_url}/bot",
        base_file_url=f"{api_url}/file/bot",
        request=HTTPXRequest(connection_pool_size=64),
        get_updates_request=HTTPXRequest(connection_pool_size=2),
    )
    await bot.initialize()

    async def echo(update: Any) -> None:
        message = update.effective_message
        query = update.callback_query
        text = (message.text if message else None) or (query.data if query else None)
        await bot.send_message(update.effective_chat.id, text or "ok")

    try:
        offset = None
        while True:
            updates = await bot.get_updates(offset=offset, timeout=10)
            await asyncio.gather(*(echo(update) for update in updates))
            if updates:
                offset = updates[-1].update_id + 1
    finally:
        await bot.shutdown()


def serve(work: Coroutine[Any, Any, None]) -> None:
    """Child process: run a bot until SIGTERM, then print its peak RSS as the last line."""

    async def until_terminated() -> None:
        task = asyncio.ensure_future(work)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(until_terminated())
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


@contextlib.asynccontextmanager
async def child(*args: str) -> AsyncIterator[Json]:
    """Start this script as a bot process; the yielded dict gets its figures once it ends."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, *args, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    figures: Json = {"pid": proc.pid}
    failed = False
    try:
        yield figures
    except BaseException:
        failed = True
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have died: its log says why
            proc.terminate()
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        lines = out.decode().strip().splitlines()
        with contextlib.suppress(ValueError, IndexError):
            figures.update(json.loads(lines[-1]))
        if failed or "peak_rss_mb" not in figures:
            # Its log matters only when it failed: stopping it mid-query logs a cancellation.
            sys.stderr.write(err.decode()[-5000:])


# --------------------------------------------------------------------------- the users


@dataclass
class Step:
    make: Callable[[RecordedRequest | None], Json]  # the update, given the previous reply
    marker: str  # text that identifies the reply to wait for


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    first_push: float = float("inf")
    last_reply: float = 0.0

    @property
    def updates(self) -> int:
        return len(self.latencies)

    @property
    def per_second(self) -> float:
        return self.updates / max(1e-9, self.last_reply - self.first_push)


def tap(user: int, data: str) -> Callable[[RecordedRequest | None], Json]:
    def make(previous: RecordedRequest | None) -> Json:
        assert previous is not None
        return callback_update(
            user,
            data,
            message_id=previous.result["message_id"],
            reply_markup=previous.params.get("reply_markup"),
        )

    return make


def journey(user: int, action_id: int, photo: Json, *, echo: bool) -> list[Step]:
    index = user - FIRST_USER
    steps = [
        Step(lambda _: text_update(user, "halo"), "Bagikan nomor saya"),
        Step(lambda _: contact_update(user, phone(index), contact_user_id=user), "Selamat datang"),
        Step(lambda _: text_update(user, "/lapor"), "pilih aksi"),
        Step(tap(user, f"a:{action_id}"), "Berapa penerima"),
        Step(lambda _: text_update(user, "25"), "daftar penerima"),
        Step(tap(user, "yes"), "Catatan tambahan"),
        Step(tap(user, "skip"), "Foto kegiatan"),
        Step(lambda _: photo_update(user, [photo]), "Diterima"),
    ]
    if echo:  # the echo bot answers anything with one message
        steps = [Step(step.make, "") for step in steps]
    return steps


def reply_to(user: int, marker: str) -> Callable[[RecordedRequest], bool]:
    def match(record: RecordedRequest) -> bool:
        return (
            record.method == "sendMessage"
            and not record.failed
            and record.params.get("chat_id") == user
            and marker in str(record.params.get("text", ""))
        )

    return match


async def walk(api: FakeTelegramAPI, user: int, steps: list[Step], run: Run) -> None:
    previous: RecordedRequest | None = None
    for step in steps:
        start = len(api.requests)
        pushed = time.monotonic()
        run.first_push = min(run.first_push, pushed)
        api.push_update(step.make(previous))
        previous = await api.wait_for(reply_to(user, step.marker), TIME_LIMIT, start=start)
        run.latencies.append(previous.at - pushed)
        run.last_reply = max(run.last_reply, previous.at)


async def drive(api: FakeTelegramAPI, users: int, action_id: int, *, echo: bool) -> Run:
    photos = [api.add_file(f"photo-{n}", jpeg(n), kind="photo") for n in range(users)]
    # Ready once it polls: every update pushed from now on is the bot's work alone.
    await api.wait_for("getUpdates", 20, finished=False)
    run = Run()
    async with asyncio.timeout(TIME_LIMIT):
        await asyncio.gather(
            *(
                walk(api, FIRST_USER + n, journey(FIRST_USER + n, action_id, photos[n], echo=echo),
                     run)
                for n in range(users)
            )
        )  # fmt: skip
    return run


# --------------------------------------------------------------------------- set-up and report


async def seed(database_url: str, users: int) -> int:
    """One region, the report catalogue, and an office with its own focal point per user."""
    from storage.db import create_engine, session_factory, transaction
    from storage.migrate import upgrade_async
    from storage.models import Assignment, Contact, Office, Role
    from tests.support.factories import make_world

    await upgrade_async(database_url)
    db = create_engine(database_url)
    try:
        async with transaction(session_factory(db)) as session:
            world = await make_world(session)
            world.focal_point.phone = phone(0)
            for n in range(1, users):
                office = Office(region_id=world.region.id or 0, code=f"opd-{n}", name=f"OPD {n}")
                session.add(office)
                await session.flush()
                session.add_all([
                    Contact(name=f"Focal {n}", phone=phone(n), role=Role.focal_point,
                            region_id=world.region.id, office_id=office.id),
                    Assignment(action_id=world.action.id or 0, office_id=office.id or 0),
                ])  # fmt: skip
            return world.action.id or 0
    finally:
        await db.dispose()


@dataclass
class Round:
    run: Run
    cpu_s: float  # the bot process's CPU time from its first poll to the last reply
    peak_rss_mb: float = 0.0

    @property
    def cpu_ms_per_update(self) -> float:
        return 1000 * self.cpu_s / max(1, self.run.updates)


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measured(
    api: FakeTelegramAPI, figures: Json, drive_it: Coroutine[Any, Any, Run]
) -> Round:
    """Drive a started bot; its CPU time counts from its first poll (imports and migrations
    excluded) to the last reply."""
    await api.wait_for("getUpdates", 30, finished=False)
    before = process_cpu_seconds(figures["pid"])
    run = await drive_it
    return Round(run, process_cpu_seconds(figures["pid"]) - before)


async def echo_round(users: int) -> Round:
    async with FakeTelegramAPI() as api, child("--serve", "echo", "--api-url", api.url) as figures:
        return await measured(api, figures, drive(api, users, 0, echo=True))


async def product_round(users: int, workdir: Path) -> Round:
    """On a fresh database, seeded with the users, as a first day of reporting would be."""
    database_url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    action_id = await seed(database_url, users)
    async with (
        FakeTelegramAPI() as api,
        child("--serve", "product", "--api-url", api.url, "--database-url", database_url,
              "--data-dir", str(workdir / "data")) as figures,
    ):  # fmt: skip
        result = await measured(api, figures, drive(api, users, action_id, echo=False))
        await asyncio.sleep(0.5)  # let the outbox record its last sends before stopping it
    result.peak_rss_mb = float(figures.get("peak_rss_mb", 0.0))
    return result


async def measure(users: int, rounds: int, workdir: Path) -> tuple[list[Round], list[Round]]:
    """Echo and product rounds alternate, so that a machine that speeds up or slows down
    during the run (other work, CPU frequency) weighs on both alike."""
    echoes: list[Round] = []
    products: list[Round] = []
    for index in range(rounds):
        echoes.append(await echo_round(users))
        products.append(await product_round(users, workdir / f"round-{index}"))
    return products, echoes


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def paired_ratios(products: list[Round], echoes: list[Round]) -> list[float]:
    """Each product round's rate over the echo round run just before it."""
    return [
        product.run.per_second / echo.run.per_second
        for product, echo in zip(products, echoes, strict=True)
    ]


def report(users: int, products: list[Round], echoes: list[Round]) -> None:
    product_rate = statistics.median(r.run.per_second for r in products)
    echo_rate = statistics.median(r.run.per_second for r in echoes)
    ratios = paired_ratios(products, echoes)
    latencies = [latency for r in products for latency in r.run.latencies]
    figures = {
        "updates_per_s": round(product_rate, 1),
        "echo_updates_per_s": round(echo_rate, 1),
        "ratio": round(statistics.median(ratios), 3),
        "p95_ms": round(p95(latencies) * 1000, 1),
        "peak_rss_mb": round(max(r.peak_rss_mb for r in products), 1),
    }
    rounds = len(products)
    print(f"{users} users x {STEPS} steps = {products[0].run.updates} updates per bot and round,")
    print(f"{rounds} rounds of each bot, alternating; rates are the median round's")
    print(f"{'metric':<38}{'LaporHAM':>10}{'echo bot':>10}{'ratio':>8}")
    print(f"{'updates/s':<38}{product_rate:>10.1f}{echo_rate:>10.1f}"
          f"{product_rate / echo_rate:>8.3f}")  # fmt: skip
    paired = zip(products, echoes, ratios, strict=True)
    for index, (product, echo, ratio) in enumerate(paired, start=1):
        label = f"  round {index} updates/s"
        print(f"{label:<38}{product.run.per_second:>10.1f}{echo.run.per_second:>10.1f}"
              f"{ratio:>8.3f}")  # fmt: skip
    cpu = statistics.median(r.cpu_ms_per_update for r in products)
    echo_cpu = statistics.median(r.cpu_ms_per_update for r in echoes)
    print(f"{'CPU ms per update (median round)':<38}{cpu:>10.2f}{echo_cpu:>10.2f}")
    echo_latencies = [latency for r in echoes for latency in r.run.latencies]
    print(f"{'p50 ms, update to reply':<38}{statistics.median(latencies) * 1000:>10.1f}"
          f"{statistics.median(echo_latencies) * 1000:>10.1f}")  # fmt: skip
    print(f"{'p95 ms, update to reply':<38}{figures['p95_ms']:>10.1f}"
          f"{p95(echo_latencies) * 1000:>10.1f}")  # fmt: skip
    print(f"{'peak RSS MB':<38}{figures['peak_rss_mb']:>10.1f}")
    print(f"{'ratio, median of the rounds (>= 0.40)':<38}{figures['ratio']:>10.3f}")
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--serve", choices=["product", "echo"], help=argparse.SUPPRESS)
    parser.add_argument("--api-url", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "product":
        serve(serve_product(args.api_url, args.database_url, args.data_dir))
    elif args.serve == "echo":
        serve(serve_echo(args.api_url))
    else:
        with tempfile.TemporaryDirectory(prefix="laporham-bench-") as tmp:
            products, echoes = asyncio.run(measure(args.users, args.rounds, Path(tmp)))
        report(args.users, products, echoes)


if __name__ == "__main__":
    main()
