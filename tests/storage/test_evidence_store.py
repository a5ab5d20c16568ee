"""LocalEvidenceStore: content addressing, dedup, atomic writes, key validation, sweeping."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from storage.evidence import (
    EvidenceNotFoundError,
    EvidenceStore,
    LocalEvidenceStore,
    key_for,
    validate_key,
)

DIGEST = hashlib.sha256(b"x").hexdigest()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def make_old(path: Path, seconds: float = 7200) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def test_local_store_implements_the_protocol(tmp_path: Path) -> None:
    assert isinstance(LocalEvidenceStore(tmp_path), EvidenceStore)


async def test_put_is_content_addressed(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    key = await store.put(b"bukti", extension="pdf")
    digest = hashlib.sha256(b"bukti").hexdigest()
    assert key == f"{digest[:2]}/{digest}.pdf" == key_for(b"bukti", "pdf")
    assert (tmp_path / key).read_bytes() == b"bukti"
    assert await store.get(key) == b"bukti"
    assert await store.exists(key)


async def test_same_bytes_twice_give_one_file(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    first = await store.put(b"same", extension="jpg")
    inode = (tmp_path / first).stat().st_ino
    second = await store.put(b"same", extension="jpg")
    assert first == second
    assert files_under(tmp_path) == [tmp_path / first]
    assert (tmp_path / first).stat().st_ino == inode  # not rewritten


async def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    keys = [await store.put(bytes([i]) * 1000, extension="png") for i in range(5)]
    assert files_under(tmp_path) == sorted(tmp_path / key for key in keys)
    assert not [p for p in files_under(tmp_path) if p.name.startswith(".tmp-")]


async def test_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_fsync(_: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        await LocalEvidenceStore(tmp_path).put(b"data", extension="pdf")
    assert files_under(tmp_path) == []


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "/etc/passwd",
        f"{DIGEST[:2]}/../../{DIGEST}.jpg",
        f"../{DIGEST}.jpg",
        f"{DIGEST}.jpg",
        f"{DIGEST[:2]}/{DIGEST}",
        f"{DIGEST[:2]}/{DIGEST}.jpg/",
        f"{DIGEST[:2]}/{DIGEST}.jpegxl",
        f"{DIGEST[:2]}/{DIGEST.upper()}.jpg",
        f"ff/{DIGEST}.jpg" if not DIGEST.startswith("ff") else f"00/{DIGEST}.jpg",
        f"{DIGEST[:2]}/{DIGEST}.jpg\n",
        f"{DIGEST[:2]}\\{DIGEST}.jpg",
        "",
    ],
)
async def test_forged_keys_raise_value_error(tmp_path: Path, key: str) -> None:
    store = LocalEvidenceStore(tmp_path)
    with pytest.raises(ValueError):
        await store.get(key)
    with pytest.raises(ValueError):
        await store.exists(key)
    with pytest.raises(ValueError):
        validate_key(key)


@pytest.mark.parametrize("extension", ["", "j", "../x", "JPG", "toolong", "p.f"])
async def test_put_rejects_bad_extensions(tmp_path: Path, extension: str) -> None:
    with pytest.raises(ValueError):
        await LocalEvidenceStore(tmp_path).put(b"x", extension=extension)


async def test_get_missing_key(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    key = key_for(b"never stored", "pdf")
    assert not await store.exists(key)
    with pytest.raises(EvidenceNotFoundError):
        await store.get(key)


async def test_delete_unreferenced(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path, gc_grace=timedelta(0))
    keep = await store.put(b"keep", extension="pdf")
    drop = [await store.put(b"drop1", extension="jpg"), await store.put(b"drop2", extension="pdf")]
    foreign = tmp_path / keep[:2] / "notes.txt"
    foreign.write_text("not a blob")

    assert await store.delete_unreferenced({keep}) == 2
    assert await store.exists(keep)
    assert not any([await store.exists(key) for key in drop])
    assert foreign.exists()  # files that are not blobs are never ours to delete
    assert await store.delete_unreferenced({keep}) == 0


async def test_sweep_spares_young_blobs_and_removes_stale_temp_files(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)  # default grace: one hour
    young = await store.put(b"upload in flight", extension="pdf")
    old = await store.put(b"orphan", extension="pdf")
    make_old(tmp_path / old)
    stale_temp = tmp_path / old[:2] / ".tmp-crashed.part"
    stale_temp.write_bytes(b"half")
    make_old(stale_temp)

    assert await store.delete_unreferenced(set()) == 1
    assert await store.exists(young)
    assert not await store.exists(old)
    assert not stale_temp.exists()


async def test_dedup_refreshes_age_so_sweep_spares_reuploaded_blob(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    key = await store.put(b"again", extension="jpg")
    make_old(tmp_path / key)
    await store.put(b"again", extension="jpg")
    assert await store.delete_unreferenced(set()) == 0


async def test_sweep_of_missing_root(tmp_path: Path) -> None:
    assert await LocalEvidenceStore(tmp_path / "absent").delete_unreferenced(set()) == 0


async def test_put_file_stores_a_file_read_in_pieces_under_its_content_key(tmp_path) -> None:
    store = LocalEvidenceStore(tmp_path / "store")
    source = tmp_path / "archive.zip"
    data = b"PK" + bytes(range(256)) * 9000  # over two CHUNK_SIZE pieces
    source.write_bytes(data)
    key = await store.put_file(source, extension="zip")
    assert key == key_for(data, "zip")
    assert await store.get(key) == data
    assert await store.put_file(source, extension="zip") == key  # again: the same blob
