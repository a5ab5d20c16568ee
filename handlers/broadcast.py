"""/siaran: the Kanwil (their province), a coordinator (their pemda) or an admin (the country)
writes one message for many contacts, picks who gets it, sees how many and what they will
read, and confirms. Confirming writes the broadcast row; scheduler/broadcasts.py writes the
recipients' outbox rows and reports progress and the delivery report back here.

```mermaid
flowchart TD
    S[/siaran or 'siaran teks'/] --> R{Kanwil, coordinator or admin?}
    R -- no --> N[refused: only for them]
    R -- yes --> T{text given?}
    T -- no --> AT[ask the message] --> TX[text]
    T -- yes --> TX
    TX -- too long / not text --> AT
    TX --> AU[ask the audience: focal points, not yet submitted, coordinators, one pemda]
    AU -- one pemda --> P[ask which: buttons or code/name, only pemda in scope]
    P -- unknown / outside scope --> P
    AU & P --> C{anyone reachable? a period open for 'not yet submitted'?}
    C -- no --> AU
    C -- yes --> V[preview: count, those without a chat, the message as received]
    V -- Kirim --> Q[broadcast row written: 'Siaran #n dijadwalkan']
    V -- Ubah pesan --> AT
    V -- Batal --> X[cancelled, nothing sent]
    Q -.-> J[job broadcast-progress: outbox rows in batches, progress, report]
```

Buttons are tagged with their prompt (bot/engine/turn.py), so a second tap on "Kirim" or an
old keyboard is refused by the engine before it reaches this module; scope is checked again
at every step from the author's contact, never from the buttons.
"""

from __future__ import annotations

from bot.engine.commands import Command, parse_command
from bot.engine.events import Choice, ChoiceMade, CommandReceived, TextReceived
from bot.engine.texts import DEFAULT_LANGUAGE, catalogue, count_text
from bot.engine.turn import Turn
from storage import broadcasts
from storage.broadcasts import AuthorScope, NotAllowed, Recipients
from storage.models import Audience, Region, Role

FLOW = "broadcast"
MAX_TEXT = 900  # WhatsApp's template parameter must hold it on one line
MAX_PEMDA_BUTTONS = 40  # beyond that (an admin's 552 pemda) the code or name is typed
AUDIENCES: dict[Role, tuple[Audience, ...]] = {
    Role.kanwil: tuple(Audience),
    Role.admin: tuple(Audience),
    Role.coordinator: (Audience.focal_points, Audience.not_submitted),
}
SEND, EDIT, CANCEL = "send", "edit", "cancel"


async def start(turn: Turn) -> None:
    """/siaran, with or without the message after it."""
    scope = await _scope(turn)
    if scope is None:
        return
    turn.leave_flow()
    turn.goto(FLOW, "text")
    text = _command_text(turn)
    if text:
        await _take_text(turn, scope, text)
    else:
        _ask_text(turn, scope)


async def handle(turn: Turn) -> None:
    scope = await _scope(turn)
    if scope is None:
        return
    event, step = turn.event, turn.step
    if step == "text":
        if isinstance(event, TextReceived):
            await _take_text(turn, scope, event.text)
        else:
            turn.say("broadcast.text_only")
            turn.repeat_prompt()
    elif step == "audience":
        await _take_audience(turn, scope)
    elif step == "pemda":
        await _take_pemda(turn, scope)
    elif step == "confirm":
        await _take_confirmation(turn, scope)
    else:  # a step this version does not know: start over rather than guess
        turn.leave_flow()
        await start(turn)


async def _scope(turn: Turn) -> AuthorScope | None:
    """The author's reach, from their contact; a focal point (or a contact whose role changed
    meanwhile) is refused and leaves the flow."""
    contact = turn.contact
    if contact is None:
        return None
    try:
        return await broadcasts.author_scope(session=turn.session, contact=contact)
    except NotAllowed:
        if turn.flow == FLOW:
            turn.leave_flow()
        turn.say("broadcast.not_allowed")
        if turn.flow:
            turn.repeat_prompt()
        return None


