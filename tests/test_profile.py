"""harness.profile and --harness-profile: seconds per stage, exclusive, printed by the harness itself."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from harness import profile

pytest_plugins = ["pytester"]


def test_nested_stages_are_charged_exclusively() -> None:
    collector = profile.start()
    try:
        with profile.stage("checks"):
            time.sleep(0.05)
            with profile.stage("model"):
                time.sleep(0.1)
            with profile.stage("SOAP"):
                time.sleep(0.02)
    finally:
        assert profile.stop() is collector
    assert collector.seconds["model"] == pytest.approx(0.1, abs=0.04)
    assert collector.seconds["SOAP"] == pytest.approx(0.02, abs=0.02)
    assert collector.seconds["checks"] == pytest.approx(0.05, abs=0.03)  # not 0.17: inner stages are not counted twice
    assert collector.total == pytest.approx(0.17, abs=0.05)
    assert collector.calls == {"checks": 1, "model": 1, "SOAP": 1}
    lines = collector.table().splitlines()
    assert [line.split()[0] for line in lines] == ["stage", "model", "SOAP", "checks", "total"]  # data-flow order
    assert set(collector.cpu_seconds) == {"checks", "model", "SOAP"}  # sleeping costs no CPU


def test_no_collector_no_cost_and_out_of_order_is_an_error() -> None:
    assert profile.active() is None
    with profile.stage("model"):  # nothing collects: a no-op
        pass
    collector = profile.start()
    try:
        collector.enter("model")
        with pytest.raises(RuntimeError, match="out of order"):
            collector.exit("SOAP")
    finally:
        profile.stop()


def test_soap_workers_give_identical_vectors() -> None:
    from ase.build import bulk

    from harness.explain.descriptors import soap_features
    from harness.suite.schema import Soap

    structures = []
    for seed in range(6):
        atoms = bulk("NaCl", "rocksalt", a=5.6, cubic=True)
        atoms.rattle(0.1, seed=seed)
        structures.append(atoms)
    settings = Soap(species=["Na", "Cl"], r_cut_A=4.0, n_max=2, l_max=2)
    np.testing.assert_array_equal(soap_features(structures, settings, n_jobs=2), soap_features(structures, settings))


def test_soap_workers_only_for_large_sets_on_four_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from harness.gate.session import _soap_jobs

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(2)), raising=False)
    assert _soap_jobs(300) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert _soap_jobs(300) == 1 and _soap_jobs(1999) == 1  # measured: workers cost more here
    assert _soap_jobs(5000) == 10 and _soap_jobs(20000) == 16


def test_plugin_prints_and_writes_the_stage_profile(pytester: pytest.Pytester, tmp_path: Path) -> None:
    from tiny_run import build_tiny_suite

    suite = build_tiny_suite(tmp_path / "tiny")
    out = tmp_path / "profile.json"
    run = pytester.runpytest_subprocess(
        str(suite), "-p", "no:cacheprovider", "--harness-no-cache", "--harness-profile", f"--harness-profile-json={out}"
    )
    run.assert_outcomes(passed=4)
    run.stdout.fnmatch_lines(["*mlff-harness profile*", "stage*seconds*share*", "read *", "*model *", "total *",
                              "wall *"])
    document = json.loads(out.read_text())
    stages = document["stages_s"]
    for name in ("read", "load", "graphs", "model", "SOAP", "surrogate", "SHAP", "checks"):
        assert stages[name] >= 0.0, name
    assert document["profiled_s"] <= document["wall_s"]
    assert document["calls"]["read"] == 1  # one suite: the reference is read once
