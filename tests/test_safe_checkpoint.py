"""The safe checkpoint format: round trip, no pickle, planted names refused, corrupt files refused,
and the `mlff-harness convert` command."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

from harness.cli.main import main
from harness.errors import ModelError
from harness.files import sha256_file
from harness.models.mace.architecture import build_from_architecture, describe_architecture, save_safe_model
from harness.models.mace.model import MaceModel, save_model
from harness.models.mace.tiny import build_tiny_mace
from harness.models.safe_checkpoint import (
    FORMAT_NAME,
    read_safe_checkpoint,
    validate_architecture,
    write_safe_checkpoint,
)

ELEMENTS = ["Cr", "Sb", "Te"]


def _structures() -> list[Atoms]:
    base = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0]])
    out = []
    for i in range(3):
        atoms = Atoms(["Cr", "Sb", "Sb", "Te", "Te", "Te"], scaled_positions=base, cell=np.eye(3) * 5.8, pbc=True)
        atoms.rattle(0.1, seed=i)
        out.append(atoms)
    return out


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    # seed != 0: build_from_architecture initialises with seed 0, so weights that were not
    # loaded would show as different outputs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_tiny_mace(ELEMENTS, seed=3, num_channels=8, max_L=1, r_max=4.0, scale_shift=True)


@pytest.fixture(scope="module")
def safe_file(tiny: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("safe") / "tiny.safetensors"
    assert save_safe_model(tiny, path) == []
    return path


def _metadata(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata())  # noqa: SIM118 - no dict


def _rewrite(src: Path, dst: Path, *, architecture: dict | None = None, metadata: dict[str, str] | None = None) -> Path:
    """A copy of ``src`` with some metadata replaced (bypassing write-time validation)."""
    from safetensors.torch import save_file

    tensors, meta = _metadata(src)
    if architecture is not None:
        meta["architecture"] = json.dumps(architecture)
    meta.update(metadata or {})
    save_file(tensors, str(dst), metadata=meta)
    return dst


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("scale_shift", [True, False])
def test_round_trip_gives_identical_outputs_without_any_pickle(
    scale_shift: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = build_tiny_mace(ELEMENTS, seed=3, num_channels=8, max_L=1, r_max=4.0, scale_shift=scale_shift)
    path = tmp_path / "m.safetensors"
    save_safe_model(module, path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    loaded = MaceModel.load(path, expected_sha256=sha256_file(path), allow_unpinned=False)
    monkeypatch.undo()
    before = MaceModel.from_module(module).evaluate(_structures())
    after = loaded.evaluate(_structures())
    for name in ("energies_eV", "forces_eV_per_A", "gradcam_raw"):
        np.testing.assert_array_equal(getattr(after, name), getattr(before, name))
    assert type(loaded.module) is type(module)
    assert describe_architecture(loaded.module) == describe_architecture(module)
    assert loaded.name == "m" and loaded.identity == sha256_file(path)


def test_the_same_module_gives_the_same_bytes(tiny: torch.nn.Module, safe_file: Path, tmp_path: Path) -> None:
    # a pin needs stable bytes: safetensors itself writes metadata in hash-map order
    for i in range(3):
        save_safe_model(tiny, tmp_path / f"again{i}.safetensors")
        assert sha256_file(tmp_path / f"again{i}.safetensors") == sha256_file(safe_file)


def test_weights_come_from_the_file_not_from_the_build(tiny: torch.nn.Module, safe_file: Path) -> None:
    # the control for the round trip: the architecture alone builds a different model
    fresh = MaceModel.from_module(build_from_architecture(describe_architecture(tiny)))
    loaded = MaceModel.load(safe_file)
    a, b = fresh.evaluate(_structures()[:1]), loaded.evaluate(_structures()[:1])
    assert np.max(np.abs(a.energies_eV - b.energies_eV)) > 1e-3


def test_architecture_is_plain_json_with_a_format_version(safe_file: Path) -> None:
    _, meta = _metadata(safe_file)
    assert meta["format"] == FORMAT_NAME and meta["format_version"] == "1"
    arch = json.loads(meta["architecture"])
    assert arch["model_class"] == "ScaleShiftMACE"
    assert arch["atomic_numbers"] == [24, 51, 52] and arch["r_max"] == 4.0
    assert arch["interaction_cls_first"] == "RealAgnosticInteractionBlock"
    assert arch["gate"] == "silu" and arch["hidden_irreps"] == "8x0e+8x1o"


def test_the_sha256_pin_is_checked_first(safe_file: Path) -> None:
    with pytest.raises(ModelError, match="sha256 mismatch"):
        MaceModel.load(safe_file, expected_sha256="0" * 64)
    with pytest.raises(ModelError, match="no sha256 pin given"):
        MaceModel.load(safe_file, allow_unpinned=False)


# --------------------------------------------------------------------------- planted names


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("model_class", "os.system"),
        ("interaction_cls", "subprocess.call"),
        ("readout_cls", "builtins.eval"),
        ("gate", "os.system"),
        ("radial_type", "posix.system"),
    ],
)
def test_a_planted_name_is_refused_and_nothing_runs(
    key: str, value: str, safe_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a) or 0)
    _, meta = _metadata(safe_file)
    arch = json.loads(meta["architecture"]) | {key: value}
    path = _rewrite(safe_file, tmp_path / "planted.safetensors", architecture=arch)
    with pytest.raises(ModelError, match=rf"planted\.safetensors: architecture key '{key}' = '{value}' is invalid"):
        MaceModel.load(path)
    assert calls == []


def test_an_unknown_architecture_key_is_refused(safe_file: Path, tmp_path: Path) -> None:
    _, meta = _metadata(safe_file)
    arch = json.loads(meta["architecture"]) | {"__reduce__": ["os.system", "touch pwned"]}
    path = _rewrite(safe_file, tmp_path / "extra.safetensors", architecture=arch)
    with pytest.raises(ModelError, match="architecture key '__reduce__' is not allowed"):
        MaceModel.load(path)


def test_a_pickle_named_safetensors_is_never_unpickled(tmp_path: Path) -> None:
    from test_trust import _Planted

    target = tmp_path / "written-by-unpickling.txt"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(_Planted(str(target))))
    with pytest.raises(ModelError, match="cannot read it as safetensors"):
        MaceModel.load(path, expected_sha256=sha256_file(path))  # even when pinned
    assert not target.exists()


# --------------------------------------------------------------------------- corrupt files


@pytest.mark.parametrize("damage", ["truncated", "header bytes flipped", "empty", "garbage"])
def test_a_corrupt_file_is_a_clean_model_error(damage: str, safe_file: Path, tmp_path: Path) -> None:
    data = safe_file.read_bytes()
    path = tmp_path / "bad.safetensors"
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "header bytes flipped":
        path.write_bytes(data[:8] + bytes(b ^ 0xFF for b in data[8:40]) + data[40:])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelError, match=r"bad\.safetensors: cannot read it as safetensors"):
        MaceModel.load(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": "2"}, "'format_version' is '2'; this harness reads version 1"),
        ({"format": "something-else"}, "'format' is 'something-else'"),
        ({"architecture": "{not json"}, "'architecture' is not valid JSON"),
        ({"extra": "x"}, "metadata key 'extra' is not allowed"),
    ],
)
def test_bad_metadata_is_refused(change: dict[str, str], message: str, safe_file: Path, tmp_path: Path) -> None:
    path = _rewrite(safe_file, tmp_path / "meta.safetensors", metadata=change)
    with pytest.raises(ModelError, match=message):
        read_safe_checkpoint(path)


def test_missing_or_misshapen_tensors_are_refused(safe_file: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    tensors, meta = _metadata(safe_file)
    key = "readouts.0.linear.weight"
    save_file({k: v for k, v in tensors.items() if k != key}, str(tmp_path / "a.safetensors"), metadata=meta)
    with pytest.raises(ModelError, match=rf"1 missing \({key}\)"):
        MaceModel.load(tmp_path / "a.safetensors")
    save_file(tensors | {key: torch.zeros(3, dtype=torch.float64)}, str(tmp_path / "b.safetensors"), metadata=meta)
    with pytest.raises(ModelError, match=rf"tensor '{key}' is torch.float64 \(3,\)"):
        MaceModel.load(tmp_path / "b.safetensors")
    poisoned = tensors | {key: torch.full_like(tensors[key], float("nan"))}
    save_file(poisoned, str(tmp_path / "c.safetensors"), metadata=meta)
    with pytest.raises(ModelError, match=f"tensor '{key}' has NaN"):
        MaceModel.load(tmp_path / "c.safetensors")


def test_architecture_validation(tiny: torch.nn.Module) -> None:
    arch = describe_architecture(tiny)
    assert validate_architecture(arch, source="x") == arch
    bad = {k: v for k, v in arch.items() if k != "r_max"}
    with pytest.raises(ModelError, match="x: architecture key 'r_max' is missing"):
        validate_architecture(bad, source="x")
    with pytest.raises(ModelError, match="'num_elements' is 2"):
        validate_architecture(arch | {"num_elements": 2}, source="x")
    with pytest.raises(ModelError, match="'r_max' = -1.0 is invalid"):
        validate_architecture(arch | {"r_max": -1.0}, source="x")
    with pytest.raises(ModelError, match="'max_ell' = True is invalid"):
        validate_architecture(arch | {"max_ell": True}, source="x")
    plain = {k: v for k, v in arch.items() if not k.startswith("atomic_inter")} | {"model_class": "MACE"}
    validate_architecture(plain, source="x")
    with pytest.raises(ModelError, match="only allowed for ScaleShiftMACE"):
        validate_architecture(plain | {"atomic_inter_scale": 1.0}, source="x")
    with pytest.raises(ModelError, match="must end in .safetensors"):
        write_safe_checkpoint(Path("x.model"), tiny.state_dict(), arch)


# --------------------------------------------------------------------------- convert


@pytest.fixture(scope="module")
def pickled(tiny: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pickled") / "tiny.model"
    save_model(tiny, path)
    return path


def test_convert_command(pickled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tiny.safetensors"
    pin = sha256_file(pickled)
    assert main(["convert", str(pickled), str(out), "--sha256", pin]) == 0
    printed = capsys.readouterr().out
    assert f"sha256 {pin}" in printed and f"sha256 {sha256_file(out)}" in printed
    assert "verified pickle-free on 3 structures" in printed
    assert read_safe_checkpoint(out).source_sha256 == pin
    assert (out.stat().st_mode & 0o777) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.safetensors"]  # no temp file left


def test_convert_refuses_without_a_pin_and_writes_nothing(
    pickled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.safetensors"
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", str(pickled), str(out)])
    assert exit_info.value.code == 2
    assert "one of the arguments --sha256 --allow-unpinned is required" in capsys.readouterr().err
    assert main(["convert", str(pickled), str(out), "--sha256", "0" * 64]) == 2  # bad input
    assert "sha256 mismatch" in capsys.readouterr().err
    assert not out.exists()


def test_convert_writes_nothing_when_verification_fails(
    pickled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a negative tolerance no difference can meet: the failure path must leave no file behind
    out = tmp_path / "x.safetensors"
    assert main(["convert", str(pickled), str(out), "--allow-unpinned", "--tolerance", "-1"]) == 1
    assert "differs from the original" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
