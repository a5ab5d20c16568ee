"""The engine: every inbound event is handled in one database transaction.

```mermaid
sequenceDiagram
    participant C as Channel adapter
    participant E as Engine
    participant DB as Database
    participant O as Outbox sender
    C->>E: handle(event)
    opt a file the flow is waiting for
        E->>C: fetch_file (outside the transaction)
        E->>E: evidence pipeline (off the event loop)
    end
    E->>DB: BEGIN
    E->>DB: claim inbox id (a redelivery stops here)
    E->>DB: load + lock conversation state
    E->>E: a button of an earlier prompt is marked stale (refused, nothing changes)
    E->>E: route to the flow's handler
    E->>DB: save state, answers, files, outbox rows
    E->>DB: COMMIT
    alt nothing else waits to go to this user
        E-->>O: hand off the committed replies (written already claimed)
    else
        E-->>O: wake up (the sender claims them in order)
    end
    O->>C: send (after commit)
```

A transient database error (a lost connection, a PostgreSQL restart, SQLite still locked after
its busy timeout) rolls the turn back and the turn is tried again after a pause
(`TRANSIENT_RETRY_DELAYS`); only when every try failed does the user get one "try again later"
message, and the stored inbound message stays unprocessed so that the replay job handles it
when the database is back:

```mermaid
flowchart LR
    T[turn in one transaction] -->|commit| OK[replies to the sender]
    T -->|bug| AP[apology, message marked handled]
    T -->|transient database error| W{tries left?}
    W -->|yes: sleep, back off| T
    W -->|no| BUSY[one 'busy' notice; inbox row stays unprocessed: replay retries it]
```

A crash before COMMIT loses nothing the user sees as given (the channel redelivers, the inbox
has no record yet); after COMMIT a redelivery is absorbed by the inbox and the replies are in the
outbox, so none is lost and none is sent twice for the same inbound id.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.channel import Channel, ChannelAdapter, FetchFailed, FileTooLarge
from bot.engine.commands import TAKES_ARGUMENTS, parse_command
from bot.engine.events import (
    ChoiceMade,
    CommandReceived,
    FileReceived,
    Inbound,
    InboundFields,
    Outgoing,
    OutText,
    TextReceived,
    outgoing_to_payload,
)
from bot.engine.health import Health
from bot.engine.render import coalesce, fit
from bot.engine.text_input import clean_event
from bot.engine.texts import t
from bot.engine.turn import (
    FREE_TEXT_KEY,
    OFFERED_KEY,
    PROMPT_KEY,
    PreparedFile,
    Turn,
    button_choice,
)
from storage import conversation_state, inbox, outbox
from storage.db import is_transient, transaction
from storage.evidence import EvidenceRejected, EvidenceStore, RejectionCode, ingest
from storage.invites import InvitePolicy
from storage.models import ChannelIdentity, ConversationState
from storage.outbox import QueuedMessage
from storage.types import utcnow

log = logging.getLogger(__name__)

SEEN_PRECISION = timedelta(minutes=1)
UNKNOWN = "unknown"  # CommandReceived.name of a slash-word that is no command of ours
UNKNOWN_COMMAND = re.compile(r"/[A-Za-z_]\w*(@\w+)?")

# Pauses before each new try of a turn that met a transient database error: about 7 s in all,
# enough for a connection pool to reconnect or a PostgreSQL restart, short enough that the user
# is not left waiting long before hearing that their message is kept for later.
TRANSIENT_RETRY_DELAYS = (0.25, 0.75, 2.0, 4.0)

Router = Callable[[Turn], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


class OutboxHandOff(Protocol):
    """The outbox sender, as the engine sees it: it can take committed replies directly."""

    owner: str  # who the rows handed over are claimed by (storage/outbox.py's leases)

    def can_take(self, channel: Channel, recipient: str) -> bool: ...

    def take(self, rows: list[QueuedMessage]) -> None: ...


WantsFile = Callable[[ConversationState], bool]


class Engine:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        channels: dict[Channel, ChannelAdapter],
        router: Router,
        wants_file: WantsFile,
        evidence_store: EvidenceStore,
        max_upload_bytes: int,
        clock: Callable[[], datetime] = utcnow,
        retry_delays: Sequence[float] = TRANSIENT_RETRY_DELAYS,
        sleep: Sleep = asyncio.sleep,
        invites: InvitePolicy | None = None,
    ) -> None:
        self.sessions = sessions
        self.invites = invites or InvitePolicy()  # development key unless the app gives one
        self.channels = channels
        self.router = router
        self.wants_file = wants_file
        self.evidence_store = evidence_store
        self.max_upload_bytes = max_upload_bytes
        self.clock = clock
        self.retry_delays = tuple(retry_delays)
        self.sleep = sleep
        self.outbox_ready = asyncio.Event()
        # What is failing now, for /healthz; loops report here so an outage logs once.
        self.health = Health()
        # The running outbox sender, when there is one: replies can skip its claim (see _enqueue).
        self.hand_off: OutboxHandOff | None = None
        # Events of one user are handled one at a time (album items arrive together).
        self._locks: dict[tuple[Channel, str], asyncio.Lock] = {}
        # Messages this process stored (store_raw) and has not handled yet: its channel holds
        # them in a queue, so replay_stored must leave them alone.
        self._stored_in_hand: set[tuple[str, str]] = set()

    def add_channel(self, adapter: ChannelAdapter) -> None:
        self.channels[adapter.name] = adapter

    async def handle(self, event: Inbound) -> bool:
        """Handle one inbound event. False when it was a redelivery of a handled one."""
        try:
            async with self._lock_for(event):
                try:
                    return await self._handle_retrying(event)
                except Exception as error:
                    if is_transient(error):
                        log.warning(
                            "%s %s: database unavailable after %d tries, message kept: %s",
                            event.channel,
                            _short_key(event.user_key),
                            len(self.retry_delays) + 1,
                            type(error).__name__,
                        )
                        return await self._tell_busy(event)
                    log.exception("handler failed for %s %s", event.channel, event.message_id)
                    return await self._apologise(event)
        finally:
            self._stored_in_hand.discard((event.channel, event.message_id))

    def _lock_for(self, event: Inbound) -> asyncio.Lock:
        key = (event.channel, event.user_key)
        lock = self._locks.get(key)
        if lock is None:
            if len(self._locks) > 10_000:  # forget idle users' locks now and then
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def _handle_retrying(self, event: Inbound) -> bool:
        """The turn, tried again after each transient database error (the failed try was
        rolled back whole). A file is fetched and checked once, not again at each try."""
        prepared: PreparedFile | None = None
        fetched = not isinstance(event, FileReceived)
        for delay in (*self.retry_delays, None):
            try:
                if not fetched and isinstance(event, FileReceived):
                    prepared = await self._prepare_file(event)
                    fetched = True
                return await self._handle(event, prepared)
            except Exception as error:
                if delay is None or not is_transient(error):
                    raise
            await self.sleep(delay)
        raise AssertionError("unreachable: the last try returns or raises")

    async def _handle(self, event: Inbound, prepared: PreparedFile | None) -> bool:
        adapter = self.channels[event.channel]
        async with transaction(self.sessions) as session:
            if not await inbox.claim_inbound(
                session=session, channel=event.channel, message_id=event.message_id
            ):
                return False
            now = self.clock()
            # One SELECT: the locked state, the identity, the contact and its region (which
            # `conversation` keeps in the session's identity map for the whole turn).
            conversation = await conversation_state.open_conversation(
                session=session, channel=event.channel, user_key=event.user_key
            )
            state, contact = conversation.state, conversation.contact
            if conversation.identity:
                _note_seen(conversation.identity, min(event.received_at, now))
            pressed, stale = _pressed(event, state)
            turn = Turn(
                session=session,
                event=normalise(clean_event(pressed), state),
                stale_button=stale,
                state=state,
                identity=conversation.identity,
                contact=contact if contact and contact.active else None,
                capabilities=adapter.capabilities,
                now=now,
                max_upload_bytes=self.max_upload_bytes,
                prepared_file=prepared,
                evidence_store=self.evidence_store,
                invites=self.invites,
            )
            await self.router(turn)
            state.updated_at = now
            state.contact_id = turn.contact.id if turn.contact else state.contact_id
            # The state was kept off the session during the turn: now its one write.
            await conversation_state.save_state(session=session, state=state)
            handed = await self._enqueue(session, turn)
        # After COMMIT: the replies go to the sender's worker now, or it claims them.
        if handed and self.hand_off is not None:
            self.hand_off.take(handed)
        else:
            self.outbox_ready.set()
        return True

    async def _prepare_file(self, event: FileReceived) -> PreparedFile | None:
        """Download and check a file the user's flow is waiting for, before the transaction,
        so a slow download holds no database lock. Files nobody asked for are not fetched."""
        async with self.sessions() as session:
            # None for an unregistered user or a redelivery of a handled message.
            state = await conversation_state.peek_state_for_file(
                session=session,
                channel=event.channel,
                user_key=event.user_key,
                message_id=event.message_id,
            )
        if state is None or not self.wants_file(state):
            return None
        limit = min(
            self.max_upload_bytes, self.channels[event.channel].capabilities.max_download_bytes
        )
        if event.claimed_size is not None and event.claimed_size > limit:
            return PreparedFile(rejection=RejectionCode.TOO_LARGE)
        try:
            data = await self.channels[event.channel].fetch_file(event, max_bytes=limit)
            stored = await ingest(data, store=self.evidence_store, max_bytes=self.max_upload_bytes)
        except FileTooLarge:
            return PreparedFile(rejection=RejectionCode.TOO_LARGE)
        except FetchFailed as failed:
            return PreparedFile(rejection=failed.code)
        except EvidenceRejected as rejected:
            return PreparedFile(rejection=rejected.code)
        return PreparedFile(stored=stored)

    async def _enqueue(self, session: AsyncSession, turn: Turn) -> list[QueuedMessage]:
        """Write the turn's replies to the outbox. They are written already claimed, and
        returned for `hand_off`, when the sender can take them directly: nothing else is waiting
        to go to this recipient, so going straight to the sender keeps their order."""
        event = turn.event
        messages: list[Outgoing] = []
        for message in coalesce(turn.outgoing, turn.capabilities.max_text):
            messages += (
                fit(message, turn.capabilities) if isinstance(message, OutText) else [message]
            )
        direct = bool(messages) and await self._can_hand_off(session, event)
        owner = self.hand_off.owner if direct and self.hand_off is not None else None
        rows = [
            outbox.outbox_row(
                idempotency_key=f"{event.channel}:{event.message_id}:{index}",
                channel=event.channel,
                recipient=event.chat_id,
                contact_id=turn.contact.id if turn.contact else None,
                payload=_in_language(outgoing_to_payload(message), turn.language),
                claimed_by=owner,
            )
            for index, message in enumerate(messages)
        ]
        written = await outbox.insert_outbox(session=session, rows=rows)
        return written if direct else []

    async def _can_hand_off(self, session: AsyncSession, event: Inbound) -> bool:
        if self.hand_off is None or not self.hand_off.can_take(event.channel, event.chat_id):
            return False
        return not await outbox.has_waiting_outbox(
            session=session, channel=event.channel, recipient=event.chat_id, now=self.clock()
        )

    async def store_raw(
        self, channel: Channel, message_id: str, payload: dict[str, object]
    ) -> bool:
        """Webhooks: keep the raw message before answering 200; False for a redelivery."""
        async with transaction(self.sessions) as session:
            if await inbox.is_processed(session=session, channel=channel, message_id=message_id):
                return False
            stored = await inbox.store_received(
                session=session, channel=channel, message_id=message_id, payload=dict(payload)
            )
        if stored:
            self._stored_in_hand.add((channel, message_id))
        return stored

    async def replay_stored(self) -> int:
        """Handle webhook messages that were stored but not handled (the process died). Those
        this process stored itself and still holds are not replayed: they are queued, not lost,
        and replaying them would handle them out of order."""
        replayed = 0
        for channel, adapter in list(self.channels.items()):
            async with self.sessions() as session:
                rows = await inbox.unprocessed_inbound(session=session, channel=channel)
            for row in rows:
                if (channel, row.message_id) in self._stored_in_hand:
                    continue
                event = adapter.parse_stored(row.payload or {})
                if event is None:  # nothing we can act on: mark it handled, don't retry forever
                    async with transaction(self.sessions) as session:
                        await inbox.claim_inbound(
                            session=session, channel=channel, message_id=row.message_id
                        )
                elif await self.handle(event):
                    replayed += 1
        return replayed

    async def _apologise(self, event: Inbound) -> bool:
        """A handler bug must not mean silence: say so, and mark the event handled."""
        try:
            async with transaction(self.sessions) as session:
                if not await inbox.claim_inbound(
                    session=session, channel=event.channel, message_id=event.message_id
                ):
                    return False
                key = f"{event.channel}:{event.message_id}:error"
                await _enqueue_notice(session, event, key, lambda lang: t(lang, "error.internal"))
        except Exception:
            log.exception("could not even apologise for %s", event.message_id)
            return False
        self.outbox_ready.set()
        return True

    async def _tell_busy(self, event: Inbound) -> bool:
        """The database kept failing: tell the user once that the message is kept and will be
        answered, without marking it handled (the replay job takes it up again). Written only
        if the outbox can be written now; its key makes a second failure of the same message
        say nothing more."""
        key = f"{event.channel}:{event.message_id}:busy"
        try:
            async with transaction(self.sessions) as session:
                if await outbox.has_idempotency_key(session=session, idempotency_key=key):
                    return False
                await _enqueue_notice(session, event, key, lambda lang: t(lang, "error.busy"))
        except Exception as error:
            log.warning(
                "%s %s: could not write the busy notice either: %s",
                event.channel,
                _short_key(event.user_key),
                type(error).__name__,
            )
            return False
        self.outbox_ready.set()
        return False


async def _enqueue_notice(
    session: AsyncSession, event: Inbound, idempotency_key: str, text: Callable[[str], str]
) -> None:
    """A notice about the event itself (a failure, a delay), `text` made in the user's
    language."""
    state = await conversation_state.peek_state(
        session=session, channel=event.channel, user_key=event.user_key
    )
    language = str((state.data if state else {}).get("language", "id"))
    outbox.enqueue(
        session=session,
        idempotency_key=idempotency_key,
        channel=event.channel,
        recipient=event.chat_id,
        payload=outgoing_to_payload(OutText(text=text(language), language=language)),
    )


def _in_language(payload: dict[str, object], language: str) -> dict[str, object]:
    """The reply's payload with the user's language, which travels with the outbox row to the
    channel (WhatsApp picks its template's language from it), unless the message set one."""
    if payload.get("language") is None:
        payload["language"] = language
    return payload


def _short_key(user_key: str) -> str:
    """How a log line names a user: never their whole phone number or chat id."""
    return f"…{user_key[-4:]}"


def _note_seen(identity: ChannelIdentity, wrote: datetime) -> None:
    """Record when the user last wrote (WhatsApp's 24-hour window), by the message's own time
    as Meta counts it, not when we handled it: a late delivery must not open the window. A
    minute's precision is plenty (the channel keeps exact times of recent messages), and
    skipping the write saves an UPDATE on almost every message."""
    seen = identity.last_inbound_at
    if seen is None or wrote - seen > SEEN_PRECISION:
        identity.last_inbound_at = wrote
    if identity.unreachable_since is not None:
        identity.unreachable_since = None


def _pressed(event: Inbound, state: ConversationState) -> tuple[Inbound, bool]:
    """A pressed button as the choice it stands for, or marked stale when it belongs to any
    prompt but the current one (a double tap, an old keyboard): it must not act on this step."""
    if not isinstance(event, ChoiceMade):
        return event, False
    choice = button_choice(state.data, event.choice_id)
    if choice is None:
        return event, True
    return replace(event, choice_id=choice), False


def normalise(event: Inbound, state: ConversationState) -> Inbound:
    """Words that are commands become commands; "2" or a label answers a numbered choice."""
    if isinstance(event, TextReceived):
        prose = bool((state.data.get(PROMPT_KEY) or {}).get(FREE_TEXT_KEY))
        takes = frozenset() if prose else TAKES_ARGUMENTS
        parsed = parse_command(event.text, takes_arguments=takes)
        if parsed:
            command, args = parsed
            return CommandReceived(**_base(event), name=command.value, args=args)
        text = event.text.strip()
        if UNKNOWN_COMMAND.fullmatch(text.split(" ", 1)[0]):
            return CommandReceived(**_base(event), name=UNKNOWN, args=text)
        offered = list(state.data.get(OFFERED_KEY, []))
        if text.isdigit() and 1 <= int(text) <= len(offered):
            return ChoiceMade(**_base(event), choice_id=offered[int(text) - 1])
        label_match = _match_label(text, state)
        if label_match:
            return ChoiceMade(**_base(event), choice_id=label_match)
    if isinstance(event, CommandReceived):
        parsed = parse_command("/" + event.name)
        if parsed:
            return replace(event, name=parsed[0].value, args=event.args or parsed[1])
        return replace(event, name=UNKNOWN, args=f"/{event.name}")
    return event


def _match_label(text: str, state: ConversationState) -> str | None:
    prompt = state.data.get(PROMPT_KEY) or {}
    wanted = text.casefold()
    for choice_id, label in prompt.get("choices", []):
        if str(label).casefold() == wanted:
            return str(choice_id)
    return None


def _base(event: Inbound) -> InboundFields:
    return {
        "channel": event.channel,
        "user_key": event.user_key,
        "chat_id": event.chat_id,
        "message_id": event.message_id,
        "display_name": event.display_name,
        "received_at": event.received_at,
        "raw": event.raw,
    }
