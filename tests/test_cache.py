"""ArrayCache: round trips, misses, corruption, no-op cache, content keys and concurrent writers."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from harness.cache import _CHECKSUM, CACHE_FORMAT, ArrayCache, content_key

KIND = "outputs"


def _arrays(seed: int = 0, n: int = 50) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "energies": rng.normal(size=n),
        "forces": rng.normal(size=(n, 3)),
        "n_atoms": np.arange(n, dtype=np.int64),
        "fortran": np.asfortranarray(rng.normal(size=(4, 5))),
    }


def _assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for name in want:
        assert got[name].dtype == np.asarray(want[name]).dtype
        np.testing.assert_array_equal(got[name], want[name])


def _entry(cache: ArrayCache, key: str) -> Path:
    return cache._path(KIND, key)


def test_round_trip(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path)
    arrays = _arrays()
    cache.store(KIND, "k1", arrays)
    loaded = cache.load(KIND, "k1")
    assert loaded is not None
    assert _CHECKSUM not in loaded
    _assert_same(loaded, arrays)


def test_miss_returns_none(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path)
    assert cache.load(KIND, "absent") is None
    cache.store(KIND, "present", _arrays())
    assert cache.load("other-kind", "present") is None


def test_get_or_compute_calls_once_then_hits(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path)
    calls = []

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return _arrays(3)

    first = cache.get_or_compute(KIND, "k", compute)
    second = cache.get_or_compute(KIND, "k", compute)
    assert len(calls) == 1
    _assert_same(first, _arrays(3))
    _assert_same(second, _arrays(3))
    # a fresh cache object on the same folder hits as well
    ArrayCache(tmp_path).get_or_compute(KIND, "k", compute)
    assert len(calls) == 1


def _recompute_after(cache: ArrayCache, key: str) -> None:
    calls = []

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return _arrays(1)

    with pytest.warns(UserWarning, match="corrupt"):
        got = cache.get_or_compute(KIND, key, compute)
    assert calls == [1]
    _assert_same(got, _arrays(1))
    # recomputed and stored again: the next read is a clean hit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = cache.load(KIND, key)
    assert again is not None
    _assert_same(again, _arrays(1))


def test_truncated_entry_is_detected_removed_and_recomputed(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path)
    cache.store(KIND, "k", _arrays(1))
    path = _entry(cache, "k")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="corrupt"):
        assert cache.load(KIND, "k") is None
    assert not path.exists()
    cache.store(KIND, "k", _arrays(1))
    path.write_bytes(path.read_bytes()[:10])
    _recompute_after(cache, "k")


def test_flipped_bytes_are_detected(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path)
    arrays = _arrays(1)
    cache.store(KIND, "k", arrays)
    path = _entry(cache, "k")
    data = bytearray(path.read_bytes())
    # flip bytes inside the stored energies array (npz is an uncompressed zip)
    needle = arrays["energies"].tobytes()[:16]
    at = bytes(data).find(needle)
    assert at > 0
    for i in range(at, at + 16):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="corrupt"):
        assert cache.load(KIND, "k") is None
    assert not path.exists()


def test_checksum_mismatch_in_a_valid_zip_is_detected(tmp_path: Path) -> None:
    """A well-formed npz whose arrays do not match their stored checksum (zip CRCs all valid)."""
    cache = ArrayCache(tmp_path)
    cache.store(KIND, "k", _arrays(1))
    path = _entry(cache, "k")
    with np.load(path) as data:
        payload = {name: data[name] for name in data.files}
    payload["energies"] = payload["energies"] + 1.0
    with open(path, "wb") as handle:
        np.savez(handle, **payload)
    with pytest.warns(UserWarning, match="checksum mismatch"):
        assert cache.load(KIND, "k") is None
    assert not path.exists()


def test_missing_checksum_is_corrupt(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path)
    path = _entry(cache, "k")
    path.parent.mkdir(parents=True)
    with open(path, "wb") as handle:
        np.savez(handle, energies=np.zeros(3))
    with pytest.warns(UserWarning, match="corrupt"):
        assert cache.load(KIND, "k") is None
    assert not path.exists()


def test_none_root_caches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cache = ArrayCache(None)
    cache.store(KIND, "k", _arrays())
    assert cache.load(KIND, "k") is None
    calls = []

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return _arrays()

    cache.get_or_compute(KIND, "k", compute)
    cache.get_or_compute(KIND, "k", compute)
    assert len(calls) == 2
    assert list(tmp_path.iterdir()) == []


def test_content_key_stable_and_order_insensitive() -> None:
    a = content_key("model", {"x": 1, "y": [1, 2], "z": {"b": 2, "a": 1}}, 3.5)
    b = content_key("model", {"z": {"a": 1, "b": 2}, "y": [1, 2], "x": 1}, 3.5)
    assert a == b
    assert len(a) == 64 and all(c in "0123456789abcdef" for c in a)
    assert a == content_key("model", {"x": 1, "y": [1, 2], "z": {"b": 2, "a": 1}}, 3.5)
    # lists keep their order; different parts give different keys
    assert content_key([1, 2]) != content_key([2, 1])
    assert content_key("a", "b") != content_key("ab")
    assert content_key(Path("/x")) == content_key("/x")  # default=str
    # the key is the sha256 of the sorted-key JSON of [format, *parts]: stable across processes
    expected = hashlib.sha256(json.dumps([CACHE_FORMAT, "fixed", {"a": 1}]).encode()).hexdigest()
    assert content_key("fixed", {"a": 1}) == expected


# --- concurrency --------------------------------------------------------------------------------

N_BIG = 200_000


def _big() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    return {"a": rng.normal(size=N_BIG), "b": np.arange(1000, dtype=np.int32)}


def _writer(root: str, key: str, repeats: int) -> None:
    cache = ArrayCache(root)
    arrays = _big()
    for _ in range(repeats):
        cache.store(KIND, key, arrays)


def _reader(root: str, key: str, stop, results) -> None:  # type: ignore[no-untyped-def]
    cache = ArrayCache(root)
    want = _big()
    hits = misses = bad = 0
    messages: list[str] = []
    deadline = time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < deadline:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = cache.load(KIND, key)
        if caught:
            bad += 1
            messages.extend(str(w.message) for w in caught)
        if got is None:
            misses += 1
            continue
        if set(got) != set(want) or any(not np.array_equal(got[k], want[k]) for k in want):
            bad += 1
            messages.append("partial or wrong arrays")
        else:
            hits += 1
    results.put((hits, misses, bad, messages[:5]))


def test_concurrent_writers_and_reader(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    key = content_key("concurrent")
    stop = ctx.Event()
    results = ctx.Queue()
    reader = ctx.Process(target=_reader, args=(str(tmp_path), key, stop, results))
    reader.start()
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), key, 20)) for _ in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=180)
        assert w.exitcode == 0
    time.sleep(0.2)  # let the reader see the final entry
    stop.set()
    hits, misses, bad, messages = results.get(timeout=60)
    reader.join(timeout=30)
    assert reader.exitcode == 0
    assert bad == 0, messages
    assert hits > 0
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    assert [p.name for p in (tmp_path / KIND).iterdir()] == [f"{key}.npz"]
    final = ArrayCache(tmp_path).load(KIND, key)
    assert final is not None
    _assert_same(final, _big())
