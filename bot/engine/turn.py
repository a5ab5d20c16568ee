"""What a handler gets for one inbound event: the event, the user's state and contact, the
session of the event's transaction, and a place to put replies."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.channel import Capabilities
from bot.engine.events import Choice, Inbound, Outgoing, OutText
from bot.engine.texts import t
from storage.evidence import RejectionCode, StoredEvidence
from storage.models import ChannelIdentity, Contact, ConversationState

PROMPT_KEY = "_prompt"  # the last question asked, repeated when an input does not fit
OFFERED_KEY = "_offered"  # ids of the choices last offered, to accept "2" or a stale button


@dataclass(frozen=True)
class PreparedFile:
    """A received file, downloaded and checked before the event's transaction started."""

    stored: StoredEvidence | None = None
    rejection: RejectionCode | str | None = None


@dataclass
class Turn:
    session: AsyncSession
    event: Inbound
    state: ConversationState  # off the session until the engine writes it, once, at the end
    contact: Contact | None
    capabilities: Capabilities
    now: datetime
    max_upload_bytes: int
    prepared_file: PreparedFile | None = None
    identity: ChannelIdentity | None = None  # the sender's, if known (the contact may be inactive)
    outgoing: list[Outgoing] = field(default_factory=list)
    # What a handler reads once and uses several times while handling this one message (a
    # report's answers): each read is a statement, and the memo ends with the turn.
    memo: dict[Hashable, Any] = field(default_factory=dict)

    @property
    def language(self) -> str:
        if self.contact is not None:
            return self.contact.language
        return str(self.state.data.get("language", "id"))

    def text(self, key: str, /, **values: Any) -> str:
        return t(self.language, key, **values)

    def say(self, key: str, /, **values: Any) -> None:
        self.outgoing.append(OutText(text=self.text(key, **values)))

    def say_markup(self, text: str) -> None:
        """Send text that is already markup made by texts.t() (its values escaped there)."""
        self.outgoing.append(OutText(text=text))

    def send(self, message: Outgoing) -> None:
        self.outgoing.append(message)

    def ask(self, text: str, choices: list[Choice] | tuple[Choice, ...] = (), **extra: Any) -> None:
        """Send a question and remember it, so that an input that doesn't fit can repeat it."""
        if choices:
            extra.setdefault("choose_label", self.text("button.choose"))
        message = OutText(text=text, choices=tuple(choices), **extra)
        self.outgoing.append(message)
        self.remember_prompt(message)

    def remember_prompt(self, message: OutText) -> None:
        data = dict(self.state.data)
        data[PROMPT_KEY] = {
            "text": message.text,
            "choices": [[c.id, c.label] for c in message.choices],
        }
        data[OFFERED_KEY] = [choice.id for choice in message.choices]
        self.state.data = data

    def repeat_prompt(self) -> None:
        prompt = self.state.data.get(PROMPT_KEY)
        if prompt:
            choices = tuple(Choice(cid, label) for cid, label in prompt["choices"])
            self.outgoing.append(OutText(text=prompt["text"], choices=choices))

    @property
    def offered(self) -> list[str]:
        return list(self.state.data.get(OFFERED_KEY, []))

    # Flow state: a flow name and a named step, plus the flow's own data.
    @property
    def flow(self) -> str | None:
        return self.state.flow

    @property
    def step(self) -> str | None:
        return self.state.step

    def goto(self, flow: str, step: str, **data: Any) -> None:
        self.state.flow, self.state.step = flow, step
        self.state.data = {**self.state.data, **data}

    def get(self, key: str, default: Any = None) -> Any:
        return self.state.data.get(key, default)

    def leave_flow(self) -> None:
        """Back to idle. Only the language and the resume hints survive."""
        keep = {k: v for k, v in self.state.data.items() if k in {"language", "resume"}}
        self.state.flow = self.state.step = None
        self.state.data = keep
