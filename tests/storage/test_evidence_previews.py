"""Originals keep their EXIF time and GPS, and the coordinates are stored with the file; nothing
sent back into a chat from evidence carries any of it (hardening issue #13, item 16)."""

from __future__ import annotations

import io

import pillow_heif
import pytest
from PIL import Image
from sqlmodel import select

from storage.evidence import (
    EvidenceRejected,
    LocalEvidenceStore,
    sendable_key,
    stripped_preview,
)
from storage.models import EvidenceFile
from tests.storage.test_evidence import gps_exif
from tests.support.harness import at_first_question, pdf_bytes

XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/>'
    b"<exif:GPSLatitude>6,12S</exif:GPSLatitude></x:xmpmeta>"
)
METADATA_KEYS = ("exif", "xmp", "XML:com.adobe.xmp", "icc_profile", "comment", "photoshop")


def photo_with_everything(fmt: str, size: tuple[int, int] = (1600, 1200)) -> bytes:
    """A photo that says where it was taken in every way its format allows."""
    image = Image.new("RGB", size, (30, 120, 200))
    out = io.BytesIO()
    extra: dict[str, object] = {"exif": gps_exif(orientation=6)}
    if fmt == "JPEG":
        extra |= {"comment": b"Kantor Dinas, Jl. Merdeka 1", "xmp": XMP}
    if fmt == "HEIF":
        pillow_heif.register_heif_opener()
    image.save(out, format=fmt, **extra)
    return out.getvalue()


def assert_no_metadata(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        assert dict(image.getexif()) == {}
        assert not [key for key in METADATA_KEYS if key in image.info]
    assert b"Exif\x00\x00" not in data and b"GPSLatitude" not in data and b"Merdeka" not in data


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_a_stripped_preview_has_no_metadata_and_is_small_and_upright(fmt: str) -> None:
    original = photo_with_everything(fmt)
    with Image.open(io.BytesIO(original)) as image:
        assert image.getexif().get_ifd(0x8825)  # the original does carry a GPS position

    preview = stripped_preview(original, max_side=640)

    assert_no_metadata(preview)
    with Image.open(io.BytesIO(preview)) as image:
        assert max(image.size) == 640
        if fmt != "HEIF":  # (HEIF turns by its own irot box, not by EXIF)
            assert image.size == (480, 640)  # orientation 6 applied: portrait


def test_only_photos_get_a_preview() -> None:
    with pytest.raises(EvidenceRejected):
        stripped_preview(pdf_bytes())


def test_a_photo_is_sent_by_its_display_copy_never_its_original() -> None:
    assert sendable_key(kind="photo", storage_key="ab/orig.jpg", display_key="cd/disp.jpg") == (
        "cd/disp.jpg"
    )
    assert sendable_key(kind="pdf", storage_key="ab/notulen.pdf", display_key=None) == (
        "ab/notulen.pdf"
    )
    with pytest.raises(ValueError, match="must not be sent"):
        sendable_key(kind="photo", storage_key="ab/orig.jpg", display_key=None)


async def test_the_original_keeps_its_gps_the_row_stores_it_and_what_may_be_sent_has_none(
    sessions, data_dir
) -> None:
    """A photo sent as a document (original bytes, as Telegram and WhatsApp deliver them)
    through the report flow."""
    h = await at_first_question(sessions, data_dir)
    await h.text("25")
    await h.choose("yes")
    await h.choose("skip")
    reply = await h.file(photo_with_everything("JPEG"), "kegiatan.jpg", mime="image/jpeg")
    assert "Foto kegiatan: 1 berkas" in reply
    async with sessions() as session:
        row = (await session.exec(select(EvidenceFile))).one()
    assert row.gps_lat == pytest.approx(-(6 + 12 / 60 + 30 / 3600))
    assert row.gps_lon == pytest.approx(106 + 49 / 60)
    assert row.taken_at is not None  # 09.30 camera time in Jakarta, stored as UTC
    assert (row.taken_at.hour, row.taken_at.minute) == (2, 30)
    store = LocalEvidenceStore(data_dir / "evidence")
    with Image.open(io.BytesIO(await store.get(row.storage_key))) as original:
        assert original.getexif().get_ifd(0x8825)  # the evidence itself is untouched

    sent = await store.get(
        sendable_key(kind=row.kind, storage_key=row.storage_key, display_key=row.display_key)
    )
    assert_no_metadata(sent)
    assert row.thumbnail_key is not None
    assert_no_metadata(await store.get(row.thumbnail_key))
