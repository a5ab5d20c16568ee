"""Decode, check and shrink photos; extract their EXIF capture time and GPS position.

The original bytes are never modified (they are the evidence). We derive two JPEG copies for
the review UI: a display copy (longest side at most 2048 px) and a thumbnail (320 px), both
upright, RGB and without any metadata, so a shared preview never leaks the reporter's location.

Speed: JPEGs are decoded with libjpeg's DCT scaling (``Image.draft``) at the smallest 1/2, 1/4
or 1/8 scale that still leaves the longest side at or above ``DISPLAY_MIN_SIDE``. A typical
12-megapixel phone photo (4000x3000) is thus decoded directly at 2000x1500, a quarter of the
pixels, and needs no resampling at all. The display copy is therefore between
``DISPLAY_MIN_SIDE`` and ``DISPLAY_MAX_SIDE`` on its longest side for large photos, never above.
"""

from __future__ import annotations

import io
import math
import threading
from dataclasses import dataclass
from datetime import datetime

import pillow_heif
from PIL import Image, UnidentifiedImageError

from storage.evidence.sniff import DetectedType, EvidenceRejected, RejectionCode

__all__ = [
    "DISPLAY_MAX_SIDE",
    "MAX_PIXELS",
    "THUMBNAIL_SIDE",
    "ImageResult",
    "process_image",
]

# Once per process; registering the HEIF plugin is idempotent but not free.
pillow_heif.register_heif_opener()

# Our own limit, checked from the header before any pixel is decoded. It is below Pillow's
# global MAX_IMAGE_PIXELS (which we leave alone: other code in the process shares it), so a
# bomb becomes an error here rather than a warning there. 80 MP is larger than any phone photo.
MAX_PIXELS = 80_000_000
# Memory, not pixels, is what a photo costs: a decoded image takes pixels x bytes per pixel.
# 184 MiB holds a 48-megapixel RGB photo (the largest phones make, as HEIC or PNG); JPEGs are
# decoded at a reduced DCT scale (see _draft_for_display) and so count far less. Decodes take
# turns (DECODE_SLOTS), and every copy after the decode is display-sized, so the process's
# peak stays near its baseline + MAX_DECODED_BYTES (~300 MB) whatever users send at once.
MAX_DECODED_BYTES = 184 * 1024 * 1024
DECODE_SLOTS = 1
_decoding = threading.BoundedSemaphore(DECODE_SLOTS)
DISPLAY_MAX_SIDE = 2048
DISPLAY_MIN_SIDE = 1600
THUMBNAIL_SIDE = 320
DISPLAY_QUALITY = 85
THUMBNAIL_QUALITY = 80

_PILLOW_FORMAT = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/heic": "HEIF",
}

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_TAG_DATETIME = 306
_TAG_DATETIME_ORIGINAL = 36867
_TAG_ORIENTATION = 274
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4
_TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # rotated by 90°: width and height swap


@dataclass(frozen=True, slots=True)
class ImageResult:
    display: bytes  # JPEG, upright, RGB, no metadata
    thumbnail: bytes  # JPEG, made from the display copy
    width: int  # of the upright original (EXIF orientation applied)
    height: int
    # EXIF DateTimeOriginal carries no time zone (OffsetTimeOriginal is rarely trustworthy), so
    # this is the camera's wall-clock time, deliberately naive. Do not compare it with aware
    # datetimes without choosing a zone (for Indonesia, usually that of the reporting office).
    taken_at_local: datetime | None
    gps_lat: float | None  # signed degrees: south negative
    gps_lon: float | None  # signed degrees: west negative


