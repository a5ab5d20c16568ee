from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func
from sqlmodel import select

from storage.demo import DEMO_DIR
from storage.importers import ImportFileError, import_catalogue, load_catalogue
from storage.models import (
    Action,
    EvidenceRequirement,
    Measure,
    Period,
    Programme,
    Question,
    QuestionKind,
)
from storage.periods import CatalogueError, set_period_window

DEMO_AKSI_HAM = DEMO_DIR / "catalogue-aksi-ham-2025.yaml"
TABLES = (Programme, Period, Action, Measure, Question, EvidenceRequirement)


async def row_counts(session) -> dict[str, int]:
    return {
        model.__name__: (await session.exec(select(func.count()).select_from(model))).one()
        for model in TABLES
    }


def small_catalogue() -> dict[str, Any]:
    """A valid catalogue; each bad-file case breaks one thing in it."""
    return {
        "programme": {"code": "uji-2025", "kind": "aksi_ham", "year": 2025, "title": "Uji"},
        "periods": [
            {"code": "B04", "title": "April"},
            {"code": "B08", "title": "Agustus", "opens_on": "2025-08-18", "due_on": "2025-08-25"},
        ],
        "actions": [
            {
                "code": "KK-01",
                "level": "kabkota",
                "title": "Bantuan usaha bagi perempuan kepala keluarga",
                "target_group": "perempuan",
                "measures": [
                    {
                        "code": "B04-1",
                        "period": "B04",
                        "title": "Pemetaan",
                        "questions": [
                            {"code": "jumlah", "text": "Berapa?", "type": "integer", "min": 0},
                            {"code": "sudah", "text": "Sudah?", "type": "yes_no"},
                        ],
                        "evidence": [
                            {"code": "notulen", "label": "Notulen rapat", "kinds": ["pdf"]}
                        ],
                    }
                ],
            },
            {
                "code": "KK-02",
                "level": "kabkota",
                "title": "Sekolah inklusi",
                "measures": [
                    {
                        "code": "B08-1",
                        "period": "B08",
                        "title": "Pelatihan guru",
                        "evidence": [{"code": "foto", "label": "Foto", "kinds": ["photo"]}],
                    }
                ],
            },
        ],
    }


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


async def import_file(session, path: Path):
    """Import in its own committed transaction, then forget the loaded rows, so that the next
    import compares with what the database really holds."""
    try:
        report = await import_catalogue(load_catalogue(path), session=session)
    except BaseException:
        await session.rollback()
        raise
    await session.commit()
    session.expunge_all()
    return report


async def test_demo_catalogue_imports_and_reimport_changes_nothing(session) -> None:
    doc = load_catalogue(DEMO_AKSI_HAM)
    first = await import_file(session, DEMO_AKSI_HAM)
    assert first["programme"].created == 1
    assert first["period"].created == 3
    assert first["action"].created == len(doc.actions) == 11
    assert first.updated == 0
    counts = await row_counts(session)

    second = await import_file(session, DEMO_AKSI_HAM)
    assert (second.created, second.updated, second.not_in_file) == (0, 0, 0)
    assert second.unchanged == first.created
    assert await row_counts(session) == counts


async def test_imported_rows_carry_the_file_content_in_file_order(session) -> None:
    await import_file(session, DEMO_AKSI_HAM)
    actions = (await session.exec(select(Action).order_by(Action.position))).all()
    assert [a.code for a in actions[:2]] == ["KK-01", "KK-02"]
    measure = (
        await session.exec(
            select(Measure).where(Measure.action_id == actions[0].id, Measure.code == "B04-3")
        )
    ).one()
    questions = (
        await session.exec(
            select(Question).where(Question.measure_id == measure.id).order_by(Question.position)
        )
    ).all()
    assert [(q.code, q.kind) for q in questions] == [
        ("anggaran", QuestionKind.decimal),
        ("sumber_dana", QuestionKind.choice),
    ]
    assert questions[0].min_value == 0
    assert questions[1].choices == ["APBD", "APBN/DAK", "CSR/swasta", "Lainnya"]
    b08 = (await session.exec(select(Period).where(Period.code == "B08"))).one()
    assert (b08.opens_on, b08.due_on) == (date(2025, 8, 18), date(2025, 8, 25))


async def test_edited_text_is_updated_in_place(session, tmp_path: Path) -> None:
    await import_file(session, DEMO_AKSI_HAM)
    before = await row_counts(session)
    text = DEMO_AKSI_HAM.read_text(encoding="utf-8")
    edited = text.replace(
        'title: "Terlaksananya rapat perencanaan pelaksanaan aksi"',
        'title: "Terlaksananya rapat perencanaan aksi bersama OPD terkait"',
    )
    assert edited.count("bersama OPD terkait") == 1
    path = tmp_path / "edited.yaml"
    path.write_text(edited, encoding="utf-8")

    report = await import_file(session, path)
    # The measure list is shared by KK-01 and PR-01 through a YAML alias: two measures change.
    assert report["measure"].updated == 2
    assert (report.created, report.updated) == (0, 2)
    assert await row_counts(session) == before


