"""storage/oversight.py's one read (period_reports) and the recap files built from it."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import load_workbook
from PIL import Image

from storage import oversight
from storage.models import SubmissionStatus
from storage.recap import Bar, recap_chart, recap_workbook
from tests.support.oversight_world import add_report, make_country

NOW = datetime.now(UTC)


async def _country_with_reports(session):
    country = await make_country(session)
    # Alfasatu: Dinas Sosial sent a complete report; Dinas Pendidikan has a draft with "nihil"
    # and one of its two evidence kinds.
    await add_report(session, country, region_code="91.01")
    await add_report(
        session,
        country,
        region_code="91.01",
        office_index=1,
        status=SubmissionStatus.draft,
        answer="nihil",
        files=1,
    )
    await session.commit()
    return country


async def test_period_reports_reads_state_completeness_and_what_is_missing(session) -> None:
    country = await _country_with_reports(session)
    alfasatu = country.regions["91.01"]
    found = await oversight.period_reports(
        session=session,
        period=country.period,
        scope=oversight.Scope(frozenset({alfasatu.id})),
        with_focal_points=True,
    )
    assert set(found.regions) == {alfasatu.id}
    rows = {row.office_name: row for row in found.reports}
    sent = rows["Dinas Sosial Kabupaten Alfasatu"]
    draft = rows["Dinas Pendidikan Kabupaten Alfasatu"]
    assert sent.sent and sent.complete and sent.completeness == 100
    assert (sent.required_answers, sent.given_answers, sent.required_evidence) == (1, 1, 2)
    assert not draft.sent and draft.status is SubmissionStatus.draft
    assert draft.nihil_answers == 1 and draft.missing_evidence == ("Daftar hadir 2",)
    assert draft.completeness == 67  # 1 answer + 1 of 2 evidence kinds, of 3
    assert found.focal_points[sent.office_id] == ["Operator Kabupaten Alfasatu"]
    assert found.estimate(sent, NOW).points == 100.0
    draft_score = found.estimate(draft, NOW)
    assert draft_score.points < 80 and draft_score.lost


async def test_scope_limits_every_row(session) -> None:
    country = await _country_with_reports(session)
    alfa = country.regions["91"]
    scope = await oversight.region_scope(session=session, region=alfa)
    found = await oversight.period_reports(session=session, period=country.period, scope=scope)
    codes = {found.regions[row.region_id].code for row in found.reports}
    assert codes == {"91", "91.01", "91.71"}
    everything = await oversight.period_reports(
        session=session, period=country.period, scope=oversight.Scope(None)
    )
    assert len(everything.reports) == 2 * len(country.regions)
    figures = oversight.figures(everything, everything.reports, NOW)
    assert (figures.total, figures.sent, figures.missing) == (10, 1, 9)


async def test_current_period_is_the_open_one_else_the_last_closed(session) -> None:
    country = await make_country(session)
    await session.commit()
    found = await oversight.current_periods(session=session, timezone="Asia/Jakarta", now=NOW)
    assert [p.id for p in found] == [country.period.id]
    later = NOW + timedelta(days=30)
    found = await oversight.current_periods(session=session, timezone="Asia/Jakarta", now=later)
    assert [p.id for p in found] == [country.period.id]  # closed, still the latest
    earlier = NOW - timedelta(days=30)
    assert (
        await oversight.current_periods(session=session, timezone="Asia/Jakarta", now=earlier) == []
    )


async def test_workbook_has_a_summary_a_sheet_per_pemda_and_the_values(session) -> None:
    country = await _country_with_reports(session)
    found = await oversight.period_reports(
        session=session, period=country.period, scope=oversight.Scope(None), with_focal_points=True
    )
    book = load_workbook(io.BytesIO(recap_workbook(found, now=NOW)))
    assert book.sheetnames[0] == "Ringkasan" and book.sheetnames[-1] == "Keterangan"
    assert len(book.sheetnames) == 2 + len(country.regions)
    summary = book["Ringkasan"]
    assert summary.freeze_panes == "A2"
    assert summary.auto_filter.ref and summary.column_dimensions["C"].width > 20
    header = [cell.value for cell in summary[1]]
    assert header[:4] == ["Provinsi", "Kode", "Pemda", "Laporan"]
    by_code = {row[1]: row for row in summary.iter_rows(min_row=2, values_only=True)}
    alfasatu = by_code["91.01"]
    assert alfasatu[0] == "Provinsi Alfa" and alfasatu[2] == "Kabupaten Alfasatu"
    assert alfasatu[3:6] == (2, 1, 1)  # reports, sent, not sent
    assert by_code["92"][4] == 0
    sheet = book["91.01 Kabupaten Alfasatu"]
    rows = {row[2]: row for row in sheet.iter_rows(min_row=2, values_only=True)}
    draft = rows["Dinas Pendidikan Kabupaten Alfasatu"]
    assert draft[0] == "AK-02" and draft[4] == "draf" and draft[10] == "Daftar hadir 2"
    assert draft[11] == 1  # the "nihil" answer
    assert rows["Dinas Sosial Kabupaten Alfasatu"][3] == "Operator Kabupaten Alfasatu"
    assert "PERKIRAAN" in book["Keterangan"]["A2"].value


async def test_workbook_keeps_formula_like_names_as_text(session) -> None:
    country = await _country_with_reports(session)
    office = country.offices["91.01"][0]
    office.name = '=HYPERLINK("http://x")'
    session.add(office)
    await session.commit()
    found = await oversight.period_reports(
        session=session, period=country.period, scope=oversight.Scope(None)
    )
    book = load_workbook(io.BytesIO(recap_workbook(found, now=NOW)))
    values = [
        row[2] for row in book["91.01 Kabupaten Alfasatu"].iter_rows(min_row=2, values_only=True)
    ]
    assert office.name in values  # read back as the text, not as a formula


@pytest.mark.parametrize("count", [1, 15, 552])
def test_chart_renders_for_1_15_and_552_bars(count: int) -> None:
    bars = [Bar(f"Kabupaten Nomor {n}", (n * 37) % 101) for n in range(count)]
    png = recap_chart(bars, title="Rekap B08", subtitle="Batas: 25 Agustus", axis_label="nilai")
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    width, height = image.size
    assert width >= 1000  # sharp on a phone
    assert width + height <= 10_000  # Telegram sends it as a photo
    assert height >= 300


async def test_the_country_is_read_once_per_half_minute_smaller_scopes_always(
    session, monkeypatch
) -> None:
    country = await _country_with_reports(session)
    now = [1000.0]
    monkeypatch.setattr(oversight, "clock", lambda: now[0])
    oversight.forget_national_reports()
    everywhere = oversight.Scope(None)
    first = await oversight.period_reports(session=session, period=country.period, scope=everywhere)
    await add_report(session, country, region_code="92")
    await session.commit()
    again = await oversight.period_reports(session=session, period=country.period, scope=everywhere)
    assert again is first  # the country's figures may be up to 30 s old
    beta = oversight.Scope(frozenset({country.regions["92"].id}))
    fresh = await oversight.period_reports(session=session, period=country.period, scope=beta)
    assert sum(row.sent for row in fresh.reports) == 1  # a province is read fresh
    now[0] += oversight.NATIONAL_CACHE_SECONDS + 1
    later = await oversight.period_reports(session=session, period=country.period, scope=everywhere)
    assert later is not first and sum(row.sent for row in later.reports) == 2
