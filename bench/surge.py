"""Benchmark the reply time focal points feel on a deadline eve, when many report at once.

    .venv/bin/python bench/surge.py [--users 300] [--min-gap 10] [--max-gap 20] [--seed 1]
                                    [--skip-pg] [--by-step]
    quick (a smoke test: about 40 s a database here, and 20-35 s to drop the PostgreSQL one):
    .venv/bin/python bench/surge.py --users 20 --min-gap 1 --max-gap 2 [--skip-pg]

N focal points (half on Telegram, half on WhatsApp, at the same time) each walk a whole report
at a human pace: a message every --min-gap to --max-gap seconds (uniformly jittered, the first
within the first --max-gap), never before the reply to the previous one arrived. Telegram (15
messages): "halo", share own number, /lapor, tap the action, "25", tap Ya, tap Lewati, a photo,
/selesai, a date, tap Pelatihan, a PDF, "selesai", tap Kirim laporan, tap "Ya, kirim". WhatsApp
(14): the same without sharing the number (the sender is recognised by it). Photos are 1280 x
960 JPEGs of about 240 kB, each user's own (the apps recompress photos to about that size).

```mermaid
flowchart LR
    U[simulated users] -- push_update --> TG[FakeTelegramAPI]
    U -- signed webhook POST --> HTTP
    subgraph product ["product process: bot.app.run_channels"]
        TGC[Telegram channel, long polling]
        HTTP[HTTP server, WhatsApp channel]
    end
    TGC -- getUpdates, getFile, sendMessage --> TG
    HTTP -- media, messages --> GR[FakeGraphAPI]
    TG & GR -- "on_request: each reply as it arrives" --> U
```

This process runs the fakes (tests/fakes) and the users; the product runs in its own process,
composed as `laporham run` composes it (bot.app: configured_channels, which builds
telegram_channel and whatsapp_channel, then run_channels), with production settings and the
channels' own default send limits (Telegram ~30 messages/s and a burst of 3 then 1 per second
per chat; WhatsApp 70 messages/s and 10 per 10 s per recipient), on a fresh SQLite file, then
again on a PostgreSQL database made for the run on 127.0.0.1:5432 (dropped at the end; skipped
with a notice when no server answers, or with --skip-pg). Each database is migrated
(storage.migrate) and seeded like tests/support/factories.make_world plus one office per user,
with its focal point (a phone number) and the report's action assigned; Telegram users' offices
are in one kabupaten/kota, WhatsApp users' in another, so the reports submitted are counted per
channel (storage.oversight.status_counts, as a provincial coordinator sees them).

Latency is from when a message is handed to the fake (queued for getUpdates, or the webhook POST
sent) to when the fake receives the bot's reply to it: the message that answers the step (the
next question, the receipt), which is what the user waits for. A message lost is one that never
got that reply (within REPLY_TIMEOUT_S, or a webhook not answered 200; the user stops there) or
a report not submitted at the end: it must be 0. Offered rate = messages sent / time from the
first to the last. Also printed: the CPU the product and this process used during the walk, the
machine's load (other work on it slows the product), the product's logged warnings and errors,
and with --by-step each step's latency. The target, reported and not asserted: p95 under 1,000
ms on both channels and both databases at 300 users on two cores. The last line printed is one
JSON object: users, offered_per_s, telegram_p95_ms, whatsapp_p95_ms (SQLite), lost (both
databases), pg_telegram_p95_ms, pg_whatsapp_p95_ms (null when PostgreSQL was skipped). The exit
status is 1 when anything was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# Run as a script, bench/ is first on sys.path, and bench/telegram.py would shadow the
# `telegram` package: put the repository root there instead.
REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from bot.channels.whatsapp import WEBHOOK_PATH  # noqa: E402
from bot.settings import Environment, Settings  # noqa: E402
from storage.db import create_engine, session_factory, transaction  # noqa: E402
from storage.migrate import upgrade_async  # noqa: E402
from storage.models import Assignment, Contact, Office, Region, RegionKind, Role  # noqa: E402
from storage.oversight import status_counts  # noqa: E402
from storage.types import utcnow  # noqa: E402
from tests.fakes import graph_api, telegram_api  # noqa: E402
from tests.fakes import whatsapp_payloads as wp  # noqa: E402
from tests.fakes.graph_api import FakeGraphAPI  # noqa: E402
from tests.fakes.telegram_api import FakeTelegramAPI  # noqa: E402
from tests.support.factories import make_world  # noqa: E402
from tests.support.harness import pdf_bytes  # noqa: E402

Json = dict[str, Any]

TELEGRAM = "telegram"
WHATSAPP = "whatsapp"
CHANNELS = (TELEGRAM, WHATSAPP)
TELEGRAM_TOKEN = "7000000001:SURGE-bench-token-0123456789abcdef"  # production checks its length
WHATSAPP_TOKEN = "surge-whatsapp-token-0123456789"
APP_SECRET = "surge-app-secret-0123456789"  # signs local webhooks only
PHONE_NUMBER_ID = wp.PHONE_NUMBER_ID
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}

REPLY_TIMEOUT_S = 180.0  # a reply later than this counts as lost: the user has given up
START_TIMEOUT_S = 60.0  # the product's imports and start-up
STOP_TIMEOUT_S = 20.0
WEBHOOK_ATTEMPTS = 3
# Idle connections are dropped before uvicorn's own 5 s keep-alive ends, so a POST rarely
# meets a connection the server is closing.
CLIENT_LIMITS = httpx.Limits(max_connections=64, keepalive_expiry=2.0)
TARGET_P95_MS = 1000.0
PHOTO_SIZE = (1280, 960)
NOISE = (120, 90)  # random pixels a photo is smoothed from: ~240 kB as JPEG


# --------------------------------------------------------------------------- the product


def product_settings(args: argparse.Namespace) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]  # pydantic-settings' init-only option
        environment=Environment.production,
        database_url=args.database_url,
        data_dir=Path(args.data_dir),
        http_host="127.0.0.1",
        http_port=0,
        telegram_token=TELEGRAM_TOKEN,
        telegram_api_url=args.telegram_api_url,
        whatsapp_token=WHATSAPP_TOKEN,
        whatsapp_phone_number_id=PHONE_NUMBER_ID,
        whatsapp_app_secret=APP_SECRET,
        whatsapp_verify_token="surge-verify-token-0123456789",
        whatsapp_api_url=args.graph_api_url,
        invite_secret="surge-invite-key-0123456789abcdef",
    )


async def serve_product(args: argparse.Namespace) -> None:
    """What `laporham run` serves: configured_channels builds telegram_channel(settings,
    evidence_store(settings)) and whatsapp_channel(...) alike, with their default limits."""
    from bot.app import configured_channels, run_channels

    settings = product_settings(args)
    channels = configured_channels(settings)
    if sorted(channel.name for channel in channels) != sorted(CHANNELS):
        raise RuntimeError(f"expected both channels, got {[c.name for c in channels]}")

    def announce(port: int) -> None:  # the first stdout line is the contract with the parent
        print(json.dumps({"http_port": port}), flush=True)

    # SIGTERM stops it as it stops `laporham run`: gracefully (the log shows what that leaves).
    await run_channels(settings, channels, on_http_started=announce, handle_signals=True)


def serve(args: argparse.Namespace) -> None:
    """Child process: run the product until SIGTERM. Its log (stderr) goes to a file."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(serve_product(args))


