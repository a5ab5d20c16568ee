"""The message templates: what may go out outside WhatsApp's 24-hour window.

Meta only delivers an approved template there, so every message the engine sends has a
template fallback: its own (`OutText.template`), the file template for an `OutFile`, else the
generic one carrying the message text on one line. docs/whatsapp.md lists them for the
operator, who submits them to Meta. Pure functions only, like shapes.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.channels.whatsapp import shapes
from bot.channels.whatsapp.shapes import Json
from bot.engine.events import Choice


@dataclass(frozen=True)
class Template:
    """A message template as submitted to Meta (docs/whatsapp.md lists them for the operator)."""

    name: str
    purpose: str
    body: str  # Indonesian text with {{1}}, {{2}}, ...
    params: tuple[str, ...]  # what each parameter carries
    example: tuple[str, ...]  # sample values: Meta asks for them when the template is submitted
    # The English translation, submitted under the same name (language `en`): users who chose
    # English get it outside the window, with their message text in English.
    body_en: str = ""
    header: str | None = None  # "DOCUMENT": the file travels in the header
    category: str = "UTILITY"


GENERIC = "laporham_pemberitahuan"
FILE = "laporham_berkas"

TEMPLATES: tuple[Template, ...] = (
    Template(
        name=GENERIC,
        purpose="any message to a contact outside the 24-hour window, when it names no template",
        body=(
            "Pemberitahuan dari LaporHAM:\n\n{{1}}\n\n"
            "Balas pesan ini untuk melanjutkan, atau ketik *bantuan*."
        ),
        params=("the message text on one line (at most 900 characters)",),
        example=("Laporan Bantuan usaha bagi perempuan kepala keluarga belum lengkap.",),
        body_en=(
            "Notice from LaporHAM:\n\n{{1}}\n\nReply to this message to continue, or type *help*."
        ),
    ),
    Template(
        name="laporham_pengingat",
        purpose="reminder of a reporting deadline",
        body=(
            "Yth. {{1}},\nbatas pengisian laporan {{2}} untuk {{3}} adalah {{4}}. "
            "Masih ada {{5}} aksi yang belum dikirim.\n"
            "Balas *lapor* untuk mengisi laporan sekarang."
        ),
        params=("contact name", "period", "office and region", "due date and time", "count"),
        example=(
            "Siti Rahma",
            "B08 2025",
            "Dinas Koperasi dan UMKM Kota Bandar Lampung",
            "25 Agustus 2025 pukul 23.59 WIB",
            "2",
        ),
        body_en=(
            "Dear {{1}},\nthe {{2}} reporting deadline for {{3}} is {{4}}. "
            "{{5}} action(s) have not been submitted yet.\n"
            "Reply *report* to fill in the report now."
        ),
    ),
    Template(
        name="laporham_periode_dibuka",
        purpose="a reporting period has opened",
        body=(
            "Periode pelaporan {{1}} sudah dibuka untuk {{2}}. Batas pengisian: {{3}}.\n"
            "Balas *lapor* untuk mulai mengisi laporan."
        ),
        params=("period", "office and region", "due date and time"),
        example=("B08 2025", "Dinas Koperasi dan UMKM Kota Bandar Lampung", "25 Agustus 2025"),
        body_en=(
            "The {{1}} reporting period is open for {{2}}. Deadline: {{3}}.\n"
            "Reply *report* to start your report."
        ),
    ),
    Template(
        name="laporham_dikembalikan",
        purpose="a submitted report was returned by the reviewer",
        body=(
            "Laporan {{1}} untuk {{2}} dikembalikan oleh pemeriksa dengan catatan: {{3}}\n"
            "Balas *lapor* untuk memperbaikinya."
        ),
        params=("action", "period", "the reviewer's note on one line"),
        example=("Bantuan usaha bagi perempuan kepala keluarga", "B08 2025", "Notulen belum ada."),
        body_en=(
            "The report {{1}} for {{2}} was returned by the reviewer with this note: {{3}}\n"
            "Reply *report* to correct it."
        ),
    ),
    Template(
        name="laporham_siaran",
        purpose="a broadcast from the Kanwil or a coordinator",
        body="Pesan dari {{1}}:\n\n{{2}}\n\nBalas *bantuan* untuk melihat perintah LaporHAM.",
        params=("sender (office)", "the message on one line"),
        example=("Kanwil Kementerian HAM Lampung", "Bimtek RANHAM diadakan Senin, 18 Agustus."),
        body_en="Message from {{1}}:\n\n{{2}}\n\nReply *help* to see LaporHAM's commands.",
    ),
    Template(
        name=FILE,
        purpose="a file (recap, export) for a contact outside the 24-hour window",
        body="Berkas dari LaporHAM: {{1}}\nBalas pesan ini bila ada pertanyaan.",
        params=("the file's caption or name on one line",),
        example=("Rekap laporan B08 2025",),
        body_en="File from LaporHAM: {{1}}\nReply to this message if you have questions.",
        header="DOCUMENT",
    ),
)

TEMPLATE_NAMES = frozenset(template.name for template in TEMPLATES)


def template_body(
    to: str,
    name: str,
    params: Sequence[str],
    *,
    language: str,
    document: tuple[str, str] | None = None,
) -> Json:
    """A template message; `document` is (media id, filename) for a template with a file."""
    components: list[Json] = []
    if document is not None:
        media_id, filename = document
        components.append(
            {
                "type": "header",
                "parameters": [
                    {"type": "document", "document": {"id": media_id, "filename": filename}}
                ],
            }
        )
    if params:
        components.append(
            {
                "type": "body",
                "parameters": [{"type": "text", "text": shapes.one_line(p)} for p in params],
            }
        )
    content: Json = {"name": name, "language": {"code": language}}
    if components:
        content["components"] = components
    return shapes.envelope(to, "template", content)


def generic_param(text: str, choices: Sequence[Choice] = ()) -> str:
    """The generic template's one parameter: the message as plain text on one line, with its
    choices numbered so the user can answer with a number once they write back."""
    plain = shapes.to_whatsapp(text)
    if choices:
        plain += "\n" + "\n".join(f"{n}. {c.label}" for n, c in enumerate(choices, start=1))
    return shapes.one_line(plain)
