"""MACE behind the :class:`harness.models.Model` interface.

The only module of the harness that imports ``mace``. The import is lazy (no
work at import time) and contained: importing mace sets
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` process-wide (e3nn 0.4.4 needs it while it
imports), so :func:`_mace` sets it for the import only and restores it.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import hashlib
import io
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_numbers as ASE_ATOMIC_NUMBERS
from ase.data import chemical_symbols

from harness._warnings import ignore_third_party
from harness.atomic import atomic_write
from harness.attribution import GradCam, gradcam_raw, resolve_layer
from harness.checkpoint_io import resolve_device, unpickle_checkpoint
from harness.errors import ModelError
from harness.models import ModelOutputs
from harness.reference import sha256_file

DEFAULT_LAYER = "products[-1]"
_ENV_KEY = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}


# --------------------------------------------------------------------------- imports


@contextmanager
def _restored_env(key: str) -> Iterator[None]:
    saved = os.environ.get(key)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved


def _mace() -> SimpleNamespace:
    """Import the parts of mace we use, leaving ``os.environ`` as it was."""
    with _restored_env(_ENV_KEY), warnings.catch_warnings():
        # e3nn's import torch.loads its constants and fails under weights_only=True.
        os.environ[_ENV_KEY] = "1"
        _quiet_torchscript()
        # mace.tools.cg prints (to stdout) that optional cuequivariance is absent: not a warning we can act on
        with contextlib.redirect_stdout(io.StringIO()):
            import mace.data
            import mace.modules
            import mace.tools
            from e3nn import o3
            from mace.tools import torch_geometric

    return SimpleNamespace(
        data=mace.data, modules=mace.modules, tools=mace.tools, o3=o3, tg=torch_geometric
    )


def _quiet_torchscript() -> None:
    """Inside ``warnings.catch_warnings()``: hide e3nn/mace/torch noise (harness._warnings lists it)."""
    ignore_third_party()


@contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    saved = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


def _as_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype in _DTYPES.values():
            return dtype
    elif dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ModelError(f"unsupported dtype {dtype!r}; use one of {sorted(_DTYPES)}")


# --------------------------------------------------------------------------- hashing


def module_sha256(module: torch.nn.Module) -> str:
    """Hex sha256 of a module's class and state_dict (names, dtypes, shapes, bytes)."""
    digest = hashlib.sha256()
    digest.update(f"{type(module).__module__}.{type(module).__qualname__}".encode())
    for key, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"|{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- model


