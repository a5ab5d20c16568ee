"""The import rules of docs/architecture.md, checked on the source: a layer that reaches past
its neighbours, or a private name of a library, fails here before it ships.

Every import counts, including those inside functions and under TYPE_CHECKING."""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("bot", "handlers", "scheduler", "storage", "bench")
OURS = {"bot", "handlers", "scheduler", "storage", "tests", "bench"}


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    module: str  # "a.b" for `import a.b` and `from a.b import c`
    names: tuple[str, ...]  # the names of `from ... import`, empty for `import`

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}: {self.module}"


def imports_under(folder: str) -> list[Import]:
    found: list[Import] = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [Import(path, node.lineno, alias.name, ()) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = tuple(alias.name for alias in node.names)
                found.append(Import(path, node.lineno, node.module, names))
    return found


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def is_third_party(module: str) -> bool:
    top = module.split(".")[0]
    return top not in OURS and top != "__future__" and top not in sys.stdlib_module_names


def test_no_private_name_of_a_library_is_imported() -> None:
    """Private modules and names change without notice in a minor release."""

    def private(part: str) -> bool:
        return part.startswith("_") and not part.startswith("__")

    hits = [
        str(found)
        for folder in PRODUCT
        for found in imports_under(folder)
        if is_third_party(found.module)
        and (any(map(private, found.module.split("."))) or any(map(private, found.names)))
    ]
    assert hits == []


# (folder, what it may not import, exceptions inside that, why)
RULES = [
    ("storage", ("bot", "handlers", "scheduler"), (), "storage imports nothing above it"),
    ("handlers", ("bot.channels", "scheduler", "bot.app"), (), "handlers are channel-agnostic"),
    ("bot/engine", ("bot.channels", "handlers", "scheduler", "bot.app"), (), "engine is neutral"),
    ("scheduler", ("bot.channels", "handlers", "bot.app"), (), "jobs get what they need"),
    (
        "bot/channels",
        ("storage", "handlers", "scheduler", "bot.app", "bot.settings", "bot.cli"),
        ("storage.evidence", "storage.types"),
        "channels translate and deliver; the composition root gives them settings and the store",
    ),
    (
        "bot/channels",
        ("storage.evidence.references",),
        (),
        "the evidence store's protocol, not the tables behind the sweep",
    ),
]


@pytest.mark.parametrize(("folder", "forbidden", "allowed", "why"), RULES)
def test_layers_import_only_what_they_may(
    folder: str, forbidden: tuple[str, ...], allowed: tuple[str, ...], why: str
) -> None:
    hits = [
        str(found)
        for found in imports_under(folder)
        if any(within(found.module, prefix) for prefix in forbidden)
        and not any(within(found.module, prefix) for prefix in allowed)
    ]
    assert hits == [], why


def test_only_channels_import_a_chat_library() -> None:
    hits = [
        str(found)
        for folder in ("bot", "handlers", "scheduler", "storage")
        for found in imports_under(folder)
        if within(found.module, "telegram")
        and not found.path.is_relative_to(ROOT / "bot" / "channels")
    ]
    assert hits == []


def test_only_storage_builds_sql() -> None:
    """Elsewhere the database is reached through storage functions; the session and
    sessionmaker types are all that may be named."""
    session_types = ("sqlalchemy.ext.asyncio", "sqlmodel.ext.asyncio.session")
    hits = [
        str(found)
        for folder in ("bot", "handlers", "scheduler")
        for found in imports_under(folder)
        if (within(found.module, "sqlalchemy") or within(found.module, "sqlmodel"))
        and not any(within(found.module, allowed) for allowed in session_types)
    ]
    assert hits == []
