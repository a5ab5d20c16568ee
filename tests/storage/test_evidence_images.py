"""Photo processing: orientation, resizing, metadata extraction and stripping."""

from __future__ import annotations

import io
from datetime import datetime

import pytest
from PIL import Image

from storage.evidence import DISPLAY_MAX_SIDE, THUMBNAIL_SIDE, ImageResult, inspect_bytes
from storage.evidence.images import DISPLAY_MIN_SIDE
from tests.storage.test_evidence import MB, gps_exif, image_bytes


def process(data: bytes) -> ImageResult:
    _, image = inspect_bytes(data, max_bytes=50 * MB)
    assert image is not None
    return image


def open_jpeg(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG"
    return img


def two_halves(size: tuple[int, int], exif: Image.Exif) -> bytes:
    """Stored left half red, right half blue, so a rotation is visible in the pixels."""
    img = Image.new("RGB", size, (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))
    out = io.BytesIO()
    img.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def test_orientation_6_is_applied_to_display_copy() -> None:
    image = process(two_halves((300, 200), gps_exif(orientation=6)))
    display = open_jpeg(image.display)
    assert display.size == (200, 300)  # width and height swapped
    assert (image.width, image.height) == (200, 300)
    # Orientation 6: the stored left column is the visual top row.
    top, bottom = display.getpixel((100, 20)), display.getpixel((100, 280))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60
    assert open_jpeg(image.thumbnail).size[1] == 300  # too small to shrink, already upright


def test_exif_datetime_original_and_gps_are_extracted() -> None:
    image = process(image_bytes("JPEG", exif=gps_exif()))
    assert image.taken_at_local == datetime(2024, 5, 17, 9, 30, 0)
    assert image.taken_at_local.tzinfo is None  # EXIF has no zone: local wall-clock time
    assert image.gps_lat == pytest.approx(-(6 + 12 / 60 + 30 / 3600))
    assert image.gps_lon == pytest.approx(106 + 49 / 60)


def test_west_longitude_is_negative_and_missing_gps_is_none() -> None:
    west = process(image_bytes("JPEG", exif=gps_exif(lat_ref="N", lon_ref="W")))
    assert west.gps_lat is not None and west.gps_lat > 0
    assert west.gps_lon is not None and west.gps_lon < 0
    plain = process(image_bytes("JPEG"))
    assert (plain.gps_lat, plain.gps_lon, plain.taken_at_local) == (None, None, None)


def test_datetime_falls_back_to_ifd0_and_ignores_unset_clock() -> None:
    exif = gps_exif(taken="0000:00:00 00:00:00")
    exif[306] = "2023:12:31 23:59:58"
    assert process(image_bytes("JPEG", exif=exif)).taken_at_local == datetime(
        2023, 12, 31, 23, 59, 58
    )


def test_display_copy_has_no_metadata() -> None:
    image = process(image_bytes("JPEG", (400, 300), exif=gps_exif(orientation=6)))
    for copy in (image.display, image.thumbnail):
        img = open_jpeg(copy)
        assert "exif" not in img.info
        assert len(img.getexif()) == 0
        assert img.mode == "RGB"


@pytest.mark.parametrize(
    "size",
    [(4000, 3000), (3000, 1000), (2100, 2100), (1000, 5000)],
    ids=["12mp-draft", "wide-no-draft", "just-over", "tall"],
)
def test_display_longest_side_is_bounded(size: tuple[int, int]) -> None:
    gradient = Image.linear_gradient("L").resize(size).convert("RGB")
    out = io.BytesIO()
    gradient.save(out, format="JPEG", quality=80)
    image = process(out.getvalue())
    display, thumbnail = open_jpeg(image.display), open_jpeg(image.thumbnail)
    assert DISPLAY_MIN_SIDE <= max(display.size) <= DISPLAY_MAX_SIDE
    assert max(thumbnail.size) == THUMBNAIL_SIDE
    assert (image.width, image.height) == size  # dimensions of the original, not the copy
    # Aspect ratio survives DCT scaling and resampling (within rounding).
    assert display.size[0] / display.size[1] == pytest.approx(size[0] / size[1], rel=0.01)


def test_transparent_png_becomes_white_not_black() -> None:
    data = image_bytes("PNG", (50, 50), mode="RGBA", color=(0, 0, 0, 0))
    pixel = open_jpeg(process(data).display).getpixel((25, 25))
    assert isinstance(pixel, tuple) and min(pixel) > 240


@pytest.mark.parametrize("mode", ["L", "P", "I;16", "CMYK", "LA"])
def test_unusual_modes_are_converted(mode: str) -> None:
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    color: tuple[int, ...] = {
        "L": (128,),
        "P": (3,),
        "I;16": (30000,),
        "CMYK": (0, 0, 0, 0),
        "LA": (128, 255),
    }[mode]
    data = image_bytes(fmt, (40, 30), mode=mode, color=color)
    assert open_jpeg(process(data).display).mode == "RGB"


def test_12mp_jpeg_is_decoded_at_half_scale() -> None:
    # DCT scaling gives 2000x1500 straight from libjpeg; that is within bounds, so no resample.
    gradient = Image.linear_gradient("L").resize((4000, 3000)).convert("RGB")
    out = io.BytesIO()
    gradient.save(out, format="JPEG", quality=80)
    assert open_jpeg(process(out.getvalue()).display).size == (2000, 1500)
