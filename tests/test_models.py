"""ModelOutputs validation and helpers; Grad-CAM score variants."""

from __future__ import annotations

import numpy as np
import pytest

from harness.models import SCORE_VARIANTS, ModelOutputs, gradcam_variant

RAW = np.array([-2.0, 0.0, 1.5, -0.5, 3.0])


def _outputs(n_atoms=(2, 3), seed: int = 0) -> ModelOutputs:
    rng = np.random.default_rng(seed)
    n_atoms = np.asarray(n_atoms, dtype=int)
    total = int(n_atoms.sum())
    return ModelOutputs(
        energies_eV=rng.normal(size=len(n_atoms)),
        forces_eV_per_A=rng.normal(size=(total, 3)),
        gradcam_raw=rng.normal(size=total),
        n_atoms=n_atoms,
    )


def test_valid_outputs() -> None:
    out = _outputs()
    assert out.energies_eV.shape == (2,)
    assert out.forces_eV_per_A.shape == (5, 3)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("energies_eV", np.zeros(3), "energies shape"),
        ("energies_eV", np.zeros((2, 1)), "energies shape"),
        ("forces_eV_per_A", np.zeros((4, 3)), "forces shape"),
        ("forces_eV_per_A", np.zeros((5, 2)), "forces shape"),
        ("forces_eV_per_A", np.zeros(15), "forces shape"),
        ("gradcam_raw", np.zeros(4), "gradcam shape"),
        ("gradcam_raw", np.zeros((5, 1)), "gradcam shape"),
    ],
)
def test_wrong_shapes_are_errors(field: str, value: np.ndarray, match: str) -> None:
    good = _outputs()
    kwargs = {
        "energies_eV": good.energies_eV,
        "forces_eV_per_A": good.forces_eV_per_A,
        "gradcam_raw": good.gradcam_raw,
        "n_atoms": good.n_atoms,
    }
    kwargs[field] = value
    with pytest.raises(ValueError, match=match):
        ModelOutputs(**kwargs)


def test_frozen() -> None:
    out = _outputs()
    with pytest.raises(AttributeError):
        out.n_atoms = np.array([5])  # type: ignore[misc]


def test_offsets() -> None:
    out = _outputs((2, 3, 1))
    assert out.offsets.tolist() == [0, 2, 5, 6]
    assert out.offsets.dtype.kind == "i"


def test_per_structure() -> None:
    out = _outputs((2, 3, 1))
    parts = out.per_structure(np.arange(6))
    assert [p.tolist() for p in parts] == [[0, 1], [2, 3, 4], [5]]
    forces = out.per_structure(out.forces_eV_per_A)
    assert [f.shape for f in forces] == [(2, 3), (3, 3), (1, 3)]
    np.testing.assert_array_equal(np.concatenate(forces), out.forces_eV_per_A)


def test_concatenate() -> None:
    a, b = _outputs((2, 3), seed=1), _outputs((4,), seed=2)
    joined = ModelOutputs.concatenate([a, b])
    assert joined.n_atoms.tolist() == [2, 3, 4]
    assert joined.offsets.tolist() == [0, 2, 5, 9]
    np.testing.assert_array_equal(joined.energies_eV, np.concatenate([a.energies_eV, b.energies_eV]))
    np.testing.assert_array_equal(joined.forces_eV_per_A[5:], b.forces_eV_per_A)
    np.testing.assert_array_equal(joined.gradcam_raw[:5], a.gradcam_raw)
    single = ModelOutputs.concatenate([a])
    np.testing.assert_array_equal(single.gradcam_raw, a.gradcam_raw)


def test_score_variants_known_array() -> None:
    np.testing.assert_array_equal(gradcam_variant(RAW, "relu"), [0.0, 0.0, 1.5, 0.0, 3.0])
    np.testing.assert_array_equal(gradcam_variant(RAW, "signed"), RAW)
    np.testing.assert_array_equal(gradcam_variant(RAW, "absolute"), [2.0, 0.0, 1.5, 0.5, 3.0])
    assert set(SCORE_VARIANTS) == {"relu", "signed", "absolute"}


def test_signed_variant_is_a_copy() -> None:
    raw = RAW.copy()
    signed = gradcam_variant(raw, "signed")
    signed[0] = 99.0
    assert raw[0] == -2.0


def test_scores_method_uses_variants() -> None:
    out = ModelOutputs(
        energies_eV=np.zeros(2),
        forces_eV_per_A=np.zeros((5, 3)),
        gradcam_raw=RAW,
        n_atoms=np.array([2, 3]),
    )
    np.testing.assert_array_equal(out.scores(), np.maximum(RAW, 0.0))  # default is relu
    for variant in SCORE_VARIANTS:
        np.testing.assert_array_equal(out.scores(variant), gradcam_variant(RAW, variant))


def test_unknown_variant_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown Grad-CAM variant 'squared'"):
        gradcam_variant(RAW, "squared")  # type: ignore[arg-type]
    out = _outputs()
    with pytest.raises(ValueError, match="relu"):
        out.scores("RELU")  # type: ignore[arg-type]
