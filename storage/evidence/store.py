"""Content-addressed blob storage for evidence files.

A key is ``<sha256[:2]>/<sha256>.<ext>``: it depends only on the bytes and on the canonical
extension chosen by the sniffer, never on anything the client sent, so a hostile file name
cannot influence where or under what name a blob lands. Identical uploads share one blob.

The :class:`EvidenceStore` protocol is deliberately tiny (put/put_file/get/chunks/exists/
delete_unreferenced) so an S3-compatible backend can implement it with PUT (If-None-Match), GET
(ranged or streamed for ``chunks``), HEAD and a list-and-delete sweep, without any caller
changing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from storage.files import private_directory

__all__ = [
    "EvidenceNotFoundError",
    "EvidenceStore",
    "LocalEvidenceStore",
    "key_for",
    "validate_key",
]

KEY_PATTERN = re.compile(r"^([0-9a-f]{2})/\1[0-9a-f]{62}\.[a-z0-9]{2,5}$")
_EXTENSION_PATTERN = re.compile(r"^[a-z0-9]{2,5}$")
_TEMP_PREFIX = ".tmp-"
# Pieces of a blob read by `chunks`: large enough that a thread hop per piece costs nothing
# next to the disk, small enough that a whole export holds only a few at a time.
CHUNK_SIZE = 1024 * 1024


class EvidenceNotFoundError(LookupError):
    """No blob under a well-formed key (backend-neutral; not FileNotFoundError)."""


@runtime_checkable
class EvidenceStore(Protocol):
    async def put(self, data: bytes, *, extension: str) -> str:
        """Store ``data`` (idempotently) and return its key."""
        ...

    async def get(self, key: str) -> bytes:
        """Raise ValueError on a malformed key, EvidenceNotFoundError if absent."""
        ...

    async def put_file(self, path: Path, *, extension: str) -> str:
        """Store the file at ``path`` (idempotently) and return its key, reading it in pieces:
        a generated archive never has to be held in memory."""
        ...

    def chunks(self, key: str, *, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """The blob in pieces of at most ``chunk_size`` bytes, so a reader (an export) never
        holds a whole file. Raise ValueError on a malformed key and EvidenceNotFoundError if
        absent, both when the first piece is asked for."""
        ...

    async def exists(self, key: str) -> bool:
        """Raise ValueError on a malformed key."""
        ...

    async def delete_unreferenced(self, referenced: set[str]) -> int:
        """Delete blobs whose key is not in ``referenced``; return how many were deleted."""
        ...


def key_for(data: bytes, extension: str) -> str:
    """The key ``data`` is stored under; pure, so callers and backends agree on it."""
    if not _EXTENSION_PATTERN.fullmatch(extension):
        raise ValueError(f"invalid extension {extension!r}")
    digest = hashlib.sha256(data).hexdigest()
    return f"{digest[:2]}/{digest}.{extension}"


def key_for_digest(sha256_hex: str, extension: str) -> str:
    """The key of bytes whose SHA-256 is ``sha256_hex`` (hashed in pieces by the caller)."""
    if not _EXTENSION_PATTERN.fullmatch(extension):
        raise ValueError(f"invalid extension {extension!r}")
    return validate_key(f"{sha256_hex[:2]}/{sha256_hex}.{extension}")


def validate_key(key: str) -> str:
    """Return ``key`` if well-formed; the regex is what keeps forged keys inside the root."""
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise ValueError(f"invalid evidence key {key!r}")
    return key


class LocalEvidenceStore:
    """Blobs as files under ``root``; every file operation runs in a worker thread.

    ``gc_grace``: :meth:`delete_unreferenced` spares blobs modified more recently than this.
    Without it a sweep racing an upload deletes a blob whose database row is not committed
    yet. A dedup hit refreshes the file's mtime for the same reason. Pass ``timedelta(0)``
    to sweep everything unreferenced (tests, offline maintenance).
    """

    def __init__(self, root: Path, *, gc_grace: timedelta = timedelta(hours=1)) -> None:
        self.root = Path(root)
        self.gc_grace = gc_grace

    async def put(self, data: bytes, *, extension: str) -> str:
        return await asyncio.to_thread(self._put_sync, data, extension)

    async def put_file(self, path: Path, *, extension: str) -> str:
        return await asyncio.to_thread(self._put_file_sync, Path(path), extension)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise EvidenceNotFoundError(key) from exc

    async def chunks(self, key: str, *, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError as exc:
            raise EvidenceNotFoundError(key) from exc
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def delete_unreferenced(self, referenced: set[str]) -> int:
        return await asyncio.to_thread(self._sweep_sync, frozenset(referenced))

    # ------------------------------------------------------------------ sync internals

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def _put_sync(self, data: bytes, extension: str) -> str:
        key = key_for(data, extension)
        path = self.root / key
        if _touch(path):
            return key  # same hash, same bytes: dedup
        if not path.parent.is_dir():
            private_directory(path.parent)  # its files are private (mkstemp: 0600)
            _fsync_directory(self.root)  # make the new shard directory itself durable
        _atomic_write(path, data)
        return key

    def _put_file_sync(self, source: Path, extension: str) -> str:
        digest = hashlib.sha256()
        with source.open("rb") as handle:
            while piece := handle.read(CHUNK_SIZE):
                digest.update(piece)
        key = key_for_digest(digest.hexdigest(), extension)
        path = self.root / key
        if _touch(path):
            return key
        if not path.parent.is_dir():
            private_directory(path.parent)
            _fsync_directory(self.root)
        _atomic_copy(source, path)
        return key

    def _sweep_sync(self, referenced: frozenset[str]) -> int:
        cutoff = time.time() - self.gc_grace.total_seconds()
        deleted = 0
        if not self.root.is_dir():
            return 0
        for shard in self.root.iterdir():
            if not shard.is_dir():
                continue
            for path in shard.iterdir():
                deleted += _sweep_one(path, f"{shard.name}/{path.name}", referenced, cutoff)
        return deleted


def _touch(path: Path) -> bool:
    """Refresh an existing blob's mtime so a concurrent sweep's grace period covers it."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


def _sweep_one(path: Path, key: str, referenced: frozenset[str], cutoff: float) -> int:
    """Delete ``path`` if it is an old unreferenced blob (→ 1) or an old crash leftover (→ 0)."""
    try:
        if path.stat().st_mtime > cutoff:
            return 0
        if path.name.startswith(_TEMP_PREFIX):
            path.unlink()  # a put() that died before os.replace; not a blob, so not counted
            return 0
        if not KEY_PATTERN.fullmatch(key) or key in referenced:
            return 0  # foreign files are not ours to delete
        path.unlink()
    except FileNotFoundError:
        return 0  # raced with another sweep
    return 1


def _atomic_write(path: Path, data: bytes) -> None:
    """Readers see either no file or the complete file, even across a crash or power loss."""
    _atomic_replace(path, lambda handle: handle.write(data))


def _atomic_copy(source: Path, path: Path) -> None:
    """As _atomic_write, copying from a file in pieces."""

    def copy(handle: BinaryIO) -> None:
        with source.open("rb") as reader:
            while piece := reader.read(CHUNK_SIZE):
                handle.write(piece)

    _atomic_replace(path, copy)


def _atomic_replace(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write a temporary file beside ``path`` with ``write``, flush it to disk, rename it over
    ``path`` and make the rename durable; on any error the temporary file goes."""
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=_TEMP_PREFIX, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not supported on every platform/filesystem.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
