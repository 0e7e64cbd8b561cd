"""The third-party warnings the harness hides, and nothing else.

A cold run used to print thousands of warnings that no user of the harness can
act on: they are about the libraries' own code. Each entry of
:data:`THIRD_PARTY` names one, with the module it comes from, so a warning with
the same text from any other module (ours included) still shows.

They are hidden two ways: :func:`quiet_third_party` around the calls that emit
them (mace's import, dscribe's import), and, for ``pytest``, which shows every
warning raised while a test runs, the same list as ``filterwarnings`` lines that
the plugin adds at configure time (:func:`ini_filter_lines`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Quiet:
    """One warning to hide: its category, a regex matched at the start of its message,
    and a regex matched at the start of the module it is attributed to."""

    category: type[Warning]
    message: str
    module: str
    why: str


# Compile-time warnings are attributed to the source file's path without ".py",
# not to a dotted module name; hence the path patterns.
_DSCRIBE_FILE = r".*[/\\]dscribe[/\\]"

THIRD_PARTY: tuple[Quiet, ...] = (
    Quiet(
        SyntaxWarning,
        "invalid escape sequence",
        _DSCRIBE_FILE,
        "dscribe 2.1's docstrings, once per module when Python >= 3.12 compiles it",
    ),
    Quiet(
        DeprecationWarning,
        "invalid escape sequence",
        _DSCRIBE_FILE,
        "the same under Python 3.11",
    ),
    Quiet(
        DeprecationWarning,
        "Setting the shape on a NumPy array",
        r"ase(\.|$)",
        "ASE reshapes arrays in place (`a.shape = ...`); numpy >= 2.5 warns once per structure",
    ),
    Quiet(
        PendingDeprecationWarning,
        "The set_(bad|over|under) function will be deprecated",
        r"shap(\.|$)",
        "shap builds its colour maps with matplotlib calls that matplotlib >= 3.10 deprecates",
    ),
    # The next three are matched by message alone (any module): the torch frame they are
    # attributed to depends on the torch version, and no harness message mentions these words.
    Quiet(UserWarning, ".*TorchScript", "", "e3nn/mace compile code with TorchScript"),
    Quiet(DeprecationWarning, r".*torch\.jit\.", "", "e3nn/mace call deprecated torch.jit functions"),
    Quiet(
        UserWarning,
        ".*TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD detected",
        "",
        "set while e3nn imports (see harness.models.mace), which torch then reports",
    ),
)


def ignore_third_party() -> None:
    """Add :data:`THIRD_PARTY` to the active filters (call inside ``warnings.catch_warnings()``)."""
    for quiet in THIRD_PARTY:
        warnings.filterwarnings("ignore", message=quiet.message, category=quiet.category, module=quiet.module)


@contextmanager
def quiet_third_party() -> Iterator[None]:
    """Hide the warnings of :data:`THIRD_PARTY` inside the block, and only those."""
    with warnings.catch_warnings():
        ignore_third_party()
        yield


def ini_filter_lines() -> list[str]:
    """:data:`THIRD_PARTY` as pytest ``filterwarnings`` lines (``action:message:category:module``)."""
    lines = []
    for quiet in THIRD_PARTY:
        assert ":" not in quiet.message + quiet.module, "pytest splits filter lines on ':'"
        lines.append(f"ignore:{quiet.message}:{quiet.category.__name__}:{quiet.module}")
    return lines
