"""Reading a catalogue file: YAML in, a validated CatalogueDoc out, or every problem at once.

The YAML is parsed refusing duplicate keys, its structure and types are validated by the models
of catalogue_format.py (pydantic's errors retold in the operator's language, with a path such as
`actions[2].measures[0].title`), and codes and references are checked on the same data in the
same pass, so one run lists every problem, in the file's order.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from datetime import date
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from storage.importers import yaml_messages
from storage.importers.catalogue_checks import add_at, check_codes_and_references
from storage.importers.catalogue_format import CatalogueDoc
from storage.importers.common import ImportFileError, Problems


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping: PyYAML would silently keep the
    last one, and an operator's copy-paste slip would vanish without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool | date):
                continue  # an unhashable key is refused by the constructor itself
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"kunci {key!r} ditulis dua kali", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_catalogue(path: Path) -> CatalogueDoc:
    """Read and validate a catalogue file; ImportFileError lists everything wrong with it."""
    return parse_catalogue(_read_yaml(path))


def _read_yaml(path: Path) -> Any:
    where = f'Berkas "{path.name}"'
    if path.suffix.lower() in (".xlsx", ".xls", ".xlsm"):
        raise ImportFileError.single(
            where, "katalog dibaca dari berkas YAML (.yaml/.yml); format Excel belum didukung"
        )
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ImportFileError.single(where, f"tidak dapat dibaca ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ImportFileError.single(where, "bukan berkas teks UTF-8") from exc
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        raise ImportFileError.single(
            _mark_location(where, exc), yaml_messages.describe(exc)
        ) from exc
    except yaml.YAMLError as exc:
        raise ImportFileError.single(where, f"YAML tidak valid (pesan pengurai: {exc})") from exc


def _mark_location(where: str, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return where
    return f"{where}, baris {mark.line + 1}, kolom {mark.column + 1}"


def parse_catalogue(data: Any) -> CatalogueDoc:
    """Validate already-parsed YAML: structure and types, codes and references, all in one
    pass; ImportFileError lists every problem in the file's order."""
    if data is None:
        raise ImportFileError.single("", "berkas katalog kosong")
    if not isinstance(data, dict):
        raise ImportFileError.single(
            "", "katalog harus berupa pemetaan dengan kunci programme, periods dan actions"
        )
    problems = Problems()
    doc: CatalogueDoc | None = None
    try:
        doc = CatalogueDoc.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            add_at(problems, error["loc"], _describe(error))
    # On the raw data: codes and references of the items that are sound are checked even when
    # others are not, so a second run does not bring new problems to light.
    check_codes_and_references(data, problems)
    problems.raise_if_any()
    if doc is None:  # pydantic failed, so problems were raised above
        raise AssertionError("unreachable")
    return doc


def _describe(error: ErrorDetails) -> str:
    """A pydantic error in the operator's language."""
    kind, ctx, value = error["type"], error.get("ctx", {}), error.get("input")
    shown = _shown(value)
    if kind == "extra_forbidden":
        return _unknown_key_message(error["loc"])
    if kind.startswith("date"):
        return f"{shown} bukan tanggal yang valid; tulis TTTT-BB-HH, mis. 2025-04-01"
    messages = {
        "missing": "wajib diisi",
        "string_type": f'{shown} harus berupa teks (beri tanda kutip, mis. "01")',
        "string_too_short": "tidak boleh kosong",
        "string_too_long": f"terlalu panjang (maksimal {ctx.get('max_length')} karakter)",
        "string_pattern_mismatch": (
            f"{shown} bukan kode yang valid: pakai huruf, angka, titik, garis bawah atau "
            "tanda hubung, tanpa spasi"
        ),
        "enum": f"{shown} tidak dikenal; pilih salah satu: {_expected(ctx)}",
        "literal_error": f"{shown} tidak dikenal; pilih salah satu: {_expected(ctx)}",
        "int_type": f"{shown} harus bilangan bulat",
        "int_parsing": f"{shown} harus bilangan bulat",
        "int_from_float": f"{shown} harus bilangan bulat",
        "float_type": f"{shown} harus berupa angka",
        "float_parsing": f"{shown} harus berupa angka",
        "bool_type": f"{shown} harus true atau false",
        "bool_parsing": f"{shown} harus true atau false",
        "greater_than_equal": f"{shown} terlalu kecil (minimal {ctx.get('ge')})",
        "less_than_equal": f"{shown} terlalu besar (maksimal {ctx.get('le')})",
        "list_type": "harus berupa daftar (list)",
        "too_short": f"minimal {ctx.get('min_length')} butir",
        "model_type": "harus berupa pemetaan (kunci: nilai)",
        "dict_type": "harus berupa pemetaan (kunci: nilai)",
        "value_error": str(ctx.get("error", "")),
    }
    return messages.get(kind, error["msg"])


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return "nilai ini" if isinstance(value, dict | list) else str(value)


def _expected(ctx: dict[str, Any]) -> str:
    return str(ctx.get("expected", "")).replace(" or ", ", ").replace("'", "")


def _unknown_key_message(loc: tuple[int | str, ...]) -> str:
    model = _model_at(loc[:-1])
    allowed = ", ".join(model.model_fields) if model else ""
    message = f'kunci "{loc[-1]}" tidak dikenal (salah ketik?)'
    return f"{message}; yang boleh: {allowed}" if allowed else message


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The document model found at `loc`, so an unknown key can be answered with the known ones."""
    model: type[BaseModel] = CatalogueDoc
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        if get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model
