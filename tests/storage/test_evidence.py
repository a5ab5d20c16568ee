"""Sniffing and the ingest pipeline. All inputs are generated here; no binary fixtures.

The factories at the top are also used by the other test_evidence_*.py modules.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import openpyxl
import pillow_heif
import pytest
from PIL import Image, TiffImagePlugin
from pypdf import PdfWriter

from bot.engine.texts import t
from storage.evidence import (
    DetectedType,
    EvidenceKind,
    EvidenceRejected,
    LocalEvidenceStore,
    RejectionCode,
    detect_type,
    ingest,
    inspect_bytes,
)
from storage.evidence.sniff import MAX_ZIP_ENTRIES, _check_zip_limits
from tests.support.harness import pdf_bytes

MB = 1024 * 1024
DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
DOCM_MAIN = "application/vnd.ms-word.document.macroEnabled.main+xml"
XLSM_MAIN = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
XLSX_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
DOTX_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml"
MINIMAL_PDF = pdf_bytes()  # one page
WORD_BODY = (
    b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    b"<w:body><w:p><w:r><w:t>Laporan Aksi HAM</w:t></w:r></w:p></w:body></w:document>"
)

# --------------------------------------------------------------------------- factories


def image_bytes(
    fmt: str,
    size: tuple[int, int] = (64, 48),
    *,
    mode: str = "RGB",
    color: tuple[int, ...] = (200, 40, 40),
    exif: Image.Exif | None = None,
) -> bytes:
    img = Image.new(mode, size, color)
    out = io.BytesIO()
    kwargs = {"exif": exif} if exif is not None else {}
    img.save(out, format=fmt, **kwargs)
    return out.getvalue()


def heic_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    pillow_heif.register_heif_opener()
    return image_bytes("HEIF", size)


def gps_exif(
    *,
    orientation: int | None = None,
    taken: str | None = "2024:05:17 09:30:00",
    lat: tuple[float, float, float] = (6.0, 12.0, 30.0),
    lat_ref: str = "S",
    lon: tuple[float, float, float] = (106.0, 49.0, 0.0),
    lon_ref: str = "E",
) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[274] = orientation
    if taken is not None:
        exif.get_ifd(0x8769)[36867] = taken
    gps = exif.get_ifd(0x8825)
    gps[1], gps[3] = lat_ref, lon_ref
    gps[2] = tuple(TiffImagePlugin.IFDRational(v) for v in lat)
    gps[4] = tuple(TiffImagePlugin.IFDRational(v) for v in lon)
    return exif


def content_types(main_type: str, part: str = "/word/document.xml") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        f'<Override PartName="{part}" ContentType="{main_type}"/>'
        "</Types>"
    ).encode()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def docx_bytes(main_type: str = DOCX_MAIN, extra: dict[str, bytes] | None = None) -> bytes:
    return zip_bytes(
        {
            "[Content_Types].xml": content_types(main_type),
            "_rels/.rels": b"<Relationships/>",
            "word/document.xml": WORD_BODY,
            **(extra or {}),
        }
    )


def xlsx_bytes() -> bytes:
    workbook = openpyxl.Workbook()
    workbook.active["A1"] = "Aksi HAM"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def zip_bomb_docx(uncompressed: int = 64 * MB) -> bytes:
    """Valid DOCX content types, but document.xml inflates about 1000:1."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", content_types(DOCX_MAIN))
        with archive.open("word/document.xml", "w", force_zip64=True) as entry:
            block = bytes(MB)
            for _ in range(uncompressed // MB):
                entry.write(block)
    return out.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A complete, valid 1-bit PNG of all-zero pixels: tiny on disk, huge when decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    rows_per_step = 1000
    idat = (
        b"".join(
            compressor.compress(row * min(rows_per_step, height - start))
            for start in range(0, height, rows_per_step)
        )
        + compressor.flush()
    )
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def stored_files(root: Path) -> list[Path]:
    """Sync on purpose: tiny directory listings in tests need no thread hop."""
    return sorted(p for p in root.rglob("*") if p.is_file())


def rejection(data: bytes) -> RejectionCode:
    with pytest.raises(EvidenceRejected) as info:
        inspect_bytes(data, max_bytes=100 * MB)
    assert info.value.detail  # English detail for logs is always present
    return info.value.code


# --------------------------------------------------------------------------- accepted types


@pytest.mark.parametrize(
    ("data", "mime", "extension", "kind"),
    [
        (image_bytes("JPEG"), "image/jpeg", "jpg", EvidenceKind.PHOTO),
        (image_bytes("PNG"), "image/png", "png", EvidenceKind.PHOTO),
        (image_bytes("WEBP"), "image/webp", "webp", EvidenceKind.PHOTO),
        (heic_bytes(), "image/heic", "heic", EvidenceKind.PHOTO),
        (MINIMAL_PDF, "application/pdf", "pdf", EvidenceKind.PDF),
        (docx_bytes(), DOCX_MIME, "docx", EvidenceKind.DOCX),
        (xlsx_bytes(), XLSX_MIME, "xlsx", EvidenceKind.XLSX),
    ],
    ids=["jpeg", "png", "webp", "heic", "pdf", "docx", "xlsx"],
)
def test_accepted_types_are_detected_from_bytes(
    data: bytes, mime: str, extension: str, kind: EvidenceKind
) -> None:
    assert detect_type(data) == DetectedType(kind, mime, extension)
    detected, image = inspect_bytes(data, max_bytes=20 * MB)
    assert detected.mime == mime
    assert (image is not None) == (kind is EvidenceKind.PHOTO)


def test_heic_is_decoded_into_display_and_thumbnail() -> None:
    _, image = inspect_bytes(heic_bytes((640, 480)), max_bytes=20 * MB)
    assert image is not None
    assert (image.width, image.height) == (640, 480)
    assert Image.open(io.BytesIO(image.display)).format == "JPEG"


# --------------------------------------------------------------------------- rejected types


def _gif() -> bytes:
    return image_bytes("GIF", mode="P", color=1)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (_gif(), RejectionCode.UNSUPPORTED_TYPE),
        (b"MZ\x90\x00\x03\x00\x00\x00" + bytes(200), RejectionCode.UNSUPPORTED_TYPE),
        (zip_bytes({"readme.txt": b"hello"}), RejectionCode.UNSUPPORTED_TYPE),
        (b"Laporan aksi HAM tahun 2024\n", RejectionCode.UNSUPPORTED_TYPE),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), RejectionCode.UNSUPPORTED_TYPE),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", RejectionCode.UNSUPPORTED_TYPE),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", RejectionCode.UNSUPPORTED_TYPE),
        (docx_bytes(DOTX_MAIN), RejectionCode.UNSUPPORTED_TYPE),
        (docx_bytes(DOCM_MAIN), RejectionCode.MACRO_ENABLED),
        (docx_bytes(XLSM_MAIN), RejectionCode.MACRO_ENABLED),
        (
            docx_bytes(extra={"word/vbaProject.bin": b"\xd0\xcf\x11\xe0"}),
            RejectionCode.MACRO_ENABLED,
        ),
        (docx_bytes(extra={"deep/er/VBAPROJECT.BIN": b"x"}), RejectionCode.MACRO_ENABLED),
    ],
    ids=[
        "gif",
        "exe",
        "plain-zip",
        "text",
        "ole-doc-xls",
        "mp4",
        "avif",
        "dotx",
        "docm",
        "xlsm",
        "vbaproject",
        "vbaproject-anywhere",
    ],
)
def test_rejected_types(data: bytes, code: RejectionCode) -> None:
    assert rejection(data) is code


