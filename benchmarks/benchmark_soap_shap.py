"""asv benchmarks: the "what" path, SOAP -> surrogate (5-fold CV) -> TreeSHAP, in seconds.

Parameters: number of structures (``MLFF_BENCH_SOAP_N``, default ``500,5000``) and the
surrogate variant of ``benchmarks/soap_shap.py`` (``paper`` = ``harness.explain.surrogate``
as the suites run it). The 5,000-structure paper variant takes tens of minutes on a
2-core CPU (see benchmarks/README.md); run a subset with ``MLFF_BENCH_SOAP_N=500``.
"""

from __future__ import annotations

import os
from typing import Any

from . import soap_shap
from .data import energy_residual_per_atom, frames

SIZES = [int(n) for n in os.environ.get("MLFF_BENCH_SOAP_N", "500,5000").split(",") if n.strip()]


class SoapShap:
    params = (SIZES, list(soap_shap.VARIANTS))
    param_names = ["n_structures", "variant"]
    timeout = 3600
    number = 1
    repeat = 1

    def setup_cache(self) -> dict[int, Any]:
        out = {}
        for n in SIZES:
            structures = frames(n, n_atoms=None)
            x, names, seconds = soap_shap.soap_matrix(structures)
            out[n] = dict(x=x, y=energy_residual_per_atom(structures), names=names, soap_seconds=seconds)
        return out

    def track_soap_seconds(self, cache: dict[int, Any], n: int, variant: str) -> float:
        return float(cache[n]["soap_seconds"])

    def track_surrogate_shap_seconds(self, cache: dict[int, Any], n: int, variant: str) -> float:
        c = cache[n]
        return float(soap_shap.run_variant(variant, c["x"], c["y"], c["names"])["seconds"])

    track_soap_seconds.unit = "seconds"  # type: ignore[attr-defined]
    track_surrogate_shap_seconds.unit = "seconds"  # type: ignore[attr-defined]