@dataclass
class Product:
    pid: int
    port: int
    exited: asyncio.Task[int]
    log: Path


@contextlib.asynccontextmanager
async def product(
    database_url: str, workdir: Path, telegram_url: str, graph_url: str
) -> AsyncIterator[Product]:
    """This script as the product's process; yields once its HTTP server listens."""
    log = workdir / "product.log"
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve",
            "--database-url", database_url, "--data-dir", str(workdir / "data"),
            "--telegram-api-url", telegram_url, "--graph-api-url", graph_url,
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
    exited = asyncio.create_task(proc.wait())
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
        if not first:
            raise RuntimeError(f"the product stopped at start-up:\n{tail(log)}")
        yield Product(proc.pid, json.loads(first)["http_port"], exited, log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(asyncio.shield(exited), STOP_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await exited


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def log_problems(log: Path) -> list[str]:
    """Warnings and errors the product logged (one line each, by the house rules)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return [line for line in text.splitlines() if line.startswith(("WARNING", "ERROR"))]


# --------------------------------------------------------------------------- seed and count


@dataclass(frozen=True)
class Seeded:
    action_id: int
    coordinator: Contact  # the province's coordinator: counts reports per region
    regions: dict[str, str]  # channel -> the name of its users' kabupaten/kota


def phone_of(index: int) -> str:
    return f"+62813{index:08d}"


def channel_of(index: int) -> str:
    return TELEGRAM if index % 2 == 0 else WHATSAPP


async def seed(database_url: str, users: int) -> Seeded:
    """make_world, a second kabupaten/kota, and one office with its focal point per user."""
    await upgrade_async(database_url)
    db = create_engine(database_url)
    try:
        async with transaction(session_factory(db)) as session:
            world = await make_world(session)
            metro = Region(
                code="18.72", name="Kota Metro", kind=RegionKind.kabkota,
                parent_id=world.province.id, timezone=world.region.timezone,
            )  # fmt: skip
            coordinator = Contact(
                name="Koordinator Lampung", role=Role.coordinator, region_id=world.province.id
            )
            session.add_all([metro, coordinator])
            await session.flush()
            region_of = {TELEGRAM: world.region, WHATSAPP: metro}
            offices = [
                Office(region_id=region_of[channel_of(n)].id or 0, code=f"opd-{n}", name=f"OPD {n}")
                for n in range(users)
            ]
            session.add_all(offices)
            await session.flush()
            for n, office in enumerate(offices):
                session.add_all([
                    Contact(name=f"Fokal {n}", phone=phone_of(n), role=Role.focal_point,
                            region_id=office.region_id, office_id=office.id),
                    Assignment(action_id=world.action.id or 0, office_id=office.id or 0),
                ])  # fmt: skip
            regions = {channel: region.name for channel, region in region_of.items()}
            return Seeded(world.action.id or 0, coordinator, regions)
    finally:
        await db.dispose()


async def submitted_by_channel(database_url: str, seeded: Seeded) -> dict[str, int]:
    """Reports submitted, as the provincial coordinator's /status counts them per region."""
    db = create_engine(database_url)
    try:
        async with session_factory(db)() as session:
            rows = await status_counts(session=session, contact=seeded.coordinator, now=utcnow())
    finally:
        await db.dispose()
    by_region = {row.region_name: row.submitted for row in rows}
    return {channel: by_region.get(name, 0) for channel, name in seeded.regions.items()}


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class Step:
    kind: str  # text, contact, choice, photo, pdf
    value: str  # the text typed, or the id of the choice tapped
    marker: str  # text of the reply that answers the step (<b> and *bold* both contain it)
    name: str = ""  # for --by-step, when the default would repeat

    @property
    def label(self) -> str:
        default = {"text": self.value, "choice": f"tap {self.value}"}.get(self.kind, self.kind)
        return self.name or default


def steps_for(channel: str, action_id: int) -> list[Step]:
    register = (
        [Step("text", "halo", "Bagikan nomor saya"), Step("contact", "", "Anda terdaftar")]
        if channel == TELEGRAM
        else [Step("text", "halo", "Anda terdaftar")]  # recognised by the number it writes from
    )
    return [
        *register,
        Step("text", "/lapor", "pilih aksi"),
        Step("choice", f"a:{action_id}", "Berapa penerima bantuan"),
        Step("text", "25", "Apakah sudah ada daftar penerima"),
        Step("choice", "yes", "Catatan tambahan"),
        Step("choice", "skip", "Data dukung: Foto kegiatan"),
        Step("photo", "", "Foto kegiatan: 1 berkas"),
        Step("text", "/selesai", "Tanggal penetapan daftar penerima"),
        Step("text", "25-08-2025", "Jenis bantuan"),
        Step("choice", "c:0", "Data dukung: Daftar penerima"),
        Step("pdf", "", "Daftar penerima: 1 berkas"),
        Step("text", "selesai", "Kirim laporan sekarang?"),
        Step("choice", "submit", "Kirim laporan ini?"),
        Step("choice", "yes", "terkirim", "tap yes (send it)"),
    ]


@dataclass(frozen=True)
class Plan:
    """One user's pace and photo, made up front: both databases get the same surge."""

    index: int
    start: float
    gaps: tuple[float, ...]
    photo: bytes = field(repr=False)

    @property
    def channel(self) -> str:
        return channel_of(self.index)


def plans(users: int, min_gap: float, max_gap: float, seed: int) -> list[Plan]:
    rng = random.Random(seed)
    steps = range(len(steps_for(TELEGRAM, 0)))  # the longer walk: gaps for either channel
    return [
        Plan(
            n,
            rng.uniform(0, max_gap),
            tuple(rng.uniform(min_gap, max_gap) for _ in steps),
            photo(rng.randbytes(NOISE[0] * NOISE[1]), n),
        )
        for n in range(users)
    ]


def photo(noise_bytes: bytes, index: int) -> bytes:
    """A JPEG of PHOTO_SIZE, textured enough to weigh what a phone photo weighs."""
    from PIL import Image, ImageOps

    noise = Image.frombytes("L", NOISE, noise_bytes).resize(PHOTO_SIZE, Image.Resampling.BICUBIC)
    image = ImageOps.colorize(noise, black=(index % 256, 40, 90), white=(250, 220, index % 199))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Reply:
    at: float  # time.monotonic() when the fake received it
    record: Any  # the fake's RecordedRequest: what a tap on its buttons refers to


class Replies:
    """Routes each bot message the fakes receive to the user waiting for it, by chat."""

    def __init__(self) -> None:
        self._waiting: dict[str, tuple[str, asyncio.Future[Reply]]] = {}

    def expect(self, chat: str, marker: str) -> asyncio.Future[Reply]:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[chat] = (marker, future)
        return future

    def forget(self, chat: str) -> None:
        self._waiting.pop(chat, None)

    def deliver(self, chat: str, text: str, reply: Reply) -> None:
        waiting = self._waiting.get(chat)
        if waiting and waiting[0] in text and not waiting[1].done():
            waiting[1].set_result(reply)

    def on_telegram(self, record: telegram_api.RecordedRequest) -> None:
        if record.method == "sendMessage" and not record.failed:
            chat, text = str(record.params.get("chat_id")), str(record.params.get("text", ""))
            self.deliver(chat, text, Reply(record.at, record))

    def on_graph(self, record: graph_api.RecordedRequest) -> None:
        body = record.json
        if record.failed or body is None or not record.path.endswith("/messages"):
            return
        if body.get("status") != "read":  # read receipts are no reply
            self.deliver(str(body.get("to")), whatsapp_text(body), Reply(record.at, record))


def whatsapp_text(body: Json) -> str:
    if body.get("type") == "text":
        return str(body["text"]["body"])
    if body.get("type") == "interactive":
        return str(body["interactive"]["body"]["text"])
    return json.dumps(body, ensure_ascii=False)  # templates: their parameters


# --------------------------------------------------------------------------- the users


class Undelivered(Exception):
    """The message never reached the product: a webhook POST failed three times on the way, or
    was answered with anything but 200."""


class User(Protocol):
    chat: str

    async def send(self, step: Step, previous: Reply | None) -> float:
        """Hand the step's message over; returns when it was handed (time.monotonic())."""
        ...


class TelegramUser:
    def __init__(self, api: FakeTelegramAPI, plan: Plan) -> None:
        index = plan.index
        self.api = api
        self.id = 700_000 + index
        self.chat = str(self.id)
        self.index = index
        self.photo = api.add_file(f"photo-{index}", plan.photo, kind="photo")
        self.pdf = api.add_file(
            f"pdf-{index}", pdf_bytes(f"daftar {index}"), file_name="daftar-penerima.pdf",
            mime_type="application/pdf",
        )  # fmt: skip

    def update(self, step: Step, previous: Reply | None) -> Json:
        if step.kind == "contact":
            return telegram_api.contact_update(
                self.id, phone_of(self.index), contact_user_id=self.id
            )
        if step.kind == "choice":
            assert previous is not None  # a tap needs the message with the buttons
            markup = previous.record.params.get("reply_markup")
            return telegram_api.callback_update(
                self.id, tagged(step.value, telegram_choices(markup)),
                message_id=previous.record.result["message_id"], reply_markup=markup,
            )  # fmt: skip
        if step.kind == "photo":
            return telegram_api.photo_update(self.id, [self.photo])
        if step.kind == "pdf":
            return telegram_api.document_update(self.id, self.pdf)
        return telegram_api.text_update(self.id, step.value, first_name=f"Fokal {self.index}")

    async def send(self, step: Step, previous: Reply | None) -> float:
        update = self.update(step, previous)
        handed = time.monotonic()
        self.api.push_update(update)
        return handed


class WhatsAppUser:
    def __init__(self, api: FakeGraphAPI, client: httpx.AsyncClient, url: str, plan: Plan) -> None:
        index = plan.index
        self.client = client
        self.url = url
        self.index = index
        self.chat = phone_of(index).removeprefix("+")
        self.photo_id = api.add_media(str(10**15 + 2 * index), plan.photo, "image/jpeg")
        self.pdf_id = api.add_media(
            str(10**15 + 2 * index + 1), pdf_bytes(f"daftar {index}"), "application/pdf",
            filename="daftar-penerima.pdf",
        )  # fmt: skip

    def payload(self, step: Step, previous: Reply | None) -> Json:
        name = f"Fokal {self.index}"
        if step.kind == "choice":
            assert previous is not None  # a tap answers the message with the buttons
            return tap(self.chat, step.value, previous, name)
        if step.kind == "photo":
            return wp.image_message(self.chat, self.photo_id, name=name)
        if step.kind == "pdf":
            return wp.document_message(
                self.chat, self.pdf_id, filename="daftar-penerima.pdf",
                mime_type="application/pdf", name=name,
            )  # fmt: skip
        return wp.text_message(self.chat, step.value, name=name)

    async def send(self, step: Step, previous: Reply | None) -> float:
        body = wp.encode(self.payload(step, previous))  # signed bytes: never re-serialised
        headers = wp.signed_headers(body, APP_SECRET)
        handed = time.monotonic()
        response = await self.post(body, headers)
        if response.status_code != 200:
            raise Undelivered(f"webhook answered {response.status_code}")
        return handed

    async def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        """Meta delivers again when a POST fails on the way; so does this, twice at most."""
        for _ in range(WEBHOOK_ATTEMPTS - 1):
            with contextlib.suppress(httpx.TransportError):
                return await self.client.post(self.url, content=body, headers=headers)
        try:
            return await self.client.post(self.url, content=body, headers=headers)
        except httpx.TransportError as error:
            raise Undelivered(repr(error)) from error


def tap(chat: str, choice: str, previous: Reply, name: str) -> Json:
    """A reply button or list row of the bot's message, as WhatsApp reports the tap."""
    body = previous.record.json
    context = previous.record.response["messages"][0]["id"]
    interactive = body.get("interactive", {})
    action = interactive.get("action", {})
    if interactive.get("type") == "list":
        rows = [row for section in action["sections"] for row in section["rows"]]
        choice = tagged(choice, [row["id"] for row in rows])
        title = next(row["title"] for row in rows if row["id"] == choice)
        return wp.list_reply(chat, choice, title, context_wamid=context, name=name)
    titles = {b["reply"]["id"]: b["reply"]["title"] for b in action.get("buttons", [])}
    choice = tagged(choice, list(titles))
    return wp.button_reply(chat, choice, titles[choice], context_wamid=context, name=name)


def tagged(choice: str, offered: list[str]) -> str:
    """The offered id of `choice`: buttons carry their prompt as `choice#item.version`."""
    return next(id_ for id_ in offered if id_ == choice or id_.rpartition("#")[0] == choice)


def telegram_choices(markup: object) -> list[str]:
    """The callback data of an inline keyboard, as sent (a dict, or its JSON)."""
    data = json.loads(markup) if isinstance(markup, str) else markup
    rows = data.get("inline_keyboard", []) if isinstance(data, dict) else []
    return [str(button.get("callback_data")) for row in rows for button in row]


# --------------------------------------------------------------------------- a surge


@dataclass
class ChannelResult:
    latencies: list[float] = field(default_factory=list)  # seconds
    by_step: dict[str, list[float]] = field(default_factory=dict)
    sent: int = 0
    unanswered: int = 0
    submitted: int = 0
    users: int = 0

    @property
    def lost(self) -> int:
        return self.unanswered + (self.users - self.submitted)


@dataclass
class Surge:
    database: str
    channels: dict[str, ChannelResult]
    handed: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    walk_s: float = 0.0
    product_cpu_s: float = 0.0  # the product process's CPU time during the walk
    own_cpu_s: float = 0.0  # this process's (fakes and users)
    load: float = 0.0  # the machine's 1-minute load average as the walk ended

    @property
    def offered_per_s(self) -> float:
        span = max(self.handed) - min(self.handed) if len(self.handed) > 1 else 0.0
        return len(self.handed) / span if span else 0.0

    @property
    def lost(self) -> int:
        return sum(result.lost for result in self.channels.values())


async def walk(
    user: User, plan: Plan, steps: list[Step], replies: Replies, result: ChannelResult, surge: Surge
) -> None:
    """One focal point: each message after the reply to the previous one and its pause. A
    message without its reply ends the walk: the user would not know how to go on."""
    due = time.monotonic() + plan.start
    previous: Reply | None = None
    for step, gap in zip(steps, plan.gaps, strict=False):
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        waiting = replies.expect(user.chat, step.marker)  # before sending: a reply can be quick
        try:
            handed = await user.send(step, previous)
            result.sent += 1
            surge.handed.append(handed)
            due = handed + gap
            previous = await asyncio.wait_for(waiting, REPLY_TIMEOUT_S)
        except (Undelivered, TimeoutError):
            result.unanswered += 1
            return
        except asyncio.CancelledError:  # the run's deadline, or the product died
            result.unanswered += 1
            raise
        finally:
            replies.forget(user.chat)
        result.latencies.append(previous.at - handed)
        result.by_step.setdefault(step.label, []).append(previous.at - handed)


async def walk_all(
    users: list[tuple[User, Plan]], seeded: Seeded, replies: Replies, surge: Surge
) -> None:
    """Every user at once, until all are done or the deadline (bounded by the plans)."""
    deadline = max(p.start + sum(p.gaps) for _, p in users) * 2 + REPLY_TIMEOUT_S
    walks = [
        walk(user, plan, steps_for(plan.channel, seeded.action_id), replies,
             surge.channels[plan.channel], surge)
        for user, plan in users
    ]  # fmt: skip
    outcomes: list[BaseException | None] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(deadline):
            outcomes = await asyncio.gather(*walks, return_exceptions=True)
    for error in {repr(o) for o in outcomes if isinstance(o, BaseException)}:
        print(f"{surge.database}: a simulated user failed: {error}", file=sys.stderr)


async def run_surge(
    database: str, database_url: str, workdir: Path, user_plans: list[Plan]
) -> Surge:
    began = time.monotonic()

    def progress(what: str) -> None:
        print(f"{database}: {what} at {time.monotonic() - began:.1f} s", file=sys.stderr)

    seeded = await seed(database_url, len(user_plans))
    progress("seeded")
    surge = Surge(database, {channel: ChannelResult() for channel in CHANNELS})
    for plan in user_plans:
        surge.channels[plan.channel].users += 1
    replies = Replies()
    async with (
        FakeTelegramAPI(TELEGRAM_TOKEN) as telegram,
        FakeGraphAPI(WHATSAPP_TOKEN, PHONE_NUMBER_ID) as graph,
        product(database_url, workdir, telegram.url, graph.url) as running,
        httpx.AsyncClient(timeout=30.0, limits=CLIENT_LIMITS) as client,
    ):
        telegram.on_request(replies.on_telegram)
        graph.on_request(replies.on_graph)
        webhook = f"http://127.0.0.1:{running.port}{WEBHOOK_PATH}"
        users: list[tuple[User, Plan]] = [
            (TelegramUser(telegram, p) if p.channel == TELEGRAM
             else WhatsAppUser(graph, client, webhook, p), p)
            for p in user_plans
        ]  # fmt: skip
        # Ready once it polls: from then on, every message is the product's work alone.
        await telegram.wait_for("getUpdates", START_TIMEOUT_S, finished=False)
        progress(f"the product polls; {len(users)} users walking")
        started, cpu, own = time.monotonic(), process_cpu_s(running.pid), time.process_time()
        walking = asyncio.create_task(walk_all(users, seeded, replies, surge))
        await asyncio.wait({walking, running.exited}, return_when=asyncio.FIRST_COMPLETED)
        surge.walk_s = time.monotonic() - started
        with contextlib.suppress(OSError):  # it died: the walk is cancelled below
            surge.product_cpu_s = process_cpu_s(running.pid) - cpu
        surge.own_cpu_s = time.process_time() - own
        surge.load = os.getloadavg()[0]
        if not walking.done():
            walking.cancel()
            print(f"{database}: the product died:\n{tail(running.log)}", file=sys.stderr)
            with contextlib.suppress(asyncio.CancelledError):
                await walking
        progress("walked")
        for channel, count in (await submitted_by_channel(database_url, seeded)).items():
            surge.channels[channel].submitted = count
    progress("stopped")
    surge.problems = log_problems(running.log)
    return surge


# --------------------------------------------------------------------------- PostgreSQL


async def pg_admin(sql: str) -> None:
    connection = await asyncpg.connect(**PG, database="postgres", timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def pg_surge(workdir: Path, user_plans: list[Plan]) -> Surge | None:
    """The surge on a database made for it, dropped at the end; None when no server answers."""
    try:
        await pg_admin("SELECT 1")
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        print(f"NOTICE: no PostgreSQL on 127.0.0.1:5432 ({error!r}); skipped.", file=sys.stderr)
        return None
    name = f"laporham_surge_{os.getpid()}"
    await pg_admin(f"CREATE DATABASE {name}")
    try:
        url = f"postgresql+asyncpg://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
        return await run_surge("PostgreSQL", url, workdir, user_plans)
    finally:
        await pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --------------------------------------------------------------------------- report


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def p95_ms(surge: Surge | None, channel: str) -> float | None:
    if surge is None or not surge.channels[channel].latencies:
        return None
    return round(p95(surge.channels[channel].latencies) * 1000, 1)


def report(args: argparse.Namespace, surges: list[Surge]) -> None:
    half = (args.users + 1) // 2
    print(
        f"surge: {args.users} focal points ({half} Telegram, {args.users - half} WhatsApp), "
        f"each a whole report, a message every {args.min_gap:g}-{args.max_gap:g} s "
        f"(seed {args.seed}); the channels' default send limits"
    )
    head = f"{'database':<11}{'channel':<10}{'msgs':>6}{'offered/s':>10}"
    print(f"{head}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}{'lost':>6}{'reports':>9}")
    for surge in surges:
        for channel, result in surge.channels.items():
            lat = result.latencies
            p50 = statistics.median(lat) if lat else None
            print(
                f"{surge.database:<11}{channel:<10}{result.sent:>6}{surge.offered_per_s:>10.1f}"
                f"{ms(p50):>8}{ms(p95(lat) if lat else None):>8}{ms(max(lat, default=None)):>8}"
                f"{result.lost:>6}{f'{result.submitted}/{result.users}':>9}"
            )
    print(
        "lost = messages without their reply + reports not submitted (must be 0); "
        f"target, not asserted: p95 < {TARGET_P95_MS:.0f} ms on both channels and databases"
    )
    for surge in surges:
        report_process(surge)
    if args.by_step:
        for surge in surges:
            report_steps(surge)


def report_process(surge: Surge) -> None:
    """CPU during the walk: a product near 100% of a core is saturated (one event loop)."""
    walk = max(surge.walk_s, 1e-9)
    print(
        f"{surge.database}: walk {surge.walk_s:.0f} s; CPU, % of one core: the product "
        f"{100 * surge.product_cpu_s / walk:.0f}%, this process (fakes, users) "
        f"{100 * surge.own_cpu_s / walk:.0f}%; machine load {surge.load:.1f} on "
        f"{os.cpu_count()} CPUs (above that count, the product waits for a CPU)"
    )
    kinds: dict[str, list[str]] = {}
    for line in surge.problems:
        kinds.setdefault(" ".join(line.split()[:2]), []).append(line)
    for lines in kinds.values():
        print(f"  product log, {len(lines)} x: {lines[0][:130]}")


def report_steps(surge: Surge) -> None:
    print(
        f"{surge.database}, ms by step{'':<12}" + "".join(f"{c + ' p50/p95':>20}" for c in CHANNELS)
    )
    labels = dict.fromkeys(label for r in surge.channels.values() for label in r.by_step)
    for label in labels:
        cells = []
        for result in surge.channels.values():
            lat = result.by_step.get(label, [])
            cells.append(f"{ms(statistics.median(lat))} / {ms(p95(lat))}" if lat else "-")
        print(f"  {label:<30}" + "".join(f"{cell:>20}" for cell in cells))


def figures(args: argparse.Namespace, surges: list[Surge]) -> Json:
    sqlite = surges[0]
    pg = next((s for s in surges if s.database == "PostgreSQL"), None)
    return {
        "users": args.users,
        "offered_per_s": round(sqlite.offered_per_s, 2),
        "telegram_p95_ms": p95_ms(sqlite, TELEGRAM),
        "whatsapp_p95_ms": p95_ms(sqlite, WHATSAPP),
        "lost": sum(surge.lost for surge in surges),
        "pg_telegram_p95_ms": p95_ms(pg, TELEGRAM),
        "pg_whatsapp_p95_ms": p95_ms(pg, WHATSAPP),
    }


async def measure(args: argparse.Namespace, workdir: Path) -> list[Surge]:
    user_plans = plans(args.users, args.min_gap, args.max_gap, args.seed)
    print(f"SQLite: {args.users} users surging...", file=sys.stderr)
    for name in ("sqlite", "pg"):
        (workdir / name).mkdir()
    sqlite_url = f"sqlite+aiosqlite:///{workdir / 'sqlite' / 'surge.db'}"
    surges = [await run_surge("SQLite", sqlite_url, workdir / "sqlite", user_plans)]
    if not args.skip_pg:
        print(f"PostgreSQL: {args.users} users surging...", file=sys.stderr)
        pg = await pg_surge(workdir / "pg", user_plans)
        surges += [pg] if pg else []
    return surges


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--min-gap", type=float, default=10.0, help="seconds between messages")
    parser.add_argument("--max-gap", type=float, default=20.0, help="seconds between messages")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-pg", action="store_true", help="SQLite only")
    parser.add_argument("--by-step", action="store_true", help="latency of each step too")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    for name in ("--database-url", "--data-dir", "--telegram-api-url", "--graph-api-url"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.serve and not (args.users >= 2 and 0 < args.min_gap <= args.max_gap):
        parser.error("need --users >= 2 (one per channel) and 0 < --min-gap <= --max-gap")
    return args


def main() -> None:
    args = parse_args()
    if args.serve:
        serve(args)
        return
    with tempfile.TemporaryDirectory(prefix="laporham-surge-") as tmp:
        surges = asyncio.run(measure(args, Path(tmp)))
    report(args, surges)
    result = figures(args, surges)
    print(json.dumps(result))
    sys.exit(1 if result["lost"] else 0)


if __name__ == "__main__":
    main()