def _command_text(turn: Turn) -> str:
    """The message typed after the command: `/siaran teks` or `siaran teks`."""
    event = turn.event
    if isinstance(event, CommandReceived):
        return event.args.strip()
    if isinstance(event, TextReceived):
        parsed = parse_command(event.text, takes_arguments=frozenset({Command.broadcast}))
        return parsed[1] if parsed else ""
    return ""


def _scope_label(turn: Turn, scope: AuthorScope) -> str:
    return scope.region.name if scope.region else turn.text("scope.everywhere")


def _ask_text(turn: Turn, scope: AuthorScope) -> None:
    turn.goto(FLOW, "text")
    turn.ask(turn.text("broadcast.ask_text", scope=_scope_label(turn, scope), max=MAX_TEXT))


async def _take_text(turn: Turn, scope: AuthorScope, text: str) -> None:
    text = text.strip()
    if len(text) > MAX_TEXT:
        turn.say("broadcast.text_too_long", length=len(text), max=MAX_TEXT)
        _ask_text(turn, scope)
        return
    if not text:
        _ask_text(turn, scope)
        return
    turn.goto(FLOW, "audience", bc_text=text)
    _ask_audience(turn)


def _ask_audience(turn: Turn) -> None:
    contact = turn.contact
    assert contact is not None
    turn.goto(FLOW, "audience")
    choices = [
        Choice(audience.value, turn.text(f"broadcast.audience.{audience.value}"))
        for audience in AUDIENCES[contact.role]
    ]
    turn.ask(turn.text("broadcast.ask_audience"), choices)


async def _take_audience(turn: Turn, scope: AuthorScope) -> None:
    event, contact = turn.event, turn.contact
    assert contact is not None
    allowed = {audience.value for audience in AUDIENCES[contact.role]}
    if not isinstance(event, ChoiceMade) or event.choice_id not in allowed:
        turn.say("choice.not_understood")
        turn.repeat_prompt()
        return
    audience = Audience(event.choice_id)
    if audience is Audience.pemda:
        await _ask_pemda(turn, scope)
        return
    region_id = scope.region.id if scope.region else None
    await _preview(turn, scope, audience, region_id)


async def _ask_pemda(turn: Turn, scope: AuthorScope) -> None:
    turn.goto(FLOW, "pemda")
    regions = await broadcasts.regions_in_scope(session=turn.session, scope=scope)
    if len(regions) > MAX_PEMDA_BUTTONS:
        turn.ask(turn.text("broadcast.ask_pemda_typed"))
        return
    choices = [Choice(f"r:{region.id}", f"{region.code} {region.name}") for region in regions]
    turn.ask(turn.text("broadcast.ask_pemda"), choices)


async def _take_pemda(turn: Turn, scope: AuthorScope) -> None:
    event = turn.event
    region: Region | None = None
    typed = ""
    if isinstance(event, ChoiceMade) and event.choice_id.startswith("r:"):
        region_id = event.choice_id[2:]
        if region_id.isdigit() and scope.allows(int(region_id)):
            region = await broadcasts.get_region(session=turn.session, region_id=int(region_id))
    elif isinstance(event, TextReceived):
        typed = event.text
        region = await broadcasts.find_region_in_scope(
            session=turn.session, scope=scope, typed=typed
        )
    if region is None or region.id is None:
        turn.say("broadcast.unknown_pemda", typed=typed[:60])
        turn.repeat_prompt()
        return
    await _preview(turn, scope, Audience.pemda, region.id)


