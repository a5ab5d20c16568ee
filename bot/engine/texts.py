"""Every user-facing text, one YAML file per language (bot/engine/locales/). Indonesian is the
default and complete; English is complete too (a test checks both have the same keys and
placeholders).

Texts are HTML-safe markup: the templates may use <b> and <i>; every value put into them is
escaped here, so a user-supplied string can never become markup.
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path
from typing import Any

import yaml

LOCALES_DIR = Path(__file__).parent / "locales"
LANGUAGES = ("id", "en")
DEFAULT_LANGUAGE = "id"


@cache
def catalogue(language: str) -> dict[str, str]:
    with (LOCALES_DIR / f"{language}.yaml").open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return {str(key): str(value).rstrip("\n") for key, value in data.items()}


def escape(value: Any) -> str:
    return html.escape(str(value), quote=False)


def t(language: str, key: str, /, **values: Any) -> str:
    """The text `key` in `language` (falling back to Indonesian), with values escaped."""
    texts = catalogue(language if language in LANGUAGES else DEFAULT_LANGUAGE)
    template = texts.get(key) or catalogue(DEFAULT_LANGUAGE)[key]
    return template.format(**{name: escape(value) for name, value in values.items()})


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB".replace(".", ",")


def count_text(language: str, number: int) -> str:
    """A count as people there write it: 1.200 in Indonesian, 1,200 in English."""
    grouped = f"{number:,}"
    return grouped if language == "en" else grouped.replace(",", ".")
