"""What a checkpoint sweep will run: one task per checkpoint, its pin, its place in the run, its output.

`mlff-harness sweep` (harness.sweep.run) gates many checkpoints with one suite.
This module needs no Dask: it turns the command line (and an optional
manifest of sha256 pins) into :class:`SweepTask` values, validates every input
before anything runs, and decides which tasks a rerun can skip.

A manifest is a JSON file whose paths are relative to the manifest's folder::

    {"checkpoints": {
        "run/ft_epoch-000.model": {"sha256": "<64 hex>", "step": 0},
        "run/ft_epoch-010.model": {"sha256": "<64 hex>", "step": 10, "label": "epoch 10"},
        "other/family-b.model": "<64 hex>"}}

A checkpoint's step comes from the manifest, else from its file name
(``epoch-12``, ``_step_3000``, ``iter12``, ``ckpt-7``: see :func:`step_from_name`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness import __version__
from harness.cache import content_key
from harness.errors import DataError, HarnessError
from harness.files import sha256_file
from harness.reports.results_schema import load_results_file

STAMPS = ".sweep"  # hidden sub-folder of the output: one stamp per finished task (history reads only *.json)
_STEP = re.compile(r"(?<![a-z])(?:epoch|step|iter|iteration|ckpt|checkpoint)[-_=.]?(\d+)", re.IGNORECASE)
_SUFFIXES = (".gz", ".model", ".pt", ".pth", ".ckpt", ".safetensors")


def step_from_name(name: str) -> int | None:
    """The training step or epoch in a checkpoint's file name (the last ``epoch-12``-like part), or None."""
    matches = _STEP.findall(Path(name).name)
    return int(matches[-1]) if matches else None


def checkpoint_stem(path: Path) -> str:
    """A checkpoint's name without its model suffixes: ``ft_epoch-003.model.gz`` -> ``ft_epoch-003``."""
    name = path.name
    while True:
        for suffix in _SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                break
        else:
            return name


class ManifestEntry(BaseModel):
    """One checkpoint of a manifest."""

    model_config = ConfigDict(extra="forbid")
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="sha256 of the checkpoint file")
    step: int | None = Field(default=None, ge=0, description="training step or epoch (overrides the file name)")
    date: str | None = Field(default=None, min_length=1, description="ISO 8601 date of the checkpoint")
    label: str | None = Field(default=None, min_length=1, description="shown in history tables")

    @field_validator("date")
    @classmethod
    def _iso(cls, value: str | None) -> str | None:
        if value is not None:
            datetime.fromisoformat(value)  # ValueError -> a validation error naming the field
        return value


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    checkpoints: dict[str, ManifestEntry] = Field(min_length=1, description="path -> entry, or path -> sha256")

    @field_validator("checkpoints", mode="before")
    @classmethod
    def _bare_hashes(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"sha256": v} if isinstance(v, str) else v for k, v in value.items()}
        return value


def load_manifest(path: Path | str) -> dict[Path, ManifestEntry]:
    """The manifest's entries by resolved checkpoint path; DataError naming the file and entry when malformed."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        manifest = Manifest.model_validate(raw)
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read the sweep manifest ({err})") from None
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DataError(
            f"{path}: invalid sweep manifest at {where}: {first['msg']} "
            '(fix: {"checkpoints": {"<path>": {"sha256": "<64 hex>", "step": N}}} or "<path>": "<64 hex>")'
        ) from None
    entries: dict[Path, ManifestEntry] = {}
    for name, entry in manifest.checkpoints.items():
        target = Path(name).expanduser()
        entries[(target if target.is_absolute() else path.parent / target).resolve()] = entry
    return entries


@dataclass(frozen=True)
class SweepTask:
    """Gate one checkpoint with one suite and write its results document (everything a worker needs)."""

    suite: Path
    checkpoint: Path
    sha256: str | None  # the pin; None only with allow_unpinned
    identity: str  # the pin, or the file's sha256 when unpinned (part of the task's key)
    step: int | None
    date: str | None
    label: str | None
    output: Path
    device: Literal["cpu", "cuda"] = "cpu"
    dtype: Literal["float32", "float64"] | None = None
    batch_size: int | None = None
    cache_dir: Path | None = None
    allow_unpinned: bool = False
    explain: bool = False

    @property
    def name(self) -> str:
        return self.output.stem

    @property
    def stamp(self) -> Path:
        return self.output.parent / STAMPS / f"{self.output.stem}.key"

    def key(self) -> str:
        """What the document depends on: suite file bytes, checkpoint, place in the run, settings, version."""
        return content_key(
            "sweep-task", __version__, sha256_file(self.suite), self.identity, self.step, self.date, self.label,
            self.device, self.dtype, self.batch_size, self.explain,
        )  # fmt: skip

    def checkpoint_fields(self) -> dict[str, Any]:
        return {"step": self.step, "date": self.date, "label": self.label}


def is_finished(task: SweepTask) -> bool:
    """True when the task's document exists, is a valid results document and was written for this very task."""
    if not (task.output.is_file() and task.stamp.is_file()):
        return False
    try:
        load_results_file(task.output)
    except HarnessError:
        return False
    return task.stamp.read_text(encoding="utf-8").strip() == task.key()


