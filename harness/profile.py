"""Where a gate run's time goes: exclusive seconds per stage (``--harness-profile``).

The stages are the steps of the data flow: ``read`` (reference structures),
``load`` (importing the model family and loading checkpoints), ``graphs``
(neighbour lists, model inputs and batches; on a GPU, where threads build them
beside the model, the model's wait for them), ``model`` (forward and backward
passes), ``SOAP``, ``surrogate`` (cross-validated fits), ``SHAP`` (TreeSHAP),
``checks`` (everything else a check does) and ``report`` (results and HTML). Code marks a stage with
``with stage("SOAP"): ...``. Stages nest: time inside an inner stage is
charged to the inner stage only, so the stage times add up to the time spent
inside any stage (exclusive timing). With no collector active (the default),
:func:`stage` costs one global lookup.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

STAGES: tuple[str, ...] = ("read", "load", "graphs", "model", "SOAP", "surrogate", "SHAP", "checks", "report")


class Profile:
    """Exclusive wall-clock seconds, CPU seconds of this process, and entry counts per stage.

    CPU seconds count this process only (not worker processes such as the
    surrogate's folds); on a shared machine they show the work where wall
    seconds also show the wait.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[str] = []
        self._since = 0.0
        self._cpu_since = 0.0

    def _charge(self) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        if self._stack:
            top = self._stack[-1]
            self.seconds[top] = self.seconds.get(top, 0.0) + (now - self._since)
            self.cpu_seconds[top] = self.cpu_seconds.get(top, 0.0) + (cpu - self._cpu_since)
        self._since, self._cpu_since = now, cpu

    def enter(self, name: str) -> None:
        self._charge()
        self._stack.append(name)
        self.calls[name] = self.calls.get(name, 0) + 1

    def exit(self, name: str) -> None:
        self._charge()
        if not self._stack or self._stack[-1] != name:
            raise RuntimeError(f"profile stage {name!r} ended out of order (open: {self._stack})")
        self._stack.pop()

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def table(self) -> str:
        """One line per stage: seconds, share of the profiled total, CPU seconds of this process, times entered."""
        names = [s for s in STAGES if s in self.seconds] + sorted(set(self.seconds) - set(STAGES))
        total = self.total
        lines = [f"{'stage':<10} {'seconds':>8} {'share':>6} {'cpu_s':>8} {'entered':>7}"]
        for name in names:
            share = self.seconds[name] / total if total > 0 else 0.0
            lines.append(
                f"{name:<10} {self.seconds[name]:>8.2f} {share:>6.1%} {self.cpu_seconds.get(name, 0.0):>8.2f} "
                f"{self.calls.get(name, 0):>7d}"
            )
        lines.append(f"{'total':<10} {total:>8.2f} {'':>6} {sum(self.cpu_seconds.values()):>8.2f}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, float]:
        return {name: round(value, 4) for name, value in self.seconds.items()}

    def cpu_json(self) -> dict[str, float]:
        return {name: round(value, 4) for name, value in self.cpu_seconds.items()}


_active: Profile | None = None


def start() -> Profile:
    """Collect stage times from now on (replaces any active collector); returns the collector."""
    global _active
    _active = Profile()
    return _active


def stop() -> Profile | None:
    """Stop collecting; returns the collector that was active."""
    global _active
    found, _active = _active, None
    return found


def active() -> Profile | None:
    return _active


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Charge the time spent inside the block (less inner stages) to ``name``."""
    profile = _active
    if profile is None:
        yield
        return
    profile.enter(name)
    try:
        yield
    finally:
        profile.exit(name)