def test_content_types_with_doctype_are_refused() -> None:
    billion_laughs = (
        b'<?xml version="1.0"?><!DOCTYPE Types [<!ENTITY a "aaaaaaaaaa">]>'
        b'<Types><Override PartName="/word/document.xml" ContentType="&a;"/></Types>'
    )
    data = zip_bytes({"[Content_Types].xml": billion_laughs, "word/document.xml": b"<x/>"})
    assert rejection(data) is RejectionCode.CORRUPT


def test_declared_main_part_must_exist() -> None:
    data = zip_bytes({"[Content_Types].xml": content_types(DOCX_MAIN)})
    assert rejection(data) is RejectionCode.CORRUPT


# --------------------------------------------------------------------------- document content
# Issue #12, item 6: the right signature is not enough, the document must open and have content.


def encrypted_pdf(user_password: str, algorithm: str) -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(pdf_bytes()))
    writer.encrypt(user_password=user_password, owner_password="pemilik", algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def xlsx_without_sheets() -> bytes:
    return zip_bytes(
        {
            "[Content_Types].xml": content_types(XLSX_MAIN, "/xl/workbook.xml"),
            "xl/workbook.xml": b'<workbook xmlns="http://schemas.openxmlformats.org/'
            b'spreadsheetml/2006/main"><sheets/></workbook>',
        }
    )


NO_BODY = WORD_BODY.replace(b"w:body>", b"w:x>")  # a document element, but no body


def zero_page_pdf() -> bytes:
    out = io.BytesIO()
    PdfWriter().write(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "code", "reason"),
    [
        (b"%PDF-1.4\n", RejectionCode.CORRUPT, "rusak"),
        (b"%PDF-1.7\n" + bytes(5000), RejectionCode.CORRUPT, "rusak"),
        (zero_page_pdf(), RejectionCode.NO_CONTENT, "PDF tanpa halaman"),
        (encrypted_pdf("rahasia", "AES-128"), RejectionCode.ENCRYPTED, "kata sandi"),
        (encrypted_pdf("rahasia", "RC4-128"), RejectionCode.ENCRYPTED, "kata sandi"),
        (docx_bytes(extra={"word/document.xml": NO_BODY}), RejectionCode.NO_CONTENT,
         "Word tanpa isi"),
        (docx_bytes(extra={"word/document.xml": WORD_BODY[:90]}), RejectionCode.NO_CONTENT,
         "Word tanpa isi"),
        (docx_bytes(extra={"word/document.xml": b"<<<"}), RejectionCode.CORRUPT, "rusak"),
        (xlsx_without_sheets(), RejectionCode.NO_CONTENT, "Excel tanpa lembar kerja"),
    ],
    ids=["9-byte-stub", "pdf-header-and-zeros", "zero-pages", "password-aes",
         "password-rc4", "docx-no-body", "docx-cut", "docx-not-xml", "xlsx-no-sheet"],
)  # fmt: skip
def test_documents_that_do_not_open_or_are_empty_are_refused_with_the_reason(
    data: bytes, code: RejectionCode, reason: str
) -> None:
    with pytest.raises(EvidenceRejected) as caught:
        inspect_bytes(data, max_bytes=20 * MB)
    assert caught.value.code is code
    assert reason in t("id", f"evidence.rejected.{code.value}", name="x.pdf", max_mb=20)


