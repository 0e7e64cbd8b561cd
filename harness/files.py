"""Writing a file so that readers see the old file or the whole new one, never a part.

The bytes go to a temporary file in the target's folder, are flushed to disk,
and the temporary file is renamed over the target (``os.replace`` is atomic on
POSIX and Windows within one file system). A process killed mid-write leaves
the target as it was (and at worst a hidden ``.<name>.*.tmp`` file beside it);
an exception removes the temporary file and propagates.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:

    pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path | str, write: Callable[[BinaryIO], object], *, mode: int = 0o666) -> None:
    """Create or replace ``path`` with what ``write(handle)`` writes, atomically.

    ``mode`` is applied less the umask (mkstemp alone would make the file 0600,
    and caches, results and checkpoints are for others to read). Raises
    ``OSError`` when the folder cannot be created or written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path | str, data: bytes, *, mode: int = 0o666) -> None:
    """:func:`atomic_write` of ``data``."""
    atomic_write(path, lambda handle: handle.write(data), mode=mode)


def atomic_write_text(path: Path | str, text: str, *, mode: int = 0o666) -> None:
    """:func:`atomic_write` of ``text`` as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


@contextmanager
def atomic_path(path: Path | str, *, suffix: str = ".tmp", mode: int = 0o666) -> Iterator[Path]:
    """A temporary file beside ``path`` for a writer that needs a file name, or a file checked before it counts.

    The body writes (a library that saves to a path) and may read the file back
    to check it; when the body returns, the file is flushed to disk, given
    ``mode`` less the umask, and renamed over ``path``. When it raises, the
    temporary file is removed and ``path`` is left as it was. ``suffix`` ends
    the temporary name (a writer that picks the format by name needs it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:  # the body may have renamed another file onto this name
            os.fsync(handle.fileno())
        os.chmod(tmp, mode & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def output_path_problem(path: Path | str) -> str | None:
    """Why ``path`` cannot be written as an output file, or None if it looks writable.

    Checked before a long run, so a bad ``--harness-results`` fails at once rather
    than after the work: a folder in its place, a file where a parent folder should
    be, or a folder this user cannot write.
    """
    path = Path(path)
    if path.is_dir():
        return "is a folder, not a file"
    parent = path.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"folder {parent} is not writable"
    if path.exists() and not os.access(path, os.W_OK) and not os.access(parent, os.W_OK):
        return "is not writable"
    return None


_CHUNK = 1 << 20



def sha256_file(path: Path | str) -> str:
    """sha256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()
