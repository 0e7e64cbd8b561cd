"""From a list of ``ase.Atoms`` to energies, forces and Grad-CAM at model speed.

:class:`Pipeline` cuts the structures into batches, builds each batch's graph
(:func:`harness.models.batching.prepare_batch`, neighbour lists from
:mod:`harness.models.neighbours`) in background threads while the model evaluates the
previous batch, and runs the fused forward+backward pass of
:meth:`harness.models.mace.model.MaceModel.evaluate_batch` on each. Its results are
those of ``MaceModel.evaluate`` (``tests/test_pipeline.py``).

Workers are threads (``executor="thread"``; neighbour lists run outside the GIL)
or processes (``executor="process"``: a ``torch.utils.data.DataLoader`` whose
forked workers build batches, so graph building never competes with the thread
that launches the model's kernels for the GIL).

Batch size: given, or on CUDA chosen from the free GPU memory by a linear
memory model fitted on two probe batches (peak bytes = a + b * edges), with a
safety factor, then confirmed by one full-size trial (halved on out-of-memory).
On CPU the default is :data:`CPU_BATCH_SIZE`. The report gives the peak GPU
memory of the run (``torch.cuda.max_memory_allocated``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_numbers as ATOMIC_NUMBERS

from harness.errors import ModelError
from harness.models import ModelOutputs
from harness.models.batching import GraphSpec, HostBatch, chunks, prepare_batch
from harness.profile import stage

CPU_BATCH_SIZE = 16
MAX_AUTO_BATCH = 1024
Executor = Literal["thread", "process"]


@dataclass(frozen=True)
class PipelineReport:
    """How a pipeline run went (times in seconds, memory in bytes)."""

    n_structures: int
    n_atoms: int
    batch_size: int
    batch_size_source: str  # "given", "auto" or "cpu-default"
    device: str
    dtype: str
    workers: int
    executor: str
    seconds: float
    structures_per_second: float
    prepare_seconds: float  # summed over worker threads (overlapped with the model)
    wait_seconds: float  # time the model thread waited for a prepared batch
    peak_memory_bytes: int | None  # CUDA only

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def graph_spec(model: Any, *, backend: str = "auto") -> GraphSpec:
    """The :class:`GraphSpec` of a :class:`~harness.models.mace.model.MaceModel`."""
    # MaceModel.graphs puts every structure on the model's first head (index 0).
    return GraphSpec(
        atomic_numbers=tuple(ATOMIC_NUMBERS[e] for e in model.elements),
        cutoff_A=float(model.r_max_A),
        dtype=model.dtype,
        head_index=0,
        backend=backend,
    )


class Pipeline:
    """Batched fused evaluation with graph building overlapped with the model."""

    def __init__(
        self,
        model: Any,
        *,
        batch_size: int | None = None,
        workers: int = 2,
        prefetch: int = 2,
        executor: Executor = "thread",
        backend: str = "auto",
        layer: str | None = None,
        safety: float = 0.7,
        max_batch: int = MAX_AUTO_BATCH,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise ModelError(f"Pipeline batch_size must be >= 1 or None, got {batch_size}")
        if workers < 0 or prefetch < 1:
            raise ModelError(f"Pipeline needs workers >= 0 and prefetch >= 1, got {workers}, {prefetch}")
        if executor not in ("thread", "process"):
            raise ModelError(f"Pipeline executor must be 'thread' or 'process', got {executor!r}")
        if not 0 < safety <= 1:
            raise ModelError(f"Pipeline safety factor must be in (0, 1], got {safety}")
        self.model = model
        self.batch_size = batch_size
        self.workers = workers
        self.prefetch = prefetch
        self.executor = executor
        self.layer = layer
        self.safety = safety
        self.max_batch = max_batch
        self.spec = graph_spec(model, backend=backend)
        self._cuda = model.device.type == "cuda"

    # ---- batch size

    def choose_batch_size(self, structures: Sequence[Atoms]) -> tuple[int, str]:
        """``(batch size, how it was chosen)`` for these structures."""
        if self.batch_size is not None:
            return self.batch_size, "given"
        if not self._cuda:
            return max(1, min(CPU_BATCH_SIZE, len(structures))), "cpu-default"
        return auto_batch_size(self.model, structures, self.spec, safety=self.safety,
                               max_batch=self.max_batch, layer=self.layer), "auto"

    # ---- running

    def run(self, structures: Sequence[Atoms]) -> tuple[ModelOutputs, PipelineReport]:
        """Energies, forces and raw Grad-CAM for ``structures``, in input order."""
        structures = list(structures)
        if not structures:
            raise ModelError("Pipeline.run got no structures")
        batch_size, source = self.choose_batch_size(structures)
        if self._cuda:
            torch.cuda.synchronize(self.model.device)
            torch.cuda.reset_peak_memory_stats(self.model.device)
        start = time.perf_counter()
        parts: list[ModelOutputs] = []
        prepare = [0.0]
        wait = 0.0
        batches = self._batches(structures, batch_size, prepare)
        try:
            while True:
                t0 = time.perf_counter()
                with stage("graphs"):  # the wait for a batch: graph building the model did not hide
                    get = next(batches, None)
                    host = get() if get is not None else None
                if host is None:
                    break
                wait += time.perf_counter() - t0
                with stage("model"):
                    data = host.to(self.model.device, non_blocking=self._cuda)
                    parts.append(self.model.evaluate_batch(data, layer=self.layer))
        finally:
            batches.close()  # stop the workers at once if the model raised
        if self._cuda:
            torch.cuda.synchronize(self.model.device)
        seconds = time.perf_counter() - start
        outputs = ModelOutputs.concatenate(parts)
        peak = int(torch.cuda.max_memory_allocated(self.model.device)) if self._cuda else None
        report = PipelineReport(
            n_structures=len(structures),
            n_atoms=int(outputs.n_atoms.sum()),
            batch_size=batch_size,
            batch_size_source=source,
            device=str(self.model.device),
            dtype=str(self.model.dtype).replace("torch.", ""),
            workers=self.workers,
            executor=self.executor,
            seconds=seconds,
            structures_per_second=len(structures) / seconds if seconds > 0 else float("inf"),
            prepare_seconds=prepare[0],
            wait_seconds=wait,
            peak_memory_bytes=peak,
        )
        return outputs, report

    def _prepare(self, structures: Sequence[Atoms], start: int, stop: int, clock: list[float]) -> HostBatch:
        t0 = time.perf_counter()
        batch = prepare_batch(structures[start:stop], self.spec, start=start, pin_memory=self._cuda)
        clock[0] += time.perf_counter() - t0
        return batch

    def _batches(
        self, structures: Sequence[Atoms], batch_size: int, clock: list[float]
    ) -> Generator[Callable[[], HostBatch], None, None]:
        """Callables giving each prepared batch in order; prepared ahead in threads."""
        spans = chunks(len(structures), batch_size)
        if self.executor == "process" and self.workers > 0:
            yield from self._process_batches(structures, spans, clock)
            return
        if self.workers == 0:
            for start, stop in spans:
                yield partial(self._prepare, structures, start, stop, clock)
            return
        ahead = self.workers + self.prefetch
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="harness-prep") as pool:
            pending: deque[Future[HostBatch]] = deque()
            todo = iter(spans)
            try:
                for start, stop in todo:
                    pending.append(pool.submit(self._prepare, structures, start, stop, clock))
                    if len(pending) >= ahead:
                        break
                while pending:
                    future = pending.popleft()
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending.append(pool.submit(self._prepare, structures, nxt[0], nxt[1], clock))
                    yield future.result
            finally:
                for future in pending:
                    future.cancel()


    def _process_batches(self, structures: Sequence[Atoms], spans: list[tuple[int, int]],
                         clock: list[float]) -> Generator[Callable[[], HostBatch], None, None]:
        from torch.utils.data import DataLoader

        loader: DataLoader[HostBatch] = DataLoader(
            _Spans(structures, spans, self.spec),
            batch_size=None,
            num_workers=self.workers,
            prefetch_factor=self.prefetch,
            pin_memory=self._cuda,
            multiprocessing_context="fork",
        )
        # prepare time is spent in the worker processes; only the wait is seen here
        del clock
        for batch in loader:
            yield partial(_given, batch)


def _given(batch: HostBatch) -> HostBatch:
    return batch


class _Spans(torch.utils.data.Dataset[HostBatch]):
    """Map-style dataset of prepared batches (for DataLoader worker processes)."""

    def __init__(self, structures: Sequence[Atoms], spans: list[tuple[int, int]], spec: GraphSpec) -> None:
        self.structures = structures
        self.spans = spans
        self.spec = spec

    def __len__(self) -> int:
        return len(self.spans)

    def __getitem__(self, k: int) -> HostBatch:
        start, stop = self.spans[k]
        return prepare_batch(self.structures[start:stop], self.spec, start=start)


def evaluate_structures(
    model: Any, structures: Sequence[Atoms], **options: Any
) -> tuple[ModelOutputs, PipelineReport]:
    """``Pipeline(model, **options).run(structures)``."""
    return Pipeline(model, **options).run(structures)


# --------------------------------------------------------------------------- memory


def _peak_bytes(model: Any, host: HostBatch, layer: str | None) -> int:
    device = model.device
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    model.evaluate_batch(host.to(device), layer=layer)
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - base)


def fit_memory_model(edges: Sequence[int], peaks: Sequence[int]) -> tuple[float, float]:
    """``(a, b)`` of ``peak = a + b * edges`` through two probes (b > 0 enforced)."""
    e = np.asarray(edges, dtype=np.float64)
    p = np.asarray(peaks, dtype=np.float64)
    if e.shape != (2,) or p.shape != (2,) or e[1] <= e[0]:
        raise ModelError(f"memory model needs two probes with growing edge counts, got {edges}")
    b = max((p[1] - p[0]) / (e[1] - e[0]), p[1] / e[1] * 0.5, 1.0)
    a = max(p[1] - b * e[1], 0.0)
    return float(a), float(b)


def batch_size_for(budget_bytes: float, a: float, b: float, edges_per_structure: float, max_batch: int) -> int:
    """Largest batch whose modelled peak ``a + b * edges`` fits ``budget_bytes`` (>= 1)."""
    if edges_per_structure <= 0:
        return max_batch
    n = int((budget_bytes - a) // (b * edges_per_structure))
    return int(min(max(n, 1), max_batch))


def auto_batch_size(
    model: Any,
    structures: Sequence[Atoms],
    spec: GraphSpec,
    *,
    safety: float = 0.7,
    max_batch: int = MAX_AUTO_BATCH,
    layer: str | None = None,
) -> int:
    """Batch size from free CUDA memory: fitted memory model, then one confirmed trial."""
    device = model.device
    if device.type != "cuda":
        raise ModelError("auto_batch_size needs a CUDA model")
    n = len(structures)
    probe = [prepare_batch(structures[:k], spec) for k in sorted({1, min(4, n)})]
    if len(probe) == 1:
        return 1
    peaks = [_peak_bytes(model, host, layer) for host in probe]
    a, b = fit_memory_model([h.n_edges for h in probe], peaks)
    free, _ = torch.cuda.mem_get_info(device)
    budget = safety * (free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    edges_per = max(h.n_edges / len(h.n_atoms) for h in probe)
    size = min(batch_size_for(budget, a, b, edges_per, max_batch), n)
    while size > 1:
        sample = [structures[i % n] for i in range(size)]
        try:
            _peak_bytes(model, prepare_batch(sample, spec), layer)
            break
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            size //= 2
    return size