@pytest.mark.parametrize("algorithm", ["AES-256", "AES-128", "RC4-128"])
def test_a_pdf_that_opens_without_a_password_is_accepted(algorithm: str) -> None:
    """An owner password only restricts printing or editing: anyone can read the file."""
    detected, image = inspect_bytes(encrypted_pdf("", algorithm), max_bytes=20 * MB)
    assert detected.kind is EvidenceKind.PDF and image is None


def test_real_documents_with_content_are_accepted() -> None:
    for data, kind in [
        (pdf_bytes(), EvidenceKind.PDF),
        (docx_bytes(), EvidenceKind.DOCX),
        (xlsx_bytes(), EvidenceKind.XLSX),
    ]:
        assert inspect_bytes(data, max_bytes=20 * MB)[0].kind is kind


# --------------------------------------------------------------------------- zip bombs


def test_zip_bomb_disguised_as_docx_is_rejected_without_inflating(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = zip_bomb_docx()
    assert len(data) < MB  # 64 MB of XML squeezed ~1000:1

    def no_inflating(*_: object) -> None:
        raise AssertionError("the sniffer decompressed something")

    monkeypatch.setattr(zipfile.zlib, "decompressobj", no_inflating)
    assert rejection(data) is RejectionCode.ZIP_BOMB


def test_too_many_zip_entries() -> None:
    entries = {f"word/media/{i}.xml": b"" for i in range(MAX_ZIP_ENTRIES + 1)}
    data = docx_bytes(extra=entries)
    assert rejection(data) is RejectionCode.ZIP_BOMB


def test_total_declared_size_is_bounded() -> None:
    # Two entries at a plausible 75:1 ratio, together over the total limit. Building such an
    # archive for real would mean compressing 300 MB, so the limit check is fed ZipInfos.
    infos = []
    for index in range(2):
        info = zipfile.ZipInfo(f"part{index}.xml")
        info.file_size, info.compress_size, info.header_offset = 150 * MB, 2 * MB, 0
        infos.append(info)
    with pytest.raises(EvidenceRejected) as caught:
        _check_zip_limits(infos, archive_size=10 * MB)
    assert caught.value.code is RejectionCode.ZIP_BOMB


def test_truncated_zip_is_corrupt() -> None:
    data = docx_bytes()
    assert rejection(data[: len(data) // 2]) is RejectionCode.CORRUPT


# --------------------------------------------------------------------------- broken images


def test_decompression_bomb_png_is_rejected() -> None:
    data = png_bomb(30_000, 30_000)  # 900 megapixels in ~110 KB
    assert len(data) < MB
    assert rejection(data) is RejectionCode.IMAGE_BOMB


def test_image_over_our_limit_but_under_pillows_is_rejected() -> None:
    data = png_bomb(9_000, 9_000)  # 81 MP: Pillow would only warn above ~89 MP
    assert rejection(data) is RejectionCode.IMAGE_BOMB


def test_truncated_jpeg_is_corrupt() -> None:
    data = image_bytes("JPEG", (800, 600), color=(10, 120, 200))
    assert rejection(data[: len(data) // 2]) is RejectionCode.CORRUPT


def test_png_magic_with_garbage_is_corrupt() -> None:
    assert rejection(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20) is RejectionCode.CORRUPT


# --------------------------------------------------------------------------- size limits


def test_too_large_and_empty() -> None:
    data = image_bytes("PNG")
    with pytest.raises(EvidenceRejected) as too_large:
        inspect_bytes(data, max_bytes=len(data) - 1)
    assert too_large.value.code is RejectionCode.TOO_LARGE
    assert inspect_bytes(data, max_bytes=len(data))[0].extension == "png"  # limit is inclusive
    with pytest.raises(EvidenceRejected) as empty:
        inspect_bytes(b"", max_bytes=MB)
    assert empty.value.code is RejectionCode.EMPTY


def test_rejection_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(EvidenceRejected(RejectionCode.CORRUPT, "bad crc")))
    assert (error.code, error.detail) == (RejectionCode.CORRUPT, "bad crc")


# --------------------------------------------------------------------------- ingest


async def test_ingest_photo_stores_original_display_and_thumbnail(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    data = image_bytes("JPEG", (640, 480), exif=gps_exif())
    stored = await ingest(data, store=store, max_bytes=20 * MB)

    digest = hashlib.sha256(data).hexdigest()
    assert stored.sha256 == digest
    assert stored.size == len(data)
    assert stored.storage_key == f"{digest[:2]}/{digest}.jpg"
    assert await store.get(stored.storage_key) == data  # the evidence is kept byte for byte
    assert stored.display_key and stored.thumbnail_key
    display = Image.open(io.BytesIO(await store.get(stored.display_key)))
    thumbnail = Image.open(io.BytesIO(await store.get(stored.thumbnail_key)))
    assert display.size == (640, 480)
    assert max(thumbnail.size) == 320
    assert (stored.width, stored.height) == (640, 480)
    assert stored.taken_at_local is not None and stored.taken_at_local.tzinfo is None
    assert stored.gps_lat is not None and stored.gps_lat < 0


async def test_ingest_document_has_no_image_fields(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    stored = await ingest(MINIMAL_PDF, store=store, max_bytes=20 * MB)
    assert stored.detected.extension == "pdf"
    assert stored.storage_key.endswith(".pdf")
    assert stored.display_key is None and stored.thumbnail_key is None
    assert stored.width is None and stored.taken_at_local is None and stored.gps_lat is None
    assert stored_files(tmp_path) == [tmp_path / stored.storage_key]


def test_ingest_takes_no_client_name_or_mime() -> None:
    assert list(inspect.signature(ingest).parameters) == ["data", "store", "max_bytes"]


async def test_key_depends_on_content_only(tmp_path: Path) -> None:
    # A client calling the file "../../etc/passwd" or "laporan.exe" cannot matter: the name
    # never reaches ingest, and the key is the content hash plus the sniffed extension.
    store = LocalEvidenceStore(tmp_path / "store")
    data = image_bytes("PNG")
    stored = await ingest(data, store=store, max_bytes=MB)
    digest = hashlib.sha256(data).hexdigest()
    assert stored.storage_key == f"{digest[:2]}/{digest}.png"
    assert stored_files(tmp_path) == stored_files(tmp_path / "store")


async def test_ingest_same_bytes_twice_is_deduplicated(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    data = image_bytes("JPEG", (300, 200))
    first = await ingest(data, store=store, max_bytes=MB)
    second = await ingest(data, store=store, max_bytes=MB)
    assert first == second
    assert len(stored_files(tmp_path)) == 3  # original, display, thumbnail


@pytest.mark.parametrize(
    ("data", "max_bytes", "code"),
    [
        (b"", MB, RejectionCode.EMPTY),
        (MINIMAL_PDF, 10, RejectionCode.TOO_LARGE),
        (b"MZ" + bytes(100), MB, RejectionCode.UNSUPPORTED_TYPE),
    ],
    ids=["empty", "too-large", "unsupported"],
)
async def test_rejected_ingest_stores_nothing(
    tmp_path: Path, data: bytes, max_bytes: int, code: RejectionCode
) -> None:
    with pytest.raises(EvidenceRejected) as info:
        await ingest(data, store=LocalEvidenceStore(tmp_path), max_bytes=max_bytes)
    assert info.value.code is code
    assert stored_files(tmp_path) == []
