"""Fit a message to what a channel can show: too many or too long choices become a numbered
list the user answers with a number, and long texts are split at line breaks."""

from __future__ import annotations

from dataclasses import replace

from bot.engine.channel import Capabilities
from bot.engine.events import Choice, Outgoing, OutText


def coalesce(messages: list[Outgoing], max_text: int) -> list[Outgoing]:
    """Join a turn's consecutive plain texts into one message where they fit: on a phone with
    slow data one message with the intro and the question beats two notifications, and each
    message sent costs the bot too. A text with buttons, a contact request or a template
    keeps what follows it separate (its buttons belong under it)."""
    joined: list[Outgoing] = []
    for message in messages:
        previous = joined[-1] if joined else None
        if (
            isinstance(message, OutText)
            and isinstance(previous, OutText)
            and _is_plain(previous)
            and message.template is None
            and len(previous.text) + 2 + len(message.text) <= max_text
        ):
            joined[-1] = replace(message, text=f"{previous.text}\n\n{message.text}")
        else:
            joined.append(message)
    return joined


def _is_plain(message: OutText) -> bool:
    return not (message.choices or message.request_contact or message.template)


def fit(message: OutText, capabilities: Capabilities) -> list[OutText]:
    message = _fit_choices(message, capabilities)
    parts = split_text(message.text, capabilities.max_text)
    if len(parts) == 1:
        return [message]
    # Buttons go with the last part, where the question is.
    head = [OutText(text=part) for part in parts[:-1]]
    return [*head, replace(message, text=parts[-1])]


def _fit_choices(message: OutText, capabilities: Capabilities) -> OutText:
    choices = message.choices
    if not choices:
        return message
    too_many = len(choices) > capabilities.max_choices or not capabilities.inline_buttons
    too_long = any(len(choice.label) > capabilities.max_choice_label for choice in choices)
    if not too_many and not too_long:
        return message
    numbered = "\n".join(f"{n}. {choice.label}" for n, choice in enumerate(choices, start=1))
    text = f"{message.text}\n\n{numbered}"
    if too_many:
        return replace(message, text=text, choices=())
    # Few but long: keep buttons, labelled by number and a shortened title.
    short = tuple(
        Choice(choice.id, shorten(f"{n}. {choice.label}", capabilities.max_choice_label))
        for n, choice in enumerate(choices, start=1)
    )
    return replace(message, text=text, choices=short)


def shorten(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: max(1, limit - 1)].rstrip() + "…"


def split_text(text: str, limit: int) -> list[str]:
    """Split at line breaks (never inside a line unless one line alone is too long)."""
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current:
        parts.append(current)
    return parts
