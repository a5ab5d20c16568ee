"""Folder and file names inside an evidence archive, made from catalogue and user text.

Every component goes through :func:`path_component`: transliterated to ASCII (Windows' built-in
ZIP reader ignores the UTF-8 flag of older archivers' names), reduced to letters, digits, spaces
and ``( ) _ , -``, so no separator, no dot (hence no ``..``, no hidden file, no second
extension) and no control character survives, then checked by pathvalidate against the names
Windows reserves (``CON``, ``NUL``, ``COM1``...). The extension is added by us, from the type
sniffed at upload. Two different things that end up with the same name in one folder are told
apart with `` (2)``, `` (3)``..., compared case-insensitively as Windows does.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Hashable

from pathvalidate import sanitize_filename

__all__ = ["ArchiveNames", "path_component"]

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9()_,\- ]+")
_SPACES = re.compile(r"\s+")


def path_component(text: str | None, *, max_length: int, fallback: str) -> str:
    """A safe, readable folder or file-name part of at most ``max_length`` characters."""
    ascii_text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode()
    cleaned = _SPACES.sub(" ", _NOT_ALLOWED.sub(" ", ascii_text))
    # A leading hyphen reads as an option to command-line tools; trailing spaces vanish on Windows.
    shortened = _shorten(cleaned.strip(" -_,"), max_length).strip(" -_,")
    safe = sanitize_filename(shortened, platform="universal", max_len=max_length + 1)
    return safe or fallback


def _shorten(text: str, max_length: int) -> str:
    """Cut at a word boundary when there is one in the second half, else hard."""
    if len(text) <= max_length:
        return text
    cut = text[:max_length]
    space = cut.rfind(" ")
    return cut[:space] if space > max_length // 2 else cut


class ArchiveNames:
    """Unique member paths for one archive: the same key always gets the same folder, and no two
    folders or files of one parent share a name."""

    def __init__(self) -> None:
        self._folders: dict[tuple[str, Hashable], str] = {}
        self._taken: dict[str, set[str]] = {}

    def folder(self, parent: str, key: Hashable, label: str) -> str:
        """The path of the folder for ``key`` under ``parent`` (``label`` already a component)."""
        known = self._folders.get((parent, key))
        if known is None:
            known = self._join(parent, self._unique(parent, label, ""))
            self._folders[(parent, key)] = known
        return known

    def file(self, parent: str, stem: str, extension: str) -> str:
        """A new file's path under ``parent``: ``stem.extension``, numbered if taken."""
        return self._join(parent, self._unique(parent, stem, f".{extension}"))

    def _unique(self, parent: str, stem: str, suffix: str) -> str:
        taken = self._taken.setdefault(parent, set())
        name, number = f"{stem}{suffix}", 1
        while name.casefold() in taken:
            number += 1
            name = f"{stem} ({number}){suffix}"
        taken.add(name.casefold())
        return name

    @staticmethod
    def _join(parent: str, name: str) -> str:
        return f"{parent}/{name}" if parent else name
