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
from storage.invites import InvitePolicy
from storage.models import ChannelIdentity, Contact, ConversationState

PROMPT_KEY = "_prompt"  # the last question asked, repeated when an input does not fit
OFFERED_KEY = "_offered"  # ids of the choices last offered, to accept a typed "2" or label
# Counts the prompts asked in this conversation. Every button carries the count of its prompt
# (and the report item it belongs to), so a double tap or an old keyboard is refused instead of
# acting on whatever step is current. It survives leaving a flow: numbers are never reused.
VERSION_KEY = "_prompt_version"
TAG = "#"  # button id on the wire: "<choice id>#<item>.<version>" or "<choice id>#<version>"


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
    # A button of an earlier prompt was pressed: the router refuses it, nothing else runs.
    stale_button: bool = False
    # What a handler reads once and uses several times while handling this one message (a
    # report's answers): each read is a statement, and the memo ends with the turn.
    memo: dict[Hashable, Any] = field(default_factory=dict)
    # The server's invite-code key and wrong-try limits (handlers/register.py).
    invites: InvitePolicy = field(default_factory=InvitePolicy)

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
        """Send a question and remember it, so that an input that doesn't fit can repeat it.
        Its buttons are tagged with this prompt (see VERSION_KEY)."""
        if choices:
            extra.setdefault("choose_label", self.text("button.choose"))
        self.remember_prompt(text, choices)
        tag = self.state.data[PROMPT_KEY]["tag"]
        self.outgoing.append(OutText(text=text, choices=_tagged(choices, tag), **extra))

    def remember_prompt(self, text: str, choices: list[Choice] | tuple[Choice, ...]) -> None:
        data = dict(self.state.data)
        version = int(data.get(VERSION_KEY, 0)) + 1
        item = data.get("item")
        data[VERSION_KEY] = version
        data[PROMPT_KEY] = {
            "text": text,
            "choices": [[c.id, c.label] for c in choices],
            "tag": f"{item}.{version}" if item else str(version),
        }
        data[OFFERED_KEY] = [choice.id for choice in choices]
        self.state.data = data

    def repeat_prompt(self) -> None:
        """The current question again; its buttons stay those of the same prompt."""
        prompt = self.state.data.get(PROMPT_KEY)
        if prompt:
            choices = tuple(Choice(cid, label) for cid, label in prompt["choices"])
            tagged = _tagged(choices, str(prompt.get("tag", "")))
            self.outgoing.append(OutText(text=prompt["text"], choices=tagged))

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
        """Back to idle. Only the language, the resume hints and the prompt count survive."""
        keep = {
            k: v for k, v in self.state.data.items() if k in {"language", "resume", VERSION_KEY}
        }
        self.state.flow = self.state.step = None
        self.state.data = keep


def button_choice(data: dict[str, Any], wire_id: str) -> str | None:
    """The choice id a pressed button stands for, if it belongs to the current prompt; None
    for a button of an earlier prompt, an untagged or a forged one."""
    prompt = data.get(PROMPT_KEY)
    choice_id, sep, tag = wire_id.rpartition(TAG)
    if not prompt or not sep or tag != prompt.get("tag"):
        return None
    return choice_id if choice_id in data.get(OFFERED_KEY, []) else None


def _tagged(choices: list[Choice] | tuple[Choice, ...], tag: str) -> tuple[Choice, ...]:
    return tuple(Choice(f"{choice.id}{TAG}{tag}", choice.label) for choice in choices)
