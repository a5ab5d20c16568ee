"""Benchmark the WhatsApp webhook path against a bare HTTP server returning 200.

    .venv/bin/python bench/whatsapp.py [--users 50] [--messages 4]

Everything runs on 127.0.0.1 in one process and one event loop: the product's HTTP server with
the WhatsApp channel, the real engine on a fresh SQLite database in a temporary directory
(seeded with one focal point per simulated user, so their first message registers them), the
outbox sender, and the fake Graph API that receives the replies.

* warm-up (untimed): every user sends "halo" and is registered from their number.
* product: every user POSTs `--messages` signed "/status" webhooks one after the other, as Meta
  would, all users at once. Accepted webhooks/s counts POSTs answered 200 (each stored in the
  inbox first) per second of wall time. Latency is from the start of a POST to the reply
  reaching the fake Graph API; p95 over all messages.
* ceiling: the same signed bodies, the same clients and pattern, against a bare Starlette app on
  uvicorn that reads the body and answers 200. Measured before and after the product (these
  machines are noisy); the better of the two counts.

Replies leave at most at 70 messages/s, the channel's own limit under Meta's 80/s per number, so
a burst faster than that waits in the outbox: that is part of the measured latency.

The last line printed is one JSON object: webhooks_per_s, ceiling_per_s, ratio, p95_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

# Allow running as a plain script from the repository root or from bench/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import App, build, evidence_store, prepare_database, whatsapp_channel
from bot.channels.whatsapp import WEBHOOK_PATH, WhatsAppChannel
from bot.http import HttpServer, build_app
from bot.settings import Settings
from storage import outbox
from storage.db import transaction
from storage.models import Contact, Office, Region, RegionKind, Role
from tests.fakes import whatsapp_payloads as wp
from tests.fakes.graph_api import FakeGraphAPI, RecordedRequest

TOKEN = "bench-token"
SECRET = "bench-app-secret"
PNID = wp.PHONE_NUMBER_ID
DEADLINE_S = 45.0  # the whole run stays well under a minute


def wa_id(user: int) -> str:
    return f"62812{user:08d}"


async def seed(app: App, users: int) -> None:
    async with transaction(app.sessions) as session:
        region = Region(code="18.71", name="Kota Bandar Lampung", kind=RegionKind.kabkota)
        session.add(region)
        await session.flush()
        office = Office(region_id=region.id or 0, code="kominfo", name="Dinas Kominfo")
        session.add(office)
        await session.flush()
        session.add_all(
            Contact(
                name=f"Pengguna {user}",
                phone=f"+{wa_id(user)}",
                role=Role.focal_point,
                region_id=region.id,
                office_id=office.id,
            )
            for user in range(users)
        )


def bodies(users: int, messages: int, text: str) -> list[list[bytes]]:
    """Each user's signed webhook bodies, made up front so signing is not timed."""
    return [
        [wp.encode(wp.text_message(wa_id(u), text, name=f"U{u}")) for _ in range(messages)]
        for u in range(users)
    ]


async def post_all(
    client: httpx.AsyncClient, url: str, per_user: list[list[bytes]]
) -> tuple[float, list[list[float]]]:
    """All users at once, each user's webhooks one after the other; (seconds, start times)."""
    starts: list[list[float]] = [[] for _ in per_user]

    async def user(index: int, items: list[bytes]) -> None:
        for body in items:
            starts[index].append(time.monotonic())
            response = await client.post(url, content=body, headers=wp.signed_headers(body, SECRET))
            if response.status_code != 200:
                raise RuntimeError(f"webhook answered {response.status_code}: {response.text}")

    began = time.perf_counter()
    await asyncio.gather(*(user(i, items) for i, items in enumerate(per_user)))
    return time.perf_counter() - began, starts


async def settle(app: App, adapter: WhatsAppChannel) -> None:
    """Until every inbound message is handled and the outbox is empty."""
    while True:
        await adapter.idle()
        async with app.sessions() as session:
            waiting = await outbox.count_outbox(
                session=session, statuses=outbox.WAITING
            )
        if not waiting and not adapter.handling:
            return
        await asyncio.sleep(0.01)


def replies(api: FakeGraphAPI, user: int) -> list[RecordedRequest]:
    to = wa_id(user)
    return [
        r
        for r in api.requests
        if r.path.endswith("/messages")
        and not r.failed
        and r.json
        and r.json.get("to") == to
        and r.json.get("status") != "read"
    ]


