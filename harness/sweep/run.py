"""`mlff-harness sweep`: gate many checkpoints with one suite on Dask, then show their history.

One Dask task per (checkpoint, suite) runs harness.sweep.task.gate_checkpoint in
a worker process and writes that checkpoint's results document into the output
folder; the folder is then what `mlff-harness history` reads. Dask is an
optional extra (``pip install "mlff-harness[sweep]"``), imported only here and
only when a sweep runs. Exit status: 0 every task finished and every gate
passed; 1 every task finished and some gate failed; 2 bad input or a task that
could not finish (its error is printed; the other tasks still ran). See
docs/sweep.md for clusters (dask-jobqueue) and multi-GPU hosts (one worker per GPU).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client

    from harness.sweep.plan import SweepTask
    from harness.sweep.task import TaskResult

_ADDRESS = re.compile(r"^(tcp|tls|ucx)://[^\s/:]+:\d+$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sweep's options (light: the CLI builds every sub-parser on each call)."""
    parser.add_argument("suite", help="the suite file (*.suite.yaml) that gates every checkpoint")
    parser.add_argument("checkpoints", nargs="*", help="checkpoint files (default: every checkpoint of --manifest)")
    parser.add_argument("-o", "--output", required=True, help="folder of results documents, one per checkpoint")
    parser.add_argument(
        "--scheduler", default="local",
        help="'local' (default): a cluster of worker processes on this machine; or tcp://HOST:PORT of a running "
        "Dask scheduler (its workers must see the same files)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, help="local workers (default: one per core; on cuda one per GPU)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=["float32", "float64"], help="model precision (default: the suite's)")
    parser.add_argument("--batch-size", type=int, metavar="N", help="structures per batch (default: the suite's)")
    pins = parser.add_mutually_exclusive_group(required=True)
    pins.add_argument("--manifest", metavar="SHA256S.json", help="sha256 pins (and steps) of the checkpoints")
    pins.add_argument(
        "--allow-unpinned", action="store_true", help="load checkpoints with no pin (pickles can run code)"
    )
    from harness.cache import add_cache

    add_cache(parser)  # shared by the workers, and with pytest's --harness-cache default
    parser.add_argument("--explain", action="store_true", help="fit every surrogate (as --harness-explain)")
    parser.add_argument("--force", action="store_true", help="recompute documents that are already finished")


def main(args: argparse.Namespace) -> int:
    from harness.errors import HarnessError
    from harness.sweep.plan import is_finished, plan_sweep

    try:
        _check_arguments(args)
        tasks = plan_sweep(
            args.suite, args.checkpoints, args.output, manifest=args.manifest, allow_unpinned=args.allow_unpinned,
            device=args.device, dtype=args.dtype, batch_size=args.batch_size,
            cache_dir=Path(args.cache).resolve() if args.cache else None, explain=args.explain,
        )  # fmt: skip
    except HarnessError as err:
        print(f"mlff-harness: {err}", file=sys.stderr)
        return 2
    tasks.sort(key=lambda t: (t.step is None, t.step, t.name))
    done = [] if args.force else [t for t in tasks if is_finished(t)]
    todo = [t for t in tasks if t not in done]
    if todo and find_spec("distributed") is None:
        print("mlff-harness: sweep runs on Dask, which is not installed (fix: pip install 'mlff-harness[sweep]')",
              file=sys.stderr)  # fmt: skip
        return 2
    for task in done:
        print(f"{task.name}: already done, skipped ({task.output})")
    try:
        results = run_tasks(todo, scheduler=args.scheduler, workers=args.workers, device=args.device) if todo else []
    except OSError as err:  # no scheduler at that address, no GPU, connection lost (CommClosedError), ...
        print(f"mlff-harness: Dask scheduler {args.scheduler!r} not started, reached or kept: {err}", file=sys.stderr)
        return 2
    status = _summary(done, results)
    _print_history(Path(args.output))
    return status


def _check_arguments(args: argparse.Namespace) -> None:
    from harness.errors import DataError

    if args.scheduler != "local" and not _ADDRESS.match(args.scheduler):
        raise DataError(f"--scheduler {args.scheduler!r} is neither 'local' nor tcp://HOST:PORT")
    if args.workers is not None and (args.workers < 1 or args.scheduler != "local"):
        raise DataError("--workers takes a positive number, and only with --scheduler local")
    if args.batch_size is not None and args.batch_size < 1:
        raise DataError("--batch-size must be a positive integer")


def run_tasks(
    tasks: Sequence[SweepTask], *, scheduler: str = "local", workers: int | None = None, device: str = "cpu"
) -> list[TaskResult]:
    """Run every task on Dask; print one line per task as it finishes; a failed task never stops the others."""
    from distributed import as_completed

    from harness import progress
    from harness.sweep.task import TaskResult, gate_checkpoint

    results: list[TaskResult] = []
    if scheduler == "local" and device == "cpu":  # no idle workers: a rerun of one checkpoint starts one
        workers = min(workers or _cores(), len(tasks))
    with _client(scheduler, workers, device) as client:
        n_workers = len(client.nthreads())
        print(f"dask: {len(tasks)} tasks on {n_workers} workers" + ("" if n_workers else " (waiting for workers)"),
              file=sys.stderr)  # fmt: skip
        link = _dashboard(client)
        if link:
            bokeh = scheduler != "local" or find_spec("bokeh") is not None
            hint = "" if bokeh else " (its pages need bokeh: pip install bokeh)"
            print(f"dask dashboard: {link}{hint}", file=sys.stderr)
        futures = {
            client.submit(gate_checkpoint, task, key=f"gate-{task.name}-{task.key()[:12]}", pure=False): task
            for task in tasks
        }
        with progress.bar(total=len(futures), desc="sweep", unit="checkpoint") as bar:
            for future in as_completed(futures):
                task = futures[future]
                if future.status == "finished":
                    result = future.result()
                else:
                    result = TaskResult(task.name, "error", error=_task_error(future.exception()))
                results.append(result)
                bar.write(_line(task, result), file=sys.stdout)
                bar.update(1)
    return results


