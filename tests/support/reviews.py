"""Reports ready for review, made through the storage functions the flow uses: answers, a photo
that carries EXIF GPS (as a phone's camera writes it), a PDF, then submitted."""

from __future__ import annotations

import io
from datetime import datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import reports
from storage.db import transaction
from storage.evidence import EvidenceStore, ingest
from storage.models import Contact, EvidenceFile, Question, QuestionKind, Submission
from storage.types import utcnow
from tests.support.harness import pdf_bytes

GPS_IFD = 0x8825
EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 0x9003
MAX_BYTES = 20 * 1024 * 1024


def jpeg_with_gps(color: str = "green") -> bytes:
    """A JPEG whose EXIF names where and when it was taken (Bandar Lampung, 20 Aug 2025)."""
    from PIL import Image

    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = "2025:08:20 10:15:00"
    gps = exif.get_ifd(GPS_IFD)
    gps.update({1: "S", 2: (5.0, 25.0, 0.0), 3: "E", 4: (105.0, 15.0, 0.0)})
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), color).save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def has_exif(data: bytes) -> bool:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return bool(image.getexif()) or "exif" in image.info


def answer_for(question: Question) -> str:
    return {
        QuestionKind.integer: "25",
        QuestionKind.decimal: "2.5",
        QuestionKind.yes_no: "yes",
        QuestionKind.text: "lancar",
        QuestionKind.date: "2025-08-20",
        QuestionKind.choice: (question.choices or ["x"])[0],
    }[question.kind]


async def submitted_report(
    sessions: async_sessionmaker[AsyncSession],
    store: EvidenceStore,
    *,
    action_id: int,
    office_id: int,
    period_id: int,
    focal_point: Contact,
    with_files: bool = True,
    now: datetime | None = None,
) -> int:
    """A complete report submitted by `focal_point`; its id. Each evidence requirement gets a
    photo with GPS when it takes photos, else a PDF."""
    now = now or utcnow()
    photo = await ingest(jpeg_with_gps(), store=store, max_bytes=MAX_BYTES)
    pdf = await ingest(pdf_bytes("daftar penerima"), store=store, max_bytes=MAX_BYTES)
    async with transaction(sessions) as session:
        submission, _ = await reports.get_or_create_submission(
            session=session, action_id=action_id, office_id=office_id, period_id=period_id
        )
        for item in await reports.walk(session=session, action_id=action_id, period_id=period_id):
            if item.question is not None:
                await reports.save_answer(
                    session=session,
                    submission=submission,
                    question_id=item.question.id or 0,
                    value=answer_for(item.question),
                    contact_id=focal_point.id,
                    now=now,
                )
            elif item.requirement is not None and with_files:
                stored, name = (
                    (photo, "IMG_2025.jpg")
                    if "photo" in item.requirement.kinds
                    else (pdf, "daftar.pdf")
                )
                file = EvidenceFile(
                    submission_id=submission.id or 0,
                    requirement_id=item.requirement.id or 0,
                    sha256=stored.sha256,
                    original_name=name,
                    detected_mime=stored.detected.mime,
                    kind=stored.detected.kind.value,
                    size=stored.size,
                    storage_key=stored.storage_key,
                    display_key=stored.display_key,
                    thumbnail_key=stored.thumbnail_key,
                    gps_lat=stored.gps_lat,
                    gps_lon=stored.gps_lon,
                    uploaded_by_id=focal_point.id,
                    received_at=now,
                )
                await reports.add_evidence(session=session, submission=submission, file=file)
        await reports.submit(
            session=session, submission=submission, contact_id=focal_point.id, now=now
        )
        return submission.id or 0


async def get_submission(sessions: async_sessionmaker[AsyncSession], id_: int) -> Submission:
    async with sessions() as session:
        found = await session.get(Submission, id_)
        assert found is not None
        return found