async def test_one_changed_title_is_one_update(session, tmp_path: Path) -> None:
    data = small_catalogue()
    await import_file(session, write_yaml(tmp_path / "a.yaml", data))
    data["actions"][1]["title"] = "Sekolah inklusi bagi penyandang disabilitas"
    report = await import_file(session, write_yaml(tmp_path / "b.yaml", data))
    assert report["action"].updated == 1
    assert (report.created, report.updated) == (0, 1)


async def test_rows_missing_from_the_file_are_kept_and_counted(session, tmp_path: Path) -> None:
    data = small_catalogue()
    await import_file(session, write_yaml(tmp_path / "a.yaml", data))
    del data["actions"][1]
    del data["actions"][0]["measures"][0]["questions"][1]
    report = await import_file(session, write_yaml(tmp_path / "b.yaml", data))
    assert report["action"].not_in_file == 1
    assert report["question"].not_in_file == 1
    assert report["measure"].not_in_file == 1  # KK-02's measure
    counts = await row_counts(session)
    assert counts["Action"] == 2
    assert counts["Question"] == 2


async def test_file_dates_overwrite_and_absent_dates_keep_the_window(
    session, tmp_path: Path
) -> None:
    data = small_catalogue()
    path = write_yaml(tmp_path / "a.yaml", data)
    await import_file(session, path)
    for code in ("B04", "B08"):
        await set_period_window(
            session=session,
            programme_code="uji-2025",
            period_code=code,
            opens_on=date(2025, 9, 1),
            due_on=date(2025, 9, 7),
        )
    await session.commit()

    report = await import_file(session, path)
    assert report["period"].updated == 1  # B08 has dates in the file, B04 has none
    periods = {p.code: p for p in (await session.exec(select(Period))).all()}
    assert (periods["B04"].opens_on, periods["B04"].due_on) == (date(2025, 9, 1), date(2025, 9, 7))
    assert periods["B08"].opens_on == date(2025, 8, 18)


async def test_a_date_that_contradicts_the_database_window_is_refused(
    session, tmp_path: Path
) -> None:
    data = small_catalogue()
    await import_file(session, write_yaml(tmp_path / "a.yaml", data))
    data["periods"][1] = {"code": "B08", "title": "Agustus", "opens_on": "2025-09-01"}
    with pytest.raises(ImportFileError, match=r"periods\[1\]"):
        await import_file(session, write_yaml(tmp_path / "b.yaml", data))
    b08 = (await session.exec(select(Period).where(Period.code == "B08"))).one()
    assert b08.opens_on == date(2025, 8, 18)


def _question(data: dict) -> dict:
    return data["actions"][0]["measures"][0]["questions"][0]


def _unknown_key(data: dict) -> None:
    data["actions"][0]["titel"] = data["actions"][0].pop("title")


def _unknown_type(data: dict) -> None:
    _question(data)["type"] = "number"


def _choice_without_choices(data: dict) -> None:
    _question(data).update(type="choice", min=None)


def _min_above_max(data: dict) -> None:
    _question(data).update(min=10, max=5)


def _unknown_period(data: dict) -> None:
    data["actions"][0]["measures"][0]["period"] = "B05"


def _duplicate_action(data: dict) -> None:
    data["actions"][1]["code"] = "KK-01"


def _empty_kinds(data: dict) -> None:
    data["actions"][0]["measures"][0]["evidence"][0]["kinds"] = []


def _bad_level(data: dict) -> None:
    data["actions"][1]["level"] = "kecamatan"


def _numeric_code(data: dict) -> None:
    data["actions"][1]["code"] = 1


def _bad_date(data: dict) -> None:
    data["periods"][1]["due_on"] = "25-08-2025"


