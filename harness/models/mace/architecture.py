"""The safe checkpoint format's MACE side: no pickle anywhere.

The architecture as plain JSON and the module rebuilt from it, weights from safetensors.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.errors import ModelError
from harness.models.mace._imports import _as_dtype, _default_dtype, _mace, _quiet_torchscript

_GATE_FUNCTIONS: dict[str, Any] = {
    "silu": torch.nn.functional.silu,
    "tanh": torch.tanh,
    "abs": torch.abs,
    "none": None,
}



_RADIAL_NAMES = {"BesselBasis": "bessel", "GaussianBasis": "gaussian", "ChebychevBasis": "chebyshev"}



_TRANSFORM_NAMES = {"AgnesiTransform": "Agnesi", "SoftTransform": "Soft"}



def _allowed_classes() -> dict[str, dict[str, type]]:
    """Allow-listed names -> mace classes, looked up by fixed names only."""
    from harness.models import safe_checkpoint as safe

    modules = _mace().modules
    return {
        "model_class": {name: getattr(modules, name) for name in safe.MODEL_CLASSES},
        "interaction": {name: modules.interaction_classes[name] for name in safe.INTERACTION_CLASSES},
        "readout": {name: getattr(modules, name) for name in safe.READOUT_CLASSES},
    }



def _name_of(obj: Any, table: dict[str, Any], what: str, source: str) -> str:
    for name, candidate in table.items():
        if obj is candidate:
            return name
    raise ModelError(
        f"{source}: {what} {getattr(obj, '__name__', obj)!r} is not supported by the safe "
        f"format (supported: {', '.join(table)})"
    )



def _plain(value: Any) -> Any:
    """Tensors and arrays as (nested) Python floats, keeping their shape."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().tolist()
    if isinstance(value, np.ndarray):
        return value.astype(np.float64).tolist()
    return value



def describe_architecture(module: torch.nn.Module, *, source: str = "model") -> dict[str, Any]:
    """Every constructor argument of a MACE/ScaleShiftMACE module, as validated plain JSON."""
    from harness.models.safe_checkpoint import validate_architecture

    # a MACE module: its submodules and buffers are mace's (untyped), read as mace builds them
    mace_module: Any = module
    classes = _allowed_classes()
    model_class = _name_of(type(mace_module), classes["model_class"], "model class", source)
    for unsupported in ("embedding_specs", "joint_embedding", "embedding_readout", "pair_repulsion_fn"):
        if hasattr(module, unsupported):
            raise ModelError(f"{source}: models with {unsupported!r} are not supported by the safe format")
    if getattr(module, "lammps_mliap", False):
        raise ModelError(f"{source}: LAMMPS-MLIAP models are not supported by the safe format")
    o3 = _mace().o3
    heads = list(getattr(module, "heads", None) or ["Default"])
    readout = mace_module.readouts[-1]
    mlp = o3.Irreps(str(readout.hidden_irreps))
    acts = getattr(getattr(readout, "non_linearity", None), "acts", None) or [None]
    gate = getattr(acts[0], "f", acts[0])
    radial = mace_module.radial_embedding
    transform = getattr(radial, "distance_transform", None)
    n_interactions = int(mace_module.num_interactions.item())
    hidden = str(mace_module.products[0].linear.irreps_out)
    last = str(mace_module.products[-1].linear.irreps_out)
    correlations = [
        len(product.symmetric_contractions.contractions[0].weights) + 1 for product in mace_module.products
    ]
    architecture: dict[str, Any] = {
        "model_class": model_class,
        "r_max": float(mace_module.r_max.item()),
        "num_bessel": int(radial.bessel_fn.bessel_weights.numel()),
        "num_polynomial_cutoff": int(radial.cutoff_fn.p.item()),
        "max_ell": int(mace_module.spherical_harmonics._lmax),  # noqa: SLF001 - mace reads it the same way
        "interaction_cls": _name_of(type(mace_module.interactions[-1]), classes["interaction"], "interaction", source),
        "interaction_cls_first": _name_of(
            type(mace_module.interactions[0]), classes["interaction"], "interaction", source
        ),
        "readout_cls": _name_of(type(readout), classes["readout"], "readout", source),
        "num_interactions": n_interactions,
        "num_elements": len(mace_module.atomic_numbers),
        "hidden_irreps": hidden,
        "MLP_irreps": str(o3.Irreps(f"{max(1, mlp.count((0, 1)) // len(heads))}x0e")),
        "edge_irreps": None if mace_module.edge_irreps is None else str(mace_module.edge_irreps),
        "atomic_energies": _plain(mace_module.atomic_energies_fn.atomic_energies),
        "avg_num_neighbors": float(mace_module.interactions[0].avg_num_neighbors),
        "atomic_numbers": [int(z) for z in mace_module.atomic_numbers.tolist()],
        "correlation": correlations[0] if len(set(correlations)) == 1 else correlations,
        "gate": _name_of(gate, _GATE_FUNCTIONS, "gate", source),
        "radial_MLP": [int(h) for h in mace_module.interactions[0].conv_tp_weights.hs[1:-1]],
        "radial_type": _RADIAL_NAMES.get(type(radial.bessel_fn).__name__, type(radial.bessel_fn).__name__),
        "distance_transform": "None" if transform is None else _TRANSFORM_NAMES.get(
            type(transform).__name__, type(transform).__name__
        ),
        "heads": heads,
        "pair_repulsion": False,
        "apply_cutoff": bool(getattr(module, "apply_cutoff", True)),
        "use_reduced_cg": bool(getattr(module, "use_reduced_cg", False)),
        "use_so3": bool(getattr(module, "use_so3", False)),
        "use_agnostic_product": bool(getattr(module, "use_agnostic_product", False)),
        "use_last_readout_only": bool(getattr(module, "use_last_readout_only", False)),
        "use_edge_irreps_first": bool(getattr(module, "use_edge_irreps_first", False)),
        "keep_last_layer_irreps": n_interactions > 1 and last == hidden and last != str(o3.Irreps(hidden)[0]),
    }
    if model_class == "ScaleShiftMACE":
        architecture["atomic_inter_scale"] = _plain(mace_module.scale_shift.scale)
        architecture["atomic_inter_shift"] = _plain(mace_module.scale_shift.shift)
    return validate_architecture(architecture, source=source)



