"""The locale files (bot/engine/locales/*.yaml) agree with each other and with the code: same keys,
same {placeholders}, only <b>/<i> markup, balanced; every key the code asks for exists."""

from __future__ import annotations

import ast
import re
import string
from functools import cache
from pathlib import Path

import pytest
import yaml

from bot.engine import texts
from bot.engine.texts import t
from storage.evidence import RejectionCode
from storage.models import QuestionKind, Role, SubmissionStatus

ROOT = Path(__file__).resolve().parents[2]
LOCALES = ROOT / "bot" / "engine" / "locales"
LANGUAGES = ("id", "en")
ALLOWED_TAGS = {"<b>", "</b>", "<i>", "</i>"}
KEY = r"[a-z_]+(?:\.[a-z_]+)+"
SAY_OR_TEXT = re.compile(rf"\.(?:say|text)\(\s*[\"']({KEY})[\"']", re.S)
T_CALL = re.compile(rf"\bt\(\s*\w+\s*,\s*[\"']({KEY})[\"']", re.S)
INVALID = re.compile(rf"\bInvalid\(\s*[\"']({KEY})[\"']", re.S)


@cache
def load(language: str) -> dict[str, str]:
    with (LOCALES / f"{language}.yaml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


def source_files() -> list[Path]:
    return sorted((ROOT / "handlers").glob("*.py")) + sorted((ROOT / "bot").rglob("*.py"))


def keys_used_in_code() -> set[str]:
    used: set[str] = set()
    for path in source_files():
        source = path.read_text(encoding="utf-8")
        used.update(SAY_OR_TEXT.findall(source))
        used.update(T_CALL.findall(source))
    used.update(INVALID.findall((ROOT / "handlers" / "answers.py").read_text(encoding="utf-8")))
    return used


def dynamic_keys() -> set[str]:
    keys = {f"status.{status.value}" for status in SubmissionStatus} | {"status.none"}
    keys |= {f"role.{role.value}" for role in Role}
    keys |= {f"hint.{kind.value}" for kind in QuestionKind}
    keys |= {f"evidence.rejected.{code.value}" for code in RejectionCode}
    keys |= {"evidence.rejected.fetch_failed"}
    keys |= {f"kind.{kind}" for kind in ("photo", "pdf", "docx", "xlsx")}
    return keys


# --- the files themselves -------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_locale_is_a_flat_mapping_of_strings(language: str) -> None:
    data = load(language)
    assert isinstance(data, dict) and data
    for key, value in data.items():
        assert isinstance(key, str) and re.fullmatch(KEY, key), key
        assert isinstance(value, str), f"{language}:{key} is {type(value).__name__}"
        assert value.strip(), f"{language}:{key} is empty"


def test_both_languages_have_the_same_keys() -> None:
    indonesian, english = set(load("id")), set(load("en"))
    assert sorted(indonesian - english) == [], "missing in en.yaml"
    assert sorted(english - indonesian) == [], "missing in id.yaml"


@pytest.mark.parametrize("key", sorted(load("id")))
def test_placeholders_are_identical(key: str) -> None:
    assert placeholders(load("en")[key]) == placeholders(load("id")[key])


@pytest.mark.parametrize("language", LANGUAGES)
def test_only_bold_and_italic_markup_balanced(language: str) -> None:
    for key, value in load(language).items():
        tags = re.findall(r"<[^>]+>", value)
        assert set(tags) <= ALLOWED_TAGS, f"{language}:{key} uses {set(tags) - ALLOWED_TAGS}"
        stack: list[str] = []
        for tag in tags:
            if tag.startswith("</"):
                assert stack and stack[-1] == tag[2:-1], f"{language}:{key}: unbalanced {tag}"
                stack.pop()
            else:
                stack.append(tag[1:-1])
        assert stack == [], f"{language}:{key}: unclosed {stack}"
        assert "<" not in re.sub(r"<[^>]+>", "", value), f"{language}:{key}: stray <"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_text_formats_with_its_placeholders(language: str) -> None:
    for key, value in load(language).items():
        rendered = t(language, key, **dict.fromkeys(placeholders(value), "X"))
        assert "{" not in rendered and "}" not in rendered, f"{language}:{key}"


def test_catalogue_matches_the_files() -> None:
    for language in LANGUAGES:
        assert set(texts.catalogue(language)) == set(load(language))
    assert set(texts.LANGUAGES) == set(LANGUAGES)


def test_english_is_english() -> None:
    english = load("en")
    assert "English" in english["language.set"]
    assert english["button.yes"] == "Yes" and english["button.no"] == "No"
    for mark in ("✅", "❌"):
        for key, value in load("id").items():
            assert (mark in value) == (mark in english[key]), f"{mark} in {key}"


def test_english_shows_english_command_aliases() -> None:
    indonesian_only = (
        r"/(?:lapor|kembali|batal|selesai|belum|rekap|periksa|siaran|bantuan|bahasa|daftar)\b"
    )
    for key, value in load("en").items():
        assert not re.search(indonesian_only, value), f"en:{key}: {value}"
    assert "{command}" in load("en")["register.ask_typed"]


# --- escaping -------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_values_are_escaped(language: str) -> None:
    text = t(language, "register.bad_phone", phone="<script>")
    assert "&lt;script&gt;" in text
    assert "<script>" not in text


def test_markup_in_the_template_survives_escaping() -> None:
    text = t("id", "register.welcome", name="<b>Ana</b> & co", role="x", scope="y")
    assert text.startswith("Selamat datang, <b>&lt;b&gt;Ana&lt;/b&gt; &amp; co</b>")


def test_unknown_language_falls_back_to_indonesian() -> None:
    assert t("xx", "cancel.done") == t("id", "cancel.done")


# --- keys the code uses ---------------------------------------------------------------------


def test_scanner_finds_keys() -> None:
    used = keys_used_in_code()
    # Sanity: the scan sees single-line, multi-line and t() calls and the Invalid literals.
    assert {"register.bad_phone", "error.internal", "answer.nihil", "report.submitted"} <= used


def test_every_key_used_in_code_exists() -> None:
    missing = sorted(keys_used_in_code() - set(load("id")))
    assert missing == []


def test_every_dynamic_key_exists() -> None:
    missing = sorted(dynamic_keys() - set(load("id")))
    assert missing == []


def test_every_key_like_literal_in_code_exists() -> None:
    """Keys picked by a variable (`key = "a" if x else "b"`) are string literals too."""
    catalogue = load("id")
    namespaces = {key.split(".")[0] for key in catalogue}
    missing = set()
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            value = node.value
            is_key = re.fullmatch(KEY, value) and value.split(".")[0] in namespaces
            if is_key and value not in catalogue:
                missing.add(f"{path.relative_to(ROOT)}: {value}")
    assert sorted(missing) == []
