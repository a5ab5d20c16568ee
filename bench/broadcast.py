"""Benchmark a broadcast: the outbox sender and the Telegram channel against Telegram's limits.

    .venv/bin/python bench/broadcast.py [--contacts 3000] [--users 20]
    .venv/bin/python bench/broadcast.py --contacts 300     # quick: well under a minute
    .venv/bin/python bench/broadcast.py --contacts 10000   # the full run
    LAPORHAM_TELEGRAM_MESSAGES_PER_SECOND=30 .venv/bin/python bench/broadcast.py --skip-baseline

The fake Bot API (tests/fakes/telegram_api.py) runs here over real HTTP and ENFORCES Telegram's
flood limits (SendLimits: 30 messages in any one second, per chat 3 in any 3 s), answering
429 with retry_after past them.

* product: `laporham run` as composed by bot.app.run_channels (the real sender, the real
  Telegram channel with its default pace, polling, a fresh SQLite database), in this process.
  The broadcast is N outbox rows with purpose "broadcast" (as /siaran writes them), committed at
  once. While it goes out, `--users` people write "halo" to the bot, spread over the broadcast;
  each is answered through the engine and the outbox like any reply.
* baseline: python-telegram-bot's own AIORateLimiter (its defaults: 30/s overall) on an ExtBot
  sending the same list as fast as it lets it, every send started at once, retrying a 429 up to
  5 times, against a fresh enforcing fake.

The machine's load (1-minute average, before and after) and the process's CPU time are printed
with the figures: on a loaded machine the event loop stalls, which is what the pacer's window is
for, so say the load with any figure.

Figures: achieved messages/s over the broadcast (first to last accepted message, as the fake
received them) as a fraction of the 30/s limit; the 429s the fake answered; and for the
product, the time from a user's message to the fake receiving its first reply (p95).
The last line printed is one JSON object: fraction_of_limit, http_429, reply_p95_s,
baseline_fraction_of_limit, baseline_http_429, planner_national_s (bench/planner.py's planner on
its national data set, timed after the broadcasts; null with --skip-planner).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, bench/ is first on sys.path, and bench/telegram.py would shadow the
# `telegram` package: put the repository root there instead.
REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

from tests.fakes.telegram_api import (  # noqa: E402
    DEFAULT_TOKEN,
    FakeTelegramAPI,
    RecordedRequest,
    SendLimits,
    text_update,
)

LIMIT = SendLimits()
FIRST_CONTACT = 5_000_000
FIRST_USER = 9_000_000
GUARD = 1_800  # seconds: a hang fails the benchmark, not the machine


def broadcast_text(index: int) -> str:
    return f"Siaran Kanwil: batas unggah B08 tanggal 25 Agustus. ({index})"


def accepted(api: FakeTelegramAPI, prefix: str) -> list[RecordedRequest]:
    return [
        record
        for record in api.requests
        if record.method == "sendMessage"
        and record.finished
        and not record.failed
        and str(record.params.get("text", "")).startswith(prefix)
    ]


def rate(api: FakeTelegramAPI, prefix: str) -> float:
    """Messages/s the fake accepted from the first to the last broadcast message, counting
    every message in that span (the replies to users take their share of the 30/s too)."""
    span = sorted(record.at for record in accepted(api, prefix))
    if len(span) < 2:
        return 0.0
    inside = [at for at in (r.at for r in accepted(api, "")) if span[0] <= at <= span[-1]]
    return (len(inside) - 1) / (span[-1] - span[0])


async def wait_until(check: Any, what: str) -> None:
    """Poll a condition on what the fake recorded; past GUARD, fail naming `what`."""
    try:
        async with asyncio.timeout(GUARD):
            while not check():  # noqa: ASYNC110 - a condition on the fake's records
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise SystemExit(f"benchmark hung waiting for: {what}") from None


# --------------------------------------------------------------------------- product


async def run_product(contacts: int, users: int, workdir: Path) -> dict[str, float]:
    from bot.app import evidence_store, prepare_database, run_channels, telegram_channel
    from bot.engine.channel import Channel
    from bot.engine.events import OutText, outgoing_to_payload
    from bot.settings import Settings
    from storage import outbox
    from storage.db import create_engine, session_factory, transaction

    async with FakeTelegramAPI(token=DEFAULT_TOKEN, limits=LIMIT) as api:
        settings = Settings(
            telegram_token=DEFAULT_TOKEN,
            telegram_api_url=api.url,
            database_url=f"sqlite+aiosqlite:///{workdir / 'laporham.db'}",
            data_dir=workdir / "data",
            http_port=0,
        )
        await prepare_database(settings, seed_demo=False)
        stop = asyncio.Event()
        channel = telegram_channel(settings, evidence_store(settings))
        product = asyncio.create_task(run_channels(settings, [channel], stop=stop))
        await api.wait_for("getUpdates", timeout=60, finished=False)

        db = create_engine(settings.database_url)
        rows = [
            outbox.outbox_row(
                idempotency_key=f"broadcast:bench:{n}",
                channel=Channel.telegram,
                recipient=str(FIRST_CONTACT + n),
                payload=outgoing_to_payload(OutText(text=broadcast_text(n))),
                purpose="broadcast",
            )
            for n in range(contacts)
        ]
        async with transaction(session_factory(db)) as session:
            await outbox.insert_outbox(session=session, rows=rows)
        await db.dispose()
        # The sender polls the table every second; a real producer wakes it, which is the
        # same poll at most a second sooner.

        broadcast_done = lambda: len(accepted(api, "Siaran Kanwil")) >= contacts  # noqa: E731
        await wait_until(lambda: len(accepted(api, "Siaran Kanwil")) >= 1, "first broadcast")
        expected_seconds = contacts / LIMIT.overall_per_second
        pushed: dict[int, float] = {}
        for n in range(users):  # spread over the broadcast's expected span
            await asyncio.sleep(expected_seconds * 0.8 / max(1, users))
            user = FIRST_USER + n
            api.push_update(text_update(user, "halo"))
            pushed[user] = api.clock()
        await wait_until(broadcast_done, "broadcast")

        def first_reply(user: int) -> float | None:
            for record in api.requests:
                if (
                    record.method == "sendMessage"
                    and record.params.get("chat_id") == user
                    and record.finished
                    and not record.failed
                ):
                    return record.at
            return None

        await wait_until(lambda: all(first_reply(user) for user in pushed), "replies")
        reply_times = sorted(
            (first_reply(user) or 0.0) - pushed_at for user, pushed_at in pushed.items()
        )
        stop.set()
        await asyncio.wait_for(product, 60)
        achieved = rate(api, "Siaran Kanwil")
        return {
            "rate": achieved,
            "http_429": api.rate_limited,
            "reply_p95_s": percentile(reply_times, 95),
            "reply_max_s": max(reply_times) if reply_times else 0.0,
            "most_in_one_second": api.most_in_one_second(
                lambda r: r.method == "sendMessage" and not r.failed
            ),
        }


def percentile(values: list[float], pct: int) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


# --------------------------------------------------------------------------- baseline


async def run_baseline(contacts: int) -> dict[str, float]:
    from telegram.error import RetryAfter
    from telegram.ext import AIORateLimiter, ExtBot
    from telegram.request import HTTPXRequest

    async with FakeTelegramAPI(token=DEFAULT_TOKEN, limits=LIMIT) as api:
        bot = ExtBot(
            DEFAULT_TOKEN,
            base_url=f"{api.url}/bot",
            base_file_url=f"{api.url}/file/bot",
            request=HTTPXRequest(connection_pool_size=64, pool_timeout=60),
            rate_limiter=AIORateLimiter(max_retries=5),
        )
        await bot.initialize()
        lost = 0

        async def send(n: int) -> None:
            nonlocal lost
            try:
                await bot.send_message(FIRST_CONTACT + n, broadcast_text(n))
            except RetryAfter:
                lost += 1  # still refused after its retries

        try:
            await asyncio.wait_for(asyncio.gather(*(send(n) for n in range(contacts))), GUARD)
        finally:
            await bot.shutdown()
        return {
            "rate": rate(api, "Siaran Kanwil"),
            "http_429": api.rate_limited,
            "lost": lost,
            "most_in_one_second": api.most_in_one_second(
                lambda r: r.method == "sendMessage" and not r.failed
            ),
        }


# --------------------------------------------------------------------------- main


async def main(contacts: int, users: int, *, skip_baseline: bool = False) -> dict[str, Any]:
    logging.basicConfig(level=logging.ERROR)
    limit = LIMIT.overall_per_second
    load_before, cpu_before = os.getloadavg()[0], time.process_time()
    with tempfile.TemporaryDirectory(prefix="laporham-broadcast-") as tmp:
        started = time.perf_counter()
        product = await run_product(contacts, users, Path(tmp))
        product_seconds = time.perf_counter() - started
    product_cpu = time.process_time() - cpu_before
    load_after = os.getloadavg()[0]
    print(f"broadcast to {contacts} contacts, limit {limit} msg/s overall, 3 per 3 s per chat")
    print(
        f"load average (1 min) {load_before:.1f} before, {load_after:.1f} after the product's run "
        f"on {os.cpu_count()} CPUs; its CPU time {product_cpu:.0f} s"
    )
    print(
        f"product:  {product['rate']:.2f} msg/s = {product['rate'] / limit:.1%} of the limit, "
        f"{product['http_429']} x 429, most in one second {product['most_in_one_second']}, "
        f"reply to {users} users p95 {product['reply_p95_s']:.2f} s "
        f"(max {product['reply_max_s']:.2f} s), {product_seconds:.0f} s wall"
    )
    figures: dict[str, Any] = {
        "fraction_of_limit": round(product["rate"] / limit, 3),
        "http_429": product["http_429"],
        "reply_p95_s": round(product["reply_p95_s"], 3),
        "baseline_fraction_of_limit": None,
        "baseline_http_429": None,
        "planner_national_s": None,
    }
    if skip_baseline:
        return figures
    started = time.perf_counter()
    baseline = await run_baseline(contacts)
    baseline_seconds = time.perf_counter() - started
    print(
        f"baseline: {baseline['rate']:.2f} msg/s = {baseline['rate'] / limit:.1%} of the limit, "
        f"{baseline['http_429']} x 429, most in one second {baseline['most_in_one_second']}, "
        f"{baseline['lost']} lost after 5 retries, {baseline_seconds:.0f} s wall "
        "(PTB AIORateLimiter)"
    )
    figures["baseline_fraction_of_limit"] = round(baseline["rate"] / limit, 3)
    figures["baseline_http_429"] = baseline["http_429"]
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=3000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--skip-planner", action="store_true", help="don't time the planner")
    parser.add_argument(
        "--skip-baseline", action="store_true", help="don't run PTB's AIORateLimiter"
    )
    args = parser.parse_args()
    figures = asyncio.run(main(args.contacts, args.users, skip_baseline=args.skip_baseline))
    if not args.skip_planner:
        # Its own event loops and temporary database: timed outside the broadcast's loop.
        from bench.planner import planner_national_seconds

        figures["planner_national_s"] = round(planner_national_seconds(), 3)
        print(f"reminder planner, national data set: {figures['planner_national_s']:.3f} s")
    print(json.dumps(figures))
