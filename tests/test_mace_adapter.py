"""MaceModel on tiny random MACE models: batching, forces, Grad-CAM, symmetry, loading."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from harness.errors import ModelError
from harness.files import sha256_file as file_sha256
from harness.models import Model, ModelOutputs
from harness.models.batching import batch_groups
from harness.models.mace import _imports as mace_imports
from harness.models.mace.model import MaceModel, save_model
from harness.models.mace.tiny import build_tiny_mace

ELEMENTS = ("Cr", "Sb", "Te")
ENV_KEY = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
TIGHT = dict(rtol=1e-8, atol=1e-12)


def _rocksalt(repeat: tuple[int, int, int], *, cubic: bool, seed: int, n_cr: int = 1) -> Atoms:
    atoms = bulk("SbTe", "rocksalt", a=6.0, cubic=cubic).repeat(repeat)
    rng = np.random.default_rng(seed)
    for index in rng.choice(len(atoms), size=n_cr, replace=False):
        atoms[int(index)].symbol = "Cr"
    atoms.rattle(0.08, seed=seed)
    atoms.info["trajectory"] = f"rocksalt-{seed}"
    return atoms


@pytest.fixture(scope="module")
def structures() -> list[Atoms]:
    """Four periodic Cr/Sb/Te cells of 8, 12, 16 and 8 atoms (cubic and primitive cells)."""
    return [
        _rocksalt((1, 1, 1), cubic=True, seed=1),
        _rocksalt((3, 2, 1), cubic=False, seed=2),
        _rocksalt((1, 1, 2), cubic=True, seed=3, n_cr=2),
        _rocksalt((2, 2, 1), cubic=False, seed=4),
    ]


@pytest.fixture(scope="module")
def model() -> MaceModel:
    torch.set_num_threads(1)
    return MaceModel.from_module(build_tiny_mace(ELEMENTS, seed=0), name="tiny")


@pytest.fixture(scope="module")
def outputs(model: MaceModel, structures: list[Atoms]) -> ModelOutputs:
    return model.evaluate(structures, batch_size=4)


def test_protocol_and_properties(model: MaceModel) -> None:
    assert isinstance(model, Model)
    assert model.elements == ELEMENTS
    assert model.r_max_A == pytest.approx(4.0)
    assert model.dtype == torch.float64
    assert len(model.identity) == 64
    assert model.identity == MaceModel.from_module(build_tiny_mace(ELEMENTS, seed=0)).identity
    assert model.identity != MaceModel.from_module(build_tiny_mace(ELEMENTS, seed=1)).identity


def test_outputs_are_nontrivial(outputs: ModelOutputs) -> None:
    assert list(outputs.n_atoms) == [8, 12, 16, 8]
    assert outputs.energies_eV.dtype == np.float64
    assert np.all(np.isfinite(outputs.gradcam_raw))
    assert np.abs(outputs.forces_eV_per_A).max() > 1e-5
    assert np.abs(outputs.gradcam_raw).max() > 1e-6
    assert len(np.unique(np.round(outputs.gradcam_raw, 12))) > 30  # not a constant per species


def test_batched_equals_single(
    model: MaceModel, structures: list[Atoms], outputs: ModelOutputs
) -> None:
    singles = ModelOutputs.concatenate([model.evaluate([s], batch_size=1) for s in structures])
    np.testing.assert_allclose(outputs.energies_eV, singles.energies_eV, **TIGHT)
    np.testing.assert_allclose(outputs.forces_eV_per_A, singles.forces_eV_per_A, **TIGHT)
    np.testing.assert_allclose(outputs.gradcam_raw, singles.gradcam_raw, **TIGHT)
    uneven = model.evaluate(structures, batch_size=3)
    np.testing.assert_allclose(uneven.gradcam_raw, singles.gradcam_raw, **TIGHT)


def test_batch_groups_respect_structures_and_atoms() -> None:
    assert batch_groups([8] * 5, 2) == [[0, 1], [2, 3], [4]]
    assert batch_groups([8, 12, 16, 8], 16, max_atoms=20) == [[0, 1], [2], [3]]
    assert batch_groups([200, 5, 5], 16, max_atoms=128) == [[0], [1, 2]]  # too big for the budget: alone
    assert batch_groups([], 4) == []


def test_forces_match_mace_and_energy(
    model: MaceModel, structures: list[Atoms], outputs: ModelOutputs
) -> None:
    data = model.collate(structures)
    own = model.module(data, training=False, compute_force=True)
    np.testing.assert_allclose(outputs.forces_eV_per_A, own["forces"].detach().numpy(), **TIGHT)
    np.testing.assert_allclose(outputs.energies_eV, own["energy"].detach().numpy(), **TIGHT)


def test_forces_match_finite_difference(model: MaceModel, structures: list[Atoms]) -> None:
    atoms, h = structures[0], 1e-4
    forces = model.evaluate([atoms]).forces_eV_per_A
    for atom in (0, 5):
        for axis in range(3):
            energies = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[atom, axis] += sign * h
                energies.append(model.evaluate([moved]).energies_eV[0])
            fd = -(energies[0] - energies[1]) / (2 * h)
            np.testing.assert_allclose(forces[atom, axis], fd, rtol=1e-5, atol=1e-10)


def _energy_with_row_scaled(model: MaceModel, data: dict, row: int, eps: torch.Tensor) -> torch.Tensor:
    def scale(module, inputs, output):  # noqa: ANN001
        mask = torch.zeros(output.shape[0], 1, dtype=output.dtype)
        mask[row] = 1.0
        return output * (1 + eps * mask)

    handle = model.module.products[-1].register_forward_hook(scale)
    try:
        return model.module(dict(data), training=False, compute_force=False)["energy"].sum()
    finally:
        handle.remove()


def test_gradcam_matches_brute_force(model: MaceModel, structures: list[Atoms]) -> None:
    """g_i = d/de E(A_i -> (1+e) A_i) at e=0, one autograd call per atom (and one FD)."""
    atoms = structures[0]
    raw = model.evaluate([atoms]).gradcam_raw
    data = model.collate([atoms])
    brute = []
    for row in range(len(atoms)):
        eps = torch.zeros((), dtype=torch.float64, requires_grad=True)
        with torch.enable_grad():
            (d_eps,) = torch.autograd.grad(_energy_with_row_scaled(model, data, row, eps), [eps])
        brute.append(float(d_eps))
    np.testing.assert_allclose(raw, brute, **TIGHT)
    h = 1e-4
    with torch.no_grad():
        plus = float(_energy_with_row_scaled(model, data, 3, torch.tensor(h, dtype=torch.float64)))
        minus = float(_energy_with_row_scaled(model, data, 3, torch.tensor(-h, dtype=torch.float64)))
    np.testing.assert_allclose(raw[3], (plus - minus) / (2 * h), rtol=1e-5, atol=1e-12)


def _random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_rotation_translation_permutation(model: MaceModel, structures: list[Atoms]) -> None:
    atoms = structures[1]
    base = model.evaluate([atoms])
    rot = _random_rotation(7)
    moved = atoms.copy()
    moved.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
    moved.positions = atoms.positions @ rot.T + np.array([0.3, -1.7, 2.9])
    perm = np.random.default_rng(3).permutation(len(atoms))
    permuted = atoms[perm]
    out = model.evaluate([moved, permuted], batch_size=2)
    rotated, shuffled = out.per_structure(out.gradcam_raw)
    forces_rot, forces_perm = out.per_structure(out.forces_eV_per_A)
    np.testing.assert_allclose(out.energies_eV, base.energies_eV[0], **TIGHT)
    np.testing.assert_allclose(rotated, base.gradcam_raw, **TIGHT)
    np.testing.assert_allclose(forces_rot, base.forces_eV_per_A @ rot.T, **TIGHT)
    np.testing.assert_allclose(shuffled, base.gradcam_raw[perm], **TIGHT)
    np.testing.assert_allclose(forces_perm, base.forces_eV_per_A[perm], **TIGHT)


def test_gradcam_alone_equals_the_fused_pass(model: MaceModel, structures: list[Atoms], outputs: ModelOutputs) -> None:
    """The forces-free pass (randomisation check) gives the fused pass's Grad-CAM, at every layer,
    for a randomised copy too, and refuses what evaluate refuses."""
    np.testing.assert_allclose(model.gradcam(structures, batch_size=3), outputs.gradcam_raw, **TIGHT)
    inner = model.evaluate(structures[:2], layer="products[0]").gradcam_raw
    np.testing.assert_allclose(model.gradcam(structures[:2], layer="products[0]"), inner, **TIGHT)
    assert np.abs(inner - outputs.gradcam_raw[:20]).max() > 1e-6  # the layer argument is used
    copy = next(model.randomised_copies(["readouts[-1]", "products[-1]"], [3]))
    np.testing.assert_allclose(copy.gradcam(structures), copy.evaluate(structures).gradcam_raw, **TIGHT)
    assert model.gradcam([]).shape == (0,)
    with pytest.raises(ModelError, match="batch_size"):
        model.gradcam(structures, batch_size=0)
    with pytest.raises(ModelError, match="no submodule"):
        model.gradcam(structures, layer="product[-1]")


def test_other_layer_and_unknown_layer(model: MaceModel, structures: list[Atoms]) -> None:
    out = model.evaluate(structures[:1], layer="products[0]")
    assert out.gradcam_raw.shape == (8,)
    with pytest.raises(ModelError, match=r"no submodule 'product'.*products"):
        model.evaluate(structures[:1], layer="product[-1]")


def test_unknown_element(model: MaceModel, structures: list[Atoms]) -> None:
    bad = structures[2].copy()
    bad[0].symbol = "Fe"
    bad.info["frame"] = 17
    with pytest.raises(ModelError) as error:
        model.evaluate([structures[0], bad])
    message = str(error.value)
    for part in ("Fe", "structure 1", "rocksalt-3", "frame=17", "Cr, Sb, Te"):
        assert part in message


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.model"
    save_model(build_tiny_mace(ELEMENTS, seed=0, dtype="float32"), path)
    return path


@pytest.fixture(scope="module")
def saved_reference(structures: list[Atoms]) -> ModelOutputs:
    """The model that ``saved`` holds, built in memory and evaluated in float64."""
    module = build_tiny_mace(ELEMENTS, seed=0, dtype="float32")
    return MaceModel.from_module(module, dtype="float64").evaluate(structures, batch_size=4)


def test_load_pinned_roundtrip(
    saved: Path, structures: list[Atoms], saved_reference: ModelOutputs
) -> None:
    loaded = MaceModel.load(saved, expected_sha256=file_sha256(saved).upper(), allow_unpinned=False)
    assert loaded.identity == file_sha256(saved)
    assert loaded.name == "tiny"
    assert loaded.dtype == torch.float64
    assert not any(p.requires_grad for p in loaded.module.parameters())
    out = loaded.evaluate(structures, batch_size=4)
    np.testing.assert_allclose(out.energies_eV, saved_reference.energies_eV, **TIGHT)
    np.testing.assert_allclose(out.forces_eV_per_A, saved_reference.forces_eV_per_A, **TIGHT)
    np.testing.assert_allclose(out.gradcam_raw, saved_reference.gradcam_raw, **TIGHT)


def test_sha256_mismatch_refuses_to_unpickle(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("torch.load must not be called")

    monkeypatch.setattr(torch, "load", forbidden)
    wrong = "0" * 64
    with pytest.raises(ModelError) as error:
        MaceModel.load(saved, expected_sha256=wrong)
    message = str(error.value)
    assert str(saved) in message and wrong in message and file_sha256(saved) in message
    assert "refusing to unpickle" in message
    with pytest.raises(ModelError, match="no sha256 pin"):
        MaceModel.load(saved, allow_unpinned=False)


@pytest.mark.parametrize("before", [None, "0"])
def test_env_var_unchanged_by_load(saved: Path, before: str | None) -> None:
    saved_env = os.environ.get(ENV_KEY)
    try:
        if before is None:
            os.environ.pop(ENV_KEY, None)
        else:
            os.environ[ENV_KEY] = before
        MaceModel.load(saved)
        mace_imports._mace()
        assert os.environ.get(ENV_KEY) == before
    finally:
        if saved_env is None:
            os.environ.pop(ENV_KEY, None)
        else:
            os.environ[ENV_KEY] = saved_env


def test_float32_runs(
    saved: Path, structures: list[Atoms], saved_reference: ModelOutputs
) -> None:
    single = MaceModel.load(saved, dtype="float32")
    assert single.dtype == torch.float32
    out = single.evaluate(structures, batch_size=4)
    assert out.forces_eV_per_A.dtype == np.float64
    np.testing.assert_allclose(out.energies_eV, saved_reference.energies_eV, rtol=1e-6)
    np.testing.assert_allclose(out.forces_eV_per_A, saved_reference.forces_eV_per_A, atol=1e-5)
    np.testing.assert_allclose(out.gradcam_raw, saved_reference.gradcam_raw, atol=1e-5)


def test_scale_shift_variant(tmp_path: Path, structures: list[Atoms]) -> None:
    module = build_tiny_mace(ELEMENTS, seed=2, scale_shift=True)
    assert type(module).__name__ == "ScaleShiftMACE"
    save_model(module, tmp_path / "ss.model")
    loaded = MaceModel.load(tmp_path / "ss.model", name="ss")
    out = loaded.evaluate(structures[:2], batch_size=2)
    own = loaded.module(loaded.collate(structures[:2]), training=False, compute_force=True)
    np.testing.assert_allclose(out.energies_eV, own["energy"].detach().numpy(), **TIGHT)
    np.testing.assert_allclose(out.forces_eV_per_A, own["forces"].detach().numpy(), **TIGHT)
    assert np.abs(out.gradcam_raw).max() > 0


def test_bad_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        MaceModel.load(tmp_path / "missing.model")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "dict.model")
    with pytest.raises(ModelError, match="holds a dict"):
        MaceModel.load(tmp_path / "dict.model")


def test_build_is_deterministic_and_leaves_globals() -> None:
    state = torch.random.get_rng_state()
    default = torch.get_default_dtype()
    a = build_tiny_mace(ELEMENTS, seed=5, dtype="float32")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.get_default_dtype() == default
    b = build_tiny_mace(ELEMENTS, seed=5, dtype="float32")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
