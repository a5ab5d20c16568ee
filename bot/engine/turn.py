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
from storage.evidence import EvidenceStore, RejectionCode, StoredEvidence
from storage.invites import InvitePolicy
from storage.models import ChannelIdentity, Contact, ConversationState

PROMPT_KEY = "_prompt"  # the last question asked, repeated when an input does not fit
OFFERED_KEY = "_offered"  # ids of the choices last offered, to accept a typed "2" or label
# Counts the prompts asked in this conversation. Every button carries the count of its prompt
# (and the report item it belongs to), so a double tap or an old keyboard is refused instead of
# acting on whatever step is current. It survives leaving a flow: numbers are never reused.
VERSION_KEY = "_prompt_version"
TAG = "#"  # button id on the wire: "<choice id>#<item>.<version>" or "<choice id>#<version>"
# A standing button is sent outside the recipient's conversation (a notice written by another
# user's turn, e.g. a returned report's "open for revision"), so it cannot carry the tag of the
# recipient's prompt. Its id names its target and that target's version itself, and the one
# handler for it checks both, and the user's scope, before acting: "!<kind>:<ref>".
STANDING = "!"
# In the remembered prompt: it takes prose, so bare command words followed by more words are
# text (bot/engine/dispatch.py, normalise).
FREE_TEXT_KEY = "free_text"


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
    # Where a handler puts a file it made (a recap chart, a workbook) for an OutFile to carry.
    evidence_store: EvidenceStore | None = None
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

    def ask(
        self,
        text: str,
        choices: list[Choice] | tuple[Choice, ...] = (),
        *,
        free_text: bool = False,
        **extra: Any,
    ) -> None:
        """Send a question and remember it, so that an input that doesn't fit can repeat it.
        Its buttons are tagged with this prompt (see VERSION_KEY). `free_text`: the answer is
        prose (a reviewer's note), so a command word only counts alone or with a slash:
        "daftar hadir belum ada" is a note, not /daftar (see FREE_TEXT_KEY)."""
        if choices:
            extra.setdefault("choose_label", self.text("button.choose"))
        self.remember_prompt(text, choices, free_text=free_text)
        tag = self.state.data[PROMPT_KEY]["tag"]
        self.outgoing.append(OutText(text=text, choices=_tagged(choices, tag), **extra))

    def remember_prompt(
        self, text: str, choices: list[Choice] | tuple[Choice, ...], *, free_text: bool = False
    ) -> None:
        data = dict(self.state.data)
        version = int(data.get(VERSION_KEY, 0)) + 1
        item = data.get("item")
        data[VERSION_KEY] = version
        data[PROMPT_KEY] = {
            "text": text,
            "choices": [[c.id, c.label] for c in choices],
            "tag": f"{item}.{version}" if item else str(version),
            FREE_TEXT_KEY: free_text,
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
    for a button of an earlier prompt, an untagged or a forged one. A standing button's id is
    passed on as it is."""
    if wire_id.startswith(STANDING):
        return wire_id  # checked by its handler (see STANDING)
    prompt = data.get(PROMPT_KEY)
    choice_id, sep, tag = wire_id.rpartition(TAG)
    if not prompt or not sep or tag != prompt.get("tag"):
        return None
    return choice_id if choice_id in data.get(OFFERED_KEY, []) else None


def _tagged(choices: list[Choice] | tuple[Choice, ...], tag: str) -> tuple[Choice, ...]:
    return tuple(Choice(f"{choice.id}{TAG}{tag}", choice.label) for choice in choices)
