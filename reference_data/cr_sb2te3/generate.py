"""Regenerate the Cr-doped Sb2Te3 reference data (CHGNet labels standing in for DFT).

    python reference_data/cr_sb2te3/generate.py pretrain --out-dir reference_data/pretrain --n 2000 --seed 2026
    python reference_data/cr_sb2te3/generate.py doped --out-dir reference_data/cr_sb2te3 --work-dir /tmp/dg --seed 2026
    python reference_data/cr_sb2te3/generate.py assemble --work-dir /tmp/dg --out-dir reference_data/cr_sb2te3
    python reference_data/cr_sb2te3/generate.py variants relabel|planted --in IN --out OUT [...]

The generator (package ``generator/`` beside this script) belongs to the worked
example, not to the harness; it needs the ``datagen`` extra (CHGNet):
``pip install -c constraints.txt -e ".[datagen]"``. See reference_data/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    # spawned workers inherit sys.path, so they import generator.* the same way
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    if argv[:1] == ["variants"]:
        from generator.variants import main as variants

        return variants(argv[1:])
    from generator.cli import main as generate

    return generate(argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
