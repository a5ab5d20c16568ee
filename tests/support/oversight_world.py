"""A small country for the oversight tests: two provinces, three kabupaten/kota, two offices
per pemda, two actions, every role. Every name is unique, so a text or a workbook can be
searched for what it must not show."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    Action,
    ActionLevel,
    Answer,
    Assignment,
    Contact,
    EvidenceFile,
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
    Submission,
    SubmissionStatus,
)

# code, name, province code (None: a province)
REGIONS = [
    ("91", "Provinsi Alfa", None),
    ("91.01", "Kabupaten Alfasatu", "91"),
    ("91.71", "Kota Alfadua", "91"),
    ("92", "Provinsi Beta", None),
    ("92.01", "Kabupaten Betasatu", "92"),
]


@dataclass
class Country:
    regions: dict[str, Region] = field(default_factory=dict)  # by code
    offices: dict[str, list[Office]] = field(default_factory=dict)  # by region code
    focal_points: dict[str, Contact] = field(default_factory=dict)  # by region code
    coordinators: dict[str, Contact] = field(default_factory=dict)  # by region code
    kanwil: dict[str, Contact] = field(default_factory=dict)  # by province code
    admin: Contact | None = None
    period: Period | None = None
    actions: list[Action] = field(default_factory=list)
    requirements: list[EvidenceRequirement] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)

    def names_of(self, region_code: str) -> set[str]:
        """What a view of this pemda may show: its name, its offices', its focal point's."""
        return {
            self.regions[region_code].name,
            *(office.name for office in self.offices[region_code]),
            self.focal_points[region_code].name,
        }

    def visible_to(self, contact: Contact) -> set[str]:
        """The region codes a contact oversees."""
        if contact.role is Role.admin:
            return set(self.regions)
        region = next(r for r in self.regions.values() if r.id == contact.region_id)
        if region.kind is RegionKind.provinsi and contact.role in {Role.coordinator, Role.kanwil}:
            return {code for code in self.regions if code.split(".")[0] == region.code}
        return {region.code}

    def contacts(self) -> list[Contact]:
        people = [*self.focal_points.values(), *self.coordinators.values(), *self.kanwil.values()]
        return [*people, self.admin] if self.admin else people


def phone(n: int) -> str:
    return f"+62813{n:08d}"


async def make_country(session: AsyncSession, *, today: date | None = None) -> Country:
    today = today or datetime.now(UTC).date()
    country = Country()
    for code, name, parent in REGIONS:
        region = Region(
            code=code,
            name=name,
            kind=RegionKind.kabkota if parent else RegionKind.provinsi,
            parent_id=country.regions[parent].id if parent else None,
        )
        session.add(region)
        await session.flush()
        country.regions[code] = region
    programme = Programme(
        code="aksi-ham-test", kind=ProgrammeKind.aksi_ham, year=today.year, title="Aksi HAM uji"
    )
    session.add(programme)
    await session.flush()
    period = Period(
        programme_id=programme.id or 0,
        code="B08",
        title="Periode B08",
        opens_on=today - timedelta(days=3),
        due_on=today + timedelta(days=4),
    )
    session.add(period)
    await session.flush()
    country.period = period
    for n, (code, title) in enumerate([("AK-01", "Pelatihan usaha"), ("AK-02", "Sekolah inklusi")]):
        action = Action(
            programme_id=programme.id or 0, code=code, level=ActionLevel.kabkota, title=title
        )
        session.add(action)
        await session.flush()
        measure = Measure(action_id=action.id or 0, period_id=period.id or 0, code="1", title="M")
        session.add(measure)
        await session.flush()
        question = Question(
            measure_id=measure.id or 0, code="jumlah", text="Berapa?", kind=QuestionKind.integer
        )
        optional = Question(
            measure_id=measure.id or 0,
            code="catatan",
            text="Catatan",
            kind=QuestionKind.text,
            required=False,
            position=1,
        )
        notulen = EvidenceRequirement(
            measure_id=measure.id or 0, code="notulen", label=f"Notulen {n + 1}", kinds=["pdf"]
        )
        hadir = EvidenceRequirement(
            measure_id=measure.id or 0,
            code="hadir",
            label=f"Daftar hadir {n + 1}",
            kinds=["pdf"],
            position=1,
        )
        session.add_all([question, optional, notulen, hadir])
        await session.flush()
        country.actions.append(action)
        country.questions.append(question)
        country.requirements += [notulen, hadir]
    counter = 0
    for code, region in country.regions.items():
        offices = [
            Office(region_id=region.id or 0, code="DINSOS", name=f"Dinas Sosial {region.name}"),
            Office(region_id=region.id or 0, code="DISDIK", name=f"Dinas Pendidikan {region.name}"),
        ]
        session.add_all(offices)
        await session.flush()
        country.offices[code] = offices
        for office, action in zip(offices, country.actions, strict=True):
            session.add(Assignment(action_id=action.id or 0, office_id=office.id or 0))
        counter += 1
        country.focal_points[code] = Contact(
            name=f"Operator {region.name}",
            phone=phone(counter),
            role=Role.focal_point,
            region_id=region.id,
            office_id=offices[0].id,
        )
        counter += 1
        country.coordinators[code] = Contact(
            name=f"Koordinator {region.name}",
            phone=phone(counter),
            role=Role.coordinator,
            region_id=region.id,
        )
        if region.kind is RegionKind.provinsi:
            counter += 1
            country.kanwil[code] = Contact(
                name=f"Kanwil {region.name}",
                phone=phone(counter),
                role=Role.kanwil,
                region_id=region.id,
            )
    country.admin = Contact(name="Admin Pusat", phone=phone(99), role=Role.admin)
    session.add_all(country.contacts())
    await session.flush()
    return country


async def add_report(
    session: AsyncSession,
    country: Country,
    *,
    region_code: str,
    office_index: int = 0,
    status: SubmissionStatus = SubmissionStatus.submitted,
    answer: str | None = "12",
    files: int = 2,
    submitted_at: datetime | None = None,
) -> Submission:
    """A report of the office's action with an answer and `files` of its two evidence kinds."""
    office = country.offices[region_code][office_index]
    action = country.actions[office_index]
    sent = status in {SubmissionStatus.submitted, SubmissionStatus.approved}
    submission = Submission(
        action_id=action.id or 0,
        office_id=office.id or 0,
        period_id=country.period.id if country.period else 0,
        status=status,
        submitted_at=(submitted_at or datetime.now(UTC)) if sent else None,
    )
    session.add(submission)
    await session.flush()
    if answer is not None:
        session.add(
            Answer(
                submission_id=submission.id or 0,
                question_id=country.questions[office_index].id or 0,
                value=answer,
            )
        )
    for requirement in country.requirements[2 * office_index : 2 * office_index + files]:
        session.add(
            EvidenceFile(
                submission_id=submission.id or 0,
                requirement_id=requirement.id or 0,
                sha256="a" * 64,
                detected_mime="application/pdf",
                kind="pdf",
                size=10,
                storage_key="aa/" + "a" * 64 + ".pdf",
            )
        )
    await session.flush()
    return submission
