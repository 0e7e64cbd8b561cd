"""Importing mace: the only place the harness does, with its warnings and environment contained; dtype helpers."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import torch

from harness._warnings import ignore_third_party
from harness.errors import ModelError

_ENV_KEY = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"



_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}



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
