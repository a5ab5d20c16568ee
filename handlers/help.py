"""/bantuan (what I can do here, for my role) and /bahasa (Indonesian or English)."""

from __future__ import annotations

from enum import StrEnum

from bot.engine.events import Choice, ChoiceMade
from bot.engine.turn import PROMPT_KEY, Turn
from storage.models import Contact, Role

FLOW = "language"
RETURN_KEY = "_language_return"  # the flow, step and question /bahasa interrupted


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
    back = None
    if turn.flow and turn.flow != FLOW:
        back = {"flow": turn.flow, "step": turn.step, "prompt": turn.get(PROMPT_KEY)}
    turn.goto(FLOW, Step.choose, **{RETURN_KEY: back or turn.get(RETURN_KEY)})
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
        turn.say("language.set")
        _return(turn)
        return
    turn.say("language.unknown")
    turn.repeat_prompt()


def _return(turn: Turn) -> None:
    """Back to what /bahasa interrupted, with its question asked again (as it was worded)."""
    back = turn.get(RETURN_KEY)
    if not back:
        turn.leave_flow()
        return
    turn.goto(back["flow"], back["step"], **{RETURN_KEY: None})
    prompt = back.get("prompt")
    if prompt:
        turn.ask(prompt["text"], [Choice(str(cid), str(label)) for cid, label in prompt["choices"]])