class MaceModel:
    """A MACE force field (any variant with ``atomic_numbers`` and ``r_max``)."""

    def __init__(self, module: torch.nn.Module, *, name: str, identity: str, source: str) -> None:
        for attribute in ("atomic_numbers", "r_max"):
            if not hasattr(module, attribute):
                raise ModelError(
                    f"{source}: {type(module).__name__} has no {attribute!r}; "
                    "expected a MACE model (MACE, ScaleShiftMACE, ...)"
                )
        self._module = module
        self._name = name
        self._identity = identity
        self._source = source
        parameter = next(iter(module.parameters()), None)
        self._device = parameter.device if parameter is not None else torch.device("cpu")
        self._dtype = parameter.dtype if parameter is not None else torch.get_default_dtype()
        zs = [int(z) for z in module.atomic_numbers.detach().cpu().tolist()]
        self._zs = zs
        self._elements = tuple(chemical_symbols[z] for z in zs)

    # ---- construction

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        device: str = "cpu",
        dtype: str = "float64",
        name: str | None = None,
        expected_sha256: str | None = None,
        allow_unpinned: bool = True,
    ) -> MaceModel:
        """Load a MACE checkpoint after checking its sha256, on ``device`` whatever device it was saved on.

        Takes a full pickled model (``*.model``, optionally gzipped), a training
        checkpoint dict whose ``"model"`` is a module, or a ``.safetensors``
        safe checkpoint (see :mod:`harness.checkpoint_io` for how GPU-saved
        pickles load on a CPU-only machine).

        The hash is computed before unpickling; a mismatch with
        ``expected_sha256`` (or no pin when ``allow_unpinned`` is False) refuses
        to unpickle, since ``torch.load(weights_only=False)`` can run code.
        """
        path = Path(path)
        torch_dtype = _as_dtype(dtype)
        target = resolve_device(device, source=f"checkpoint {path}")
        if not path.is_file():
            raise ModelError(f"checkpoint {path} does not exist (fix: check the suite's model path)")
        actual = sha256_file(path)
        if expected_sha256 is not None:
            if expected_sha256.strip().lower() != actual:
                raise ModelError(
                    f"checkpoint {path}: sha256 mismatch, expected {expected_sha256.strip().lower()} "
                    f"but the file has {actual}; refusing to unpickle it (fix: restore the pinned "
                    "file, or update the pin if the new file is trusted)"
                )
        elif not allow_unpinned:
            raise ModelError(
                f"checkpoint {path}: no sha256 pin given and unpinned checkpoints are not "
                f"allowed; refusing to unpickle it (fix: pin sha256 {actual} if the file is trusted)"
            )
        if path.name.endswith(".safetensors"):  # the safe format (issue 7): no pickle at all
            module = _prepare(load_safe_module(path), torch_dtype, str(target))
            return cls(module, name=name or path.stem, identity=actual, source=f"checkpoint {path}")
        _mace()  # the pickle refers to mace classes; import them with the env contained
        with _restored_env(_ENV_KEY), warnings.catch_warnings():
            _quiet_torchscript()
            module = unpickle_checkpoint(_open_checkpoint(path), target, name=str(path))
        module = _prepare(module, torch_dtype, str(target))
        return cls(module, name=name or path.stem, identity=actual, source=f"checkpoint {path}")

    @classmethod
    def from_module(
        cls,
        module: torch.nn.Module,
        *,
        name: str = "in-memory",
        identity: str | None = None,
        dtype: str | None = None,
        device: str | None = None,
    ) -> MaceModel:
        """Wrap a module built in memory (puts it in eval mode and freezes its parameters in place)."""
        torch_dtype = _as_dtype(dtype) if dtype is not None else None
        module = _prepare(module, torch_dtype, device)
        return cls(
            module,
            name=name,
            identity=identity if identity is not None else module_sha256(module),
            source=f"model {name}",
        )

    # ---- properties

    @property
    def name(self) -> str:
        return self._name

    @property
    def elements(self) -> tuple[str, ...]:
        return self._elements

    @property
    def r_max_A(self) -> float:
        return float(self._module.r_max)

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def module(self) -> torch.nn.Module:
        return self._module

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    # ---- evaluation

    def check_elements(self, structures: Sequence[Atoms]) -> None:
        """Raise :class:`ModelError` for the first structure with an element the model lacks."""
        known = set(self._elements)
        bad = [
            (index, sorted(set(atoms.get_chemical_symbols()) - known, key=_z))
            for index, atoms in enumerate(structures)
        ]
        bad = [(index, missing) for index, missing in bad if missing]
        if not bad:
            return
        index, missing = bad[0]
        info = structures[index].info
        where = f"structure {index}"
        details = [f"{key}={info[key]!r}" for key in ("trajectory", "frame") if key in info]
        if details:
            where += f" ({', '.join(details)})"
        more = f"; {len(bad) - 1} more structure(s) have unknown elements" if len(bad) > 1 else ""
        raise ModelError(
            f"{self._source}: {where} contains element(s) {', '.join(missing)} the model "
            f"does not know; the model's elements are {', '.join(self._elements)}{more} "
            "(fix: use a model trained on these elements or drop these structures)"
        )

    def graphs(self, structures: Sequence[Atoms]) -> list[Any]:
        """mace ``AtomicData`` graphs for the structures, in the model's dtype."""
        mace = _mace()
        z_table = mace.tools.AtomicNumberTable(self._zs)
        heads = list(getattr(self._module, "heads", None) or ["Default"])
        cutoff = self.r_max_A
        out = []
        with _default_dtype(self._dtype):
            for atoms in structures:
                config = mace.data.config_from_atoms(atoms, head_name=heads[0])
                out.append(
                    mace.data.AtomicData.from_config(
                        config, z_table=z_table, cutoff=cutoff, heads=heads
                    )
                )
        return out

    def collate(self, structures: Sequence[Atoms]) -> dict[str, torch.Tensor]:
        """One mace batch dict for all structures (for calling ``module`` directly)."""
        self.check_elements(structures)
        batch = _mace().tg.batch.Batch.from_data_list(self.graphs(structures))
        return batch.to(self._device).to_dict()

    def evaluate(
        self,
        structures: Sequence[Atoms],
        *,
        batch_size: int = 16,
        layer: str | None = None,
        progress: bool = False,
    ) -> ModelOutputs:
        """Energies, forces and raw Grad-CAM: one forward and one backward per batch.

        Batches hold ``batch_size`` structures; on a CPU also at most
        ``CPU_ATOMS_PER_BATCH`` atoms (see there: big CPU batches are slower).
        """
        structures = list(structures)
        if batch_size < 1:
            raise ModelError(f"batch_size must be >= 1, got {batch_size}")
        layer_path = layer or DEFAULT_LAYER
        target = resolve_layer(self._module, layer_path)
        self.check_elements(structures)
        if not structures:
            empty = np.zeros(0, dtype=np.float64)
            return ModelOutputs(empty, np.zeros((0, 3)), empty.copy(), np.zeros(0, dtype=int))
        mace = _mace()
        from harness.profile import stage
        from harness.progress import bar as progress_bar

        with stage("graphs"):
            graphs = self.graphs(structures)
        atom_budget = CPU_ATOMS_PER_BATCH if self._device.type == "cpu" else None
        groups = batch_groups([len(atoms) for atoms in structures], batch_size, max_atoms=atom_budget)
        parts = []
        for group in progress_bar(groups, desc=f"{self._name}", unit="batch", enabled=progress):
            with stage("graphs"):  # collating a batch
                loader = mace.tg.dataloader.DataLoader(
                    dataset=[graphs[i] for i in group], batch_size=len(group), shuffle=False, drop_last=False
                )
                batch = next(iter(loader))
            with stage("model"):
                parts.append(self._evaluate_batch(batch, target, layer_path))
        return ModelOutputs.concatenate(parts)

    def _evaluate_batch(self, batch: Any, target: torch.nn.Module, layer_path: str) -> ModelOutputs:
        return self._evaluate_dict(batch.to(self._device).to_dict(), target, layer_path)

    def evaluate_batch(self, data: dict[str, torch.Tensor], *, layer: str | None = None) -> ModelOutputs:
        """The fused pass of :meth:`evaluate` on one collated batch dict already on the
        model's device (``harness.batching.prepare_batch`` or :meth:`collate`)."""
        layer_path = layer or DEFAULT_LAYER
        return self._evaluate_dict(data, resolve_layer(self._module, layer_path), layer_path)

    def energies(self, structures: Sequence[Atoms]) -> np.ndarray:
        """Total energies (eV) of all `structures` from one model call: one batch, no forces, no Grad-CAM.

        The perturbation checks put every perturbed copy of a structure in the same
        batch; graphs in a batch are independent, so each energy equals the one
        computed alone.
        """
        structures = list(structures)
        if not structures:
            return np.zeros(0, dtype=np.float64)
        from harness.profile import stage

        with stage("graphs"):
            data = self.collate(structures)
        with stage("model"), torch.no_grad():
            out = self._module(data, training=False, compute_force=False)
            return _numpy(out["energy"].reshape(-1))

    def cascade_blocks(self) -> list[str]:
        """MACE's blocks from the output backwards (see :func:`cascade_blocks`)."""
        return cascade_blocks(self._module)

    def randomised_copies(self, blocks: Sequence[str], seeds: Sequence[int]) -> Iterator[MaceModel]:
        """One deep copy (a MACE module's copy costs ~0.5 s), re-drawn in place for each seed
        (:func:`harness.randomise.redraw`, from this model's trained weights)."""
        from harness.randomise import redraw

        module = copy.deepcopy(self._module)
        label = ",".join(blocks)
        for seed in seeds:
            redraw(module, self._module, blocks, seed=seed)
            yield MaceModel.from_module(
                module, name=f"{self._name}~random", identity=f"{self._identity}~random:{label}:{seed}"
            )

    def _evaluate_dict(
        self, data: dict[str, torch.Tensor], target: torch.nn.Module, layer_path: str
    ) -> ModelOutputs:
        positions = data["positions"].requires_grad_(True)
        with torch.enable_grad(), GradCam(target, name=layer_path) as cam:
            out = self._module(data, training=False, compute_force=False)
            energy = out["energy"]
            activation = cam.activation
            grad_pos, grad_act = torch.autograd.grad(
                energy.sum(), [positions, activation], allow_unused=True
            )
        if grad_pos is None:
            grad_pos = torch.zeros_like(positions)
        if grad_act is None:
            grad_act = torch.zeros_like(activation)
        raw = gradcam_raw(activation.detach(), grad_act)
        ptr = data["ptr"]
        n_atoms = (ptr[1:] - ptr[:-1]).cpu().numpy().astype(int)
        return ModelOutputs(
            energies_eV=_numpy(energy.reshape(-1)),
            forces_eV_per_A=_numpy(-grad_pos),
            gradcam_raw=_numpy(raw),
            n_atoms=n_atoms,
        )