def build_from_architecture(
    architecture: dict[str, Any], *, dtype: str | torch.dtype = "float64", source: str = "architecture"
) -> torch.nn.Module:
    """A MACE module from a described architecture (validated here; classes from allow-lists only).

    Its weights are random (seeded, leaving torch's RNG as it was) until a state_dict is loaded.
    """
    from harness.models.safe_checkpoint import validate_architecture

    arch = validate_architecture(architecture, source=source)
    torch_dtype = _as_dtype(dtype)
    classes = _allowed_classes()
    o3 = _mace().o3
    kwargs: dict[str, Any] = dict(
        r_max=arch["r_max"],
        num_bessel=arch["num_bessel"],
        num_polynomial_cutoff=arch["num_polynomial_cutoff"],
        max_ell=arch["max_ell"],
        interaction_cls=classes["interaction"][arch["interaction_cls"]],
        interaction_cls_first=classes["interaction"][arch["interaction_cls_first"]],
        readout_cls=classes["readout"][arch["readout_cls"]],
        num_interactions=arch["num_interactions"],
        num_elements=arch["num_elements"],
        hidden_irreps=o3.Irreps(arch["hidden_irreps"]),
        MLP_irreps=o3.Irreps(arch["MLP_irreps"]),
        edge_irreps=None if arch["edge_irreps"] is None else o3.Irreps(arch["edge_irreps"]),
        atomic_energies=np.asarray(arch["atomic_energies"], dtype=np.float64),
        avg_num_neighbors=arch["avg_num_neighbors"],
        atomic_numbers=arch["atomic_numbers"],
        correlation=arch["correlation"],
        gate=_GATE_FUNCTIONS[arch["gate"]],
        radial_MLP=arch["radial_MLP"],
        radial_type=arch["radial_type"],
        distance_transform=arch["distance_transform"],
        heads=arch["heads"],
        pair_repulsion=arch["pair_repulsion"],
        apply_cutoff=arch["apply_cutoff"],
        use_reduced_cg=arch["use_reduced_cg"],
        use_so3=arch["use_so3"],
        use_agnostic_product=arch["use_agnostic_product"],
        use_last_readout_only=arch["use_last_readout_only"],
        use_edge_irreps_first=arch["use_edge_irreps_first"],
        keep_last_layer_irreps=arch["keep_last_layer_irreps"],
    )
    model_class = classes["model_class"][arch["model_class"]]
    if arch["model_class"] == "ScaleShiftMACE":
        kwargs["atomic_inter_scale"] = arch["atomic_inter_scale"]
        kwargs["atomic_inter_shift"] = arch["atomic_inter_shift"]
    with torch.random.fork_rng(devices=[]), _default_dtype(torch_dtype), warnings.catch_warnings():
        _quiet_torchscript()
        torch.manual_seed(0)
        try:
            module = model_class(**kwargs)
        except Exception as error:  # noqa: BLE001 - a bad combination of valid values
            raise ModelError(
                f"{source}: mace cannot build {arch['model_class']} from this architecture "
                f"({type(error).__name__}: {error})"
            ) from None
    return module.to(torch_dtype)



