"""Drive the real engine (router, storage, outbox sender) with a FakeChannel, as a user would."""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.dispatch import Engine
from bot.engine.events import (
    ChoiceMade,
    ContactShared,
    FileReceived,
    Inbound,
    TextReceived,
)
from handlers.router import route, wants_file
from scheduler.outbox import OutboxSender
from scheduler.recaps import RecapJob
from storage.evidence import LocalEvidenceStore
from tests.support.daytime import MiddayClock
from tests.support.factories import FOCAL_PHONE, make_world
from tests.support.fake_channel import FakeChannel

_ids = itertools.count(1)


@dataclass
class Harness:
    sessions: async_sessionmaker[AsyncSession]
    data_dir: Path
    channel: FakeChannel = field(default_factory=FakeChannel)
    user: str = "1001"
    duplicate_every_delivery: bool = False
    run_recaps: bool = True  # run the recap-requests job after each message

    def __post_init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        """A new engine and sender over the same database: what a process restart leaves."""
        channels = {self.channel.name: self.channel}
        self.engine = Engine(
            sessions=self.sessions,
            channels=channels,
            router=route,
            wants_file=wants_file,
            evidence_store=LocalEvidenceStore(self.data_dir / "evidence"),
            max_upload_bytes=20 * 1024 * 1024,
        )
        # Broadcasts are held in their recipients' quiet hours: send at midday, whenever the
        # suite runs.
        self.sender = OutboxSender(sessions=self.sessions, channels=channels, clock=MiddayClock())
        # The recap-requests job, run after each message as the scheduler would soon after.
        self.recaps = RecapJob(
            sessions=self.sessions,
            store=self.engine.evidence_store,
            owner="harness",
            capabilities=lambda channel: (
                self.channel.capabilities if channel == self.channel.name else None
            ),
        )

    def _base(self, message_id: str | None) -> dict[str, object]:
        return {
            "channel": self.channel.name,
            "user_key": self.user,
            "chat_id": self.user,
            "message_id": message_id or f"m{next(_ids)}",
            "display_name": "Siti",
        }

    async def deliver(self, event: Inbound) -> list[str]:
        """Handle one event, send the outbox, return the texts sent in reply."""
        before = len(self.channel.sent)
        await self.engine.handle(event)
        if self.run_recaps:
            await self.recaps.run()
        await self.sender.drain_all()
        replies = [s.text for s in self.channel.sent[before:]]
        if self.duplicate_every_delivery:
            # The same message again (a channel's at-least-once delivery): absorbed, no reply.
            assert await self.engine.handle(event) is False
            await self.sender.drain_all()
            assert len(self.channel.sent) == before + len(replies)
        return replies

    async def text(self, text: str, *, message_id: str | None = None) -> str:
        return "\n".join(await self.deliver(TextReceived(**self._base(message_id), text=text)))

    async def choose(self, choice_id: str, *, message_id: str | None = None) -> str:
        """Press the latest button whose choice is `choice_id` (buttons carry their prompt's
        tag on the wire); an id no button shows is sent as it is, as a forged press would be."""
        wire = next(
            (wid for wid, _ in self.last_choices() if wid.rpartition("#")[0] == choice_id),
            choice_id,
        )
        return await self.press(wire, message_id=message_id)

    async def press(self, wire_id: str, *, message_id: str | None = None) -> str:
        """Press a button by the exact id it was sent with (an old keyboard's, say)."""
        event = ChoiceMade(**self._base(message_id), choice_id=wire_id)
        return "\n".join(await self.deliver(event))

    def buttons_sent(self) -> list[str]:
        """Every button id sent so far, oldest first."""
        return [
            choice.id
            for sent in self.channel.sent
            for choice in getattr(sent.message, "choices", ())
        ]

    async def contact(self, phone: str, *, own: bool = True) -> str:
        event = ContactShared(**self._base(None), phone=phone, is_own=own)
        return "\n".join(await self.deliver(event))

    async def file(
        self,
        data: bytes,
        name: str,
        *,
        mime: str = "application/octet-stream",
        photo: bool = False,
        message_id: str | None = None,
        claimed_size: int | None = None,
    ) -> str:
        ref = f"file-{next(_ids)}"
        self.channel.files[ref] = data
        event = FileReceived(
            **self._base(message_id),
            file_ref=ref,
            claimed_name=name,
            claimed_mime=mime,
            claimed_size=len(data) if claimed_size is None else claimed_size,
            is_photo=photo,
        )
        return "\n".join(await self.deliver(event))

    def last_choices(self) -> list[tuple[str, str]]:
        for sent in reversed(self.channel.sent):
            choices = getattr(sent.message, "choices", ())
            if choices:
                return [(c.id, c.label) for c in choices]
        return []


async def at_first_question(sessions: async_sessionmaker[AsyncSession], data_dir: Path) -> Harness:
    """A world made, its focal point registered and the first action's report opened: the
    reply to the last step asked the first question ("Berapa penerima")."""
    async with sessions() as session:
        world = await make_world(session)
        await session.commit()
    h = Harness(sessions, data_dir)
    await h.text("halo")
    await h.contact(FOCAL_PHONE)
    await h.text("/lapor")
    await h.choose(f"a:{world.action.id}")
    return h


def jpeg_bytes(color: str = "red", size: tuple[int, int] = (64, 48)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()


def pdf_bytes(text: str = "notulen") -> bytes:
    """A real one-page PDF (the evidence pipeline opens PDFs), the same bytes for the same
    text: objects written by hand with a correct cross-reference table."""
    content = b"BT /F1 12 Tf 20 40 Td (" + text.encode() + b") Tj ET"
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Count 1/Kids[3 0 R]>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 100]/Contents 4 0 R>>",
        b"<</Length %d>>stream\n%s\nendstream" % (len(content), content),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
