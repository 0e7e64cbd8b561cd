"""`mlff-harness sweep`: real Dask local clusters of worker processes, real tiny MACE checkpoints.

One sweep of three checkpoints (plus a garbage file and a wrongly pinned one)
on two worker processes is compared with the plugin run on each checkpoint one
by one; a checkpoint whose unpickling kills its worker process stands in for a
killed worker (OOM, preemption); the folder is then drawn by
`mlff-harness history`.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

from harness.errors import DataError  # noqa: E402
from harness.files import sha256_file  # noqa: E402
from harness.reports.results_schema import load_results_file  # noqa: E402
from harness.sweep.plan import checkpoint_stem, load_manifest, plan_sweep, step_from_name  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from tiny_run import build_tiny_suite  # noqa: E402

STEPS = {"tiny_epoch-0.model": 11, "tiny_epoch-5.model": 12, "tiny_epoch-10.model": 13}  # file -> model seed
BAD = "garbage_epoch-20.model"  # not a checkpoint at all
WRONG_PIN = "pinned_epoch-30.model"  # a good checkpoint whose manifest pin is wrong


class _ExitOnLoad:
    """Unpickling this calls os._exit in the loading process: a worker that dies mid-task."""

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return (os._exit, (70,))


def _sweep(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess, as a user runs it (a local Dask cluster needs a main process of its own)."""
    return subprocess.run(
        [sys.executable, "-m", "harness.cli.main", "sweep", *args],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )  # fmt: skip


