"""The issue-10 check kinds end to end: randomisation sanity, and every new kind through the pytest plugin."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from ase.io import write

from harness.explain.metrics import rank_correlations
from harness.models.randomise import cascade_stages, randomised_copy, redraw, structure_seed

from planted import planted_mace, random_cells

pytest_plugins = ["pytester"]


def _scores(module, structures) -> tuple[np.ndarray, np.ndarray]:
    from harness.models.mace.model import MaceModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = MaceModel.from_module(module, name="m").evaluate(structures, batch_size=len(structures))
    return out.scores("relu"), out.offsets


def test_randomised_copy_decorrelates_and_an_unrandomised_copy_gives_one() -> None:
    from harness.models.mace.model import cascade_blocks

    module = planted_mace()
    structures = random_cells(8, seed=4)
    trained, offsets = _scores(module, structures)
    same, _ = _scores(randomised_copy(module, [], seed=0), structures)
    np.testing.assert_allclose(rank_correlations(trained, same, offsets), 1.0)
    stages = cascade_stages(cascade_blocks(module))
    assert [label for label, _ in stages][:3] == ["readouts[1]", "products[1]", "interactions[1]"]
    assert stages[-1][1] == cascade_blocks(module)  # the last stage re-draws every block
    everything, _ = _scores(randomised_copy(module, stages[-1][1], seed=0), structures)
    per_structure = rank_correlations(trained, everything, offsets)
    # the plant (Cr ranked first with a ~30x margin) is in the weights: re-drawn, the map loses it
    assert np.nanmean(per_structure) < 0.5, per_structure
    assert np.argmax(trained[offsets[0] : offsets[1]]) == structures[0].get_chemical_symbols().index("Cr")


def test_cascade_stages_are_cumulative() -> None:
    assert cascade_stages(["a", "b", "c"]) == [("a", ["a"]), ("b", ["a", "b"]), ("c", ["a", "b", "c"])]
    assert cascade_stages(["a", "b"], cascade=False) == [("all", ["a", "b"])]
    with pytest.raises(ValueError):
        cascade_stages([])


def test_redraw_in_place_equals_a_fresh_copy_and_cascade_stages_share_their_draws() -> None:
    import copy

    from harness.models.mace.model import cascade_blocks

    module = planted_mace()
    blocks = cascade_blocks(module)
    fresh = randomised_copy(module, blocks[:2], seed=5)
    reused = copy.deepcopy(module)
    redraw(reused, module, blocks, seed=9)  # an earlier draw of every block ...
    redraw(reused, module, blocks[:2], seed=5)  # ... then the stage's own: the trained stats, not the last draw's
    for path in blocks[:2]:
        for a, b in zip(fresh.get_submodule(path.replace("[", ".").replace("]", "")).parameters(),
                        reused.get_submodule(path.replace("[", ".").replace("]", "")).parameters(), strict=True):
            np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    # stage 1 and stage 2 of a cascade agree on the block they share (the readout)
    wider = randomised_copy(module, blocks[:3], seed=5)
    readout = blocks[0].replace("[", ".").replace("]", "")
    for a, b in zip(fresh.get_submodule(readout).parameters(), wider.get_submodule(readout).parameters(), strict=True):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert len({structure_seed(0, i) for i in range(100)} | {structure_seed(1, i) for i in range(100)}) == 200


def test_a_draw_per_structure_shrinks_the_spread_over_seeds_of_the_gated_mean() -> None:
    """The reason for redraw: per_structure: with one shared draw the structure mean moves with that draw
    (the bootstrap over structures cannot see it); with a draw per structure it averages out."""
    from harness.models.mace.model import cascade_blocks

    module = planted_mace()
    structures = random_cells(12, seed=3)
    trained, offsets = _scores(module, structures)
    blocks = cascade_blocks(module)[:2]  # readout and product of the last layer: a partial, draw-sensitive stage

    def mean_correlation(seed: int, per_structure: bool) -> float:
        if not per_structure:
            theirs, _ = _scores(randomised_copy(module, blocks, seed=seed), structures)
        else:
            theirs = np.concatenate([
                _scores(randomised_copy(module, blocks, seed=structure_seed(seed, i)), [atoms])[0]
                for i, atoms in enumerate(structures)
            ])
        return float(np.nanmean(rank_correlations(trained, theirs, offsets)))

    once = [mean_correlation(seed, False) for seed in range(6)]
    each = [mean_correlation(seed, True) for seed in range(6)]
    # measured: std 0.42 with one draw, 0.14 with a draw per structure (seeds 0-5)
    assert np.std(each) < 0.6 * np.std(once), (once, each)


# --------------------------------------------------------------------------- through the plugin


@pytest.fixture(scope="module")
def planted_suite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planted model as a checkpoint; 30 cells labelled by it with an error planted on Cr content."""
    from harness.models.mace.model import MaceModel, save_model

    root = tmp_path_factory.mktemp("planted")
    module = planted_mace()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save_model(module, root / "planted.model")
        structures = random_cells(30, seed=1, n_cr=(1, 3))
        out = MaceModel.from_module(module, name="planted").evaluate(structures, batch_size=30)
    rng = np.random.default_rng(0)
    for i, atoms in enumerate(structures):
        n_cr = atoms.get_chemical_symbols().count("Cr")
        atoms.info["REF_energy"] = float(out.energies_eV[i] - 0.05 * n_cr)  # error grows with Cr content
        atoms.info["config_type"] = f"cr{n_cr}"
        noise = rng.normal(0, 0.01, (len(atoms), 3))
        noise[np.array(atoms.get_chemical_symbols()) == "Cr"] *= 5  # Cr forces are worse
        atoms.arrays["REF_forces"] = out.forces_eV_per_A[out.offsets[i] : out.offsets[i + 1]] + noise
    write(root / "structures.extxyz", structures, format="extxyz")
    return root


