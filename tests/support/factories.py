"""Small factories: a region with an office, a focal point and an open period with one action
of two measures (questions of several types and evidence requirements)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    Action,
    ActionLevel,
    Assignment,
    Contact,
    EvidenceRequirement,
    Measure,
    Office,
    Period,
    Programme,
    ProgrammeKind,
    Question,
    QuestionKind,
    Region,
    RegionKind,
    Role,
)

FOCAL_PHONE = "+6281200000001"


@dataclass
class World:
    province: Region
    region: Region
    office: Office
    focal_point: Contact
    coordinator: Contact
    programme: Programme
    period: Period
    action: Action
    second_action: Action


async def make_world(
    session: AsyncSession, *, today: date | None = None, timezone: str = "Asia/Jakarta"
) -> World:
    today = today or date.today()
    province = Region(code="18", name="Lampung", kind=RegionKind.provinsi, timezone=timezone)
    session.add(province)
    await session.flush()
    region = Region(
        code="18.71",
        name="Kota Bandar Lampung",
        kind=RegionKind.kabkota,
        parent_id=province.id,
        timezone=timezone,
    )
    session.add(region)
    await session.flush()
    office = Office(region_id=region.id or 0, code="koperasi", name="Dinas Koperasi dan UMKM")
    session.add(office)
    await session.flush()
    focal = Contact(
        name="Siti Rahma",
        phone=FOCAL_PHONE,
        role=Role.focal_point,
        region_id=region.id,
        office_id=office.id,
    )
    coordinator = Contact(
        name="Budi Hukum", phone="+6281200000002", role=Role.coordinator, region_id=region.id
    )
    programme = Programme(
        code="aksi-ham-2025", kind=ProgrammeKind.aksi_ham, year=2025, title="Aksi HAM 2025"
    )
    session.add_all([focal, coordinator, programme])
    await session.flush()
    period = Period(
        programme_id=programme.id or 0,
        code="B08",
        title="Periode B08",
        position=2,
        opens_on=today - timedelta(days=3),
        due_on=today + timedelta(days=4),
    )
    session.add(period)
    await session.flush()
    action = await _action(
        session, programme, period, "KK-01", "Bantuan usaha bagi perempuan kepala keluarga"
    )
    second = await _action(session, programme, period, "KK-02", "Sekolah inklusi", simple=True)
    session.add_all(
        [
            Assignment(action_id=action.id or 0, office_id=office.id or 0),
            Assignment(action_id=second.id or 0, office_id=office.id or 0),
        ]
    )
    await session.flush()
    return World(province, region, office, focal, coordinator, programme, period, action, second)


async def _action(
    session: AsyncSession,
    programme: Programme,
    period: Period,
    code: str,
    title: str,
    *,
    simple: bool = False,
) -> Action:
    action = Action(
        programme_id=programme.id or 0,
        code=code,
        level=ActionLevel.kabkota,
        title=title,
        target_group="perempuan",
    )
    session.add(action)
    await session.flush()
    first = Measure(
        action_id=action.id or 0,
        period_id=period.id or 0,
        code="1",
        position=0,
        title="Bantuan atau pelatihan telah disalurkan",
    )
    session.add(first)
    await session.flush()
    session.add_all(
        [
            Question(
                measure_id=first.id or 0,
                code="jumlah",
                position=0,
                kind=QuestionKind.integer,
                text="Berapa penerima bantuan?",
                min_value=0,
                max_value=10000,
            ),
            EvidenceRequirement(
                measure_id=first.id or 0,
                code="foto",
                position=0,
                label="Foto kegiatan",
                kinds=["photo", "pdf"],
                min_count=1,
            ),
        ]
    )
    if simple:
        await session.flush()
        return action
    session.add_all(
        [
            Question(
                measure_id=first.id or 0,
                code="sudah",
                position=1,
                kind=QuestionKind.yes_no,
                text="Apakah sudah ada daftar penerima?",
            ),
            Question(
                measure_id=first.id or 0,
                code="catatan",
                position=2,
                kind=QuestionKind.text,
                text="Catatan tambahan",
                required=False,
            ),
        ]
    )
    second = Measure(
        action_id=action.id or 0,
        period_id=period.id or 0,
        code="2",
        position=1,
        title="Daftar penerima tersedia",
    )
    session.add(second)
    await session.flush()
    session.add_all(
        [
            Question(
                measure_id=second.id or 0,
                code="tanggal",
                position=0,
                kind=QuestionKind.date,
                text="Tanggal penetapan daftar penerima",
            ),
            Question(
                measure_id=second.id or 0,
                code="jenis",
                position=1,
                kind=QuestionKind.choice,
                text="Jenis bantuan",
                choices=["Pelatihan", "Modal usaha", "Kemitraan"],
            ),
            EvidenceRequirement(
                measure_id=second.id or 0,
                code="daftar",
                position=0,
                label="Daftar penerima",
                kinds=["pdf", "xlsx", "docx"],
                min_count=1,
            ),
        ]
    )
    await session.flush()
    return action