def _manifest(path: Path, pins: dict[str, str]) -> Path:
    path.write_text(json.dumps({"checkpoints": {name: {"sha256": sha} for name, sha in pins.items()}}))
    return path


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny suite, its checkpoints, and one sweep of them on a local cluster of 2 processes."""
    from harness.models.mace.model import save_model
    from harness.models.mace.tiny import build_tiny_mace

    root = tmp_path_factory.mktemp("sweep")
    suite = build_tiny_suite(root / "suite")
    ckpts = root / "ckpts"
    ckpts.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, seed in STEPS.items():
            model = build_tiny_mace(["Cr", "Sb", "Te"], seed=seed, num_channels=8, max_L=0, r_max=4.0)
            save_model(model, ckpts / name)
    (ckpts / BAD).write_bytes(b"these bytes are no checkpoint")
    shutil.copy(ckpts / "tiny_epoch-5.model", ckpts / WRONG_PIN)
    pins = {name: sha256_file(ckpts / name) for name in [*STEPS, BAD]}
    manifest = _manifest(ckpts / "SHA256S.json", {**pins, WRONG_PIN: "0" * 64})
    out, cache = root / "out", root / "cache"
    proc = _sweep(str(suite), *(str(ckpts / n) for n in [*STEPS, BAD, WRONG_PIN]), "--workers", "2",
                  "--manifest", str(manifest), "--cache", str(cache), "-o", str(out))  # fmt: skip
    return {"root": root, "suite": suite, "ckpts": ckpts, "pins": pins, "out": out, "cache": cache, "proc": proc}


def _close(a: Any, b: Any, where: str = "$") -> None:
    """Equal documents: same keys, lists and flags; numbers equal to 1e-9 relative (float64 on one thread)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            _close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        assert b == pytest.approx(a, rel=1e-9, abs=1e-12), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_sweep_equals_the_plugin_run_on_each_checkpoint(swept: dict[str, Any]) -> None:
    proc, out, ckpts = swept["proc"], swept["out"], swept["ckpts"]
    assert proc.returncode == 2, proc.stdout + proc.stderr  # two checkpoints could not be gated
    assert sorted(p.name for p in out.glob("*.json")) == sorted(f"{checkpoint_stem(Path(n))}.json" for n in STEPS)
    plugin_runs = {  # the plugin on each checkpoint, computing everything afresh (no cache), side by side
        name: subprocess.Popen(
            [sys.executable, "-m", "pytest", str(swept["suite"]), "-p", "no:cacheprovider", "-q",
             f"--rootdir={swept['root']}", f"--harness-candidate={ckpts / name}",
             f"--harness-candidate-sha256={swept['pins'][name]}", f"--harness-step={step_from_name(name)}",
             f"--harness-results={swept['root'] / 'plugin' / f'{name}.json'}", "--harness-no-cache"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        for name in STEPS
    }
    verdicts = set()
    for name, run in plugin_runs.items():
        output, _ = run.communicate(timeout=600)
        assert run.returncode in (0, 1), output
        step, plugin = step_from_name(name), swept["root"] / "plugin" / f"{name}.json"
        expected, got = load_results_file(plugin), load_results_file(out / f"{checkpoint_stem(Path(name))}.json")
        assert got["checkpoint"] == {"step": step}
        assert len(got["outcomes"]) == 4 and got["suites"][0]["models"]["candidate"]["sha256"] == swept["pins"][name]
        expected.pop("created"), got.pop("created")
        _close(expected, got)
        assert (run.returncode == 0) == got["passed"]
        verdicts.add(got["passed"])
    assert verdicts == {True, False}  # the random checkpoints' energies: one passes the accuracy bound, two do not


def test_bad_checkpoints_are_reported_and_the_others_finish(swept: dict[str, Any]) -> None:
    text = swept["proc"].stdout
    errors = [line for line in text.splitlines() if ": ERROR " in line]
    assert len(errors) == 2, text
    garbage = next(line for line in errors if line.startswith("garbage_epoch-20 (step 20)"))
    assert "torch.load failed" in garbage and str(swept["ckpts"] / BAD) in garbage
    pinned = next(line for line in errors if line.startswith("pinned_epoch-30 (step 30)"))
    assert "sha256 mismatch" in pinned and "0" * 64 in pinned
    assert "5 checkpoints (0 already done):" in text and "2 could not finish" in text
    assert "3 checkpoints, ordered by step" in text  # the history view of the folder follows
    assert not (swept["out"] / "garbage_epoch-20.json").exists()


def test_rerun_on_a_running_scheduler_skips_finished_documents_and_redoes_invalid_ones(swept: dict[str, Any]) -> None:
    """A document edited by hand (invalid) is recomputed; valid, finished ones are skipped byte for byte."""
    from distributed import LocalCluster

    out, ckpts = swept["out"], swept["ckpts"]
    before = {p.name: p.read_bytes() for p in out.glob("*.json")}
    broken = out / "tiny_epoch-5.json"
    broken.write_text(json.dumps({"format": "mlff-harness-results/1"}))
    manifest = _manifest(ckpts / "three.json", {n: swept["pins"][n] for n in STEPS})
    with LocalCluster(n_workers=1, processes=True, threads_per_worker=1, dashboard_address=":0") as cluster:
        proc = _sweep(str(swept["suite"]), "--manifest", str(manifest), "--cache", str(swept["cache"]), "-o", str(out),
                      "--scheduler", cluster.scheduler_address)  # fmt: skip
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert "dask dashboard: http://" in proc.stderr
    assert "tiny_epoch-0: already done, skipped" in proc.stdout and "tiny_epoch-10: already done" in proc.stdout
    assert "tiny_epoch-5 (step 5): " in proc.stdout and "3 checkpoints (2 already done)" in proc.stdout
    after = {p.name: p.read_bytes() for p in out.glob("*.json")}
    assert after["tiny_epoch-0.json"] == before["tiny_epoch-0.json"]
    redone = json.loads(after["tiny_epoch-5.json"])
    old = json.loads(before["tiny_epoch-5.json"])
    assert redone["outcomes"] == old["outcomes"]  # recomputed (from the shared cache) to the same values


def test_killed_worker_loses_no_finished_document_and_the_rerun_completes(swept: dict[str, Any]) -> None:
    root, ckpts = swept["root"], swept["ckpts"]
    dying = ckpts / "dying_epoch-99.model"
    dying.write_bytes(pickle.dumps(_ExitOnLoad()))
    names = ["tiny_epoch-0.model", "tiny_epoch-5.model"]
    manifest = _manifest(ckpts / "dying.json", {**{n: swept["pins"][n] for n in names}, dying.name: sha256_file(dying)})
    out = root / "killed"
    args = [str(swept["suite"]), "--workers", "2", "--manifest", str(manifest), "--cache", str(swept["cache"]),
            "-o", str(out)]  # fmt: skip
    first = _sweep(*args, env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"})  # no retry of the dying task
    assert first.returncode == 2, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    died = next(i for i, line in enumerate(lines) if line.startswith("dying_epoch-99 (step 99): ERROR"))
    assert "the worker process running it died" in lines[died]
    # a worker runs one task at a time and the dying one (step 99) comes last: the kill is mid-sweep, after a finish
    assert any(line.startswith("tiny_epoch-") for line in lines[:died]), first.stdout
    assert "3 checkpoints (0 already done):" in first.stdout and "1 could not finish" in first.stdout
    kept = {p.name: p.read_bytes() for p in out.glob("*.json")}
    assert sorted(kept) == ["tiny_epoch-0.json", "tiny_epoch-5.json"]
    for name in kept:
        load_results_file(out / name)
    shutil.copy(ckpts / "tiny_epoch-10.model", dying)  # the next attempt finds a healthy file (and pin)
    _manifest(manifest, {**{n: swept["pins"][n] for n in names}, dying.name: sha256_file(dying)})
    second = _sweep(*args)
    assert second.returncode in (0, 1), second.stdout + second.stderr
    assert "3 checkpoints (2 already done)" in second.stdout
    assert {p.name: p.read_bytes() for p in out.glob("*.json") if p.name in kept} == kept
    assert load_results_file(out / "dying_epoch-99.json")["checkpoint"] == {"step": 99}


def test_one_worker_per_gpu_each_sees_only_its_own() -> None:
    """What `--device cuda` starts (no GPU needed to check it): CUDA_VISIBLE_DEVICES set per worker process."""
    from distributed import Client

    from harness.sweep.run import per_gpu_cluster

    with per_gpu_cluster(["3", "5"]) as cluster, Client(cluster) as client:
        seen = client.run(os.getenv, "CUDA_VISIBLE_DEVICES")
        threads = client.run(os.getenv, "OMP_NUM_THREADS")
    assert sorted(seen.values()) == ["3", "5"]
    assert set(threads.values()) == {str(max(1, len(os.sched_getaffinity(0)) // 2))}


def test_history_draws_the_sweep_folder(swept: dict[str, Any], tmp_path: Path) -> None:
    from harness.cli.main import main

    png = tmp_path / "history.png"
    assert main(["history", str(swept["out"]), "-o", str(png)]) == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 300 and height > 200 and len(data) > 20_000


def test_step_and_stem_from_file_names() -> None:
    assert step_from_name("run3/ft_multit_history_epoch-012.model.gz") == 12
    assert step_from_name("mace_step_3000.pt") == 3000 and step_from_name("iter12.model") == 12
    assert step_from_name("ckpt-7_epoch-2.model") == 2  # the last one wins
    assert step_from_name("mace_128ch.model") is None and step_from_name("deepstep5.model") is None
    assert checkpoint_stem(Path("a/ft_epoch-003.model.gz")) == "ft_epoch-003"


def test_bad_input_is_refused_before_anything_runs(swept: dict[str, Any], tmp_path: Path) -> None:
    suite, ckpts = swept["suite"], swept["ckpts"]
    with pytest.raises(DataError, match="no checkpoint pins"):
        plan_sweep(suite, [ckpts / "tiny_epoch-0.model"], tmp_path)
    with pytest.raises(DataError, match="not in the manifest"):
        other = _manifest(tmp_path / "m.json", {BAD: "a" * 64})
        plan_sweep(suite, [ckpts / "tiny_epoch-0.model"], tmp_path, manifest=other)
    with pytest.raises(DataError, match=r"manifest at checkpoints\.x\.step: Input should be greater than or equal"):
        (tmp_path / "neg.json").write_text(json.dumps({"checkpoints": {"x": {"sha256": "a" * 64, "step": -1}}}))
        load_manifest(tmp_path / "neg.json")
    unnamed = tmp_path / "final.model"
    shutil.copy(ckpts / "tiny_epoch-0.model", unnamed)
    with pytest.raises(DataError, match="no training step for final.model"):
        plan_sweep(suite, [ckpts / "tiny_epoch-0.model", unnamed], tmp_path, allow_unpinned=True)
    both = [ckpts / "tiny_epoch-5.model", ckpts / "pinned_epoch-30.model"]
    same = _manifest(tmp_path / "same.json", {str(p): "b" * 64 for p in both})
    data = json.loads(same.read_text())
    data["checkpoints"][str(both[1])]["step"] = 5
    same.write_text(json.dumps(data))
    with pytest.raises(DataError, match="both sit at step 5"):
        plan_sweep(suite, both, tmp_path, manifest=same)
    proc = _sweep(str(suite), str(ckpts / "tiny_epoch-0.model"), "--allow-unpinned", "--workers", "2",
                  "--scheduler", "http://nowhere", "-o", str(tmp_path / "o"))  # fmt: skip
    assert proc.returncode == 2 and "neither 'local' nor tcp://HOST:PORT" in proc.stderr


def test_the_shipped_history_manifest_pins_the_shipped_checkpoints() -> None:
    """reference_data/checkpoints/history/SHA256S.json: a sweep of the shipped history run needs no --allow-unpinned."""
    folder = Path(__file__).parents[1] / "reference_data" / "checkpoints" / "history"
    entries = load_manifest(folder / "SHA256S.json")
    assert sorted(p.name for p in entries) == sorted(p.name for p in folder.glob("*_epoch-*.model.gz"))
    for path, entry in entries.items():
        assert sha256_file(path) == entry.sha256 and entry.step == step_from_name(path.name)


def test_the_gate_does_not_import_dask() -> None:
    code = (
        "import sys, harness.pytest_plugin.plugin, harness.cli.main, harness.sweep.run\n"
        "print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stdout + out.stderr