# On a CPU a batch buys no throughput (the work is compute-bound per atom) and large
# batches cost time: their temporary tensors exceed glibc's mmap threshold, so every
# allocation is a fresh mapping and every page a fault. Measured on the 2-core CI VM,
# 64 structures of 108 atoms, float64, forces and Grad-CAM: batch 16: 19.3 s wall
# (17 s of it system time); 8: 17.5 s; 4: 16.2 s; 2: 14.0 s; 1: 10.5 s (0.06 s system).
CPU_ATOMS_PER_BATCH = 128


def batch_groups(n_atoms: Sequence[int], batch_size: int, *, max_atoms: int | None = None) -> list[list[int]]:
    """Consecutive structure indices in batches of at most ``batch_size`` structures and,
    with ``max_atoms``, at most that many atoms (a larger structure is a batch of its own)."""
    groups: list[list[int]] = []
    current: list[int] = []
    atoms = 0
    for index, n in enumerate(n_atoms):
        full = len(current) >= batch_size or (max_atoms is not None and atoms + n > max_atoms)
        if current and full:
            groups.append(current)
            current, atoms = [], 0
        current.append(index)
        atoms += n
    if current:
        groups.append(current)
    return groups


def _open_checkpoint(path: Path) -> Path | io.BytesIO:
    """The checkpoint as torch.load takes it; gzip files (magic 1f 8b) are decompressed in memory."""
    with open(path, "rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            return path
    try:
        with gzip.open(path, "rb") as handle:
            return io.BytesIO(handle.read())
    except (OSError, EOFError) as error:
        raise ModelError(f"checkpoint {path}: truncated or corrupt gzip ({error})") from None


def _z(symbol: str) -> int:
    return ASE_ATOMIC_NUMBERS.get(symbol, 0)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float64)


