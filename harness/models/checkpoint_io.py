"""Unpickling torch checkpoints on whatever device this machine has.

A MACE model saved on a GPU tags every storage ``"cuda:0"``. ``torch.load``'s
``map_location`` moves the storages of the outer file, but e3nn's
code-generated modules (``e3nn/util/codegen/_mixin.py``) pickle their
``torch.fx`` graphs a second time: the tensors inside those bytes are rebuilt
by ``torch.storage._load_from_bytes``, which calls ``torch.load`` with no map
location, and by ``torch.jit.load`` (TorchScript code, e3nn's ``jit_mode=
"script"``), also with none. On a machine without CUDA both fail.

:func:`storages_restored_on` fixes every level at once for the duration of a
load: it registers, with a priority above torch's own, a restore function that
puts any storage tagged for another device on the requested one, and gives
``torch.jit.load`` that device as its default map location. Both are removed
again when the block ends, whatever happens inside it.

This module only reads; it does not import mace (the pickle does, through the
classes it names, so the caller imports mace first).
"""

from __future__ import annotations

import functools
import gzip
import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch

from harness.errors import ModelError

# torch's own restorers have priorities 10 (cpu) to 26; ours goes before them all.
_PRIORITY = -100


def resolve_device(device: str | torch.device, *, source: str) -> torch.device:
    """``device`` as a torch.device this machine can use, or a :class:`ModelError` saying why not."""
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ModelError(f"{source}: device {device!r} is not a torch device ({error}); use 'cpu' or 'cuda'") from None
    if target.type == "cpu":
        return target
    if target.type != "cuda":
        raise ModelError(f"{source}: device {device!r} is not supported; use 'cpu' or 'cuda'")
    if not torch.cuda.is_available():
        built = (
            "this torch is a CPU-only build"
            if torch.version.cuda is None
            else f"torch was built for CUDA {torch.version.cuda} but no GPU is visible"
        )
        raise ModelError(
            f"{source}: device 'cuda' was asked for but CUDA is not available here ({built}; "
            f"torch {torch.__version__}) (fix: run with --device cpu, or on a machine with a "
            "CUDA GPU and a CUDA build of torch)"
        )
    count = torch.cuda.device_count()
    if target.index is not None and target.index >= count:
        raise ModelError(
            f"{source}: device {device!r} was asked for but this machine has {count} CUDA device(s) "
            f"(fix: use cuda:0..cuda:{count - 1})"
        )
    return target


def _never_tag(storage: Any) -> None:
    """Saving is left to torch's own taggers."""
    return None


def _restore_on(target: torch.device, storage: Any, location: str) -> Any:
    if location == "cpu" or location.startswith("meta"):
        return None  # torch's own restorer
    if target.type == "cpu":
        return storage  # the loader made it on the CPU already
    return storage.to(device=target)


@contextmanager
def storages_restored_on(device: torch.device) -> Iterator[None]:
    """Inside the block, every unpickled storage tagged for an accelerator lands on ``device``,
    including the nested loads of e3nn's code-generated modules (see the module docstring)."""
    restore = functools.partial(_restore_on, device)
    entry = (_PRIORITY, _never_tag, restore)
    registry = torch.serialization._package_registry  # noqa: SLF001 - no public unregister
    jit_load = torch.jit.load

    @functools.wraps(jit_load)
    def jit_load_on_device(f: Any, map_location: Any = None, *args: Any, **kwargs: Any) -> Any:
        return jit_load(f, device if map_location is None else map_location, *args, **kwargs)

    registry.insert(0, entry)  # first; register_package would sort, comparing functions on a tie
    torch.jit.load = jit_load_on_device
    try:
        yield
    finally:
        torch.jit.load = jit_load
        while entry in registry:
            registry.remove(entry)


def unpickle_checkpoint(source: Path | IO[bytes], device: torch.device, *, name: str) -> torch.nn.Module:
    """The torch module in a pickled checkpoint, its storages on ``device``.

    Takes a full pickled model (``torch.save(model)``, as mace's training writes
    ``*.model``) or a dict with a ``"model"`` module; a training checkpoint
    holding only a ``state_dict`` is refused with what to pass instead.
    ``name`` names the file in errors. The caller checks the file's sha256
    first: unpickling can run code.
    """
    if _is_torchscript(source):
        raise ModelError(
            f"checkpoint {name} is a TorchScript (compiled) model, as mace_run_train writes to "
            "<name>_compiled.model; Grad-CAM needs the Python model's layers (fix: pass <name>.model "
            "from the same run)"
        )
    try:
        with storages_restored_on(device):
            loaded = torch.load(source, map_location=device, weights_only=False)
    except Exception as error:  # noqa: BLE001 - any unpickling failure names the file
        raise ModelError(
            f"checkpoint {name}: torch.load failed ({type(error).__name__}: {error}); "
            "expected a full pickled MACE model as written by mace's training (*.model)"
        ) from error
    return _module_in(loaded, name=name)


def _is_torchscript(source: Path | IO[bytes]) -> bool:
    """A ``torch.jit.save`` archive: a zip whose members include ``<root>/constants.pkl``."""
    position = source.tell() if not isinstance(source, Path) else None
    try:
        if not zipfile.is_zipfile(source):
            return False
        with zipfile.ZipFile(source) as archive:
            return any(member.endswith("/constants.pkl") for member in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False  # torch.load reports it
    finally:
        if position is not None:
            source.seek(position)  # type: ignore[union-attr]


def _module_in(loaded: Any, *, name: str) -> torch.nn.Module:
    if isinstance(loaded, torch.nn.Module):
        return loaded
    if isinstance(loaded, dict):
        model = loaded.get("model")
        if isinstance(model, torch.nn.Module):
            return model
        keys = ", ".join(repr(k) for k in list(loaded)[:6]) + (", ..." if len(loaded) > 6 else "")
        if isinstance(model, dict) and model and all(isinstance(v, torch.Tensor) for v in model.values()):
            raise ModelError(
                f"checkpoint {name} is a training checkpoint (keys {keys}) whose 'model' holds only "
                f"weights (a state_dict of {len(model)} tensors), not the model's architecture, so "
                "it cannot be rebuilt (fix: pass the full model mace_run_train writes beside it, "
                "<name>.model in the run folder, or convert that with `mlff-harness convert`)"
            )
        if loaded and all(isinstance(v, torch.Tensor) for v in loaded.values()):
            raise ModelError(
                f"checkpoint {name} holds a dict of {len(loaded)} tensors (a state_dict) without the model's "
                "architecture (fix: pass the full pickled model, torch.save(model), as mace_run_train "
                "writes it (<name>.model), or a .safetensors file from `mlff-harness convert`)"
            )
        raise ModelError(
            f"checkpoint {name} holds a dict with keys {keys} but no 'model' module "
            "(fix: pass the full pickled MACE model, <name>.model as mace_run_train writes it)"
        )
    raise ModelError(
        f"checkpoint {name} holds a {type(loaded).__name__}, not a torch module "
        "(fix: pass the full pickled MACE model, <name>.model as mace_run_train writes it)"
    )


def open_checkpoint(path: Path) -> Path | io.BytesIO:
    """The checkpoint as torch.load takes it; gzip files (magic 1f 8b) are decompressed in memory."""
    with open(path, "rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            return path
    try:
        with gzip.open(path, "rb") as handle:
            return io.BytesIO(handle.read())
    except (OSError, EOFError) as error:
        raise ModelError(f"checkpoint {path}: truncated or corrupt gzip ({error})") from None
