"""Which handler answers an event. Commands work from any state; otherwise the user's current
flow answers; an unregistered user only ever reaches registration.

```mermaid
flowchart TD
    E[event] --> B{button of an earlier prompt?}
    B -- yes --> O[refused: 'Tombol itu sudah tidak berlaku', the current question again]
    B -- no --> SB{standing button of a notice?}
    SB -- open for revision --> RV[report: own office's returned report, that version only]
    SB -- no --> C{command?}
    C -- /start /daftar --> R[register]
    C -- /bantuan /bahasa --> H[help / language, then the current question again]
    C -- no --> V{edited message, sticker, voice, video?}
    V -- yes --> N[edit not applied / only text, photos, documents; the question again]
    C -- other, unregistered --> R
    C -- /batal --> X[leave flow, draft kept]
    C -- /kembali /selesai /hapus --> F[current flow]
    C -- /lapor --> P[report]
    C -- /status --> S[status]
    C -- /periksa --> RW[review: coordinators, Kanwil, admin]
    C -- /belum /rekap --> OV[oversight: role check, pending list / recap files]
    C -- /siaran --> BC[broadcast: Kanwil, coordinators, admin]
    V -- no --> U{registered?}
    U -- no --> R
    U -- yes --> G{in a flow?}
    G -- oversight view, a button --> OV2[oversight: page, open, back]
    G -- yes --> F
    G -- review --> RW
    G -- no --> M[idle: where they stand - status - and what to type]
```
"""

from __future__ import annotations

from bot.engine.commands import TAKES_ARGUMENTS, Command, parse_command
from bot.engine.events import ChoiceMade, CommandReceived, FileReceived, TextReceived, Unsupported
from bot.engine.turn import STANDING, Turn
from handlers import broadcast, oversight, register, report, review, status
from handlers import help as help_flow
from storage.models import ConversationState, Role

OVERSIGHT_ROLES = {Role.coordinator, Role.kanwil, Role.admin}
COMMAND_NAMES = {command.value for command in Command}
# Oversight commands a coordinator or the Kanwil may type without the slash, text after them.
TYPED_OVERSIGHT = {Command.pending, Command.recap, Command.broadcast}


def wants_file(state: ConversationState) -> bool:
    """Whether a file from this user should be downloaded: only when a flow asks for one."""
    return state.flow == report.FLOW and report.wants_file(state.step)


async def route(turn: Turn) -> None:
    event = turn.event
    if turn.stale_button:
        await _stale_button(turn)
    elif isinstance(event, ChoiceMade) and event.choice_id.startswith(STANDING):
        await _standing_button(turn, event.choice_id)
    elif isinstance(event, CommandReceived) and event.name not in COMMAND_NAMES:
        _unknown_command(turn, event.args.split(" ", 1)[0])
    elif isinstance(event, CommandReceived):
        await _command(turn, Command(event.name))
    elif (typed := _oversight_command(turn)) is not None:
        await _command(turn, typed)
    elif isinstance(event, Unsupported):
        await _unsupported(turn, event)
    elif turn.contact is None:
        await register.handle(turn)
    elif turn.flow == report.FLOW:
        await report.handle(turn)
    elif turn.flow == help_flow.FLOW:
        await help_flow.handle(turn)
    elif turn.flow == review.FLOW:
        await review.handle(turn)
    elif turn.flow == oversight.FLOW:
        if not await oversight.handle(turn):
            turn.leave_flow()  # a typed message ends the view: answered as if idle
            await _idle(turn)
    elif turn.flow == broadcast.FLOW:
        await broadcast.handle(turn)
    else:
        await _idle(turn)


