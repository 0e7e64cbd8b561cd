"""Attribution throughput runner: structures per second of (a)-(d), plain Python.

(a) ``mace``     MACE's own batched energies + forces (``module(batch, compute_force=True)``),
(b) ``fused``    ours: energies + forces + Grad-CAM from one forward and one backward
                 (``MaceModel.evaluate_batch``),
(c) ``loop``     (b) one structure at a time,
(d) ``pipeline`` ours from ``ase.Atoms``: graph building in threads overlapped with (b)
                 (``harness.models.pipeline.Pipeline``); ``pipeline-proc`` the same with worker
                 processes (``executor="process"``).

(a)-(c) run on batches collated once beforehand by mace itself (identical inputs), so
they compare model passes only; each delivers its results to host numpy arrays
(energies and forces; plus Grad-CAM for (b)-(d)). Timing: ``torch.cuda.synchronize``
around ``time.perf_counter``, one warm-up call, then repeats until ``min_seconds``;
the best repeat is reported (the median too). Used by ``benchmarks/gpu_run.sh`` and
by the asv benchmarks.

    python -m benchmarks.throughput --quick --out /tmp/out      # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

MEASURES = ("mace", "fused", "loop", "pipeline")


@dataclass(frozen=True)
class Timing:
    best_per_second: float
    median_per_second: float
    repeats: int


@dataclass
class Row:
    model: str
    dtype: str
    device: str
    batch_size: int
    measure: str
    structures_per_second: float
    median_structures_per_second: float
    repeats: int
    peak_memory_MiB: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def rate(fn: Callable[[], Any], n_items: int, device: torch.device | str, *,
         min_seconds: float = 1.0, min_repeats: int = 3, max_repeats: int = 50) -> Timing:
    """Items per second of ``fn`` (one warm-up call; best and median of the repeats)."""
    fn()
    sync(device)
    seconds: list[float] = []
    total = 0.0
    while len(seconds) < max_repeats and (len(seconds) < min_repeats or total < min_seconds):
        start = time.perf_counter()
        fn()
        sync(device)
        seconds.append(time.perf_counter() - start)
        total += seconds[-1]
    return Timing(n_items / min(seconds), n_items / statistics.median(seconds), len(seconds))


class Workload:
    """One model on one set of structures, with inputs collated by mace beforehand."""

    def __init__(self, model: Any, structures: Sequence[Any], batch_size: int) -> None:
        self.model = model
        self.structures = list(structures)
        self.batch_size = batch_size
        self.device = model.device
        self.batches = [model.collate(self.structures[i:i + batch_size])
                        for i in range(0, len(self.structures), batch_size)]

    def run_mace(self) -> None:
        """(a) MACE's own energies and forces, delivered to the host."""
        for batch in self.batches:
            out = self.model.module(dict(batch), training=False, compute_force=True)
            out["energy"].detach().cpu().numpy()
            out["forces"].detach().cpu().numpy()

    def run_fused(self) -> None:
        """(b) ours: energies, forces and Grad-CAM from one forward and one backward."""
        for batch in self.batches:
            self.model.evaluate_batch(dict(batch))

    def run_pipeline(self, workers: int = 2, executor: str = "thread") -> Any:
        """(d) from ase.Atoms, graph building overlapped with the model; returns the report."""
        from harness.models.pipeline import Pipeline

        pipeline = Pipeline(self.model, batch_size=self.batch_size, workers=workers, executor=executor)
        return pipeline.run(self.structures)[1]


class LoopWorkload(Workload):
    def __init__(self, model: Any, structures: Sequence[Any]) -> None:
        super().__init__(model, structures, 1)

    def run_loop(self) -> None:
        """(c) the fused pass, one structure at a time."""
        self.run_fused()


