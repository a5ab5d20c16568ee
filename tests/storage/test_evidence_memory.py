"""Photos cost memory, not just pixels: a near-limit image must not take hundreds of MB, and
many sent at once must not add up (hardening issue, item 4)."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from storage.evidence import EvidenceRejected, RejectionCode, detect_type, process_image

PEAK_BUDGET_MB = 300  # the figure images.py promises, for the whole process


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int, color_type: int) -> bytes:
    """A PNG whose header claims a size: a few hundred bytes on the wire."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def test_an_80_megapixel_rgba_png_is_refused_before_decoding() -> None:
    data = png_header_only(8944, 8944, color_type=6)  # RGBA: ~305 MiB once decoded
    with pytest.raises(EvidenceRejected) as raised:
        process_image(data, detect_type(data))
    assert raised.value.code is RejectionCode.IMAGE_BOMB


CHILD = """
import asyncio, sys, tempfile
from pathlib import Path
from storage.evidence import LocalEvidenceStore, ingest
data = open(sys.argv[1], "rb").read()
async def main(root):
    store = LocalEvidenceStore(Path(root))
    await asyncio.gather(*(ingest(data, store=store, max_bytes=20 << 20) for _ in range(6)))
with tempfile.TemporaryDirectory() as root:
    asyncio.run(main(root))
# VmHWM, not ru_maxrss: Linux carries the parent's (pytest's) high-water mark into
# ru_maxrss across exec; VmHWM belongs to this process's own memory map.
status = Path("/proc/self/status").read_text()
print(next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmHWM")) // 1024)
"""

def test_six_large_photos_at_once_stay_under_the_memory_budget(tmp_path: Path) -> None:
    """Six 24-megapixel RGB PNGs (small on the wire, ~92 MiB each decoded) uploaded at once,
    in a fresh process: before the decode budget and the single check thread they peaked
    over 600 MB."""
    image = Image.new("RGB", (6000, 4000), (200, 120, 40))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    photo = tmp_path / "big.png"
    photo.write_bytes(buffer.getvalue())
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(photo)], capture_output=True, text=True, check=True
    )
    assert int(result.stdout.strip()) < PEAK_BUDGET_MB
