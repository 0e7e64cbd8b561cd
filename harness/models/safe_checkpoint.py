"""The safe checkpoint format: weights as safetensors, architecture as JSON.

A pickled MACE checkpoint runs code when it is loaded. A safe checkpoint is one
``.safetensors`` file: its tensors are the module's ``state_dict`` and its
``__metadata__`` (string -> string) holds

* ``format``: ``mlff-harness/safe-mace``;
* ``format_version``: ``1``;
* ``architecture``: JSON, every constructor argument of the MACE model, with
  classes and functions named, never imported by path: each name must be in
  an allow-list here (:data:`MODEL_CLASSES`, :data:`INTERACTION_CLASSES`, ...);
* ``source_sha256`` (optional): the sha256 of the checkpoint it was converted from.

This module only reads, writes and validates; it does not import mace. Building
the module from the architecture is :func:`harness.models.mace.architecture.build_from_architecture`.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness.errors import ModelError
from harness.files import atomic_write_bytes

FORMAT_NAME = "mlff-harness/safe-mace"
FORMAT_VERSION = "1"
SUFFIX = ".safetensors"

# The only names an architecture may use. harness.models.mace maps each to its object.
MODEL_CLASSES = ("MACE", "ScaleShiftMACE")
INTERACTION_CLASSES = (
    "RealAgnosticInteractionBlock",
    "RealAgnosticResidualInteractionBlock",
    "RealAgnosticAttResidualInteractionBlock",
    "RealAgnosticDensityInteractionBlock",
    "RealAgnosticDensityResidualInteractionBlock",
    "RealAgnosticResidualNonLinearInteractionBlock",
)
READOUT_CLASSES = ("NonLinearReadoutBlock",)
GATES = ("silu", "tanh", "abs", "none")
RADIAL_TYPES = ("bessel", "gaussian", "chebyshev")
DISTANCE_TRANSFORMS = ("None", "Agnesi", "Soft")

_METADATA_KEYS = {"format", "format_version", "architecture", "source_sha256"}
_IRREPS = re.compile(r"^\d+x\d+[eo](\+\d+x\d+[eo])*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FLOAT_DTYPES = (torch.float32, torch.float64)


# --------------------------------------------------------------------------- value checks


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _positive_int(value: Any) -> bool:
    return _is_int(value) and value > 0


def _positive_number(value: Any) -> bool:
    return _is_number(value) and value > 0


def _bool(value: Any) -> bool:
    return isinstance(value, bool)


def _one_of(names: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and value in names


def _irreps(value: Any) -> bool:
    return isinstance(value, str) and _IRREPS.match(value.replace(" ", "")) is not None


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_number(v) for v in value)


def _number_or_numbers(value: Any) -> bool:
    return _is_number(value) or _numbers(value)


def _energies(value: Any) -> bool:
    """One list per head, or a flat list (single head)."""
    if _numbers(value):
        return True
    return isinstance(value, list) and bool(value) and all(_numbers(row) for row in value)


def _int_list(value: Any, *, minimum: int) -> bool:
    return isinstance(value, list) and all(_is_int(v) and v >= minimum for v in value)


def _heads(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, str) and v for v in value)
        and len(set(value)) == len(value)
    )


# field -> (check, what a valid value is)
FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model_class": (_one_of(MODEL_CLASSES), f"one of {list(MODEL_CLASSES)}"),
    "r_max": (_positive_number, "a positive number (angstrom)"),
    "num_bessel": (_positive_int, "a positive integer"),
    "num_polynomial_cutoff": (_positive_int, "a positive integer"),
    "max_ell": (lambda v: _is_int(v) and 0 <= v <= 8, "an integer in 0..8"),
    "interaction_cls": (_one_of(INTERACTION_CLASSES), f"one of {list(INTERACTION_CLASSES)}"),
    "interaction_cls_first": (_one_of(INTERACTION_CLASSES), f"one of {list(INTERACTION_CLASSES)}"),
    "readout_cls": (_one_of(READOUT_CLASSES), f"one of {list(READOUT_CLASSES)}"),
    "num_interactions": (_positive_int, "a positive integer"),
    "num_elements": (_positive_int, "a positive integer"),
    "hidden_irreps": (_irreps, "an irreps string such as '32x0e+32x1o'"),
    "MLP_irreps": (_irreps, "an irreps string such as '16x0e'"),
    "edge_irreps": (lambda v: v is None or _irreps(v), "null or an irreps string"),
    "atomic_energies": (_energies, "a list of finite numbers (one list per head)"),
    "avg_num_neighbors": (_positive_number, "a positive number"),
    "atomic_numbers": (
        lambda v: _int_list(v, minimum=1) and bool(v) and max(v) <= 118 and v == sorted(set(v)),
        "a sorted list of distinct atomic numbers 1..118",
    ),
    "correlation": (
        lambda v: _positive_int(v) or (_int_list(v, minimum=1) and bool(v)),
        "a positive integer or a list of them (one per interaction)",
    ),
    "gate": (_one_of(GATES), f"one of {list(GATES)}"),
    "radial_MLP": (lambda v: _int_list(v, minimum=1), "a list of positive integers"),
    "radial_type": (_one_of(RADIAL_TYPES), f"one of {list(RADIAL_TYPES)}"),
    "distance_transform": (_one_of(DISTANCE_TRANSFORMS), f"one of {list(DISTANCE_TRANSFORMS)}"),
    "heads": (_heads, "a non-empty list of distinct head names"),
    "pair_repulsion": (_bool, "true or false"),
    "apply_cutoff": (_bool, "true or false"),
    "use_reduced_cg": (_bool, "true or false"),
    "use_so3": (_bool, "true or false"),
    "use_agnostic_product": (_bool, "true or false"),
    "use_last_readout_only": (_bool, "true or false"),
    "use_edge_irreps_first": (_bool, "true or false"),
    "keep_last_layer_irreps": (_bool, "true or false"),
    "atomic_inter_scale": (_number_or_numbers, "a finite number or list of them (ScaleShiftMACE only)"),
    "atomic_inter_shift": (_number_or_numbers, "a finite number or list of them (ScaleShiftMACE only)"),
}
_SCALE_SHIFT = ("atomic_inter_scale", "atomic_inter_shift")
REQUIRED = tuple(key for key in FIELDS if key not in _SCALE_SHIFT)


def validate_architecture(architecture: Any, *, source: str) -> dict[str, Any]:
    """Check every key and value; return a copy. Raises :class:`ModelError` naming ``source`` and the key."""
    if not isinstance(architecture, dict):
        raise ModelError(f"{source}: architecture must be a JSON object, got {type(architecture).__name__}")
    unknown = sorted(set(architecture) - set(FIELDS))
    if unknown:
        raise ModelError(
            f"{source}: architecture key {unknown[0]!r} is not allowed "
            f"(allowed keys: {', '.join(FIELDS)})"
        )
    missing = [key for key in REQUIRED if key not in architecture]
    if missing:
        raise ModelError(f"{source}: architecture key {missing[0]!r} is missing")
    for key, value in architecture.items():
        check, expected = FIELDS[key]
        if not check(value):
            raise ModelError(f"{source}: architecture key {key!r} = {value!r} is invalid; expected {expected}")
    scale_shift = architecture["model_class"] == "ScaleShiftMACE"
    for key in _SCALE_SHIFT:
        if scale_shift and key not in architecture:
            raise ModelError(f"{source}: architecture key {key!r} is missing (needed by ScaleShiftMACE)")
        if not scale_shift and key in architecture:
            raise ModelError(f"{source}: architecture key {key!r} is only allowed for ScaleShiftMACE")
    if len(architecture["atomic_numbers"]) != architecture["num_elements"]:
        raise ModelError(
            f"{source}: architecture key 'atomic_numbers' has {len(architecture['atomic_numbers'])} "
            f"entries but 'num_elements' is {architecture['num_elements']}"
        )
    correlation = architecture["correlation"]
    if isinstance(correlation, list) and len(correlation) != architecture["num_interactions"]:
        raise ModelError(
            f"{source}: architecture key 'correlation' has {len(correlation)} entries "
            f"but 'num_interactions' is {architecture['num_interactions']}"
        )
    return json.loads(json.dumps(architecture))


# --------------------------------------------------------------------------- the file


@dataclass(frozen=True)
class SafeCheckpoint:
    """A validated safe checkpoint: tensors, architecture, and the float dtype of its weights."""

    path: Path
    architecture: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    dtype: torch.dtype
    source_sha256: str | None


def is_safe_checkpoint(path: Path | str) -> bool:
    """True for a ``.safetensors`` path (the format is chosen by name, never by sniffing a pickle)."""
    return Path(path).name.endswith(SUFFIX)


def write_safe_checkpoint(
    path: Path | str,
    tensors: Mapping[str, torch.Tensor],
    architecture: dict[str, Any],
    *,
    source_sha256: str | None = None,
) -> None:
    """Validate and write atomically (temp file in the same folder, then rename)."""
    from safetensors.torch import save

    path = Path(path)
    if not is_safe_checkpoint(path):
        raise ModelError(f"{path}: a safe checkpoint's name must end in {SUFFIX}")
    architecture = validate_architecture(architecture, source=str(path))
    if source_sha256 is not None and not _SHA256.match(source_sha256):
        raise ModelError(f"{path}: source_sha256 {source_sha256!r} is not 64 lower-case hex digits")
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "architecture": json.dumps(architecture, sort_keys=True),
    }
    if source_sha256 is not None:
        metadata["source_sha256"] = source_sha256
    # clone: safetensors refuses tensors that share storage
    data = {key: t.detach().cpu().contiguous().clone() for key, t in tensors.items()}
    _check_tensors(data, source=str(path))
    blob = _canonical(save(data, metadata=metadata))
    atomic_write_bytes(path, blob, mode=0o644)  # a checkpoint is meant to be shared (less the umask)


def _canonical(blob: bytes) -> bytes:
    """The same file with ``__metadata__`` keys sorted: safetensors writes them in hash-map
    order, which changes between runs, and a checkpoint's sha256 pin needs stable bytes."""
    length = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8 : 8 + length])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes with spaces
    return struct.pack("<Q", len(text)) + text + blob[8 + length :]


