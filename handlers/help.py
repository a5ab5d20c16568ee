"""/bantuan (what I can do here, for my role) and /bahasa (Indonesian or English)."""

from __future__ import annotations

from enum import StrEnum

from bot.engine.events import Choice, ChoiceMade
from bot.engine.turn import Turn
from storage.models import Contact, Role

FLOW = "language"


class Step(StrEnum):
    choose = "choose"


def role_help(turn: Turn, contact: Contact | None) -> str:
    if contact is None:
        return turn.text("help.unregistered")
    key = {
        Role.focal_point: "help.focal_point",
        Role.coordinator: "help.coordinator",
        Role.kanwil: "help.kanwil",
        Role.admin: "help.admin",
    }[contact.role]
    return turn.text(key)


def show_help(turn: Turn) -> None:
    turn.say_markup(role_help(turn, turn.contact))
    if turn.flow:
        turn.repeat_prompt()


def ask_language(turn: Turn) -> None:
    turn.goto(FLOW, Step.choose)
    turn.ask(
        turn.text("language.ask"),
        [Choice("lang:id", "Bahasa Indonesia"), Choice("lang:en", "English")],
    )


async def handle(turn: Turn) -> None:
    event = turn.event
    if isinstance(event, ChoiceMade) and event.choice_id in {"lang:id", "lang:en"}:
        language = event.choice_id.removeprefix("lang:")
        if turn.contact is not None:
            turn.contact.language = language
        turn.state.data = {**turn.state.data, "language": language}
        turn.leave_flow()
        turn.say("language.set")
        return
    turn.say("language.unknown")
    turn.repeat_prompt()
