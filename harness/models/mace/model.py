"""MACE behind the :class:`harness.models.Model` interface.

Load a checkpoint, evaluate energies, forces and Grad-CAM in one pass, the cascade of blocks, saving.
"""

from __future__ import annotations

import copy
import hashlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_numbers as ASE_ATOMIC_NUMBERS
from ase.data import chemical_symbols

from harness.errors import ModelError
from harness.files import atomic_write, sha256_file
from harness.models import ModelOutputs
from harness.models.attribution import GradCam, gradcam_raw, resolve_layer
from harness.models.batching import CPU_ATOMS_PER_BATCH, GraphSpec, batch_groups, prepare_batch
from harness.models.checkpoint_io import open_checkpoint, resolve_device, unpickle_checkpoint
from harness.models.mace._imports import _ENV_KEY, _as_dtype, _default_dtype, _mace, _quiet_torchscript, _restored_env
from harness.models.mace.architecture import load_safe_module

DEFAULT_LAYER = "products[-1]"
_GRAPH_THREADS = 4  # graph-building threads beside a GPU (vesin runs through ctypes, which releases the GIL)
_T = TypeVar("_T")



def module_sha256(module: torch.nn.Module) -> str:
    """Hex sha256 of a module's class and state_dict (names, dtypes, shapes, bytes)."""
    digest = hashlib.sha256()
    digest.update(f"{type(module).__module__}.{type(module).__qualname__}".encode())
    for key, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"|{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()



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
        # a buffer of mace's (untyped) module, checked above
        zs = [int(z) for z in cast(torch.Tensor, module.atomic_numbers).detach().cpu().tolist()]
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
        safe checkpoint (see :mod:`harness.models.checkpoint_io` for how GPU-saved
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
            module = unpickle_checkpoint(open_checkpoint(path), target, name=str(path))
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
        return float(cast(torch.Tensor, self._module.r_max))  # a buffer of mace's (untyped) module

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
        structures, target, layer_path = self._checked(structures, batch_size, layer)
        if not structures:
            empty = np.zeros(0, dtype=np.float64)
            return ModelOutputs(empty, np.zeros((0, 3)), empty.copy(), np.zeros(0, dtype=int))
        if self._device.type == "cuda":  # graphs built in threads while the GPU runs (the benchmarks' (d))
            from harness.models.pipeline import Pipeline

            return Pipeline(self, batch_size=batch_size, workers=_GRAPH_THREADS, layer=layer_path).run(structures)[0]
        return ModelOutputs.concatenate(
            self._batched(structures, batch_size, progress, lambda data: self._evaluate_dict(data, target, layer_path))
        )

    def gradcam(self, structures: Sequence[Atoms], *, batch_size: int = 16, layer: str | None = None) -> np.ndarray:
        """Raw Grad-CAM per atom, equal to :meth:`evaluate`'s, without forces: positions need no
        gradient, so the backward pass runs from the energy to the hooked layer only (the readouts
        after it). With it the shipped main job's model stage fell from 75.9 to 60.0 s on 2 CPU cores."""
        structures, target, layer_path = self._checked(structures, batch_size, layer)
        if not structures:
            return np.zeros(0, dtype=np.float64)
        return np.concatenate(
            self._batched(structures, batch_size, False, lambda data: self._gradcam_dict(data, target, layer_path))
        )

    def _checked(
        self, structures: Sequence[Atoms], batch_size: int, layer: str | None
    ) -> tuple[list[Atoms], torch.nn.Module, str]:
        """What evaluate and gradcam refuse: a batch size below 1, an unknown layer or element."""
        structures = list(structures)
        if batch_size < 1:
            raise ModelError(f"batch_size must be >= 1, got {batch_size}")
        layer_path = layer or DEFAULT_LAYER
        target = resolve_layer(self._module, layer_path)
        self.check_elements(structures)
        return structures, target, layer_path

    def _batched(
        self, structures: list[Atoms], batch_size: int, progress: bool, work: Callable[[dict], _T]
    ) -> list[_T]:
        """``work`` on each batch dict (on the model's device), in order: at most ``batch_size``
        structures per batch and, on a CPU, at most ``CPU_ATOMS_PER_BATCH`` atoms. Batches are
        built by :func:`harness.models.batching.prepare_batch` (vesin's neighbour lists, mace's
        edges; the benchmarks' pipeline builds them the same way), not one mace ``AtomicData``
        per structure (the main job's graphs stage: 1.36 -> 0.96 s on 2 CPU cores)."""
        from harness.profile import stage
        from harness.progress import bar as progress_bar

        spec = self._graph_spec()
        atom_budget = CPU_ATOMS_PER_BATCH if self._device.type == "cpu" else None
        groups = batch_groups([len(atoms) for atoms in structures], batch_size, max_atoms=atom_budget)
        parts = []
        for group in progress_bar(groups, desc=f"{self._name}", unit="batch", enabled=progress):
            with stage("graphs"):
                data = prepare_batch([structures[i] for i in group], spec, start=group[0]).to(self._device)
            with stage("model"):
                parts.append(work(data))
        return parts

    def _graph_spec(self) -> GraphSpec:
        from harness.models.pipeline import graph_spec  # the pipeline's, so both build the same graphs

        return graph_spec(self)

    def evaluate_batch(self, data: dict[str, torch.Tensor], *, layer: str | None = None) -> ModelOutputs:
        """The fused pass of :meth:`evaluate` on one collated batch dict already on the
        model's device (``harness.models.batching.prepare_batch`` or :meth:`collate`)."""
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

        self.check_elements(structures)
        with stage("graphs"):
            data = prepare_batch(structures, self._graph_spec()).to(self._device)
        with stage("model"), torch.no_grad():
            out = self._module(data, training=False, compute_force=False)
            return _numpy(out["energy"].reshape(-1))

    def cascade_blocks(self) -> list[str]:
        """MACE's blocks from the output backwards (see :func:`cascade_blocks`)."""
        return cascade_blocks(self._module)

    def randomised_copies(self, blocks: Sequence[str], seeds: Sequence[int]) -> Iterator[MaceModel]:
        """One deep copy (a MACE module's copy costs ~0.5 s), re-drawn in place for each seed
        (:func:`harness.models.randomise.redraw`, from this model's trained weights)."""
        from harness.models.randomise import redraw

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


    def _gradcam_dict(self, data: dict[str, torch.Tensor], target: torch.nn.Module, layer_path: str) -> np.ndarray:
        with torch.enable_grad(), GradCam(target, name=layer_path) as cam:
            energy = self._module(data, training=False, compute_force=False)["energy"]
            activation = cam.activation
            (grad_act,) = torch.autograd.grad(energy.sum(), [activation], allow_unused=True)
        if grad_act is None:
            grad_act = torch.zeros_like(activation)
        return _numpy(gradcam_raw(activation.detach(), grad_act))


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



def cascade_blocks(module: torch.nn.Module) -> list[str]:
    """MACE's blocks from the output backwards: readout, product, interaction of
    each layer from the last, then the embeddings (the order of a cascading
    randomisation test)."""
    blocks: list[str] = []
    for i in reversed(range(len(module.interactions))):  # type: ignore[arg-type]
        blocks += [f"readouts[{i}]", f"products[{i}]", f"interactions[{i}]"]
    return blocks + ["node_embedding"]



def save_model(module: torch.nn.Module, path: Path | str) -> None:
    """``torch.save`` the full module (as mace does), atomically (harness.files)."""
    with warnings.catch_warnings():
        _quiet_torchscript()
        atomic_write(path, lambda handle: torch.save(module, handle))