def process_image(data: bytes, detected: DetectedType) -> ImageResult:
    """Check and shrink one photo; raises :class:`EvidenceRejected` (image_bomb or corrupt)."""
    pillow_format = _PILLOW_FORMAT[detected.mime]
    _verify(data, pillow_format)
    try:
        with _open(data, pillow_format) as img:
            return _derive(img)
    except Image.DecompressionBombError as exc:
        raise EvidenceRejected(RejectionCode.IMAGE_BOMB, str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow signals truncated/garbled data with any of these.
        raise EvidenceRejected(RejectionCode.CORRUPT, f"cannot decode image: {exc}") from exc


def _open(data: bytes, pillow_format: str) -> Image.Image:
    """Open with only the sniffed plugin allowed, and enforce the pixel limit from the header."""
    try:
        img = Image.open(io.BytesIO(data), formats=[pillow_format])
    except Image.DecompressionBombError as exc:
        raise EvidenceRejected(RejectionCode.IMAGE_BOMB, str(exc)) from exc
    except UnidentifiedImageError as exc:
        # The magic number matched but the plugin refused it: a fake or broken header.
        raise EvidenceRejected(RejectionCode.CORRUPT, f"not a valid {pillow_format}") from exc
    width, height = img.size
    if width * height > MAX_PIXELS:
        img.close()
        raise EvidenceRejected(RejectionCode.IMAGE_BOMB, f"{width}x{height} pixels")
    return img


def _verify(data: bytes, pillow_format: str) -> None:
    # verify() leaves the image unusable, hence a separate open; it checks chunk CRCs for PNG.
    try:
        with _open(data, pillow_format) as img:
            img.verify()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise EvidenceRejected(RejectionCode.CORRUPT, f"image failed verify: {exc}") from exc


def _derive(img: Image.Image) -> ImageResult:
    full_size = img.size
    if img.format == "JPEG":
        _draft_for_display(img)
    _check_decoded_size(img)
    with _decoding:  # one full-size decode at a time: memory, not CPU, is the limit here
        img.load()  # raises on truncated data
        # After load(): PNG's getexif() decodes the whole image to find a late eXIf chunk.
        exif = img.getexif()
        # Shrink first, then turn upright and flatten: every later copy is display-sized.
        display_img = _fit(_resizable(img), DISPLAY_MAX_SIDE, Image.Resampling.LANCZOS)
        if display_img is not img:
            img.close()  # frees the full-size pixels before the next decode may start
    orientation = exif.get(_TAG_ORIENTATION, 1)
    width, height = _upright_size(full_size, orientation)
    display_img = _to_rgb(_upright(display_img, orientation))
    thumb_img = _fit(display_img, THUMBNAIL_SIDE, Image.Resampling.BICUBIC)
    gps_lat, gps_lon = _gps(exif)
    return ImageResult(
        display=_jpeg(display_img, DISPLAY_QUALITY),
        thumbnail=_jpeg(thumb_img, THUMBNAIL_QUALITY),
        width=width,
        height=height,
        taken_at_local=_taken_at(exif),
        gps_lat=gps_lat,
        gps_lon=gps_lon,
    )


def _check_decoded_size(img: Image.Image) -> None:
    """Refuse, from the header, a photo whose pixels would not fit the decoding budget."""
    width, height = img.size
    needed = width * height * _bytes_per_pixel(img.mode)
    if needed > MAX_DECODED_BYTES:
        raise EvidenceRejected(
            RejectionCode.IMAGE_BOMB, f"{width}x{height} {img.mode} needs {needed >> 20} MiB"
        )


def _bytes_per_pixel(mode: str) -> int:
    # Pillow keeps one-band 8-bit images at 1 byte a pixel and every other mode at 4 (RGB
    # included); palette images are expanded to RGBA before resizing (see _resizable).
    return 1 if mode in ("1", "L") else 4


def _resizable(img: Image.Image) -> Image.Image:
    """A mode that resizes with a real filter (palettes resize by nearest neighbour only)."""
    if img.mode in ("P", "PA", "1"):
        return img.convert("RGBA" if img.mode != "1" else "L")
    if img.mode.startswith(("I", "F")):
        return img.convert("L")
    return img


_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _upright(img: Image.Image, orientation: object) -> Image.Image:
    """Turn by the EXIF orientation, as ImageOps.exif_transpose does, on the shrunk copy."""
    method = _TRANSPOSE_FOR_ORIENTATION.get(orientation)  # type: ignore[call-overload]  # EXIF values are untyped
    return img.transpose(method) if method is not None else img


def _upright_size(size: tuple[int, int], orientation: object) -> tuple[int, int]:
    width, height = size
    if orientation in _TRANSPOSED_ORIENTATIONS:
        return height, width
    return width, height


def _draft_for_display(img: Image.Image) -> None:
    """Ask libjpeg to decode at the coarsest DCT scale that keeps enough pixels for display."""
    longest = max(img.size)
    scale = 1
    for candidate in (8, 4, 2):
        if longest // candidate >= DISPLAY_MIN_SIDE:
            scale = candidate
            break
    if scale > 1:
        # draft() picks the largest scale s with size // s >= requested, per axis.
        img.draft("RGB", (img.size[0] // scale, img.size[1] // scale))


def _fit(img: Image.Image, side: int, resample: Image.Resampling) -> Image.Image:
    """Shrink so the longest side is at most ``side``; never enlarge.

    resize() rather than thumbnail(): thumbnail() calls the plugin's draft(), and the HEIF
    plugin's draft() may swap in the file's embedded (untrusted, possibly unrelated) thumbnail.
    """
    width, height = img.size
    factor = side / max(width, height)
    if factor >= 1:
        return img
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    # reducing_gap: a fast box reduce first, then the good filter over the last factor of 2.
    return img.resize(size, resample, reducing_gap=2.0)


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB for JPEG output; transparent areas become white, not the black convert() gives."""
    if img.mode == "RGB":
        return img
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if not has_alpha:
        return img.convert("RGB")
    rgba = img.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _jpeg(img: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    # No exif/icc_profile/xmp arguments: Pillow then writes none of them. A JPEG comment is
    # the exception: Pillow copies the original's (free text, any length) unless told otherwise.
    img.save(out, format="JPEG", quality=quality, optimize=False, progressive=False, comment=b"")
    return out.getvalue()


# --------------------------------------------------------------------------- EXIF metadata


def _taken_at(exif: Image.Exif) -> datetime | None:
    original = exif.get_ifd(_EXIF_IFD).get(_TAG_DATETIME_ORIGINAL)
    return _parse_exif_datetime(original) or _parse_exif_datetime(exif.get(_TAG_DATETIME))


def _parse_exif_datetime(value: object) -> datetime | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    # Cameras pad with NULs/spaces and write "0000:00:00 00:00:00" when the clock is unset.
    try:
        return datetime.strptime(value.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def _gps(exif: Image.Exif) -> tuple[float | None, float | None]:
    gps = exif.get_ifd(_GPS_IFD)
    lat = _gps_coordinate(gps.get(_GPS_LAT), gps.get(_GPS_LAT_REF), "S", 90.0)
    lon = _gps_coordinate(gps.get(_GPS_LON), gps.get(_GPS_LON_REF), "W", 180.0)
    if lat is None or lon is None:
        return None, None  # half a position is no position
    return lat, lon


def _gps_coordinate(
    value: object, ref: object, negative_ref: str, limit: float
) -> float | None:
    """Degrees/minutes/seconds rationals plus an N/S or E/W reference → signed degrees."""
    if not isinstance(value, tuple | list) or len(value) != 3:
        return None
    try:
        degrees, minutes, seconds = (float(part) for part in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    result = degrees + minutes / 60 + seconds / 3600
    if not math.isfinite(result) or result > limit:
        return None  # a 0/0 rational becomes NaN in Pillow
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    if isinstance(ref, str) and ref.strip("\x00 ").upper() == negative_ref:
        result = -result
    return result
