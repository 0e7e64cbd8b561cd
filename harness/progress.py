"""Progress bars (tqdm) on long work: model evaluation, SOAP, surrogate fitting.

Bars are drawn only on a terminal. Under pytest, stderr is captured while a
test runs, so the plugin hands this module a duplicate of the terminal's
stderr taken before capture starts (:func:`use_stream`); elsewhere bars go to
sys.stderr when it is a terminal. Output that is not a terminal (CI logs,
pipes, files) gets no bars at all.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

_stream: TextIO | None = None  # where bars go; None: sys.stderr at the time a bar starts


def use_stream(stream: TextIO | None) -> TextIO | None:
    """Send bars to ``stream`` (None: back to sys.stderr); returns the previous setting."""
    global _stream
    previous, _stream = _stream, stream
    return previous


def _target() -> TextIO:
    return _stream if _stream is not None else sys.stderr


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a file
        return False


def bar(
    iterable: Iterable[Any] | None = None,
    *,
    desc: str,
    total: int | None = None,
    unit: str = "it",
    enabled: bool | None = None,
) -> Any:
    """A tqdm bar over ``iterable`` (or a manual one with ``total``), silent off a terminal.

    ``enabled=False`` silences it; ``None`` or ``True`` draw it only when the
    target stream is a terminal.
    """
    from tqdm import tqdm

    target = _target()
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        file=target,
        leave=False,
        dynamic_ncols=True,
        disable=(enabled is False) or not is_terminal(target),
    )