def _task_error(error: BaseException | None) -> str:
    from distributed import KilledWorker

    from harness.sweep.task import one_line

    if isinstance(error, KilledWorker):
        return (
            "the worker process running it died (killed, crashed, or out of memory: see the worker's log); "
            "finished documents are kept (fix: rerun the sweep to retry this checkpoint)"
        )
    return one_line(error) if error is not None else "cancelled"


def _line(task: SweepTask, result: TaskResult) -> str:
    where = f" (step {task.step})" if task.step is not None else ""
    if result.status == "error":
        return f"{task.name}{where}: ERROR {result.error}"
    verdict = "PASS" if result.status == "passed" else f"FAIL ({', '.join(result.failed_checks)})"
    return f"{task.name}{where}: {verdict} in {result.seconds:.1f} s -> {task.output}"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def _client(scheduler: str, workers: int | None, device: str) -> Iterator[Client]:
    """A client of a local cluster (worker processes, one thread each) or of the scheduler at an address."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler != "local":
        with Client(scheduler, timeout="30s") as client:
            yield client
        return
    # A worker holds only the task it runs (no queue of others behind it): tasks last minutes, and when a worker
    # dies Dask counts every task it holds as a suspect (distributed.scheduler.allowed-failures).
    one_at_a_time = {"distributed.scheduler.worker-saturation": 1.0}
    if device == "cuda":
        gpus = visible_gpus()
        if not gpus:
            raise OSError("--device cuda, but no GPU is visible (CUDA_VISIBLE_DEVICES, torch.cuda.device_count())")
        with dask.config.set(one_at_a_time):
            cluster: Any = per_gpu_cluster(gpus[: workers or len(gpus)])
    else:
        n = workers or _cores()
        threads = str(max(1, _cores() // n))  # torch threads per worker process: the cores, shared out
        environ = {f"distributed.nanny.pre-spawn-environ.{k}": threads for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        with dask.config.set({**environ, **one_at_a_time}):
            cluster = LocalCluster(n_workers=n, processes=True, threads_per_worker=1, dashboard_address=":0")
    nanny = logging.getLogger("distributed.nanny")
    level = nanny.level
    try:
        with cluster, Client(cluster) as client:
            try:
                yield client
            finally:  # on the way out a worker slow to exit (torch, a loaded machine) is killed: harmless, no warning
                nanny.setLevel(logging.ERROR)
    finally:
        nanny.setLevel(level)


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (set, or counted by torch)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and not g.strip().startswith("-")]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def per_gpu_cluster(gpus: Sequence[str]) -> Any:
    """One worker process per GPU, each seeing only its own card (as dask-cuda's LocalCUDACluster does).

    Each worker gets CUDA_VISIBLE_DEVICES=<its GPU> before it starts (so its
    ``cuda`` device is that GPU), one task thread, an equal share of the cores
    for torch's CPU threads and of the host memory.
    """
    from distributed import Nanny, Scheduler, SpecCluster
    from distributed.system import MEMORY_LIMIT

    threads = str(max(1, _cores() // len(gpus)))
    workers = {
        f"gpu-{gpu}": {
            "cls": Nanny,
            "options": {
                "nthreads": 1,
                "memory_limit": int(MEMORY_LIMIT / len(gpus)),
                "env": {"CUDA_VISIBLE_DEVICES": gpu, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads},
            },
        }
        for gpu in gpus
    }
    return SpecCluster(workers=workers, scheduler={"cls": Scheduler, "options": {"dashboard_address": ":0"}})


def _dashboard(client: Client) -> str | None:
    try:
        return str(client.dashboard_link) if "dashboard" in client.scheduler_info().get("services", {}) else None
    except Exception:  # noqa: BLE001 - a link is a convenience
        return None


def _summary(done: Sequence[SweepTask], results: Sequence[TaskResult]) -> int:
    """Print the counts; the exit status (0 all passed, 1 a gate failed, 2 a task could not finish)."""
    passed_before = [json.loads(t.output.read_text(encoding="utf-8"))["passed"] for t in done]
    counts = {
        "passed": sum(r.status == "passed" for r in results) + sum(passed_before),
        "failed the gate": sum(r.status == "failed" for r in results) + passed_before.count(False),
        "could not finish": sum(r.status == "error" for r in results),
    }
    print(
        f"sweep: {len(done) + len(results)} checkpoints ({len(done)} already done): "
        + ", ".join(f"{n} {what}" for what, n in counts.items())
    )
    if counts["could not finish"]:
        return 2
    return 1 if counts["failed the gate"] else 0


def _print_history(folder: Path) -> None:
    from harness.errors import HarnessError
    from harness.reports.history import format_history, load_history, metric_series

    try:
        history = load_history(folder)
    except HarnessError as err:
        print(f"mlff-harness: no history to show: {err}", file=sys.stderr)
        return
    for warning in history.warnings:
        print(f"mlff-harness: warning: {warning}", file=sys.stderr)
    print(f"\n{len(history.checkpoints)} checkpoints, ordered by {history.ordered_by}")
    print(format_history(history, metric_series(history)))
    print(f"(curves: mlff-harness history {folder} -o history.png)")