def read_safe_checkpoint(path: Path | str) -> SafeCheckpoint:
    """Read and validate a safe checkpoint; no pickle, no import of any named class."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"safe checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata()
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open is no dict
    except Exception as error:  # noqa: BLE001 - safetensors raises its own error types
        raise ModelError(
            f"safe checkpoint {path}: cannot read it as safetensors "
            f"({type(error).__name__}: {error}); the file is truncated, corrupt or not safetensors"
        ) from None
    source = f"safe checkpoint {path}"
    architecture, source_sha256 = _parse_metadata(metadata, source=source)
    dtype = _check_tensors(tensors, source=source)
    return SafeCheckpoint(path, architecture, tensors, dtype, source_sha256)


def _parse_metadata(metadata: dict[str, str] | None, *, source: str) -> tuple[dict[str, Any], str | None]:
    if not metadata:
        raise ModelError(f"{source}: no __metadata__; expected the keys {sorted(_METADATA_KEYS)}")
    unknown = sorted(set(metadata) - _METADATA_KEYS)
    if unknown:
        raise ModelError(f"{source}: metadata key {unknown[0]!r} is not allowed (allowed: {sorted(_METADATA_KEYS)})")
    if metadata.get("format") != FORMAT_NAME:
        raise ModelError(f"{source}: metadata key 'format' is {metadata.get('format')!r}, expected {FORMAT_NAME!r}")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"{source}: metadata key 'format_version' is {metadata.get('format_version')!r}; this "
            f"harness reads version {FORMAT_VERSION} (fix: convert the checkpoint again with this harness)"
        )
    if "architecture" not in metadata:
        raise ModelError(f"{source}: metadata key 'architecture' is missing")
    try:
        architecture = json.loads(metadata["architecture"])
    except json.JSONDecodeError as error:
        raise ModelError(f"{source}: metadata key 'architecture' is not valid JSON ({error})") from None
    source_sha256 = metadata.get("source_sha256")
    if source_sha256 is not None and not _SHA256.match(source_sha256):
        raise ModelError(f"{source}: metadata key 'source_sha256' is not 64 lower-case hex digits")
    return validate_architecture(architecture, source=source), source_sha256


def _check_tensors(tensors: Mapping[str, torch.Tensor], *, source: str) -> torch.dtype:
    """One float dtype (float32 or float64) for every float tensor, all values finite."""
    if not tensors:
        raise ModelError(f"{source}: holds no tensors")
    float_dtypes = {t.dtype for t in tensors.values() if t.is_floating_point()}
    if len(float_dtypes) != 1 or not float_dtypes <= set(_FLOAT_DTYPES):
        raise ModelError(
            f"{source}: floating tensors have dtypes {sorted(map(str, float_dtypes))}; "
            "expected all float32 or all float64"
        )
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelError(f"{source}: tensor {key!r} has NaN or infinite values")
    return float_dtypes.pop()
