"""A channel for tests: records what the engine sends and serves files from memory."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime

from bot.engine.channel import Capabilities, Channel, FetchFailed, FileTooLarge, SendError
from bot.engine.events import FileReceived, Outgoing, OutText

BUTTONS = Capabilities(
    max_text=4096,
    max_caption=1024,
    max_choices=8,
    max_choice_label=40,
    inline_buttons=True,
    contact_button=True,
    max_download_bytes=20 * 1024 * 1024,
)


@dataclass
class Sent:
    chat_id: str
    message: Outgoing

    @property
    def text(self) -> str:
        return self.message.text if isinstance(self.message, OutText) else ""


@dataclass
class FakeChannel:
    name: Channel = Channel.telegram
    capabilities: Capabilities = BUTTONS
    sent: list[Sent] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    fail_with: list[SendError] = field(default_factory=list)  # raised by the next sends
    attempts: int = 0
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    async def send(
        self, chat_id: str, message: Outgoing, *, last_inbound_at: datetime | None = None
    ) -> str:
        self.attempts += 1
        if self.fail_with:
            raise self.fail_with.pop(0)
        self.sent.append(Sent(chat_id, message))
        return f"fake-{next(self._ids)}"

    async def fetch_file(self, event: FileReceived, *, max_bytes: int) -> bytes:
        data = self.files.get(event.file_ref)
        if data is None:
            raise FetchFailed(event.file_ref)
        if len(data) > max_bytes:
            raise FileTooLarge(len(data), max_bytes)
        return data

    def texts(self, chat_id: str | None = None) -> list[str]:
        return [s.text for s in self.sent if chat_id is None or s.chat_id == chat_id]
