"""What the WhatsApp channel sends inside the 24-hour window: the JSON bodies of text,
interactive and media messages, and the conversion of the engine's markup (templates.py has the
template messages for outside it).

Pure functions only (no I/O), so every limit of the Cloud API is tested without a server:
reply buttons at most 3 with titles of at most 20 characters, list rows at most 10 with titles of
at most 24 and descriptions of at most 72, an interactive body of at most 1024, a text of at most
4096, a caption of at most 1024, template parameters on one line.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from bot.engine.events import Choice
from bot.engine.render import split_text

Json = dict[str, Any]

MAX_TEXT = 4096
MAX_BODY = 1024  # interactive body (the fake and the button message both stop at 1024)
MAX_CAPTION = 1024
MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_ROWS = 10
MAX_ROW_TITLE = 24
MAX_ROW_DESCRIPTION = 72
# A template's body, fixed text included, must stay under 1024 characters.
MAX_PARAM = 900
MAX_DOCUMENT_BYTES = 100 * 1024 * 1024  # a document message: Cloud API media limit
LIST_BUTTON = "Pilih"
CHOOSE_BODY = "Pilih:"

# --- markup ----------------------------------------------------------------------------------

_TAG = re.compile(r"<(/?)(b|i)>")
_PAIR = re.compile(r"<(b|i)>(.*?)</\1>", re.DOTALL)
_MARK = {"b": "*", "i": "_"}
_NUMBERED = re.compile(r"^\d+\.\s")


def to_whatsapp(markup: str) -> str:
    """The engine's `<b>`/`<i>` markup as WhatsApp's `*bold*`/`_italic_`, entities decoded.

    WhatsApp only formats when the marker touches the word (`*x*`, not `* x *`), so whitespace
    inside a tag is moved outside it; an empty tag vanishes."""

    def replace(match: re.Match[str]) -> str:
        inner = match.group(2)
        core = inner.strip()
        if not core:
            return inner
        lead = inner[: len(inner) - len(inner.lstrip())]
        trail = inner[len(inner.rstrip()) :]
        mark = _MARK[match.group(1)]
        return f"{lead}{mark}{core}{mark}{trail}"

    text = _PAIR.sub(replace, markup)
    text = _PAIR.sub(replace, text)  # one nesting level (<b><i>x</i></b>)
    return html.unescape(_TAG.sub("", text))


def to_plain(markup: str) -> str:
    """Markup without any formatting (template parameters, list descriptions)."""
    return html.unescape(_TAG.sub("", markup))


def shorten(label: str, limit: int) -> str:
    """Cut at a word boundary when one is near, and say so with "…"."""
    label = " ".join(label.split())
    if len(label) <= limit:
        return label
    cut = label[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-—") + "…"


def clip(text: str, limit: int) -> str:
    """Cut a multi-line text to `limit` characters, keeping its line breaks."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def one_line(text: str, limit: int = MAX_PARAM) -> str:
    """A template parameter: Meta refuses newlines, tabs and runs of more than 4 spaces."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    joined = ""
    for line in lines:
        if not joined:
            joined = line
        elif joined[-1] in ".:;!?" or line.startswith(("•", "-", "–")) or _NUMBERED.match(line):
            joined = f"{joined} {line}"
        else:
            joined = f"{joined}. {line}"
    return shorten(joined, limit) or "-"


# --- free-form messages ----------------------------------------------------------------------


def envelope(to: str, kind: str, content: Json) -> Json:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": kind,
        kind: content,
    }


def text_bodies(to: str, text: str) -> list[Json]:
    return [
        envelope(to, "text", {"body": part, "preview_url": False})
        for part in split_text(text, MAX_TEXT)
        if part.strip()
    ]


def button_titles(labels: Sequence[str], limit: int = MAX_BUTTON_TITLE) -> list[str]:
    """Short, distinct titles: WhatsApp refuses two buttons with the same title."""
    titles = [shorten(label, limit) for label in labels]
    if len(set(titles)) == len(titles):
        return titles
    numbered = [
        label if _NUMBERED.match(label) else f"{n}. {label}"
        for n, label in enumerate(labels, start=1)
    ]
    titles = [shorten(label, limit) for label in numbered]
    if len(set(titles)) == len(titles):
        return titles
    return [shorten(f"{n}. {label}", limit) for n, label in enumerate(labels, start=1)]


def _buttons(choices: Sequence[Choice], titles: Sequence[str]) -> Json:
    return {
        "type": "button",
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": choice.id, "title": title}}
                for choice, title in zip(choices, titles, strict=True)
            ]
        },
    }


def _button_text(text: str, choices: Sequence[Choice]) -> tuple[str, list[str]]:
    """The body and the button titles. When a title must be cut, the titles are numbered and the
    full labels listed under the text, so "1. Bantuan usaha…" and "2. Bantuan usaha…" can still
    be told apart (unless the engine already listed them: its labels are numbered then)."""
    labels = [" ".join(to_plain(choice.label).split()) for choice in choices]
    if all(len(label) <= MAX_BUTTON_TITLE for label in labels):
        return text, button_titles(labels)
    if all(_NUMBERED.match(label) for label in labels):
        return text, button_titles(labels)
    numbered = [f"{n}. {label}" for n, label in enumerate(labels, start=1)]
    return f"{text}\n\n" + "\n".join(numbered), button_titles(numbered)


def _list(choices: Sequence[Choice], button: str) -> Json:
    rows = []
    for choice in choices:
        label = " ".join(to_plain(choice.label).split())
        row: Json = {"id": choice.id, "title": shorten(label, MAX_ROW_TITLE)}
        if len(label) > MAX_ROW_TITLE:  # the full label where the title had to be cut
            row["description"] = shorten(label, MAX_ROW_DESCRIPTION)
        rows.append(row)
    action = {"button": shorten(button, MAX_BUTTON_TITLE), "sections": [{"rows": rows}]}
    return {"type": "list", "action": action}


def split_body(
    text: str, limit: int = MAX_BODY, *, empty_body: str = CHOOSE_BODY
) -> tuple[str, str]:
    """(lead text sent first, body of the interactive message). The body keeps the end of the
    text, where the question is, so the buttons stay next to it: the longest run of whole
    paragraphs (else lines) that fits."""
    if not text.strip():
        return "", empty_body
    if len(text) <= limit:
        return "", text
    for separator in ("\n\n", "\n"):
        for match in re.finditer(re.escape(separator), text):
            tail = text[match.end() :]
            if len(tail) <= limit and tail.strip():
                return text[: match.start()], tail
    return text, empty_body


def interactive_bodies(
    to: str, text: str, choices: Sequence[Choice], *, choose_label: str = LIST_BUTTON
) -> list[Json]:
    """Up to 3 choices as reply buttons, up to 10 as a list, more as numbered text (the engine
    already turns more than `max_choices` into numbers, so that case is only a safety net).
    `choose_label` is the engine's word for "choose" in the user's language."""
    if len(choices) > MAX_ROWS:
        numbered = "\n".join(f"{n}. {c.label}" for n, c in enumerate(choices, start=1))
        return text_bodies(to, f"{text}\n\n{numbered}")
    if len(choices) <= MAX_BUTTONS:
        text, titles = _button_text(text, choices)
        interactive = _buttons(choices, titles)
    else:
        interactive = _list(choices, choose_label)
    lead, body = split_body(text, empty_body=f"{choose_label}:")
    interactive["body"] = {"text": body}
    return [*text_bodies(to, lead), envelope(to, "interactive", interactive)]


def media_body(to: str, media_id: str, *, filename: str, caption: str, as_image: bool) -> Json:
    content: Json = {"id": media_id}
    if caption.strip():
        content["caption"] = clip(caption, MAX_CAPTION)
    if as_image:
        return envelope(to, "image", content)
    content["filename"] = filename
    return envelope(to, "document", content)


def read_receipt(message_id: str) -> Json:
    return {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
