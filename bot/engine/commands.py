"""The chat commands (README.md, "Chat commands"): Indonesian names, English aliases, with or
without the slash, any letter case, because WhatsApp users type words."""

from __future__ import annotations

from enum import StrEnum


class Command(StrEnum):
    start = "start"
    register = "daftar"
    report = "lapor"
    back = "kembali"
    cancel = "batal"
    done = "selesai"
    remove = "hapus"
    status = "status"
    pending = "belum"
    recap = "rekap"
    review = "periksa"
    broadcast = "siaran"
    help = "bantuan"
    language = "bahasa"


ALIASES: dict[str, Command] = {
    **{command.value: command for command in Command},
    "register": Command.register,
    "report": Command.report,
    "back": Command.back,
    "cancel": Command.cancel,
    "done": Command.done,
    "remove": Command.remove,
    "pending": Command.pending,
    "recap": Command.recap,
    "review": Command.review,
    "broadcast": Command.broadcast,
    "help": Command.help,
    "language": Command.language,
    "menu": Command.help,
}


# Bare words that are commands even when followed by more words ("daftar KODE"). Others only
# count alone, so an answer starting with the word ("selesai dibangun") is not eaten.
TAKES_ARGUMENTS = frozenset({Command.register})


def parse_command(
    text: str, *, takes_arguments: frozenset[Command] = TAKES_ARGUMENTS
) -> tuple[Command, str] | None:
    """`"/Lapor@LaporHAMBot x"` -> (Command.report, "x"); a plain word counts too ("batal").

    Only the first word is looked at, and a bare word only when it is the whole message or is
    followed by arguments of a command that takes them, so that ordinary answers are not eaten.
    """
    stripped = text.strip()
    if not stripped:
        return None
    head, _, rest = stripped.partition(" ")
    slash = head.startswith("/")
    word = head.lstrip("/").split("@", 1)[0].lower()
    command = ALIASES.get(word)
    if command is None:
        return None
    if not slash and rest and command not in takes_arguments:
        return None
    return command, rest.strip()
