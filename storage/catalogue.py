"""The catalogue import: a programme, its periods, actions, measures, questions and evidence
requirements, from a YAML file (format: docs/catalogue.md).

The catalogue changes every year and every RANHAM generation, so it is data. Importing is an
idempotent upsert by codes: the same file twice changes nothing, edited text is updated in place,
and rows the file no longer mentions are kept, because answers may refer to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import sqlalchemy as sa
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.importing import (
    MAX_PROBLEMS,
    ImportFileError,
    ImportReport,
    Problem,
    Problems,
    Progress,
    noop_progress,
    upsert_row,
)
from storage.models import (
    Action,
    ActionLevel,
    EvidenceRequirement,
    Measure,
    Period,
    Programme,
    ProgrammeKind,
    Question,
    QuestionKind,
)

EVIDENCE_KINDS = ("photo", "pdf", "docx", "xlsx")
ChildT = TypeVar("ChildT", Question, EvidenceRequirement)
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class CatalogueError(ValueError):
    """A catalogue operation the operator asked for cannot be done (message in Indonesian)."""


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


# Codes are Strict: YAML turns an unquoted 01 into the number 1 and 1.10 into 1.1, and a code
# silently mangled that way would not match on the next import.
Code = Annotated[
    str,
    Strict(),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=40, pattern=CODE_PATTERN),
]
PeriodCode = Annotated[
    str,
    Strict(),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=10, pattern=CODE_PATTERN),
]


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
OptionalText = Annotated[str | None, BeforeValidator(_blank_to_none)]
EvidenceKind = Literal["photo", "pdf", "docx", "xlsx"]  # as EVIDENCE_KINDS


class _Doc(BaseModel):
    # extra="forbid" catches a typo'd key (titel:) instead of silently dropping it.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, frozen=True)


class ProgrammeDoc(_Doc):
    code: Code
    kind: ProgrammeKind
    year: int = Field(ge=2000, le=2100)
    title: Text = Field(max_length=200)


class PeriodDoc(_Doc):
    code: PeriodCode
    title: Text = Field(max_length=120)
    opens_on: date | None = None
    due_on: date | None = None

    @field_validator("due_on")
    @classmethod
    def _due_not_before_opening(cls, value: date | None, info: ValidationInfo) -> date | None:
        opens_on = info.data.get("opens_on")
        if value is not None and opens_on is not None and value < opens_on:
            raise ValueError(f"due_on {value} lebih awal dari opens_on {opens_on}")
        return value


class QuestionDoc(_Doc):
    code: Code
    text: Text = Field(max_length=1000)
    type: QuestionKind
    required: bool = True
    min: float | None = None
    max: float | None = None
    # validate_default: a choice question without choices must fail, not pass as None.
    choices: list[Text] | None = Field(default=None, validate_default=True)
    help: OptionalText = None

    @field_validator("min", "max")
    @classmethod
    def _bounds_fit_type(cls, value: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("type")
        if value is None or kind is None:  # kind is None: `type` itself is wrong, reported there
            return value
        if kind not in (QuestionKind.integer, QuestionKind.decimal, QuestionKind.text):
            raise ValueError(f"{info.field_name} hanya untuk jenis integer, decimal atau text")
        if kind in (QuestionKind.integer, QuestionKind.text) and value != int(value):
            raise ValueError(f"{info.field_name} harus bilangan bulat untuk jenis {kind}")
        if kind is QuestionKind.text and value < 0:
            raise ValueError(f"{info.field_name} (panjang teks) tidak boleh negatif")
        low = info.data.get("min")
        if info.field_name == "max" and low is not None and value < low:
            raise ValueError(f"max ({value:g}) lebih kecil dari min ({low:g})")
        return value

    @field_validator("choices")
    @classmethod
    def _choices_fit_type(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        kind = info.data.get("type")
        if kind is None:
            return value
        if kind is not QuestionKind.choice:
            if value:
                raise ValueError("choices hanya untuk jenis choice")
            return None
        if value is None or len(value) < 2:
            raise ValueError("jenis choice butuh minimal 2 pilihan di choices")
        if len(set(value)) != len(value):
            raise ValueError("ada pilihan yang ditulis dua kali")
        return value


class EvidenceDoc(_Doc):
    code: Code
    label: Text = Field(max_length=200)
    kinds: list[EvidenceKind] = Field(min_length=1)
    min_count: int = Field(default=1, ge=0, le=50)
    help: OptionalText = None


class MeasureDoc(_Doc):
    code: Code
    period: PeriodCode
    title: Text = Field(max_length=1000)
    help: OptionalText = None
    questions: list[QuestionDoc] = Field(default_factory=list)
    evidence: list[EvidenceDoc] = Field(default_factory=list)


class ActionDoc(_Doc):
    code: Code
    level: ActionLevel
    title: Text = Field(max_length=500)
    target_group: OptionalText = Field(default=None, max_length=80)
    success_criterion: OptionalText = None
    measures: list[MeasureDoc] = Field(default_factory=list)


class CatalogueDoc(_Doc):
    programme: ProgrammeDoc
    periods: list[PeriodDoc] = Field(min_length=1)
    actions: list[ActionDoc] = Field(default_factory=list)


# --- reading the file -------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping: PyYAML would silently keep the
    last one, and an operator's copy-paste slip would vanish without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
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
        raise ImportFileError.single(_mark_location(where, exc), _yaml_message(exc)) from exc
    except yaml.YAMLError as exc:
        raise ImportFileError.single(where, f"YAML tidak valid: {exc}") from exc


def _mark_location(where: str, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return where
    return f"{where}, baris {mark.line + 1}, kolom {mark.column + 1}"


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    detail = exc.problem or exc.context or "sintaks salah"
    # The context points where the broken construct began, e.g. an unclosed quote on line 3
    # only noticed at the end of the file.
    if exc.problem and exc.context and exc.context_mark is not None:
        detail += f" ({exc.context}, baris {exc.context_mark.line + 1})"
    return f"YAML tidak valid: {detail}"


def parse_catalogue(data: Any) -> CatalogueDoc:
    """Validate already-parsed YAML: structure and types first, then codes and references."""
    if data is None:
        raise ImportFileError.single("", "berkas katalog kosong")
    if not isinstance(data, dict):
        raise ImportFileError.single(
            "", "katalog harus berupa pemetaan dengan kunci programme, periods dan actions"
        )
    try:
        doc = CatalogueDoc.model_validate(data)
    except ValidationError as exc:
        problems = [Problem(_path(e["loc"]), _describe(e)) for e in exc.errors()]
        cut = problems[:MAX_PROBLEMS]
        raise ImportFileError(cut, truncated=len(problems) > MAX_PROBLEMS) from exc
    problems = Problems()
    _check_codes_and_references(doc, problems)
    problems.raise_if_any()
    return doc


def _path(loc: tuple[int | str, ...]) -> str:
    """('actions', 2, 'measures', 0, 'title') -> actions[2].measures[0].title"""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


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


def _check_codes_and_references(doc: CatalogueDoc, problems: Problems) -> None:
    """What one item cannot check alone: codes unique within their parent, measures naming a
    period of the file, measures asking for something."""
    _check_unique(doc.periods, "periods", problems)
    _check_unique(doc.actions, "actions", problems)
    period_codes = [period.code for period in doc.periods]
    for a, action in enumerate(doc.actions):
        _check_unique(action.measures, f"actions[{a}].measures", problems)
        for m, measure in enumerate(action.measures):
            where = f"actions[{a}].measures[{m}]"
            if measure.period not in period_codes:
                problems.add(
                    f"{where}.period",
                    f'periode "{measure.period}" tidak ada di periods '
                    f"(yang ada: {', '.join(period_codes)})",
                )
            if not measure.questions and not measure.evidence:
                problems.add(where, "ukuran tanpa questions dan evidence: tak ada yang dilaporkan")
            _check_unique(measure.questions, f"{where}.questions", problems)
            _check_unique(measure.evidence, f"{where}.evidence", problems)


def _check_unique(items: Sequence[Any], where: str, problems: Problems) -> None:
    first_index: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.code in first_index:
            problems.add(
                f"{where}[{index}].code",
                f'kode "{item.code}" sudah dipakai di {where}[{first_index[item.code]}]',
            )
        else:
            first_index[item.code] = index


# --- writing ----------------------------------------------------------------------------------


async def import_catalogue(
    doc: CatalogueDoc, *, session: AsyncSession, progress: Progress = noop_progress
) -> ImportReport:
    """Upsert the catalogue by codes. Flushes, never commits: the caller owns the transaction."""
    report = ImportReport()
    total = _count_items(doc)
    programme = await _find_programme(doc.programme.code, session=session)
    old_periods = await _existing_periods(programme, session=session)
    _check_windows(doc.periods, old_periods)
    programme = await _upsert_programme(doc.programme, programme, session=session, report=report)
    progress(1, total, "Program")
    periods = await _upsert_periods(doc, programme, old_periods, session=session, report=report)
    progress(len(doc.periods), total, "Periode")
    actions = await _upsert_actions(doc, programme, session=session, report=report)
    progress(len(doc.actions), total, "Aksi")
    measures = await _upsert_measures(doc, programme, actions, periods, session, report)
    progress(len(measures), total, "Ukuran keberhasilan")
    done = await _upsert_measure_items(doc, programme, measures, session, report)
    progress(done, total, "Pertanyaan dan data dukung")
    return report


def _count_items(doc: CatalogueDoc) -> int:
    measures = [m for action in doc.actions for m in action.measures]
    items = sum(len(m.questions) + len(m.evidence) for m in measures)
    return 1 + len(doc.periods) + len(doc.actions) + len(measures) + items


async def _find_programme(code: str, *, session: AsyncSession) -> Programme | None:
    return (await session.exec(select(Programme).where(Programme.code == code))).first()


async def _existing_periods(
    programme: Programme | None, *, session: AsyncSession
) -> dict[str, Period]:
    if programme is None:
        return {}
    rows = await session.exec(select(Period).where(Period.programme_id == programme.id))
    return {period.code: period for period in rows.all()}


def _check_windows(periods: list[PeriodDoc], old: dict[str, Period]) -> None:
    """A date the file leaves out keeps the database's; the merged window must still be in order.
    Checked before anything is written."""
    problems = Problems()
    for index, period in enumerate(periods):
        current = old.get(period.code)
        opens_on = period.opens_on or (current.opens_on if current else None)
        due_on = period.due_on or (current.due_on if current else None)
        if opens_on and due_on and opens_on > due_on:
            problems.add(
                f"periods[{index}]",
                f"dengan tanggal di basis data, periode ini dibuka {opens_on} "
                f"setelah tenggatnya {due_on}; tulis opens_on dan due_on keduanya",
            )
    problems.raise_if_any()


async def _upsert_programme(
    doc: ProgrammeDoc, programme: Programme | None, *, session: AsyncSession, report: ImportReport
) -> Programme:
    existing = {doc.code: programme} if programme else {}
    values = {"code": doc.code, "kind": doc.kind, "year": doc.year, "title": doc.title}
    row = upsert_row(session, existing, doc.code, Programme, values, report["programme"])
    await session.flush()
    return row


async def _upsert_periods(
    doc: CatalogueDoc,
    programme: Programme,
    existing: dict[str, Period],
    *,
    session: AsyncSession,
    report: ImportReport,
) -> dict[str, Period]:
    existing = dict(existing)
    rows: dict[str, Period] = {}
    for position, period in enumerate(doc.periods):
        values: dict[str, Any] = {
            "programme_id": programme.id,
            "code": period.code,
            "title": period.title,
            "position": position,
        }
        # An absent date leaves the database's alone: windows are also set by `period set`.
        if period.opens_on is not None:
            values["opens_on"] = period.opens_on
        if period.due_on is not None:
            values["due_on"] = period.due_on
        rows[period.code] = upsert_row(
            session, existing, period.code, Period, values, report["period"]
        )
    report["period"].not_in_file = len(existing)
    await session.flush()
    return rows


async def _upsert_actions(
    doc: CatalogueDoc, programme: Programme, *, session: AsyncSession, report: ImportReport
) -> dict[str, Action]:
    found = await session.exec(select(Action).where(Action.programme_id == programme.id))
    existing = {action.code: action for action in found.all()}
    rows: dict[str, Action] = {}
    for position, action in enumerate(doc.actions):
        values = {
            "programme_id": programme.id,
            "code": action.code,
            "level": action.level,
            "title": action.title,
            "target_group": action.target_group,
            "success_criterion": action.success_criterion,
            "position": position,
        }
        rows[action.code] = upsert_row(
            session, existing, action.code, Action, values, report["action"]
        )
    report["action"].not_in_file = len(existing)
    await session.flush()
    return rows


async def _upsert_measures(
    doc: CatalogueDoc,
    programme: Programme,
    actions: dict[str, Action],
    periods: dict[str, Period],
    session: AsyncSession,
    report: ImportReport,
) -> dict[tuple[str, str], Measure]:
    found = await session.exec(
        select(Measure)
        .join(Action, Action.id == Measure.action_id)
        .where(Action.programme_id == programme.id)
    )
    existing = {(m.action_id, m.code): m for m in found.all()}
    rows: dict[tuple[str, str], Measure] = {}
    for action in doc.actions:
        action_id = actions[action.code].id
        for position, measure in enumerate(action.measures):
            values = {
                "action_id": action_id,
                "code": measure.code,
                "period_id": periods[measure.period].id,
                "position": position,
                "title": measure.title,
                "help_text": measure.help,
            }
            rows[(action.code, measure.code)] = upsert_row(
                session, existing, (action_id, measure.code), Measure, values, report["measure"]
            )
    report["measure"].not_in_file = len(existing)
    await session.flush()
    return rows


async def _upsert_measure_items(
    doc: CatalogueDoc,
    programme: Programme,
    measures: dict[tuple[str, str], Measure],
    session: AsyncSession,
    report: ImportReport,
) -> int:
    """Questions and evidence requirements; returns how many the file holds."""
    questions = await _existing_children(Question, programme, session=session)
    requirements = await _existing_children(EvidenceRequirement, programme, session=session)
    done = 0
    for action in doc.actions:
        for measure in action.measures:
            measure_id = measures[(action.code, measure.code)].id
            for position, question in enumerate(measure.questions):
                values = _question_values(question, measure_id, position)
                key = (measure_id, question.code)
                upsert_row(session, questions, key, Question, values, report["question"])
            for position, evidence in enumerate(measure.evidence):
                values = _requirement_values(evidence, measure_id, position)
                key = (measure_id, evidence.code)
                counts = report["evidence_requirement"]
                upsert_row(session, requirements, key, EvidenceRequirement, values, counts)
            done += len(measure.questions) + len(measure.evidence)
    report["question"].not_in_file = len(questions)
    report["evidence_requirement"].not_in_file = len(requirements)
    await session.flush()
    return done


async def _existing_children(
    model: type[ChildT], programme: Programme, *, session: AsyncSession
) -> dict[tuple[int, str], ChildT]:
    """All questions (or requirements) of the programme's measures, by (measure id, code)."""
    found = await session.exec(
        select(model)
        .join(Measure, Measure.id == model.measure_id)
        .join(Action, Action.id == Measure.action_id)
        .where(Action.programme_id == programme.id)
    )
    return {(row.measure_id, row.code): row for row in found.all()}


