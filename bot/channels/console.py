"""The console channel: a terminal chat as one user, for `make demo` and for scripts.

It reads standard input line by line (so `printf '...' | laporham demo` drives it) and ends
cleanly at end of input. Choices appear as a numbered list answered with the number.
`/file PATH` sends a file from this computer as evidence; `/kontak NOMOR` shares a phone number
(the console is the operator's own terminal, so the number counts as the user's own).
"""

from __future__ import annotations

import asyncio
import html
import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bot.engine.channel import Capabilities, Channel, FetchFailed, FileTooLarge
from bot.engine.events import (
    ContactShared,
    FileReceived,
    Inbound,
    InboundFields,
    OutFile,
    Outgoing,
    OutText,
    TextReceived,
)

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from bot.engine.dispatch import Engine

USER_KEY = "console"
TAG = re.compile(r"</?(b|i)>")


class ConsoleChannel:
    name = Channel.console
    capabilities = Capabilities(
        max_text=4096,
        max_caption=1024,
        max_choices=0,
        max_choice_label=200,
        inline_buttons=False,
        contact_button=False,
        max_download_bytes=100 * 1024 * 1024,
        contact_command="/kontak",
    )

    def __init__(self, *, output: TextIO | None = None, user_key: str = USER_KEY) -> None:
        self.output = output or sys.stdout
        self.user_key = user_key
        self.run_id = uuid.uuid4().hex[:12]  # message ids stay unique across runs
        self.counter = 0
        self.bold = self.output.isatty()

    async def send(self, chat_id: str, message: Outgoing, *, last_inbound_at: object = None) -> str:
        if isinstance(message, OutText):
            self._print(to_plain(message.text, bold=self.bold))
            for n, choice in enumerate(message.choices, start=1):
                self._print(f"  [{n}] {choice.label}")
        elif isinstance(message, OutFile):
            self._print(f"[berkas] {message.filename} {to_plain(message.caption, bold=False)}")
        return f"console-out-{uuid.uuid4().hex[:8]}"

    async def fetch_file(self, event: FileReceived, *, max_bytes: int) -> bytes:
        return await asyncio.to_thread(_read_local_file, Path(event.file_ref), max_bytes)

    def parse_line(self, line: str) -> Inbound | None:
        text = line.strip()
        if not text:
            return None
        self.counter += 1
        base: InboundFields = {
            "channel": Channel.console,
            "user_key": self.user_key,
            "chat_id": self.user_key,
            "message_id": f"{self.run_id}-{self.counter}",
            "display_name": "Pengguna konsol",
            "raw": {"line": text},
        }
        head, _, rest = text.partition(" ")
        if head.lower() == "/file" and rest.strip():
            path = Path(rest.strip()).expanduser()
            size = path.stat().st_size if path.is_file() else None
            return FileReceived(
                **base, file_ref=str(path), claimed_name=path.name, claimed_size=size
            )
        if head.lower() == "/kontak" and rest.strip():
            return ContactShared(**base, phone=rest.strip(), is_own=True)
        return TextReceived(**base, text=text)

    def routes(self, engine: Engine) -> list[BaseRoute]:
        return []

    async def start(self, engine: Engine) -> None:
        """Nothing to connect to."""

    async def run(self, engine: Engine) -> None:
        """The console is driven by converse(), which reads the terminal."""

    async def settle(self) -> None:
        """Lines are handled as they are read: nothing is ever in hand in the background."""

    async def close(self) -> None:
        """Nothing to release."""

    def parse_stored(self, payload: dict[str, Any]) -> Inbound | None:
        return None  # console lines go straight to Engine.handle, never through store_raw

    async def converse(
        self,
        handle: Callable[[Inbound], Awaitable[object]],
        flush: Callable[[], Awaitable[None]],
        *,
        input_stream: TextIO | None = None,
        greeting: str | None = None,
    ) -> None:
        """Read lines until end of input; after each, deliver the replies before reading on."""
        stream = input_stream or sys.stdin
        if greeting:
            self._print(greeting)
        while True:
            if stream.isatty():
                self._print("> ", end="")
            line = await asyncio.to_thread(stream.readline)
            if not line:
                break
            event = self.parse_line(line)
            if event is None:
                continue
            if not stream.isatty():
                self._print(f"> {line.strip()}")
            await handle(event)
            await flush()

    def _print(self, text: str, end: str = "\n") -> None:
        self.output.write(text + end)
        self.output.flush()


def _read_local_file(path: Path, max_bytes: int) -> bytes:
    if not path.is_file():
        raise FetchFailed(f"no file at {path}", code="not_found")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise FileTooLarge(size, max_bytes)
        return path.read_bytes()
    except OSError as error:
        raise FetchFailed(str(error)) from error


def to_plain(markup: str, *, bold: bool) -> str:
    """Our <b>/<i> markup for a terminal: ANSI bold when it is a terminal, else nothing."""
    if bold:
        markup = markup.replace("<b>", "\033[1m").replace("</b>", "\033[0m")
    return html.unescape(TAG.sub("", markup))
