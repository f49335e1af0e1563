"""Files in the instance folder that hold accession numbers and UIDs (lock, state): opened
without following links, created 0600 in folders made 0700, replaced through a temporary
file made with O_EXCL (mkstemp), so a link planted there cannot redirect a write."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(path: Path) -> None:
    """Create ``path`` 0700 when it is missing (an existing folder is left as it is: it may
    be the project folder)."""
    if not path.is_dir():
        path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)


def open_private(path: Path, flags: int = os.O_RDWR | os.O_CREAT) -> int:
    """A descriptor of ``path``, never through a symbolic link (raises OSError ELOOP), made
    0600 when it is created; an existing file is tightened to 0600 too."""
    private_folder(path.parent)
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


def read_private(path: Path) -> str:
    """The text of ``path``, not through a link; raises OSError (e.g. missing, a link)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, encoding="utf-8") as handle:
        return handle.read()


def replace_private(path: Path, text: str) -> None:
    """Write ``path`` anew, atomically: a fresh 0600 temporary file (mkstemp: O_EXCL, in the
    same folder) renamed over it. A link at ``path`` is replaced, never followed."""
    private_folder(path.parent)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