def _question_values(question: QuestionDoc, measure_id: int | None, position: int) -> dict:
    return {
        "measure_id": measure_id,
        "code": question.code,
        "position": position,
        "text": question.text,
        "kind": question.type,
        "required": question.required,
        "min_value": question.min,
        "max_value": question.max,
        "choices": list(question.choices) if question.choices else None,
        "help_text": question.help,
    }


def _requirement_values(evidence: EvidenceDoc, measure_id: int | None, position: int) -> dict:
    return {
        "measure_id": measure_id,
        "code": evidence.code,
        "position": position,
        "label": evidence.label,
        "kinds": list(evidence.kinds),
        "min_count": evidence.min_count,
        "help_text": evidence.help,
    }


# --- period windows ---------------------------------------------------------------------------


async def set_period_window(
    *,
    session: AsyncSession,
    programme_code: str | None,
    period_code: str,
    opens_on: date,
    due_on: date,
) -> Period:
    """Set a period's window. Without a programme code: the latest programme (by year) that has a
    period with this code, since operators mean the current cycle when they type `B08`."""
    if opens_on > due_on:
        raise CatalogueError(f"Tanggal buka {opens_on} setelah tenggat {due_on}.")
    query = (
        select(Period)
        .join(Programme, Programme.id == Period.programme_id)
        .where(sa.func.lower(Period.code) == period_code.strip().lower())
        .order_by(Programme.year.desc(), Programme.id.desc())
    )
    if programme_code is not None:
        query = query.where(Programme.code == programme_code.strip())
    period = (await session.exec(query)).first()
    if period is None:
        where = f' pada program "{programme_code}"' if programme_code else ""
        raise CatalogueError(f'Periode "{period_code}" tidak ditemukan{where}.')
    period.opens_on = opens_on
    period.due_on = due_on
    session.add(period)
    await session.flush()
    return period
