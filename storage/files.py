"""Folders and files that hold users' data (the database, evidence) are private to the
service's account: 0700 and 0600 whatever the umask, because they hold phone numbers, names
and documents of a government office."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_directory(path: Path) -> Path:
    """Create `path` (and missing parents) private. A folder that exists already is the
    operator's choice (it may be /var/lib or a shared mount) and is left as it is."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for created in missing:
        os.chmod(created, PRIVATE_DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty and private if it is missing; make it private if it is ours already."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, PRIVATE_FILE_MODE)
    os.close(fd)
    os.chmod(path, PRIVATE_FILE_MODE)
    return path
