"""GPU-saved MACE checkpoints load on a CPU-only machine (issue 14, item 1).

A checkpoint written on a GPU tags every storage ``"cuda:0"``, both in the
outer ``torch.save`` archive and inside the bytes that e3nn's code-generated
modules pickle a second time (``e3nn/util/codegen/_mixin.py``). These tests
write exactly that without a GPU: while saving, a tagger placed before torch's
own in ``torch.serialization``'s registry answers ``"cuda:0"`` for every
storage, which is the tag torch's CUDA tagger writes, at both levels. A first
test proves the files are what a GPU save gives: plain ``torch.load`` refuses
them on this machine, with and without ``map_location="cpu"``.
"""

from __future__ import annotations

import gzip
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

from harness.errors import ModelError
from harness.files import sha256_file
from harness.models.checkpoint_io import storages_restored_on
from harness.models.mace.model import MaceModel
from harness.models.mace.tiny import build_tiny_mace

ELEMENTS = ("Cr", "Sb", "Te")
NO_CUDA = not torch.cuda.is_available()


@contextmanager
def saved_as_on(location: str) -> Iterator[None]:
    """``torch.save`` inside the block tags every storage ``location`` (e.g. ``"cuda:0"``)."""
    registry = torch.serialization._package_registry
    entry = (-1000, lambda storage: location, lambda storage, tag: None)
    registry.insert(0, entry)
    try:
        yield
    finally:
        registry.remove(entry)


def _save(obj: object, path: Path, *, location: str = "cuda:0", gzipped: bool = False) -> Path:
    with saved_as_on(location), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(obj, path)
    if gzipped:
        with open(path, "rb") as raw, gzip.open(path.with_name(path.name + ".gz"), "wb") as out:
            shutil.copyfileobj(raw, out)
        path.unlink()
        path = path.with_name(path.name + ".gz")
    return path


def _structures() -> list[Atoms]:
    rng = np.random.default_rng(7)
    out = []
    for n in (6, 9):
        symbols = [ELEMENTS[i % 3] for i in range(n)]
        atoms = Atoms(symbols, positions=rng.uniform(0, 6.0, (n, 3)), cell=np.eye(3) * 6.5, pbc=True)
        out.append(atoms)
    return out


def _model(dtype: str) -> torch.nn.Module:
    # max_L=1: the second interaction's code-generated tensor product then holds a
    # tensor constant, so its nested pickle carries a storage tag of its own.
    return build_tiny_mace(ELEMENTS, seed=3, num_channels=4, max_L=1, dtype=dtype)


def _energies(model: MaceModel) -> np.ndarray:
    return model.evaluate(_structures(), batch_size=2).energies_eV


@pytest.fixture(scope="module")
def originals() -> dict[str, tuple[torch.nn.Module, np.ndarray]]:
    """Per dtype: the module (as saved) and its energies on the test structures."""
    out = {}
    for dtype in ("float32", "float64"):
        module = _model(dtype)
        expected = _energies(MaceModel.from_module(_model(dtype), dtype=dtype))
        out[dtype] = (module, expected)
    return out


@pytest.mark.skipif(not NO_CUDA, reason="proves the failure only where CUDA is absent")
def test_cuda_tagged_files_are_what_a_gpu_save_gives(tmp_path: Path, originals: dict) -> None:
    path = _save(originals["float64"][0], tmp_path / "gpu.model")
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(path, weights_only=False)
    # map_location fixes the outer archive only: e3nn's nested pickles still say cuda:0
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_gpu_saved_full_model_loads_on_cpu(tmp_path: Path, originals: dict, dtype: str, gzipped: bool) -> None:
    module, expected = originals[dtype]
    path = _save(module, tmp_path / "gpu.model", gzipped=gzipped)
    model = MaceModel.load(path, device="cpu", dtype=dtype, expected_sha256=sha256_file(path))
    assert model.device == torch.device("cpu")
    assert model.dtype == getattr(torch, dtype)
    assert all(t.device.type == "cpu" for t in model.module.state_dict().values())
    tight = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_energies(model), expected, **tight)


def test_cpu_saved_model_still_loads(tmp_path: Path, originals: dict) -> None:
    module, expected = originals["float64"]
    path = _save(module, tmp_path / "cpu.model", location="cpu")
    np.testing.assert_allclose(_energies(MaceModel.load(path)), expected, rtol=1e-12, atol=1e-12)


