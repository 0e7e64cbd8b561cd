"""Grad-CAM on a layer's node features, independent of any force-field package.

The score of atom ``i`` is ``sum_k dE/dA_ik * A_ik`` where ``A`` is the output
of the hooked layer (the DUAL-X paper's Grad-CAM on atomic embeddings, before
the ReLU). This module only knows torch: it hooks a module, keeps its output,
and turns (activation, gradient) pairs into per-node sums.
"""

from __future__ import annotations

import re
from types import TracebackType
from typing import Any

import torch
from torch import Tensor

from harness.errors import ModelError

_SEGMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<indices>(?:\[-?\d+\])*)$")
_INDEX = re.compile(r"\[(-?\d+)\]")


def gradcam_raw(activation: Tensor, grad: Tensor) -> Tensor:
    """Per-node ``sum_k grad_ik * activation_ik``; trailing dims beyond the first are flattened."""
    if activation.shape != grad.shape:
        raise ValueError(
            f"activation shape {tuple(activation.shape)} != gradient shape {tuple(grad.shape)}"
        )
    if activation.dim() == 0:
        raise ValueError("activation must have a node dimension, got a scalar")
    n_nodes = activation.shape[0]
    return (activation * grad).reshape(n_nodes, -1).sum(dim=1)


def _child_names(module: torch.nn.Module) -> list[str]:
    return [name for name, _ in module.named_children()]


def resolve_layer(model: torch.nn.Module, path: str) -> torch.nn.Module:
    """The submodule at ``path``, e.g. ``products[-1]`` or ``interactions[1].linear``.

    Raises :class:`ModelError` naming the failing segment and listing the valid
    names (or index range) at that level.
    """
    if not path or not path.strip():
        raise ModelError(f"empty layer path; valid top-level names: {_child_names(model)}")
    current: torch.nn.Module = model
    walked = ""
    for segment in path.strip().split("."):
        match = _SEGMENT.match(segment)
        if match is None:
            raise ModelError(
                f"layer path {path!r}: cannot parse segment {segment!r} "
                "(use names and integer indices, e.g. 'products[-1]' or 'interactions[1].linear')"
            )
        name = match.group("name")
        children = dict(current.named_children())
        if name not in children:
            where = walked or "the model"
            raise ModelError(
                f"layer path {path!r}: {where} ({type(current).__name__}) has no submodule "
                f"{name!r}; valid names: {sorted(children)}"
            )
        current = children[name]
        walked = f"{walked}.{name}" if walked else name
        for index_text in _INDEX.findall(match.group("indices")):
            index = int(index_text)
            if not isinstance(current, (torch.nn.ModuleList, torch.nn.Sequential)):
                raise ModelError(
                    f"layer path {path!r}: {walked} ({type(current).__name__}) cannot be "
                    f"indexed; valid names below it: {_child_names(current)}"
                )
            size = len(current)
            if not -size <= index < size:
                raise ModelError(
                    f"layer path {path!r}: index {index} out of range for {walked} "
                    f"({size} entries; valid indices {-size}..{size - 1})"
                )
            current = current[index]
            walked = f"{walked}[{index}]"
    return current


class GradCam:
    """Context manager that records the output of one module during a forward pass.

    ``with GradCam(layer, name="products[-1]") as cam: out = model(...)`` then
    ``cam.activation`` is the layer's output tensor (the first element when the
    layer returns a tuple). If the output does not depend on any tensor that
    requires grad (e.g. an embedding of the one-hot species), it is replaced by a
    leaf that requires grad so that ``dE/dA`` can still be taken; this does not
    change any value downstream.
    """

    def __init__(self, module: torch.nn.Module, name: str | None = None) -> None:
        self.module = module
        self.name = name if name is not None else type(module).__name__
        self._handle: torch.utils.hooks.RemovableHandle | None = None
        self._activation: Tensor | None = None
        self.calls = 0

    def _hook(self, module: torch.nn.Module, inputs: Any, output: Any) -> Any:
        self.calls += 1
        if isinstance(output, Tensor):
            tensor, rest = output, None
        elif isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
            tensor, rest = output[0], output[1:]
        else:
            raise ModelError(
                f"layer {self.name} returned {type(output).__name__}, not a tensor; "
                "hook a layer whose output is the node-feature tensor"
            )
        replaced = False
        if torch.is_grad_enabled() and not tensor.requires_grad and tensor.is_floating_point():
            tensor = tensor.detach().requires_grad_(True)
            replaced = True
        self._activation = tensor
        if not replaced:
            return None
        if rest is None:
            return tensor
        return type(output)([tensor, *rest]) if isinstance(output, list) else (tensor, *rest)

    def __enter__(self) -> GradCam:
        self._activation = None
        self.calls = 0
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove the hook (idempotent)."""
        try:
            if self._handle is not None:
                self._handle.remove()
        finally:
            self._handle = None

    @property
    def activation(self) -> Tensor:
        """The recorded output; raises :class:`ModelError` unless the layer ran exactly once."""
        if self._activation is None or self.calls == 0:
            raise ModelError(
                f"layer {self.name} did not run during the forward pass; "
                "choose a layer the model's forward actually calls"
            )
        if self.calls > 1:
            raise ModelError(
                f"layer {self.name} ran {self.calls} times in one GradCam context; "
                "Grad-CAM needs exactly one activation: use one context per forward pass"
            )
        return self._activation
