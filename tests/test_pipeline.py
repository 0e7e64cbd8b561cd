"""harness.models.batching + harness.models.pipeline: the overlapped pipeline gives MaceModel.evaluate's results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.io import read

from harness.errors import ModelError
from harness.models.batching import GraphSpec, chunks, prepare_batch
from harness.models.mace.model import MaceModel
from harness.models.mace.tiny import build_tiny_mace
from harness.models.pipeline import (
    CPU_BATCH_SIZE,
    Pipeline,
    auto_batch_size,
    batch_size_for,
    evaluate_structures,
    fit_memory_model,
    graph_spec,
)

ROOT = Path(__file__).resolve().parents[1]
TEST_SET = ROOT / "reference_data" / "cr_sb2te3" / "test.extxyz.gz"
SHIPPED = ROOT / "reference_data" / "checkpoints" / "ft_multit.model.gz"
SHIPPED_SHA = "dcf008936e7c11dc23382eb1d6257870d4a7a5f409597c885f96e57c1fa616cd"
TIGHT = dict(rtol=1e-8, atol=1e-12)


def _small(seed: int, repeat: tuple[int, int, int], n_cr: int = 1) -> Atoms:
    atoms = bulk("SbTe", "rocksalt", a=6.0).repeat(repeat)
    for index in np.random.default_rng(seed).choice(len(atoms), size=n_cr, replace=False):
        atoms[int(index)].symbol = "Cr"
    atoms.rattle(0.08, seed=seed)
    return atoms


@pytest.fixture(scope="module")
def structures() -> list[Atoms]:
    """Two 120-atom Cr:Sb2Te3 frames and five small cells (r_max larger than some cells)."""
    real = read(TEST_SET, index=":2")
    small = [
        _small(1, (1, 1, 1)), _small(2, (2, 1, 1), 2), _small(3, (1, 2, 2)), _small(4, (2, 2, 1)), _small(5, (1, 1, 1))
    ]
    return [small[0], real[0], small[1], small[2], real[1], small[3], small[4]]


@pytest.fixture(scope="module")
def model() -> MaceModel:
    torch.set_num_threads(1)
    module = build_tiny_mace(["Cr", "Sb", "Te"], seed=3, r_max=5.0, scale_shift=True)
    return MaceModel.from_module(module, name="tiny", dtype="float64")


@pytest.fixture(scope="module")
def reference(model: MaceModel, structures: list[Atoms]):
    return model.evaluate(structures, batch_size=3)


def _assert_same(a, b) -> None:
    np.testing.assert_array_equal(a.n_atoms, b.n_atoms)
    np.testing.assert_allclose(a.energies_eV, b.energies_eV, **TIGHT)
    np.testing.assert_allclose(a.forces_eV_per_A, b.forces_eV_per_A, **TIGHT)
    np.testing.assert_allclose(a.gradcam_raw, b.gradcam_raw, **TIGHT)
    np.testing.assert_allclose(a.scores(), b.scores(), **TIGHT)


@pytest.mark.parametrize(
    ("batch_size", "workers", "executor"), [(1, 0, "thread"), (3, 2, "thread"), (16, 1, "thread"), (2, 2, "process")]
)
def test_pipeline_equals_evaluate(model, structures, reference, batch_size: int, workers: int, executor: str) -> None:
    pipeline = Pipeline(model, batch_size=batch_size, workers=workers, prefetch=1, executor=executor)
    outputs, report = pipeline.run(structures)
    _assert_same(outputs, reference)
    assert report.n_structures == len(structures)
    assert report.n_atoms == sum(len(a) for a in structures)
    assert report.batch_size == batch_size and report.batch_size_source == "given"
    assert report.peak_memory_bytes is None and report.device == "cpu" and report.dtype == "float64"


def test_pipeline_keeps_input_order(model, structures, reference) -> None:
    """Reversed input gives reversed per-structure outputs (batches come back in order)."""
    outputs, _ = evaluate_structures(model, structures[::-1], batch_size=2, workers=2)
    np.testing.assert_allclose(outputs.energies_eV, reference.energies_eV[::-1], **TIGHT)
    ours = outputs.per_structure(outputs.forces_eV_per_A)[::-1]
    for got, want in zip(ours, reference.per_structure(reference.forces_eV_per_A), strict=True):
        np.testing.assert_allclose(got, want, **TIGHT)


@pytest.mark.parametrize("backend", ["matscipy", "ase"])
def test_other_neighbour_backends_give_the_same_results(model, structures, reference, backend: str) -> None:
    outputs, _ = Pipeline(model, batch_size=4, backend=backend).run(structures[:3])
    want = reference.per_structure(reference.gradcam_raw)
    np.testing.assert_allclose(outputs.gradcam_raw, np.concatenate(want[:3]), **TIGHT)


def test_prepare_batch_matches_mace_collate(model, structures) -> None:
    batch = prepare_batch(structures[:3], graph_spec(model)).data
    mace = model.collate(structures[:3])
    for key in ("positions", "node_attrs", "cell", "batch", "ptr", "head", "pbc", "volume", "rcell"):
        torch.testing.assert_close(batch[key], mace[key].to(batch[key].dtype), rtol=0, atol=1e-10, msg=key)
    for key in ("positions", "node_attrs", "shifts", "cell"):
        assert batch[key].dtype == torch.float64
    ours = sorted(zip(*batch["edge_index"].tolist(), *batch["shifts"].T.tolist(), strict=True))
    theirs = sorted(zip(*mace["edge_index"].tolist(), *mace["shifts"].T.tolist(), strict=True))
    assert len(ours) == len(theirs)
    np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=0, atol=1e-10)


def test_float32_model_gets_float32_batches() -> None:
    model = MaceModel.from_module(build_tiny_mace(["Sb", "Te"], dtype="float32"), dtype="float32")
    atoms = bulk("SbTe", "rocksalt", a=6.0)
    data = prepare_batch([atoms], graph_spec(model)).data
    assert data["positions"].dtype == torch.float32 and data["edge_index"].dtype == torch.long
    out, _ = Pipeline(model, batch_size=1).run([atoms])
    np.testing.assert_allclose(out.energies_eV, model.evaluate([atoms]).energies_eV, rtol=1e-6)


def test_shipped_checkpoint_equals_evaluate() -> None:
    """The real ScaleShiftMACE checkpoint (r_max 6 A) on one 120-atom frame."""
    model = MaceModel.load(SHIPPED, dtype="float64", expected_sha256=SHIPPED_SHA)
    atoms = read(TEST_SET, index="5:6")
    _assert_same(Pipeline(model, batch_size=1).run(atoms)[0], model.evaluate(atoms, batch_size=1))


def test_unknown_element_names_structure(model, structures) -> None:
    bad = structures[:2] + [bulk("Cu", "fcc", a=3.6)]
    with pytest.raises(ModelError, match=r"structure 2 contains element\(s\) Cu .* Cr, Sb, Te"):
        Pipeline(model, batch_size=2, workers=1).run(bad)


def test_batch_size_choice_on_cpu(model, structures) -> None:
    assert Pipeline(model).choose_batch_size(structures) == (min(CPU_BATCH_SIZE, len(structures)), "cpu-default")
    assert Pipeline(model, batch_size=5).choose_batch_size(structures) == (5, "given")
    with pytest.raises(ModelError, match="needs a CUDA model"):
        auto_batch_size(model, structures, graph_spec(model))


def test_memory_model_recovers_a_known_line() -> None:
    """Peaks of 1 MB + 2 kB per edge: the fit recovers both, and the budget gives the exact batch."""
    a, b = fit_memory_model([3000, 12000], [1_000_000 + 2048 * 3000, 1_000_000 + 2048 * 12000])
    assert (a, b) == pytest.approx((1_000_000, 2048))
    # 3000 edges per structure: budget for exactly 10 structures, and one byte less.
    budget = 1_000_000 + 2048 * 3000 * 10
    assert batch_size_for(budget, a, b, 3000, 1024) == 10
    assert batch_size_for(budget - 1, a, b, 3000, 1024) == 9
    assert batch_size_for(1e15, a, b, 3000, 64) == 64
    assert batch_size_for(0, a, b, 3000, 64) == 1
    with pytest.raises(ModelError, match="two probes"):
        fit_memory_model([5, 5], [1, 2])


def test_chunks_and_validation(model) -> None:
    assert chunks(7, 3) == [(0, 3), (3, 6), (6, 7)]
    with pytest.raises(ModelError, match="batch_size must be >= 1"):
        chunks(7, 0)
    with pytest.raises(ModelError, match="batch_size must be >= 1 or None"):
        Pipeline(model, batch_size=0)
    with pytest.raises(ModelError, match="executor must be"):
        Pipeline(model, executor="mpi")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="safety factor"):
        Pipeline(model, safety=1.5)
    with pytest.raises(ModelError, match="no structures"):
        Pipeline(model).run([])
    with pytest.raises(ModelError, match="cutoff_A"):
        GraphSpec(atomic_numbers=(24,), cutoff_A=0.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_auto_batch_size_on_cuda(structures) -> None:
    module = build_tiny_mace(["Cr", "Sb", "Te"], r_max=5.0)
    model = MaceModel.from_module(module, device="cuda", dtype="float64")
    outputs, report = Pipeline(model, max_batch=8).run(structures)
    assert report.batch_size_source == "auto" and 1 <= report.batch_size <= 8
    assert report.peak_memory_bytes is not None and report.peak_memory_bytes > 0
    cpu = MaceModel.from_module(build_tiny_mace(["Cr", "Sb", "Te"], r_max=5.0), dtype="float64")
    np.testing.assert_allclose(outputs.energies_eV, cpu.evaluate(structures).energies_eV, rtol=1e-8)


def test_pipeline_charges_the_wait_to_graphs_and_the_pass_to_model(structures) -> None:
    """--harness-profile sees the pipeline's stages: the model pass under "model", the wait for a
    prepared batch under "graphs" (what the overlap did not hide)."""
    from harness import profile

    model = MaceModel.from_module(build_tiny_mace(["Cr", "Sb", "Te"], r_max=5.0), dtype="float64")
    profile.start()
    try:
        Pipeline(model, batch_size=2, workers=1).run(structures)
    finally:
        seen = profile.stop()
    assert seen is not None
    batches = -(-len(structures) // 2)
    assert seen.calls["model"] == batches
    assert seen.calls["graphs"] == batches + 1  # the last wait finds no batch
    assert seen.seconds["model"] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gate_evaluation_on_cuda_goes_through_the_pipeline_and_equals_the_cpu(structures) -> None:
    """On a GPU MaceModel.evaluate is the pipeline (graphs built in threads); its outputs equal the
    CPU's sequential path in float64, and Grad-CAM alone equals the fused pass's."""
    module = build_tiny_mace(["Cr", "Sb", "Te"], r_max=5.0)
    gpu = MaceModel.from_module(module, device="cuda", dtype="float64")
    cpu = MaceModel.from_module(build_tiny_mace(["Cr", "Sb", "Te"], r_max=5.0), dtype="float64")
    a, b = gpu.evaluate(structures, batch_size=3), cpu.evaluate(structures, batch_size=3)
    np.testing.assert_allclose(a.energies_eV, b.energies_eV, rtol=1e-10)
    np.testing.assert_allclose(a.forces_eV_per_A, b.forces_eV_per_A, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(a.gradcam_raw, b.gradcam_raw, rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(a.n_atoms, b.n_atoms)
    np.testing.assert_allclose(gpu.gradcam(structures, batch_size=3), a.gradcam_raw, rtol=1e-10, atol=1e-14)
