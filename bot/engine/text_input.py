"""Clean what a client typed or named before anything reads, stores or shows it.

Every channel hands over text exactly as the phone sent it. Two rules, applied once as an event
enters the engine (bot/engine/dispatch.py):

- text (answers, command arguments): normalised to NFC, so "é" typed two ways is one answer;
  control characters removed (a NUL cannot be stored in a PostgreSQL text column and must not
  be stored elsewhere either), except line breaks and tabs; bidi overrides removed.
- names (file names, display names): the same, and on one line; bidi controls are removed so a
  file called ``laporan<RLO>fdp.exe`` is shown and stored as ``laporanfdp.exe``, never
  rendered as ``laporanexe.pdf``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace

from bot.engine.events import (
    CommandReceived,
    ContactShared,
    FileReceived,
    Inbound,
    TextReceived,
)

__all__ = ["NAME_MAX", "clean_event", "clean_name", "clean_text"]

NAME_MAX = 255  # what EvidenceFile.original_name holds
# Embeddings, overrides and isolates (LRE RLE PDF LRO RLO, LRI RLI FSI PDI): they reorder what
# follows them. The plain marks LRM/RLM/ALM only nudge neutral characters and are kept.
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
KEPT_CONTROLS = frozenset("\n\t")


def clean_text(text: str) -> str:
    """NFC, without control characters (line breaks and tabs stay) or bidi overrides."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = BIDI_CONTROLS.sub("", text)
    return "".join(c for c in text if c in KEPT_CONTROLS or not _is_control(c))


def clean_name(name: str | None) -> str | None:
    """A client-supplied name fit to show and store: one line, no controls, at most NAME_MAX
    characters; None when nothing readable is left."""
    if name is None:
        return None
    one_line = " ".join(clean_text(name).split())
    return one_line[:NAME_MAX] or None


def clean_event(event: Inbound) -> Inbound:
    """The event with its client-supplied text cleaned; other fields untouched."""
    display_name = clean_name(event.display_name)
    if isinstance(event, TextReceived):
        return replace(event, text=clean_text(event.text), display_name=display_name)
    if isinstance(event, CommandReceived):
        return replace(event, args=clean_text(event.args), display_name=display_name)
    if isinstance(event, FileReceived):
        return replace(
            event,
            claimed_name=clean_name(event.claimed_name),
            claimed_mime=clean_name(event.claimed_mime),  # stored beside the file
            display_name=display_name,
        )
    if isinstance(event, ContactShared):  # a refused number is echoed back
        return replace(event, phone=clean_name(event.phone) or "", display_name=display_name)
    return replace(event, display_name=display_name)


def _is_control(character: str) -> bool:
    # Cc: C0/C1 controls (NUL, ESC, DEL, ...). Cf format characters other than the bidi
    # controls above (zero-width joiners in emoji, soft hyphens) are harmless and kept.
    return unicodedata.category(character) == "Cc"
