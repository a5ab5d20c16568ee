"""Registration: an unknown user gets only this path.

```mermaid
stateDiagram-v2
    [*] --> Unknown: any message from an unregistered user
    Unknown --> Registered: WhatsApp: their number (wa_id) is an imported contact
    Unknown --> AskContact: otherwise: ask to share the phone number, or /daftar KODE
    AskContact --> Registered: own contact shared, number imported
    AskContact --> AskContact: someone else's contact / unknown number / bad code (explained)
    AskContact --> Registered: /daftar KODE with a valid, unused, unexpired invite
    AskContact --> AskContact: 5 wrong codes in an hour (sender or code): told when to retry
    Registered --> [*]: welcome naming office, region, role and what they can do
```

A second account on the same channel for an already-linked contact (own contact shared, the
number imported, but the contact already has another Telegram account): it is linked too, by
decision. A phone number belongs to one Telegram account at a time, so this is the person on a
new account or phone; refusing would leave them calling the coordinator. It is not silent: an
audit row is written and the region's coordinators get a notice through the outbox, so they can
deactivate the contact if it was not expected.
"""

from __future__ import annotations

import logging
import math
from enum import StrEnum

from bot.engine.events import CommandReceived, ContactShared, OutText, outgoing_to_payload
from bot.engine.texts import t
from bot.engine.turn import Turn
from handlers.help import role_help
from handlers.scope import role_label, scope_label
from storage import identities, invites, outbox
from storage.models import Contact
from storage.phones import InvalidPhone, normalise_phone, whatsapp_id_to_phone

log = logging.getLogger(__name__)

FLOW = "register"


class Step(StrEnum):
    ask_contact = "ask_contact"


async def handle(turn: Turn) -> None:
    """Everything an unregistered user sends ends up here."""
    if turn.capabilities.user_key_is_phone and await _match_own_number(turn):
        return
    event = turn.event
    if isinstance(event, ContactShared):
        await _contact_shared(turn, event)
    elif isinstance(event, CommandReceived) and event.name == "daftar" and event.args:
        await redeem(turn, event.args)
    else:
        ask_contact(turn)


async def start(turn: Turn) -> None:
    """/start and /daftar: welcome back a registered user, else begin registration."""
    if turn.contact is not None:
        turn.say("register.already", name=turn.contact.name)
        await welcome_body(turn, turn.contact)
        return
    await handle(turn)


def ask_contact(turn: Turn) -> None:
    turn.goto(FLOW, Step.ask_contact)
    if turn.capabilities.contact_button:
        turn.ask(
            turn.text("register.ask_button"),
            request_contact=True,
            contact_label=turn.text("button.share_contact"),
        )
    elif turn.capabilities.contact_command:
        turn.ask(turn.text("register.ask_typed", command=turn.capabilities.contact_command))
    else:
        turn.ask(turn.text("register.ask_code"))


async def _match_own_number(turn: Turn) -> bool:
    """WhatsApp: the sender's id is their number, so a known contact needs no question."""
    try:
        phone = whatsapp_id_to_phone(turn.event.user_key)
    except InvalidPhone:
        return False
    contact = await identities.find_contact_by_phone(session=turn.session, phone=phone)
    if contact is None or not contact.active:
        return False
    await _link(turn, contact)
    return True


async def _contact_shared(turn: Turn, event: ContactShared) -> None:
    if not event.is_own or not _is_senders_number(turn, event.phone):
        turn.say("register.not_own_contact")
        ask_contact(turn)
        return
    try:
        phone = normalise_phone(event.phone)
    except InvalidPhone:
        turn.say("register.bad_phone", phone=event.phone)
        ask_contact(turn)
        return
    contact = await identities.find_contact_by_phone(session=turn.session, phone=phone)
    if contact is None or not contact.active:
        turn.say("register.unknown_phone", phone=phone)
        return
    await _link(turn, contact)


def _is_senders_number(turn: Turn, shared: str) -> bool:
    """Where the channel's user key is the phone number (WhatsApp), a shared number counts only
    when it is that number: a second line of defence behind the channel's own check."""
    if not turn.capabilities.user_key_is_phone:
        return True
    try:
        return normalise_phone(shared) == whatsapp_id_to_phone(turn.event.user_key)
    except InvalidPhone:
        return False


