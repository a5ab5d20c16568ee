"""Benchmark the evidence pipeline against a plain Pillow baseline.

    .venv/bin/python bench/evidence.py [--photos N]

Both paths get the same N distinct 12-megapixel JPEGs (generated up front, untimed):

* pipeline: ``ingest()`` into a temporary LocalEvidenceStore. This includes sniffing, verify,
  EXIF extraction, SHA-256 and three fsync'ed atomic writes, so it does strictly more work.
* baseline: Image.open → load() (full decode) → resize to longest side 2048 → JPEG, plus a
  320 px thumbnail from the resized copy, all in memory.

Peak RSS is measured in a fresh child process that ingests one ~20 MB photo. It runs first,
while the parent is still small: Linux carries the parent's RSS high-water mark into a forked
and exec'ed child's ru_maxrss, so probing after the photos are in memory would report the
parent's footprint. The big photo is generated in another child for the same reason.
Concurrent uploads: a fresh child ingests CONCURRENT near-limit photos at once (47-MP RGB PNGs,
small on the wire, each ~180 MiB once decoded, just under the decode budget), beside a fresh child
that decodes and shrinks the same photos with plain Pillow in as many threads.
The last line printed is a single JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw

# Allow running as a plain script from the repository root or from bench/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.evidence import LocalEvidenceStore, ingest

PHOTO_SIZE = (4000, 3000)
BIG_PHOTO_SIZE = (6000, 4500)
NEAR_LIMIT_SIZE = (7000, 6800)  # 47.6 MP RGB: just under images.MAX_DECODED_BYTES
CONCURRENT = 8
MAX_BYTES = 20 * 1024 * 1024  # the Telegram download cap the bot runs with
DISPLAY_SIDE = 2048
THUMBNAIL_SIDE = 320


# --------------------------------------------------------------------------- inputs


def noise_field(size: tuple[int, int], sigma: float) -> Image.Image:
    return Image.effect_noise(size, sigma).convert("L")


def make_photo(size: tuple[int, int], noise: Image.Image, index: int, quality: int) -> bytes:
    """Gradients + sensor-like noise + a few shapes; distinct per index so nothing dedups."""
    width, height = size
    shifted = ImageChops.offset(noise, index * 37, index * 53)
    gradient = Image.linear_gradient("L").rotate(index * 23).resize(size)
    radial = Image.radial_gradient("L").resize(size)
    red = ImageChops.add(ImageChops.multiply(gradient, shifted), radial, scale=1.6)
    green = ImageChops.blend(gradient, shifted, 0.35)
    blue = ImageChops.blend(radial, ImageChops.invert(shifted), 0.3)
    img = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(img)
    for shape in range(6):
        x, y = (index * 613 + shape * 947) % width, (index * 419 + shape * 311) % height
        draw.ellipse((x, y, x + width // 6, y + height // 5), fill=(40 * shape, 90, 200 - shape))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def make_photos(count: int) -> list[bytes]:
    noise = noise_field(PHOTO_SIZE, 28)
    return [make_photo(PHOTO_SIZE, noise, index, 90) for index in range(count)]


def make_big_photo() -> bytes:
    """A noisy 6000x4500 JPEG just under the 20 MB cap."""
    noise = noise_field(BIG_PHOTO_SIZE, 60)
    for quality in range(97, 70, -2):
        data = make_photo(BIG_PHOTO_SIZE, noise, 1, quality)
        if len(data) <= MAX_BYTES:
            return data
    return data


# --------------------------------------------------------------------------- timed paths


async def run_pipeline(photos: list[bytes], root: Path) -> float:
    store = LocalEvidenceStore(root)
    start = time.perf_counter()
    for data in photos:
        await ingest(data, store=store, max_bytes=MAX_BYTES)
    return time.perf_counter() - start


def baseline_one(data: bytes) -> tuple[bytes, bytes]:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        factor = DISPLAY_SIDE / max(img.size)
        resized = img.resize((round(img.width * factor), round(img.height * factor)))
    display = io.BytesIO()
    resized.save(display, format="JPEG", quality=85)
    small = resized.copy()
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    thumbnail = io.BytesIO()
    small.save(thumbnail, format="JPEG", quality=80)
    return display.getvalue(), thumbnail.getvalue()


def run_baseline(photos: list[bytes]) -> float:
    start = time.perf_counter()
    for data in photos:
        baseline_one(data)
    return time.perf_counter() - start


# --------------------------------------------------------------------------- peak RSS


def child_peak_rss(path: Path) -> None:
    """Runs in the fresh subprocess: ingest one big photo, print peak RSS in MB."""
    data = path.read_bytes()
    with tempfile.TemporaryDirectory() as root:
        asyncio.run(ingest(data, store=LocalEvidenceStore(Path(root)), max_bytes=MAX_BYTES))
    # Linux reports kilobytes.
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def child_concurrent_peak(path: Path, *, baseline: bool) -> None:
    """Runs in a fresh subprocess: CONCURRENT uploads of the photo at once, peak RSS in MB."""
    data = path.read_bytes()
    if baseline:
        import threading

        threads = [threading.Thread(target=baseline_one, args=(data,)) for _ in range(CONCURRENT)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:

        async def ingest_all(root: Path) -> None:
            store = LocalEvidenceStore(root)
            # Distinct bytes per upload (a trailing comment chunk is not needed: ingest keys by
            # content, and the same bytes would still be decoded each time).
            await asyncio.gather(
                *(ingest(data, store=store, max_bytes=MAX_BYTES) for _ in range(CONCURRENT))
            )

        with tempfile.TemporaryDirectory() as root:
            asyncio.run(ingest_all(Path(root)))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def measure_concurrent_peaks(workdir: Path) -> tuple[float, float]:
    """Peak RSS (MB) of CONCURRENT near-limit uploads: the pipeline's, then plain Pillow's."""
    path = workdir / "near-limit.png"
    Image.new("RGB", NEAR_LIMIT_SIZE, (180, 120, 60)).save(path, "PNG")
    pipeline = float(run_child("--concurrent-child", path).splitlines()[-1])
    baseline = float(run_child("--concurrent-baseline-child", path).splitlines()[-1])
    return pipeline, baseline


def run_child(flag: str, path: Path) -> str:
    result = subprocess.run(
        [sys.executable, __file__, flag, str(path)], check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


def measure_peak_rss(workdir: Path) -> tuple[float, int]:
    """Peak RSS (MB) of ingesting the big photo, and that photo's size in bytes."""
    path = workdir / "big.jpg"
    run_child("--make-big-photo", path)
    peak_mb = float(run_child("--peak-rss-child", path).splitlines()[-1])
    return peak_mb, path.stat().st_size


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=20, help="number of 12 MP photos")
    parser.add_argument("--peak-rss-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--make-big-photo", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--concurrent-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--concurrent-baseline-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.concurrent_child or args.concurrent_baseline_child:
        baseline = args.concurrent_baseline_child is not None
        child_concurrent_peak(
            args.concurrent_baseline_child or args.concurrent_child, baseline=baseline
        )
        return
    if args.peak_rss_child:
        child_peak_rss(args.peak_rss_child)
        return
    if args.make_big_photo:
        args.make_big_photo.write_bytes(make_big_photo())
        return

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        peak_rss_mb, big_size = measure_peak_rss(workdir)  # first: see module docstring
        concurrent_mb, baseline_concurrent_mb = measure_concurrent_peaks(workdir)
        print(f"generating {args.photos} photos of {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} ...", flush=True)
        photos = make_photos(args.photos)
        mean_mb = sum(map(len, photos)) / len(photos) / 1e6
        # Warm-up both paths (plugin registration, imports, first-call costs).
        baseline_one(photos[0])
        asyncio.run(run_pipeline(photos[:1], workdir / "warmup"))
        pipeline_s = asyncio.run(run_pipeline(photos, workdir / "store"))
        baseline_s = run_baseline(photos)

    pipeline_per_s = len(photos) / pipeline_s
    baseline_per_s = len(photos) / baseline_s
    figures = {
        "pipeline_per_s": round(pipeline_per_s, 2),
        "baseline_per_s": round(baseline_per_s, 2),
        "ratio": round(pipeline_per_s / baseline_per_s, 2),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "concurrent_peak_rss_mb": round(concurrent_mb, 1),
        "baseline_concurrent_peak_rss_mb": round(baseline_concurrent_mb, 1),
    }
    print(
        f"inputs: {len(photos)} JPEGs, mean {mean_mb:.1f} MB; "
        f"RSS probe: {big_size / 1e6:.1f} MB, {BIG_PHOTO_SIZE[0]}x{BIG_PHOTO_SIZE[1]}"
    )
    print(f"{'metric':<28}{'value':>10}")
    print(f"{'pipeline photos/s':<28}{figures['pipeline_per_s']:>10.2f}")
    print(f"{'baseline photos/s':<28}{figures['baseline_per_s']:>10.2f}")
    print(f"{'ratio (target >= 1.5)':<28}{figures['ratio']:>10.2f}")
    print(f"{'peak RSS MB (target < 300)':<28}{figures['peak_rss_mb']:>10.1f}")
    print(
        f"{f'{CONCURRENT} at once, peak RSS MB':<28}{figures['concurrent_peak_rss_mb']:>10.1f}"
        f"   (target < 300; plain Pillow: {figures['baseline_concurrent_peak_rss_mb']:.1f})"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
