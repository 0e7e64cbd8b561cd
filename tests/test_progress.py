"""Progress bars: drawn on a terminal (a real pseudo-terminal here), silent everywhere else."""

from __future__ import annotations

import fcntl
import io
import os
import select
import struct
import termios
from collections.abc import Iterator
from typing import TextIO

import numpy as np
import pytest
from ase.build import bulk

from harness import progress


@pytest.fixture()
def terminal() -> Iterator[tuple[TextIO, int]]:
    """A pseudo-terminal: bars written to `stream` can be read back from `reader`."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a fresh pty is 0 columns wide
    stream = os.fdopen(slave, "w", buffering=1)
    previous = progress.use_stream(stream)
    try:
        yield stream, master
    finally:
        progress.use_stream(previous)
        stream.close()
        os.close(master)


def _drain(fd: int) -> str:
    """Everything the terminal received (the pty hands data over asynchronously: wait until it stops)."""
    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        data = os.read(fd, 65536)
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def test_use_stream_returns_the_previous_setting() -> None:
    first = io.StringIO()
    previous = progress.use_stream(first)
    try:
        assert progress.use_stream(None) is first
    finally:
        progress.use_stream(previous)


def test_bar_is_silent_off_a_terminal() -> None:
    sink = io.StringIO()
    previous = progress.use_stream(sink)
    try:
        assert list(progress.bar(range(5), desc="quiet")) == list(range(5))
    finally:
        progress.use_stream(previous)
    assert sink.getvalue() == ""


def test_bar_draws_on_a_terminal_unless_disabled(terminal: tuple[TextIO, int]) -> None:
    stream, master = terminal
    assert progress.is_terminal(stream)
    assert list(progress.bar(range(3), desc="visible-bar")) == [0, 1, 2]
    stream.flush()
    assert "visible-bar" in _drain(master)
    list(progress.bar(range(3), desc="disabled-bar", enabled=False))
    stream.flush()
    assert "disabled-bar" not in _drain(master)


def test_soap_and_surrogate_report_progress_on_a_terminal(terminal: tuple[TextIO, int]) -> None:
    from harness.explain.descriptors import soap_features
    from harness.explain.surrogate import ErrorSurrogate
    from harness.suite.schema import Soap, Surrogate

    stream, master = terminal
    structures = []
    for i in range(70):  # more than one SOAP chunk
        atoms = bulk("Te", "sc", a=3.0, cubic=True).repeat(2)
        atoms.rattle(0.05, seed=i)
        structures.append(atoms)
    settings = Soap(species=["Te"], r_cut_A=3.5, n_max=2, l_max=2)
    chunked = soap_features(structures, settings)
    assert chunked.shape[0] == 70
    # chunking changes nothing: each structure's vector equals its own one-structure call
    np.testing.assert_allclose(chunked[65], soap_features(structures[65:66], settings)[0], rtol=1e-12)
    fitted = ErrorSurrogate(Surrogate(n_estimators=5, max_depth=2, cv_folds=3), seed=0).fit(
        chunked, np.linspace(0, 1, 70), [f"f{i}" for i in range(chunked.shape[1])]
    )
    assert len(fitted.cv_r2_folds_) == 3
    stream.flush()
    drawn = _drain(master)
    assert "SOAP" in drawn and "surrogate" in drawn