def plan_sweep(
    suite: Path | str,
    checkpoints: list[Path | str],
    output: Path | str,
    *,
    manifest: Path | str | None = None,
    allow_unpinned: bool = False,
    **settings: Any,
) -> list[SweepTask]:
    """One task per checkpoint, validated: raises DataError (bad input) naming the checkpoint and the fix.

    Without ``checkpoints`` every checkpoint of the manifest is swept. ``settings``
    are SweepTask fields (device, dtype, batch_size, cache_dir, explain).
    """
    suite = Path(suite).resolve()
    if not suite.is_file():
        raise DataError(f"suite {suite} is not a file (fix: pass one *.suite.yaml file)")
    if manifest is None and not allow_unpinned:
        raise DataError("no checkpoint pins (fix: pass --manifest SHA256S.json, or --allow-unpinned for own files)")
    pins = load_manifest(manifest) if manifest is not None else {}
    paths = [Path(c).resolve() for c in checkpoints] or sorted(pins)
    if not paths:
        raise DataError("no checkpoints to sweep (fix: name checkpoint files, or list them in --manifest)")
    folder = Path(output).resolve()
    tasks: list[SweepTask] = []
    by_output: dict[Path, Path] = {}
    for path in paths:
        if not path.is_file():
            raise DataError(f"checkpoint {path} does not exist (fix: check the path)")
        entry = pins.get(path)
        if manifest is not None and entry is None and not allow_unpinned:
            raise DataError(f"checkpoint {path} is not in the manifest {manifest} (fix: add its sha256 there)")
        step = entry.step if entry is not None and entry.step is not None else step_from_name(path.name)
        target = folder / f"{checkpoint_stem(path)}.json"
        if target in by_output:
            raise DataError(f"checkpoints {by_output[target]} and {path} would both write {target} (fix: rename one)")
        by_output[target] = path
        sha = entry.sha256.lower() if entry is not None else None
        tasks.append(
            SweepTask(
                suite=suite, checkpoint=path, sha256=sha, identity=sha or sha256_file(path), step=step,
                date=entry.date if entry is not None else None,
                label=entry.label if entry is not None and entry.label else (None if step is not None else target.stem),
                output=target, allow_unpinned=allow_unpinned, **settings,
            )
        )  # fmt: skip
    _check_steps(tasks)
    return tasks


def _check_steps(tasks: list[SweepTask]) -> None:
    """Every checkpoint has a distinct step, or none has one (then history orders by label/mtime)."""
    lacking = [t.checkpoint.name for t in tasks if t.step is None]
    if lacking and len(lacking) < len(tasks):
        raise DataError(
            f"no training step for {', '.join(lacking)} while other checkpoints have one (fix: name them like "
            "'..._epoch-12.model', or give 'step' in the manifest)"
        )
    seen: dict[int, Path] = {}
    for t in tasks:
        if t.step is not None and t.step in seen:
            raise DataError(
                f"checkpoints {seen[t.step].name} and {t.checkpoint.name} both sit at step {t.step} "
                "(fix: give distinct steps in the manifest)"
            )
        if t.step is not None:
            seen[t.step] = t.checkpoint