async def _command(turn: Turn, command: Command) -> None:
    if command in {Command.start, Command.register}:
        await _start_or_register(turn)
        _reask(turn)
    elif command is Command.help:
        help_flow.show_help(turn)
    elif command is Command.language:
        help_flow.ask_language(turn)
    elif turn.contact is None:
        await register.handle(turn)
    elif command is Command.cancel:
        _cancel(turn)
    elif command is Command.back:
        await _in_report(turn, report.back)
    elif command is Command.done:
        await report.done(turn)
    elif command is Command.remove:
        await report.remove(turn)
    elif command is Command.report:
        await report.start(turn)
    elif command is Command.status:
        await status.show(turn)
    elif command is Command.review:
        await review.start(turn)
    elif command is Command.pending:
        await oversight.show_pending(turn)
    elif command is Command.recap:
        await oversight.send_recap(turn)
    elif command is Command.broadcast:
        await broadcast.start(turn)


def _oversight_command(turn: Turn) -> Command | None:
    """`siaran <teks>` typed without a slash by a coordinator or the Kanwil: their commands take
    text, and they fill in no report whose answers the word could start."""
    event, contact = turn.event, turn.contact
    if not isinstance(event, TextReceived) or contact is None:
        return None
    # A review note may start with "belum"; a broadcast being written with "siaran".
    if turn.flow in {report.FLOW, review.FLOW, broadcast.FLOW}:
        return None
    if contact.role not in OVERSIGHT_ROLES:
        return None
    parsed = parse_command(event.text, takes_arguments=TAKES_ARGUMENTS | TYPED_OVERSIGHT)
    return parsed[0] if parsed and parsed[0] in TYPED_OVERSIGHT else None


def _reask(turn: Turn) -> None:
    """After a side command the user is still where they were: ask the current question again,
    so the chat's last message is the question waiting for an answer."""
    if turn.flow and turn.flow != register.FLOW:
        turn.repeat_prompt()


async def _standing_button(turn: Turn, choice_id: str) -> None:
    """A button of a notice (turn.STANDING): its handler checks scope and version itself."""
    ref = review.revision_ref(choice_id)
    if turn.contact is None:
        await register.handle(turn)
    elif ref is not None:
        await report.open_for_revision(turn, *ref)
    else:
        await _stale_button(turn)


async def _unsupported(turn: Turn, event: Unsupported) -> None:
    """An edit is not applied (the answer was taken as first sent); stickers, voice notes,
    videos and the like are not something a report can hold."""
    turn.say("edit.not_applied" if event.kind == "edited" else "unsupported.media")
    if turn.flow:
        turn.repeat_prompt()
    elif turn.contact is None:
        await register.handle(turn)


async def _start_or_register(turn: Turn) -> None:
    event = turn.event
    if isinstance(event, CommandReceived) and event.name == Command.register and event.args:
        await register.redeem(turn, event.args)
    else:
        await register.start(turn)


def _cancel(turn: Turn) -> None:
    if turn.flow is None:
        turn.say("cancel.nothing")
        return
    was_report = turn.flow == report.FLOW
    turn.leave_flow()
    turn.say("cancel.report" if was_report else "cancel.done")


async def _in_report(turn: Turn, action: report.FlowAction) -> None:
    if turn.flow == report.FLOW:
        await action(turn)
    else:
        turn.say("back.nothing")


def _unknown_command(turn: Turn, word: str) -> None:
    turn.say("command.unknown", command=word[:40])
    if turn.flow:
        turn.repeat_prompt()


async def _stale_button(turn: Turn) -> None:
    """A button of an earlier prompt changes nothing: say so, and show where the user is."""
    if turn.flow:
        turn.say("choice.stale")
        turn.repeat_prompt()
    elif turn.contact is None:
        turn.say("choice.stale_idle")
        await register.handle(turn)
    else:
        turn.say("choice.stale_idle")
        await status.show(turn)


async def _idle(turn: Turn) -> None:
    """Nothing is open: a file is not kept; a text ("halo", an old "Ya, kirim") gets where the
    user stands (their status) rather than a bare "not understood"."""
    if isinstance(turn.event, FileReceived):
        turn.say("idle.file")
        return
    turn.say("idle.where")
    await status.show(turn)
    turn.say("idle.next")