SUITE = """\
suite: planted
reference: {{structures: structures.extxyz}}
models:
  candidate: {{checkpoint: planted.model, sha256: {sha}}}
descriptor: {{soap: {{species: [Cr, Sb, Te], r_cut_A: 4.0, n_max: 2, l_max: 2}}}}
surrogate: {{n_estimators: 40, max_depth: 2, learning_rate: 0.1, cv_folds: 3}}
settings: {{batch_size: 64}}   # 64 graphs a call: the 9 perturbed copies of 7 structures
checks:
  - accuracy:
      force_rmse_meV_per_A: {{max: 100}}
      per_element: {{Cr: {{force_rmse_meV_per_A: {{min: 30, max: 70}}}}, Te: {{force_rmse_meV_per_A: {{max: 15}}}}}}
      group_by: config_type
      per_group: {{cr1: {{energy_rmse_meV_per_atom: {{min: 3, max: 5}}}}}}
  - attribution_faithfulness:
      k: 1
      k_max: 2
      draws: 2
      bootstrap: {{n_resamples: 200}}
      top_to_random_dE_ratio: {{min: {ratio_min}, on: ci_low}}
      curve_area: {{min: 0.0}}
  - randomisation_sanity:
      max_structures: 10
      bootstrap: {{n_resamples: 200}}
      all_layers_rank_correlation: {{max: 0.5, on: ci_high}}
      max_rank_correlation: {{max: 1.0}}
  - surrogate_faithfulness:
      top_n: 2
      draws: 10
      bootstrap: {{n_resamples: 200}}
      heldout_r2: {{min: 0.5}}
      top_r2_drop: {{min: 0.1, on: ci_low}}
      top_to_random_r2_drop_ratio: {{min: 1.5}}
"""


def _write(directory: Path, name: str, **fields: object) -> Path:
    from harness.files import sha256_file

    path = directory / name
    path.write_text(SUITE.format(sha=sha256_file(directory / "planted.model"), **fields))
    return path


def test_new_check_kinds_through_the_plugin(pytester: pytest.Pytester, planted_suite_dir: Path) -> None:
    path = _write(planted_suite_dir, "planted.suite.yaml", ratio_min=1.5)
    results = planted_suite_dir / "results.json"
    cache = planted_suite_dir / "cache"
    run = pytester.runpytest(str(path), "-p", "no:cacheprovider", f"--harness-results={results}",
                             f"--harness-cache={cache}")
    run.assert_outcomes(passed=4)
    run.stdout.fnmatch_lines([
        "*model*check*metric*value*interval*threshold*result*",
        "*accuracy*per_element.Cr.force_rmse_meV_per_A*[[]30, 70[]]*PASS*",
        "*accuracy*per_group.cr1.energy_rmse_meV_per_atom*PASS*",
        "*attribution_faithfulness*top_to_random_dE_ratio*[[]*,*[]] 95%*>= 1.5 on ci_low*PASS*",
        "*randomisation_sanity*all_layers_rank_correlation*[[]*[]] 95%*<= 0.5 on ci_high*PASS*",
        "*surrogate_faithfulness*top_r2_drop*[[]*[]] 95%*>= 0.1 on ci_low*PASS*",
    ])
    doc = {o["check"]: o for o in json.loads(results.read_text())["outcomes"]}
    ratio = doc["attribution_faithfulness"]["measurements"][0]
    assert ratio["metric"] == "top_to_random_dE_ratio" and ratio["on"] == "ci_low"
    assert ratio["ci_low"] <= ratio["value"] <= ratio["ci_high"] and ratio["level"] == 0.95
    stages = doc["randomisation_sanity"]["details"]["stages"]
    assert [s["randomised_up_to"] for s in stages][0] == "readouts[1]" and len(stages) == 7
    assert all(s["ci_low"] <= s["point"] <= s["ci_high"] for s in stages)
    surrogate = doc["surrogate_faithfulness"]["details"]
    # the planted error is 0.05 eV per Cr atom: the first SHAP feature is a Cr one (Sb-Te ones, diluted by Cr,
    # are legitimate proxies for the rest)
    assert "Cr" in surrogate["top_features"][0], surrogate["top_features"]
    accuracy = doc["accuracy"]["details"]
    # the planted error: 0.05 eV per Cr atom over 12 atoms = 4.17 meV/atom for one Cr
    assert accuracy["per_group"]["cr1"]["energy_rmse_meV_per_atom"] == pytest.approx(50 / 12, rel=1e-6)
    per_element = accuracy["per_element"]
    assert per_element["Cr"]["force_rmse_meV_per_A"] > 3 * per_element["Sb"]["force_rmse_meV_per_A"]

    # a gate on ci_low fails where the same threshold on the point value passes
    point = ratio["value"]
    strict = _write(planted_suite_dir, "strict.suite.yaml", ratio_min=(ratio["ci_low"] + point) / 2)
    rerun = pytester.runpytest(str(strict), "-p", "no:cacheprovider", f"--harness-cache={cache}",
                               "-k", "attribution_faithfulness")
    rerun.assert_outcomes(failed=1, deselected=3)
    rerun.stdout.fnmatch_lines(["*check 'attribution_faithfulness' (attribution_faithfulness)*FAILED*",
                                "*top_to_random_dE_ratio = *on ci_low*FAIL*"])