def test_training_checkpoint_with_a_model_loads(tmp_path: Path, originals: dict) -> None:
    module, expected = originals["float64"]
    checkpoint = {"model": module, "optimizer": {"state": {}, "param_groups": []}, "epoch": 3}
    path = _save(checkpoint, tmp_path / "run_epoch-3.pt")
    np.testing.assert_allclose(_energies(MaceModel.load(path)), expected, rtol=1e-12, atol=1e-12)


def test_training_checkpoint_with_only_weights_is_refused_clearly(tmp_path: Path, originals: dict) -> None:
    module = originals["float64"][0]
    # mace's CheckpointBuilder.create_checkpoint: state_dicts only
    checkpoint = {"model": module.state_dict(), "optimizer": {"state": {}}, "lr_scheduler": {"gamma": 0.9}}
    path = _save(checkpoint, tmp_path / "run_epoch-3.pt")
    with pytest.raises(ModelError) as info:
        MaceModel.load(path)
    message = str(info.value)
    assert str(path) in message
    assert "training checkpoint" in message and "only weights" in message and "state_dict" in message
    assert "fix: pass the full model" in message and ".model" in message


def test_bare_state_dict_is_refused_clearly(tmp_path: Path, originals: dict) -> None:
    path = _save(originals["float64"][0].state_dict(), tmp_path / "weights.pt")
    with pytest.raises(
        ModelError, match=r"holds a dict of \d+ tensors \(a state_dict\) without the model's architecture"
    ):
        MaceModel.load(path)


def test_compiled_model_is_refused_clearly(tmp_path: Path) -> None:
    """mace_run_train also writes <name>_compiled.model (TorchScript): no layers to hook."""
    path = tmp_path / "run_compiled.model"
    torch.jit.save(torch.jit.script(torch.nn.Linear(3, 2)), str(path))
    for source in (path, _gzip_copy(path)):
        with pytest.raises(ModelError, match=r"is a TorchScript \(compiled\) model.*fix: pass <name>.model"):
            MaceModel.load(source)


def _gzip_copy(path: Path) -> Path:
    out = path.with_name(path.name + ".gz")
    with open(path, "rb") as raw, gzip.open(out, "wb") as packed:
        shutil.copyfileobj(raw, packed)
    return out


def test_pin_checked_before_unpickling_a_gpu_file(tmp_path: Path, originals: dict) -> None:
    path = _save(originals["float64"][0], tmp_path / "gpu.model")
    with pytest.raises(ModelError, match="sha256 mismatch.*refusing to unpickle"):
        MaceModel.load(path, expected_sha256="0" * 64)


def test_load_leaves_torch_as_it_was(tmp_path: Path, originals: dict) -> None:
    registry = list(torch.serialization._package_registry)
    jit_load = torch.jit.load
    path = _save(originals["float64"][0], tmp_path / "gpu.model")
    MaceModel.load(path)
    broken = tmp_path / "broken.model"
    broken.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ModelError, match="torch.load failed"):
        MaceModel.load(broken)
    assert torch.serialization._package_registry == registry
    assert torch.jit.load is jit_load


def test_torchscript_loads_inside_the_block_map_to_the_device(tmp_path: Path) -> None:
    """e3nn's jit_mode='script' codegen reloads TorchScript with torch.jit.load(buffer): no map location."""
    scripted = torch.jit.script(torch.nn.Linear(3, 2))
    path = tmp_path / "lin.pt"
    scripted.save(str(path))
    with storages_restored_on(torch.device("cpu")):
        loaded = torch.jit.load(str(path))
        meta = torch.jit.load(str(path), map_location="meta")  # an explicit location still wins
    assert loaded.weight.device.type == "cpu"
    assert meta.weight.device.type == "meta"
    torch.testing.assert_close(loaded.weight, scripted.weight)


@pytest.mark.skipif(not NO_CUDA, reason="the message is for machines without CUDA")
def test_cuda_asked_for_without_cuda_says_so(tmp_path: Path, originals: dict) -> None:
    path = _save(originals["float64"][0], tmp_path / "gpu.model")
    with pytest.raises(ModelError) as info:
        MaceModel.load(path, device="cuda")
    message = str(info.value)
    assert "device 'cuda' was asked for but CUDA is not available here" in message
    assert "fix: run with --device cpu" in message


def test_unknown_device_is_refused(tmp_path: Path, originals: dict) -> None:
    path = _save(originals["float64"][0], tmp_path / "gpu.model")
    with pytest.raises(ModelError, match="device 'tpu' is not a torch device"):
        MaceModel.load(path, device="tpu")
