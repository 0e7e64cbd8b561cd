"""An on-disk cache of arrays, keyed by content hashes, safe against corruption and races.

Entries are ``.npz`` files whose arrays carry a checksum of their own bytes.
Writes go to a temporary file in the same folder and are renamed into place,
so a reader never sees half a file and two writers at once (pytest-xdist)
leave one complete entry. A corrupt entry is reported, removed and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

CACHE_FORMAT = 1
_CHECKSUM = "__checksum__"


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

    def _path(self, kind: str, key: str) -> Path:
        assert self.root is not None
        return self.root / kind / f"{key}.npz"

    def load(self, kind: str, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under (kind, key), or None if absent or corrupt."""
        if self.root is None:
            return None
        path = self._path(kind, key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            stored = str(arrays.pop(_CHECKSUM))
            if stored != _checksum(arrays):
                raise ValueError("checksum mismatch")
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
            warnings.warn(f"mlff-harness: cache entry {path} is corrupt ({err}); recomputing", stacklevel=2)
            path.unlink(missing_ok=True)
            return None
        return arrays

    def store(self, kind: str, key: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Write arrays atomically (temporary file + rename)."""
        if self.root is None:
            return
        path = self._path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {name: np.asarray(value) for name, value in arrays.items()}
        payload[_CHECKSUM] = np.asarray(_checksum(payload))
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **payload)
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp, 0o666 & ~mask)  # a shared cache must be readable by others
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

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