async def _preview(
    turn: Turn, scope: AuthorScope, audience: Audience, region_id: int | None
) -> None:
    """The count and the message as recipients will read it, then Kirim / Ubah / Batal."""
    contact = turn.contact
    assert contact is not None
    region = (
        await broadcasts.get_region(session=turn.session, region_id=region_id)
        if region_id is not None
        else None
    )
    period = None
    if audience is Audience.not_submitted:
        period = await broadcasts.open_period(session=turn.session, region=region, now=turn.now)
        if period is None:
            turn.say("broadcast.no_open_period")
            _ask_audience(turn)
            return
    spec = Recipients(
        audience=audience,
        region_id=region_id,
        period_id=period.id if period else None,
        author_id=contact.id,
    )
    counted = await broadcasts.count_audience(session=turn.session, spec=spec)
    language = turn.language
    if counted.reachable == 0:
        turn.say("broadcast.nobody", without=count_text(language, counted.without_channel))
        _ask_audience(turn)
        return
    count = count_text(language, counted.reachable)
    lines = [
        turn.text(
            "broadcast.preview",
            audience=turn.text(f"broadcast.audience.{audience.value}"),
            region=region.name if region else turn.text("scope.everywhere"),
            count=count,
        )
    ]
    if period is not None:
        lines.append(turn.text("broadcast.preview_period", period=period.title))
    if counted.without_channel:
        without = count_text(language, counted.without_channel)
        lines.append(turn.text("broadcast.preview_without", without=without))
    lines += ["", turn.text("broadcast.preview_as")]
    turn.say_markup("\n".join(lines))
    sender = _sender_label(contact.role, scope)
    turn.say("broadcast.message", sender=sender, text=turn.get("bc_text"))
    turn.goto(
        FLOW,
        "confirm",
        bc_audience=audience.value,
        bc_region=region_id,
        bc_period=period.id if period else None,
    )
    choices = [
        Choice(SEND, turn.text("broadcast.button.send")),
        Choice(EDIT, turn.text("broadcast.button.edit")),
        Choice(CANCEL, turn.text("broadcast.button.cancel")),
    ]
    turn.ask(turn.text("broadcast.ask_confirm", count=count), choices)


async def _take_confirmation(turn: Turn, scope: AuthorScope) -> None:
    event, contact = turn.event, turn.contact
    assert contact is not None
    choice = event.choice_id if isinstance(event, ChoiceMade) else None
    if choice == EDIT:
        _ask_text(turn, scope)
    elif choice == CANCEL:
        turn.leave_flow()
        turn.say("broadcast.cancelled")
    elif choice == SEND:
        await _send(turn, scope)
    else:
        turn.say("choice.not_understood")
        turn.repeat_prompt()


async def _send(turn: Turn, scope: AuthorScope) -> None:
    contact = turn.contact
    assert contact is not None
    region_id = turn.get("bc_region")
    if not scope.allows(region_id):  # the state is ours, but scope is checked where it acts
        turn.leave_flow()
        turn.say("broadcast.not_allowed")
        return
    spec = Recipients(
        audience=Audience(turn.get("bc_audience")),
        region_id=region_id,
        period_id=turn.get("bc_period"),
        author_id=contact.id,
    )
    broadcast = await broadcasts.create_broadcast(
        session=turn.session,
        spec=spec,
        text=str(turn.get("bc_text")),
        sender_label=_sender_label(contact.role, scope),
        author_channel=turn.event.channel,
        author_chat_id=turn.event.chat_id,
    )
    turn.leave_flow()
    turn.say(
        "broadcast.queued",
        id=broadcast.id,
        count=count_text(turn.language, broadcast.total_recipients),
    )


def _sender_label(role: Role, scope: AuthorScope) -> str:
    """What recipients read as the sender, in Indonesian (the template's language). Plain
    text: it is escaped where it is put into a message."""
    texts = catalogue(DEFAULT_LANGUAGE)
    if scope.region is None or role is Role.admin:
        return texts["broadcast.sender.admin"]
    return texts[f"broadcast.sender.{role.value}"].format(region=scope.region.name)
