"""SOAP descriptors of structures and the names of their features.

The feature names follow the DUAL-X paper's style, ``Cr-Sb_n13_l3``: the
species pair, the two radial indices n and n' (1-based, concatenated) and the
angular channel l. The order reproduces dscribe's power-spectrum layout
(``ext/soapGTO.cpp:getPD`` and ``ext/soapGeneral.cpp:getP``, dscribe 2.1):

* species-pair blocks in atomic-number order (``SOAP.get_location``), pairs
  (Z1, Z2) with Z1 <= Z2;
* inside a block the angular channel l is the outer loop, then n, then n';
* n' runs from n in a same-species block (the block is symmetric in n, n')
  and over all values in a cross-species block.

Only the uncompressed power spectrum (dscribe's default ``compression`` mode
``"off"``, which keeps the cross-species blocks) is named here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers as _ATOMIC_NUMBERS

from harness.errors import CheckError, DataError
from harness.suite.schema import Soap

Average = Literal["inner", "outer", "off"]

_NAME_RE = re.compile(r"^([A-Z][a-z]?)-([A-Z][a-z]?)_n(\d)(\d)_l(\d+)$")


def species_of(settings: Soap) -> tuple[str, ...]:
    """The SOAP block's species; a block whose species were never resolved is a bug of the caller."""
    if not settings.species:
        raise CheckError("SOAP species are not resolved (fix: name them, or take SuiteRun.soap_spec)")
    return tuple(settings.species)


@dataclass(frozen=True)
class FeatureInfo:
    """The parts of one SOAP feature name (n, n' 1-based; l 0-based)."""

    pair: tuple[str, str]
    n: int
    n_prime: int
    l: int  # noqa: E741 (the physics name)


def make_soap(settings: Soap, *, average: Average | None = None):  # -> dscribe.descriptors.SOAP
    """The dscribe SOAP object for ``settings`` (dscribe imported lazily); ``average`` overrides the
    block's (``"off"``: one vector per atom, for the per-atom explanations). GTO radial basis."""
    from harness._warnings import quiet_third_party

    with quiet_third_party():  # dscribe's first import compiles docstrings Python warns about
        from dscribe.descriptors import SOAP

    return SOAP(
        species=list(species_of(settings)),
        r_cut=settings.r_cut_A,
        n_max=settings.n_max,
        l_max=settings.l_max,
        average=settings.average if average is None else average,
        periodic=settings.periodic,
        sigma=settings.sigma_A,
        rbf="gto",
    )


def sorted_species(settings: Soap) -> tuple[str, ...]:
    """Species in atomic-number order, the order of dscribe's blocks."""
    return tuple(sorted(species_of(settings), key=lambda s: _ATOMIC_NUMBERS[s]))


def species_pairs(settings: Soap) -> list[tuple[str, str]]:
    """Species pairs in the order of dscribe's blocks."""
    sp = sorted_species(settings)
    return [(sp[i], sp[j]) for i in range(len(sp)) for j in range(i, len(sp))]


def _block_names(pair: tuple[str, str], n_max: int, l_max: int) -> list[str]:
    same = pair[0] == pair[1]
    names = []
    for l in range(l_max + 1):  # noqa: E741
        for n in range(n_max):
            for n_prime in range(n if same else 0, n_max):
                names.append(f"{pair[0]}-{pair[1]}_n{n + 1}{n_prime + 1}_l{l}")
    return names


def soap_feature_names(settings: Soap) -> list[str]:
    """Names of the features of ``soap_features``, in dscribe's order."""
    soap = make_soap(settings)
    names: list[str] = []
    for pair in species_pairs(settings):
        block = _block_names(pair, settings.n_max, settings.l_max)
        loc = soap.get_location(pair)
        if loc.start != len(names) or loc.stop - loc.start != len(block):
            raise CheckError(
                f"dscribe places block {pair} at {loc}, expected "
                f"slice({len(names)}, {len(names) + len(block)}): "
                "the installed dscribe's layout differs from the one named here"
            )
        names.extend(block)
    n_features = soap.get_number_of_features()
    if len(names) != n_features:
        raise CheckError(
            f"{len(names)} SOAP feature names but dscribe reports {n_features} features"
        )
    return names


def soap_features(
    structures: Sequence[Atoms], settings: Soap, *, n_jobs: int = 1
) -> np.ndarray:
    """SOAP vectors of ``structures``: (S, F) float64, one per structure (``inner`` or ``outer`` average)."""
    if len(structures) == 0:
        raise DataError("soap_features got no structures")
    allowed = set(species_of(settings))
    for i, atoms in enumerate(structures):
        if len(atoms) == 0:
            raise DataError(f"structure {i} has no atoms")
        extra = sorted(set(atoms.get_chemical_symbols()) - allowed)
        if extra:
            raise DataError(
                f"structure {i} contains element(s) {', '.join(extra)} not in the SOAP "
                f"species {settings.species} (fix: add them to the suite's descriptor.soap.species)"
            )
    from harness.progress import bar

    soap = make_soap(settings)
    structures = [_wrapped(atoms) if settings.periodic else atoms for atoms in structures]
    parts = []
    with bar(desc="SOAP", total=len(structures), unit="structure") as done:
        for start in range(0, len(structures), _CHUNK):
            chunk = structures[start : start + _CHUNK]
            parts.append(np.asarray(soap.create(chunk, n_jobs=n_jobs), dtype=np.float64).reshape(len(chunk), -1))
            done.update(len(chunk))
    return np.concatenate(parts, axis=0)


_CHUNK = 64  # structures per dscribe call: a progress step, no effect on the vectors


def _wrapped(atoms: Atoms) -> Atoms:
    """A copy with every atom inside the cell along periodic directions.

    dscribe's periodic SOAP is wrong for atoms outside the cell (unwrapped MD
    output is common); wrapping by lattice vectors changes no environment.
    """
    if not any(atoms.pbc):
        return atoms
    copy = atoms.copy()
    copy.wrap()
    return copy


def parse_feature_name(name: str) -> FeatureInfo:
    """Split a name such as ``Cr-Sb_n13_l3`` into its parts."""
    m = _NAME_RE.match(name)
    if m is None:
        raise CheckError(
            f"{name!r} is not a SOAP feature name of the form 'A-B_n<n><n'>_l<l>'"
        )
    a, b, n, n_prime, l = m.groups()  # noqa: E741
    for sym in (a, b):
        if sym not in _ATOMIC_NUMBERS:
            raise CheckError(f"{name!r} names unknown element {sym!r}")
    return FeatureInfo(pair=(a, b), n=int(n), n_prime=int(n_prime), l=int(l))


def involves(name: str, element: str) -> bool:
    """Whether the feature's species pair contains ``element``."""
    return element in parse_feature_name(name).pair