async def redeem(turn: Turn, code: str) -> None:
    """A code tried: refused unchecked while the sender or the code is throttled (too many
    wrong tries in the window), counted when wrong. Every refusal is one log line, naming
    neither the code nor the number."""
    if turn.contact is not None:
        turn.say("register.already", name=turn.contact.name)
        return
    event, policy = turn.event, turn.invites
    sender = f"{event.channel}:{event.user_key}"
    refused = await invites.throttled(
        session=turn.session, policy=policy, sender=sender, code=code, now=turn.now
    )
    if refused is not None:
        log.warning(
            "invite refused: %s %s throttled by %s until %s",
            event.channel,
            short_key(event.user_key),
            refused.by,
            f"{refused.until:%H:%M} UTC",
        )
        minutes = max(1, math.ceil((refused.until - turn.now).total_seconds() / 60))
        turn.say("register.code_throttled", minutes=minutes)
        turn.goto(FLOW, Step.ask_contact)
        return
    contact = await invites.redeem_invite(
        session=turn.session,
        code=code,
        key=policy.key,
        name=event.display_name or "Pengguna",
        language=turn.language,
        now=turn.now,
    )
    if contact is None:
        tries = await invites.record_wrong_try(
            session=turn.session, policy=policy, sender=sender, code=code, now=turn.now
        )
        log.warning(
            "invite refused: %s %s wrong code (%d of %d in the window)",
            event.channel,
            short_key(event.user_key),
            tries,
            policy.max_wrong_tries,
        )
        turn.say("register.bad_code")
        ask_contact(turn)
        return
    await _link(turn, contact)


def short_key(user_key: str) -> str:
    """How a log line names a user: never their whole id or phone number."""
    return f"…{user_key[-4:]}"


async def _link(turn: Turn, contact: Contact) -> None:
    await _tell_about_second_account(turn, contact)
    # The engine looked the sender's identity up for this message already.
    identity = identities.attach_identity(
        session=turn.session,
        contact=contact,
        identity=turn.identity,
        channel=turn.event.channel,
        external_id=turn.event.user_key,
    )
    # WhatsApp's window counts from when the user wrote, not from when we handled it.
    identity.last_inbound_at = min(turn.event.received_at, turn.now)
    turn.identity = identity
    language = turn.state.data.get("language")
    if language in {"id", "en"}:
        contact.language = language
    turn.contact = contact
    turn.leave_flow()
    await welcome(turn, contact)


async def _tell_about_second_account(turn: Turn, contact: Contact) -> None:
    """Audit a further account of the contact on this channel and notify the coordinators."""
    event = turn.event
    previous = await identities.other_accounts(
        session=turn.session,
        contact_id=contact.id or 0,
        channel=event.channel,
        external_id=event.user_key,
    )
    if not previous:
        return
    identities.audit_second_account(
        session=turn.session,
        contact=contact,
        channel=event.channel,
        previous=[p.external_id for p in previous],
        now=turn.now,
    )
    coordinators = await identities.region_coordinators(
        session=turn.session, region_id=contact.region_id or 0
    )
    for coordinator, identity in coordinators:
        text = t(coordinator.language, "register.second_account_notice", name=contact.name)
        outbox.enqueue(
            session=turn.session,
            idempotency_key=f"{event.channel}:{event.message_id}:second:{identity.id}",
            channel=identity.channel,
            recipient=identity.external_id,
            contact_id=coordinator.id,
            payload=outgoing_to_payload(OutText(text=text)),
        )


async def welcome(turn: Turn, contact: Contact) -> None:
    turn.send(
        OutText(
            text=turn.text(
                "register.welcome",
                name=contact.name,
                role=role_label(turn, contact),
                scope=await scope_label(turn, contact),
            )
        )
    )
    await welcome_body(turn, contact)


async def welcome_body(turn: Turn, contact: Contact) -> None:
    turn.send(OutText(text=role_help(turn, contact)))