def _prepare(
    module: torch.nn.Module, dtype: torch.dtype | None, device: str | None
) -> torch.nn.Module:
    if device is not None:
        module = module.to(device)
    if dtype is not None:
        module = module.to(dtype)
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


# --------------------------------------------------------------------------- building/saving


def build_tiny_mace(
    elements: Sequence[str],
    *,
    seed: int = 0,
    num_channels: int = 8,
    max_L: int = 1,
    num_interactions: int = 2,
    r_max: float = 4.0,
    dtype: str = "float64",
    scale_shift: bool = False,
) -> torch.nn.Module:
    """A small randomly initialised MACE (or ScaleShiftMACE), deterministic for a seed.

    Leaves torch's global RNG and default dtype as they were.
    """
    unknown = [e for e in elements if e not in ASE_ATOMIC_NUMBERS]
    if unknown or not elements:
        raise ModelError(f"build_tiny_mace: need known chemical symbols, got {list(elements)}")
    mace = _mace()
    o3, modules = mace.o3, mace.modules
    zs = sorted({ASE_ATOMIC_NUMBERS[e] for e in elements})
    torch_dtype = _as_dtype(dtype)
    rng = np.random.default_rng(seed)
    atomic_energies = -rng.uniform(1.0, 5.0, size=len(zs))
    hidden_irreps = (o3.Irreps.spherical_harmonics(max_L) * num_channels).sort()[0].simplify()
    kwargs: dict[str, Any] = dict(
        r_max=r_max,
        num_bessel=8,
        num_polynomial_cutoff=5,
        max_ell=max(2, max_L),
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
        num_interactions=num_interactions,
        num_elements=len(zs),
        hidden_irreps=hidden_irreps,
        MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=atomic_energies,
        avg_num_neighbors=8.0,
        atomic_numbers=zs,
        correlation=2,
        gate=torch.nn.functional.silu,
        radial_MLP=[16, 16],
    )
    with torch.random.fork_rng(devices=[]), _default_dtype(torch_dtype), warnings.catch_warnings():
        _quiet_torchscript()
        torch.manual_seed(seed)
        if scale_shift:
            module = modules.ScaleShiftMACE(
                atomic_inter_scale=1.3, atomic_inter_shift=-0.2, **kwargs
            )
        else:
            module = modules.MACE(**kwargs)
    return module.to(torch_dtype)


