"""An on-disk cache of arrays, keyed by content hashes, safe against corruption and races.

Entries are ``.npz`` files whose arrays carry a checksum of their own bytes.
Writes go to a temporary file in the same folder and are renamed into place
(:mod:`harness.files`), so a reader never sees half a file, a process killed
mid-write leaves no entry, and two writers at once (pytest-xdist) leave one
complete entry. A corrupt entry is reported, removed and recomputed; a cache
that cannot be written or read is reported once and the run computes without it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.files import atomic_write

CACHE_FORMAT = 1
DEFAULT_CACHE_DIR = ".harness-cache"  # pytest (--harness-cache) and every mlff-harness command (--cache) default here
_CHECKSUM = "__checksum__"
_WARNED: set[Path] = set()  # cache folders already reported as unreadable or unwritable


def default_cache_dir(start: Path | str | None = None) -> Path:
    """The one default cache folder: ``.harness-cache`` in ``start`` (default: the current folder).

    pytest's plugin and the ``mlff-harness`` commands both use it and both key
    entries with :func:`content_key`, so a ``measure`` after a gate run reuses
    the gate's model outputs, SOAP vectors and surrogates, and the other way round.
    """
    return (Path(start) if start is not None else Path.cwd()).resolve() / DEFAULT_CACHE_DIR


def content_key(*parts: Any) -> str:
    """A stable hex key for JSON-able parts (dict keys sorted)."""
    text = json.dumps([CACHE_FORMAT, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _checksum(arrays: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(name.encode())
        digest.update(str(array.dtype).encode())
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class ArrayCache:
    """Named groups of numpy arrays under a folder; ``ArrayCache(None)`` caches nothing."""

    def __init__(self, root: Path | str | None) -> None:
        self.root = Path(root) if root is not None else None
        self._unwritable = False

    def _path(self, kind: str, key: str) -> Path:
        assert self.root is not None
        return self.root / kind / f"{key}.npz"

    def load(self, kind: str, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under (kind, key), or None if absent, unreadable or corrupt."""
        if self.root is None:
            return None
        path = self._path(kind, key)
        try:
            if not path.is_file():
                return None
        except OSError:  # e.g. a path component is a file: nothing cached there
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            stored = str(arrays.pop(_CHECKSUM))
            if stored != _checksum(arrays):
                raise ValueError("checksum mismatch")
        except PermissionError as err:
            self._warn_once(f"mlff-harness: cannot read the cache {self.root} ({err}); computing without it")
            return None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
            warnings.warn(f"mlff-harness: cache entry {path} is corrupt ({err}); recomputing", stacklevel=2)
            with contextlib.suppress(OSError):  # a read-only cache: the new entry will not be stored either
                path.unlink(missing_ok=True)
            return None
        return arrays

    def store(self, kind: str, key: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Write arrays atomically (temporary file + rename; harness.files).

        A cache that cannot be written (read-only, full, a file where a folder
        should be) is not an error: one warning, then the run goes on uncached.
        """
        if self.root is None or self._unwritable:
            return
        payload: dict[str, Any] = {name: np.asarray(value) for name, value in arrays.items()}
        payload[_CHECKSUM] = np.asarray(_checksum(payload))
        try:
            atomic_write(self._path(kind, key), lambda handle: np.savez(handle, **payload))
        except OSError as err:
            self._unwritable = True
            self._warn_once(f"mlff-harness: cannot write to the cache {self.root} ({err}); computing without caching")

    def _warn_once(self, message: str) -> None:
        """One warning per cache folder and process, however many entries fail."""
        if self.root is None or self.root in _WARNED:
            return
        _WARNED.add(self.root)
        warnings.warn(message, stacklevel=3)

    def get_or_compute(
        self, kind: str, key: str, compute: Callable[[], Mapping[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        """Load (kind, key), or compute, store and return it."""
        found = self.load(kind, key)
        if found is not None:
            return found
        arrays = {name: np.asarray(value) for name, value in compute().items()}
        self.store(kind, key, arrays)
        return arrays


def add_cache(parser: argparse.ArgumentParser) -> None:
    """``--cache DIR``: the folder pytest's ``--harness-cache`` defaults to as well (same keys)."""
    from harness.cache import DEFAULT_CACHE_DIR

    parser.add_argument(
        "--cache", default=DEFAULT_CACHE_DIR,
        help=f"cache folder, shared with pytest --harness-cache (default {DEFAULT_CACHE_DIR}; '' for none)",
    )
