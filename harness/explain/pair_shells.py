"""Pair-shell descriptor: per-atom counts of neighbours by species and distance shell.

Every feature of an atom is one (centre species, neighbour species, distance
shell) triple, named ``centre|neighbour@lo-hiA``, e.g. ``Cr|Te@2.75-3.00A``:
"how many Te atoms sit between 2.75 and 3.00 A from this Cr atom". A feature
whose centre species is not the atom's own is 0 for that atom. Beside them,
one indicator per species, ``centre=Cr`` (1 for a Cr atom, else 0).

Why a two-body descriptor beside SOAP: a SOAP power-spectrum block labelled
(A, B) is a product of the A- and B-neighbour densities around a centre, not a
list of A-B pairs, so an error caused by A-B pairs at one distance spreads its
credit over every block that scales with the A density. A pair-shell feature
is one species pair at one distance and nothing else, so a surrogate's SHAP
credit on it reads directly as "A-B pairs at that distance".

Shells are ``[r_min, r_min + w), [r_min + w, r_min + 2w), ..., up to r_max``.
With ``smooth_A = s > 0`` each neighbour at distance r adds to shell [lo, hi)
the probability that r + e lies in it, e ~ N(0, s^2):

    0.5 * (erf((hi - r) / (sqrt(2) s)) - erf((lo - r) / (sqrt(2) s)))

a box count convolved with a Gaussian (the shells still sum to the neighbour
count away from r_min and r_max; thermal jitter across a shell edge moves the
value continuously instead of by 1). ``smooth_A = 0`` gives hard counts.
Neighbours come from ASE's neighbour list: periodic images count, an atom's
own images included (cells smaller than the cutoff are handled).

Column layout: centre species outer (atomic-number order), then neighbour
species (atomic-number order), then shell (increasing r); the ``centre=X``
indicators last, in atomic-number order. :func:`pair_shell_feature_names`
gives the names in that order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers as _ATOMIC_NUMBERS

from harness.errors import CheckError, DataError
from harness.suite.schema import PairShells

_NAME_RE = re.compile(r"^([A-Z][a-z]?)\|([A-Z][a-z]?)@(\d+\.\d+)-(\d+\.\d+)A$")
_CENTRE_RE = re.compile(r"^centre=([A-Z][a-z]?)$")
_TAIL_SIGMAS = 5.0  # neighbours up to r_max + 5 s can add to the last shell


def sorted_species(settings: PairShells) -> tuple[str, ...]:
    """The species in atomic-number order (the column order); they must have been resolved."""
    if not settings.species:
        raise CheckError("pair-shell species are not resolved (fix: name them, or take the suite run's settings)")
    return tuple(sorted(settings.species, key=lambda s: _ATOMIC_NUMBERS[s]))


def shell_edges(settings: PairShells) -> np.ndarray:
    """Shell edges, n_shells + 1 values from r_min_A to r_max_A."""
    n = int(round((settings.r_max_A - settings.r_min_A) / settings.shell_width_A))
    return settings.r_min_A + settings.shell_width_A * np.arange(n + 1)


def _cutoff_A(settings: PairShells) -> float:
    return settings.r_max_A + _TAIL_SIGMAS * settings.smooth_A


@dataclass(frozen=True)
class PairShellInfo:
    """The parts of one feature name; ``lo_A``/``hi_A`` are None for a ``centre=X`` indicator."""

    centre: str
    neighbour: str | None
    lo_A: float | None
    hi_A: float | None

    @property
    def is_indicator(self) -> bool:
        return self.neighbour is None


def _shell_label(lo: float, hi: float) -> str:
    return f"{lo:.2f}-{hi:.2f}A"


def pair_shell_feature_names(settings: PairShells) -> list[str]:
    """Names of the columns of :func:`pair_shell_features`, in their order."""
    edges, order = shell_edges(settings), sorted_species(settings)
    names = [
        f"{c}|{n}@{_shell_label(edges[k], edges[k + 1])}" for c in order for n in order for k in range(len(edges) - 1)
    ]
    if len(set(names)) != len(names):
        raise CheckError("pair-shell names are not unique: shell_width_A is below the names' 0.01 A resolution")
    if settings.centre_indicators:
        names += [f"centre={c}" for c in order]
    return names


def parse_pair_shell_name(name: str) -> PairShellInfo:
    """Split ``Cr|Te@2.75-3.00A`` (or ``centre=Cr``) into its parts."""
    m = _NAME_RE.match(name)
    if m is not None:
        centre, neighbour, lo, hi = m.groups()
        for sym in (centre, neighbour):
            if sym not in _ATOMIC_NUMBERS:
                raise CheckError(f"{name!r} names unknown element {sym!r}")
        return PairShellInfo(centre, neighbour, float(lo), float(hi))
    m = _CENTRE_RE.match(name)
    if m is not None and m.group(1) in _ATOMIC_NUMBERS:
        return PairShellInfo(m.group(1), None, None, None)
    raise CheckError(f"{name!r} is not a pair-shell feature name ('A|B@lo-hiA' or 'centre=A')")


def is_pair_shell_name(name: str) -> bool:
    return bool(_NAME_RE.match(name) or _CENTRE_RE.match(name))


def _shell_weights(r: np.ndarray, edges: np.ndarray, smooth: float) -> np.ndarray:
    """(P, K) weight of each distance in each shell (hard or Gaussian-smoothed box)."""
    lo, hi = edges[:-1][None, :], edges[1:][None, :]
    r = r[:, None]
    if smooth == 0:
        return ((r >= lo) & (r < hi)).astype(np.float64)
    from scipy.special import erf

    scale = math.sqrt(2.0) * smooth
    return 0.5 * (erf((hi - r) / scale) - erf((lo - r) / scale))


def structure_pair_shells(atoms: Atoms, settings: PairShells) -> np.ndarray:
    """Pair-shell vectors of every atom of one structure: (n_atoms, F) float64."""
    from ase.neighborlist import neighbor_list

    order = sorted_species(settings)
    index = {s: k for k, s in enumerate(order)}
    symbols = atoms.get_chemical_symbols()
    extra = sorted(set(symbols) - set(order))
    if extra:
        raise DataError(
            f"structure contains element(s) {', '.join(extra)} not in the pair-shell species {order} "
            "(fix: add them to descriptor.pair_shells.species)"
        )
    kind = np.array([index[s] for s in symbols], dtype=int)
    edges = shell_edges(settings)
    n_sp, n_sh, n = len(order), len(edges) - 1, len(atoms)
    if any(atoms.pbc) and abs(atoms.cell.volume) < 1e-12:
        raise DataError("a periodic structure has a zero-volume cell (fix: set its cell or pbc=False)")
    i, j, d = neighbor_list("ijd", atoms, _cutoff_A(settings), self_interaction=False)
    counts = np.zeros((n, n_sp * n_sp, n_sh), dtype=np.float64)
    if len(i):
        weights = _shell_weights(d, edges, settings.smooth_A)
        np.add.at(counts, (i, kind[i] * n_sp + kind[j]), weights)
    out = counts.reshape(n, -1)
    if settings.centre_indicators:
        out = np.concatenate([out, np.eye(n_sp)[kind]], axis=1)
    return out


def pair_shell_features(
    structures: Sequence[Atoms], settings: PairShells, atoms_of: Sequence[np.ndarray] | None = None
) -> np.ndarray:
    """Pair-shell vectors of atoms of ``structures``, concatenated in structure order.

    ``atoms_of[s]`` (optional) selects the atom indices of structure ``s`` to keep
    (a subsample); without it every atom of every structure is a row.
    """
    if len(structures) == 0:
        raise DataError("pair_shell_features got no structures")
    if atoms_of is not None and len(atoms_of) != len(structures):
        raise CheckError(f"atoms_of has {len(atoms_of)} entries for {len(structures)} structures")
    parts = []
    for s, atoms in enumerate(structures):
        if len(atoms) == 0:
            raise DataError(f"structure {s} has no atoms")
        try:
            x = structure_pair_shells(atoms, settings)
        except DataError as err:
            raise DataError(f"structure {s}: {err}") from None
        parts.append(x if atoms_of is None else x[np.asarray(atoms_of[s], dtype=int)])
    return np.concatenate(parts, axis=0)