def cascade_blocks(module: torch.nn.Module) -> list[str]:
    """MACE's blocks from the output backwards: readout, product, interaction of
    each layer from the last, then the embeddings (the order of a cascading
    randomisation test)."""
    blocks: list[str] = []
    for i in reversed(range(len(module.interactions))):  # type: ignore[arg-type]
        blocks += [f"readouts[{i}]", f"products[{i}]", f"interactions[{i}]"]
    return blocks + ["node_embedding"]


def save_model(module: torch.nn.Module, path: Path | str) -> None:
    """``torch.save`` the full module (as mace does), atomically (harness.atomic)."""
    with warnings.catch_warnings():
        _quiet_torchscript()
        atomic_write(path, lambda handle: torch.save(module, handle))


# --- safe checkpoint format (issue 7) ---
# The architecture of a MACE module as plain JSON (harness.safe_checkpoint
# validates it against allow-lists), the module rebuilt from that JSON, and its
# weights loaded from safetensors: no pickle anywhere.

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
    from harness import safe_checkpoint as safe

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
    from harness.safe_checkpoint import validate_architecture

    classes = _allowed_classes()
    model_class = _name_of(type(module), classes["model_class"], "model class", source)
    for unsupported in ("embedding_specs", "joint_embedding", "embedding_readout", "pair_repulsion_fn"):
        if hasattr(module, unsupported):
            raise ModelError(f"{source}: models with {unsupported!r} are not supported by the safe format")
    if getattr(module, "lammps_mliap", False):
        raise ModelError(f"{source}: LAMMPS-MLIAP models are not supported by the safe format")
    o3 = _mace().o3
    heads = list(getattr(module, "heads", None) or ["Default"])
    readout = module.readouts[-1]
    mlp = o3.Irreps(str(readout.hidden_irreps))
    acts = getattr(getattr(readout, "non_linearity", None), "acts", None) or [None]
    gate = getattr(acts[0], "f", acts[0])
    radial = module.radial_embedding
    transform = getattr(radial, "distance_transform", None)
    n_interactions = int(module.num_interactions.item())
    hidden = str(module.products[0].linear.irreps_out)
    last = str(module.products[-1].linear.irreps_out)
    correlations = [
        len(product.symmetric_contractions.contractions[0].weights) + 1 for product in module.products
    ]
    architecture: dict[str, Any] = {
        "model_class": model_class,
        "r_max": float(module.r_max.item()),
        "num_bessel": int(radial.bessel_fn.bessel_weights.numel()),
        "num_polynomial_cutoff": int(radial.cutoff_fn.p.item()),
        "max_ell": int(module.spherical_harmonics._lmax),  # noqa: SLF001 - mace reads it the same way
        "interaction_cls": _name_of(type(module.interactions[-1]), classes["interaction"], "interaction", source),
        "interaction_cls_first": _name_of(
            type(module.interactions[0]), classes["interaction"], "interaction", source
        ),
        "readout_cls": _name_of(type(readout), classes["readout"], "readout", source),
        "num_interactions": n_interactions,
        "num_elements": len(module.atomic_numbers),
        "hidden_irreps": hidden,
        "MLP_irreps": str(o3.Irreps(f"{max(1, mlp.count((0, 1)) // len(heads))}x0e")),
        "edge_irreps": None if module.edge_irreps is None else str(module.edge_irreps),
        "atomic_energies": _plain(module.atomic_energies_fn.atomic_energies),
        "avg_num_neighbors": float(module.interactions[0].avg_num_neighbors),
        "atomic_numbers": [int(z) for z in module.atomic_numbers.tolist()],
        "correlation": correlations[0] if len(set(correlations)) == 1 else correlations,
        "gate": _name_of(gate, _GATE_FUNCTIONS, "gate", source),
        "radial_MLP": [int(h) for h in module.interactions[0].conv_tp_weights.hs[1:-1]],
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
        architecture["atomic_inter_scale"] = _plain(module.scale_shift.scale)
        architecture["atomic_inter_shift"] = _plain(module.scale_shift.shift)
    return validate_architecture(architecture, source=source)


def build_from_architecture(
    architecture: dict[str, Any], *, dtype: str | torch.dtype = "float64", source: str = "architecture"
) -> torch.nn.Module:
    """A MACE module from a described architecture (validated here; classes from allow-lists only).

    Its weights are random (seeded, leaving torch's RNG as it was) until a state_dict is loaded.
    """
    from harness.safe_checkpoint import validate_architecture

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
    from harness.safe_checkpoint import write_safe_checkpoint

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
    from harness.safe_checkpoint import read_safe_checkpoint

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


# --- perturbation support (issue 10) ---