@pytest.mark.parametrize(
    ("breaks", "location", "message"),
    [
        (_unknown_key, "actions[0].titel", 'kunci "titel" tidak dikenal'),
        (_unknown_type, "actions[0].measures[0].questions[0].type", '"number" tidak dikenal'),
        (_choice_without_choices, "questions[0].choices", "minimal 2 pilihan"),
        (_min_above_max, "actions[0].measures[0].questions[0].max", "lebih kecil dari min"),
        (_unknown_period, "actions[0].measures[0].period", 'periode "B05" tidak ada'),
        (_duplicate_action, "actions[1].code", 'kode "KK-01" sudah dipakai di actions[0]'),
        (_empty_kinds, "actions[0].measures[0].evidence[0].kinds", "minimal 1 butir"),
        (_bad_level, "actions[1].level", "pilih salah satu: provinsi, kabkota"),
        (_numeric_code, "actions[1].code", "harus berupa teks"),
        (_bad_date, "periods[1].due_on", "bukan tanggal yang valid"),
    ],
)
async def test_bad_catalogue_names_the_location_and_writes_nothing(
    session, tmp_path: Path, breaks, location: str, message: str
) -> None:
    await import_file(session, DEMO_AKSI_HAM)
    before = await row_counts(session)
    data = copy.deepcopy(small_catalogue())
    breaks(data)
    with pytest.raises(ImportFileError) as caught:
        await import_file(session, write_yaml(tmp_path / "bad.yaml", data))
    assert location in str(caught.value)
    assert message in str(caught.value)
    assert await row_counts(session) == before


def test_broken_yaml_syntax_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "rusak.yaml"
    path.write_text("programme:\n  code: x\n  title: [tidak ditutup\nperiods: []\n")
    with pytest.raises(ImportFileError) as caught:
        load_catalogue(path)
    text = str(caught.value)
    assert text.startswith('Berkas "rusak.yaml", baris ')
    assert "YAML tidak valid" in text


def test_a_key_written_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ganda.yaml"
    path.write_text("programme:\n  code: x\n  title: a\n  title: b\nperiods: []\n")
    with pytest.raises(ImportFileError, match=r"baris 4.*'title' ditulis dua kali"):
        load_catalogue(path)


def test_all_problems_are_listed_at_once(tmp_path: Path) -> None:
    data = small_catalogue()
    _unknown_type(data)
    _empty_kinds(data)
    _unknown_period(data)
    with pytest.raises(ImportFileError) as caught:
        load_catalogue(write_yaml(tmp_path / "bad.yaml", data))
    # Structure and references in one pass, in the file's order.
    assert [problem.location for problem in caught.value.problems] == [
        "actions[0].measures[0].period",
        "actions[0].measures[0].questions[0].type",
        "actions[0].measures[0].evidence[0].kinds",
    ]
    assert len(str(caught.value).splitlines()) == 3


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("kosong.yaml", "", "kosong"),
        ("daftar.yaml", "- a\n- b\n", "pemetaan"),
        ("katalog.xlsx", "PK", "YAML"),
    ],
)
def test_unusable_files_are_refused(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ImportFileError, match=message):
        load_catalogue(path)


def test_missing_file_is_an_import_error(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="tidak dapat dibaca"):
        load_catalogue(tmp_path / "tidak-ada.yaml")


async def test_set_period_window_picks_the_latest_programme(session, tmp_path: Path) -> None:
    old = small_catalogue()
    new = small_catalogue()
    new["programme"].update(code="uji-2026", year=2026)
    await import_file(session, write_yaml(tmp_path / "old.yaml", old))
    await import_file(session, write_yaml(tmp_path / "new.yaml", new))
    period = await set_period_window(
        session=session,
        programme_code=None,
        period_code="b08",
        opens_on=date(2026, 8, 20),
        due_on=date(2026, 8, 27),
    )
    programme = await session.get(Programme, period.programme_id)
    assert programme.code == "uji-2026"
    assert (period.opens_on, period.due_on) == (date(2026, 8, 20), date(2026, 8, 27))


async def test_set_period_window_refuses_bad_requests(session, tmp_path: Path) -> None:
    await import_file(session, write_yaml(tmp_path / "a.yaml", small_catalogue()))
    with pytest.raises(CatalogueError, match="setelah tenggat"):
        await set_period_window(
            session=session,
            programme_code=None,
            period_code="B08",
            opens_on=date(2026, 8, 27),
            due_on=date(2026, 8, 20),
        )
    with pytest.raises(CatalogueError, match='"B12" tidak ditemukan'):
        await set_period_window(
            session=session,
            programme_code=None,
            period_code="B12",
            opens_on=date(2026, 12, 1),
            due_on=date(2026, 12, 5),
        )
    with pytest.raises(CatalogueError, match="tidak ditemukan pada program"):
        await set_period_window(
            session=session,
            programme_code="lain-2025",
            period_code="B08",
            opens_on=date(2026, 8, 1),
            due_on=date(2026, 8, 5),
        )


async def test_progress_is_reported_up_to_the_total(session) -> None:
    calls: list[tuple[int, int | None, str]] = []
    await import_catalogue(
        load_catalogue(DEMO_AKSI_HAM),
        session=session,
        progress=lambda advance, total, label: calls.append((advance, total, label)),
    )
    total = calls[0][1]
    assert sum(advance for advance, _, _ in calls) == total