async def measure_product(args: argparse.Namespace, workdir: Path) -> tuple[float, list[float]]:
    async with FakeGraphAPI(token=TOKEN, phone_number_id=PNID) as api:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            whatsapp_token=TOKEN,
            whatsapp_phone_number_id=PNID,
            whatsapp_app_secret=SECRET,
            whatsapp_verify_token="bench",
            whatsapp_api_url=api.url,
            database_url=f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
            data_dir=workdir / "data",
            http_port=0,
        )
        await prepare_database(settings, seed_demo=False)
        adapter = whatsapp_channel(settings, evidence_store(settings))
        app = build(settings, [adapter])
        await seed(app, args.users)
        http = HttpServer(build_app(adapter.routes(app.engine)), host="127.0.0.1", port=0)
        await http.start()
        sender = asyncio.create_task(app.sender.run())
        url = f"http://127.0.0.1:{http.port}{WEBHOOK_PATH}"
        limits = httpx.Limits(max_connections=args.users)
        try:
            async with httpx.AsyncClient(timeout=20.0, limits=limits) as client:
                await post_all(client, url, bodies(args.users, 1, "halo"))  # registers everyone
                await settle(app, adapter)
                before = [len(replies(api, u)) for u in range(args.users)]
                per_user = bodies(args.users, args.messages, "/status")
                seconds, starts = await post_all(client, url, per_user)
                await settle(app, adapter)
            latencies = []
            for u in range(args.users):
                got = replies(api, u)[before[u] :]
                per_message = len(got) // args.messages
                if per_message == 0 or len(got) % args.messages:
                    raise RuntimeError(f"user {u}: {len(got)} replies to {args.messages} messages")
                for k, started in enumerate(starts[u]):
                    reply = got[k * per_message + per_message - 1]  # its last part
                    latencies.append((reply.at - started) * 1000)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            await adapter.close()
            await http.stop()
            await app.close()
    return args.users * args.messages / seconds, latencies


async def measure_ceiling(args: argparse.Namespace) -> float:
    async def ok(request: Request) -> PlainTextResponse:
        await request.body()
        return PlainTextResponse("ok")

    http = HttpServer(
        Starlette(routes=[Route(WEBHOOK_PATH, ok, methods=["POST"])]), host="127.0.0.1", port=0
    )
    await http.start()
    url = f"http://127.0.0.1:{http.port}{WEBHOOK_PATH}"
    limits = httpx.Limits(max_connections=args.users)
    try:
        async with httpx.AsyncClient(timeout=20.0, limits=limits) as client:
            await post_all(client, url, bodies(args.users, 1, "halo"))  # same warm-up
            seconds, _ = await post_all(client, url, bodies(args.users, args.messages, "/status"))
    finally:
        await http.stop()
    posted: int = args.users * args.messages
    return posted / seconds


async def run(args: argparse.Namespace) -> tuple[dict[str, float], float]:
    """The figures, and the median latency for the table."""
    with tempfile.TemporaryDirectory() as tmp:
        async with asyncio.timeout(DEADLINE_S):
            before = await measure_ceiling(args)
            webhooks_per_s, latencies = await measure_product(args, Path(tmp))
            ceiling_per_s = max(before, await measure_ceiling(args))
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) > 1 else latencies[0]
    figures = {
        "webhooks_per_s": round(webhooks_per_s, 1),
        "ceiling_per_s": round(ceiling_per_s, 1),
        "ratio": round(webhooks_per_s / ceiling_per_s, 3),
        "p95_ms": round(p95, 1),
    }
    return figures, statistics.median(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--messages", type=int, default=8, help="timed webhooks per user")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    figures, p50 = asyncio.run(run(args))
    total = args.users * args.messages
    print(f"{args.users} users x {args.messages} signed webhooks = {total}, SQLite, one process")
    print(f"{'metric':<36}{'value':>10}")
    print(f"{'accepted webhooks/s (product)':<36}{figures['webhooks_per_s']:>10.1f}")
    print(f"{'bare HTTP server 200/s (ceiling)':<36}{figures['ceiling_per_s']:>10.1f}")
    print(f"{'ratio':<36}{figures['ratio']:>10.3f}")
    print(f"{'p50 POST -> reply at Graph API, ms':<36}{p50:>10.1f}")
    print(f"{'p95 POST -> reply at Graph API, ms':<36}{figures['p95_ms']:>10.1f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
