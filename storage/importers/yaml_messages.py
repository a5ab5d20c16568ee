"""PyYAML's syntax errors retold in Indonesian for the operator who wrote the catalogue file.

PyYAML says what it found ("mapping values are not allowed here") and what it was reading when
it did ("while scanning a quoted scalar"), each at a line. Known messages are translated with
a hint of the usual cause; an unknown one is wrapped in an Indonesian sentence rather than
shown bare.
"""

from __future__ import annotations

import re

import yaml

# (PyYAML's problem, as a regular expression matched at its start) -> what it means, in
# Indonesian, with the usual fix.
PROBLEMS: tuple[tuple[str, str], ...] = (
    (
        r"mapping values are not allowed here",
        "ada titik dua (:) di tempat yang tidak boleh; teks yang memuat titik dua diberi tanda "
        'kutip, mis. title: "Rapat: perencanaan"',
    ),
    (
        r"found character '\\t' that cannot start any token|found a tab character",
        "ada karakter tab; YAML hanya memakai spasi untuk indentasi",
    ),
    (r"could not find expected ':'", "tanda titik dua (:) sesudah kunci tidak ditemukan"),
    (
        r"found unexpected end of stream",
        "berkas berakhir sebelum tanda kutip ditutup",
    ),
    (
        r"did not find expected key",
        "kunci yang diharapkan tidak ditemukan; periksa indentasi dan tanda kutip",
    ),
    (
        r"did not find expected '-' indicator",
        "butir daftar tanpa tanda '-'; periksa indentasi daftar",
    ),
    (
        r"did not find expected node content",
        "nilai yang diharapkan tidak ditemukan; periksa indentasi dan tanda baca",
    ),
    (
        r"expected <block end>, but found",
        "indentasi tidak konsisten; butir yang setingkat harus mulai di kolom yang sama",
    ),
    (
        r"expected ',' or '\]'",
        "daftar dalam kurung siku [ ] tidak ditutup atau butirnya tidak dipisah koma",
    ),
    (
        r"expected ',' or '\}'",
        "pemetaan dalam kurung kurawal { } tidak ditutup atau butirnya tidak dipisah koma",
    ),
    (
        r"found character .* that cannot start any token",
        "ada karakter yang tidak boleh mengawali nilai (mis. @ atau `); beri tanda kutip",
    ),
    (
        r"found unknown escape character",
        "ada garis miring terbalik (\\) yang tidak dikenal "
        "di teks bertanda kutip ganda; pakai tanda kutip tunggal",
    ),
    (r"found undefined alias", "alias (*nama) yang tidak didefinisikan"),
    (r"found duplicate anchor", "anchor (&nama) dipakai dua kali"),
    (r"could not determine a constructor for the tag", "tag (!...) tidak diizinkan di katalog"),
    (r"but found another document", "berkas hanya boleh berisi satu dokumen (hapus '---' kedua)"),
    (r"found unhashable key", "kunci tidak boleh berupa daftar atau pemetaan"),
    (
        r"expected a comment or a line break",
        "ada teks tambahan sesudah nilai; beri tanda kutip pada seluruh nilainya",
    ),
    (
        r"expected alphabetic or numeric character",
        "nama anchor, alias atau tag tidak valid; beri tanda kutip bila & * ! bagian dari teks",
    ),
)

# PyYAML's context: what it was reading, which began at the context's line.
CONTEXTS: tuple[tuple[str, str], ...] = (
    (r"while scanning a quoted scalar", "teks bertanda kutip yang dimulai"),
    (r"while scanning a simple key", "kunci yang dimulai"),
    (r"while scanning a plain scalar", "nilai yang dimulai"),
    (r"while scanning a block scalar", "teks blok (| atau >) yang dimulai"),
    (r"while parsing a block mapping", "pemetaan yang dimulai"),
    (r"while parsing a block collection", "daftar yang dimulai"),
    (r"while parsing a flow sequence", "daftar [ ] yang dimulai"),
    (r"while parsing a flow mapping", "pemetaan { } yang dimulai"),
    (r"while parsing a (block|flow) node", "nilai yang dimulai"),
    (r"while scanning an? (alias|anchor)", "alias atau anchor yang dimulai"),
    (r"while scanning a tag", "tag yang dimulai"),
    (r"while constructing a mapping", "pemetaan yang dimulai"),
    (r"expected a single document in the stream", "dokumen pertama yang dimulai"),
)


def describe(exc: yaml.MarkedYAMLError) -> str:
    """The error in Indonesian: what is wrong, and where the construct it broke began."""
    problem = _translate(exc.problem, PROBLEMS)
    if problem is None:
        raw = exc.problem or exc.context
        problem = f"sintaks YAML salah (pesan pengurai: {raw})" if raw else "sintaks YAML salah"
    detail = f"YAML tidak valid: {problem}"
    # The context points where the broken construct began, e.g. an unclosed quote on line 3
    # only noticed at the end of the file.
    if exc.problem and exc.context and exc.context_mark is not None:
        began = _translate(exc.context, CONTEXTS) or "bagian yang dimulai"
        detail += f" ({began} di baris {exc.context_mark.line + 1})"
    return detail


def _translate(message: str | None, table: tuple[tuple[str, str], ...]) -> str | None:
    if not message:
        return None
    for pattern, indonesian in table:
        if re.search(pattern, message):
            return indonesian
    # Our own loader's messages (a key written twice) are Indonesian already.
    return message if message.startswith("kunci ") else None