def peak_mib(device: torch.device, fn: Callable[[], Any]) -> float | None:
    if device.type != "cuda":
        return None
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    sync(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def measure_model(model: Any, label: str, structures: Sequence[Any], batch_sizes: Sequence[int], *,
                  loop_structures: int, min_seconds: float, workers: int, min_repeats: int = 3,
                  proc_workers: int | None = None, deadline: float | None = None) -> list[Row]:
    """Rows (a)-(d) for one model and dtype over ``batch_sizes``, plus the auto batch size."""
    device = model.device
    dtype = str(model.dtype).replace("torch.", "")
    rows: list[Row] = []

    def row(batch: int, measure: str, t: Timing, peak: float | None = None, **extra: Any) -> None:
        rows.append(Row(label, dtype, str(device), batch, measure, t.best_per_second,
                        t.median_per_second, t.repeats, peak, dict(extra)))

    loop = LoopWorkload(model, structures[:loop_structures])
    row(1, "loop", rate(loop.run_loop, len(loop.structures), device, min_seconds=min_seconds, min_repeats=min_repeats))
    for batch_size in batch_sizes:
        if deadline is not None and time.monotonic() > deadline:
            rows.append(Row(label, dtype, str(device), batch_size, "skipped", 0.0, 0.0, 0,
                            extra={"reason": "time budget"}))
            continue
        work = Workload(model, structures, batch_size)
        n = len(structures)
        timed = dict(min_seconds=min_seconds, min_repeats=min_repeats)
        row(batch_size, "mace", rate(work.run_mace, n, device, **timed),
            peak_mib(device, work.run_mace))
        row(batch_size, "fused", rate(work.run_fused, n, device, **timed),
            peak_mib(device, work.run_fused))
        variants = [("pipeline", "thread", workers)]
        if proc_workers:  # 0 skips it: each timed call starts a process pool (slow to start on GPU hosts)
            variants.append(("pipeline-proc", "process", proc_workers))
        for measure, executor, k in variants:
            reports: list[Any] = []
            t = rate(lambda w=work, e=executor, k=k: reports.append(w.run_pipeline(k, e)), n, device, **timed)
            last = reports[-1]
            row(batch_size, measure, t, peak_mib(device, lambda w=work, e=executor, k=k: w.run_pipeline(k, e)),
                workers=k, wait_seconds=last.wait_seconds, prepare_seconds=last.prepare_seconds)
        work.batches.clear()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if device.type == "cuda":
        from harness.models.pipeline import Pipeline

        _, report = Pipeline(model, batch_size=None, workers=workers).run(structures)
        rows.append(Row(label, dtype, str(device), report.batch_size, "auto-batch",
                        report.structures_per_second, report.structures_per_second, 1,
                        (report.peak_memory_bytes or 0) / 2**20,
                        extra={"free_MiB_after": torch.cuda.mem_get_info(device)[0] / 2**20}))
    return rows


def ratios(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """The issue's acceptance ratios per model and dtype, at each one's best batch size."""
    out = []
    keys = sorted({(r.model, r.dtype, r.device) for r in rows})
    for model, dtype, device in keys:
        group = [r for r in rows if (r.model, r.dtype, r.device) == (model, dtype, device)]
        best = {m: max((r for r in group if r.measure.startswith(m)), key=lambda r: r.structures_per_second,
                       default=None) for m in MEASURES}
        if any(best[m] is None for m in MEASURES):
            continue
        fused_bs = best["fused"].batch_size
        mace_same = next(r for r in group if r.measure == "mace" and r.batch_size == fused_bs)
        out.append(dict(
            model=model, dtype=dtype, device=device,
            best_batch_fused=fused_bs,
            fused_over_mace_best=best["fused"].structures_per_second / best["mace"].structures_per_second,
            fused_over_mace_same_batch=best["fused"].structures_per_second / mace_same.structures_per_second,
            fused_over_loop=best["fused"].structures_per_second / best["loop"].structures_per_second,
            pipeline_over_fused=best["pipeline"].structures_per_second / best["fused"].structures_per_second,
            best_pipeline=f"{best['pipeline'].measure} at batch {best['pipeline'].batch_size}",
        ))
    return out


def markdown(rows: Sequence[Row], summary: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"Device: {meta.get('device_name')}; torch {meta.get('torch')}; "
             f"{meta.get('n_structures')} structures of 120 atoms; command: `{meta.get('command')}`", "",
             "| model | dtype | batch | measure | structures/s (best) | median | peak MiB |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: |"]
    for r in rows:
        peak = "" if r.peak_memory_MiB is None else f"{r.peak_memory_MiB:.0f}"
        lines.append(f"| {r.model} | {r.dtype} | {r.batch_size} | {r.measure} | "
                     f"{r.structures_per_second:.2f} | {r.median_structures_per_second:.2f} | {peak} |")
    lines += ["", "| model | dtype | best batch (b) | (b)/(a) best | (b)/(a) same batch | (b)/(c) | (d)/(b) | best (d) |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for s in summary:
        lines.append(f"| {s['model']} | {s['dtype']} | {s['best_batch_fused']} | {s['fused_over_mace_best']:.3f} | "
                     f"{s['fused_over_mace_same_batch']:.3f} | {s['fused_over_loop']:.1f} | "
                     f"{s['pipeline_over_fused']:.3f} | {s['best_pipeline']} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.data import MODELS, frames, make_model, n_parameters

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for throughput.json and throughput.md")
    parser.add_argument("--quick", action="store_true", help="CPU-sized run: few structures, small batches")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=None)
    parser.add_argument("--structures", type=int, default=None)
    parser.add_argument("--loop-structures", type=int, default=None)
    parser.add_argument("--min-seconds", type=float, default=None)
    parser.add_argument("--workers", type=int, default=4, help="graph-building threads of (d)")
    parser.add_argument("--proc-workers", type=int, default=max(2, min(8, (os.cpu_count() or 4) - 2)),
                        help="graph-building processes of (d) pipeline-proc (0: skip pipeline-proc)")
    parser.add_argument("--budget-s", type=float, default=330.0, help="skip remaining batch sizes after this")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (CPU runs only)")
    parser.add_argument("--repeats", type=int, default=None, help="minimum timed repeats (after one warm-up)")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    quick = args.quick
    repeats = args.repeats or (1 if quick else 3)
    batch_sizes = args.batch_sizes or ([4] if quick else [4, 16, 64, 256])
    n = args.structures or (4 if quick else 256)
    n_loop = args.loop_structures or (2 if quick else 64)
    min_seconds = args.min_seconds if args.min_seconds is not None else (0.0 if quick else 1.0)
    if args.device == "cpu":
        # One intra-op thread: with two, a busy 2-core host gives timings that swing 10x.
        torch.set_num_threads(args.threads)
    deadline = time.monotonic() + args.budget_s
    start = time.monotonic()
    structures = frames(n)
    rows: list[Row] = []
    params: dict[str, int] = {}
    for size in args.models:
        for dtype in args.dtypes:
            if time.monotonic() > deadline:
                rows.append(Row(size, dtype, args.device, 0, "skipped", 0.0, 0.0, 0, extra={"reason": "time budget"}))
                continue
            model = make_model(size, dtype, args.device)
            params[size] = n_parameters(model)
            rows += measure_model(model, size, structures, batch_sizes, loop_structures=n_loop,
                                  min_seconds=min_seconds, min_repeats=repeats, workers=args.workers,
                                  proc_workers=args.proc_workers, deadline=deadline)
            print(f"[throughput] {size} {dtype} done at {time.monotonic() - start:.0f} s", flush=True)
            del model
    summary = ratios(rows)
    device = torch.device(args.device)
    meta = dict(device=args.device, torch=torch.__version__, n_structures=n, loop_structures=n_loop,
                batch_sizes=batch_sizes, workers=args.workers, proc_workers=args.proc_workers, parameters=params,
                device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                cpu_threads=torch.get_num_threads(), seconds=time.monotonic() - start,
                command="python -m benchmarks.throughput " + " ".join(argv))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.json").write_text(json.dumps(
        dict(meta=meta, rows=[asdict(r) for r in rows], summary=summary), indent=1))
    (args.out / "throughput.md").write_text(markdown(rows, summary, meta))
    print(markdown(rows, summary, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