def save_safe_model(
    module: torch.nn.Module, path: Path | str, *, source_sha256: str | None = None
) -> list[str]:
    """Write ``module`` as a safe checkpoint (architecture JSON + safetensors state_dict).

    The file holds exactly the tensors of the module that the architecture
    builds. A trained module can carry extra non-parameter buffers (constants
    cached by torch.fx tracing, e.g. ``..._tensor_constant0``); those are left
    out and their names returned. A parameter the rebuilt module lacks, or a
    shape that differs, is an error. (The ``convert`` command then proves the
    rebuilt model gives the same numbers.)
    """
    from harness.models.safe_checkpoint import write_safe_checkpoint

    source = str(path)
    architecture = describe_architecture(module, source=source)
    state = module.state_dict()
    dtype = next((t.dtype for t in state.values() if t.is_floating_point()), torch.float64)
    rebuilt = build_from_architecture(architecture, dtype=dtype, source=source).state_dict()
    parameters = {name for name, _ in module.named_parameters()}
    missing = sorted(set(rebuilt) - set(state))
    extra = sorted(set(state) - set(rebuilt))
    learned = [key for key in extra if key in parameters]
    if missing or learned:
        raise ModelError(
            f"{source}: the described architecture does not reproduce the module: "
            f"missing tensors {missing[:3]}, parameters it lacks {learned[:3]}"
        )
    for key, tensor in rebuilt.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ModelError(
                f"{source}: tensor {key!r} has shape {tuple(state[key].shape)}, the described "
                f"architecture builds {tuple(tensor.shape)}"
            )
    tensors = {key: state[key] for key in rebuilt}
    write_safe_checkpoint(path, tensors, architecture, source_sha256=source_sha256)
    return extra



def load_safe_module(path: Path | str) -> torch.nn.Module:
    """Rebuild a module from a safe checkpoint: every tensor name and shape must match exactly."""
    from harness.models.safe_checkpoint import read_safe_checkpoint

    checkpoint = read_safe_checkpoint(path)
    source = f"safe checkpoint {checkpoint.path}"
    module = build_from_architecture(checkpoint.architecture, dtype=checkpoint.dtype, source=source)
    expected = module.state_dict()
    missing = sorted(set(expected) - set(checkpoint.tensors))
    unexpected = sorted(set(checkpoint.tensors) - set(expected))
    if missing or unexpected:
        raise ModelError(
            f"{source}: tensors do not match the architecture: {len(missing)} missing "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}), {len(unexpected)} "
            f"unexpected ({', '.join(unexpected[:3])}{', ...' if len(unexpected) > 3 else ''})"
        )
    for key, tensor in checkpoint.tensors.items():
        want = expected[key]
        if tuple(tensor.shape) != tuple(want.shape) or tensor.dtype != want.dtype:
            raise ModelError(
                f"{source}: tensor {key!r} is {tensor.dtype} {tuple(tensor.shape)}, the architecture "
                f"needs {want.dtype} {tuple(want.shape)}"
            )
    module.load_state_dict(checkpoint.tensors, strict=True)
    return module
