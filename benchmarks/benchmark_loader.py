"""asv benchmarks: hostile suite files are refused fast (issue 16, item 2).

Target: each refusal in well under 1 s (the nine-level alias bomb took 84 s and then
an INTERNALERROR before the loader refused anchors). Measured on the 2-core CI box:
about 0.3 ms for the bomb, which stops at its first anchor.

    asv run --python=same --quick --bench benchmark_loader
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness.errors import SuiteError
from harness.suite.loader import MAX_DEPTH, MAX_NODES, load_suite


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    lines.append(f"suite: [{', '.join([f'*a{levels - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


CASES = {
    "alias_bomb": _alias_bomb(),
    "deep_nesting": "suite: x\nd: " + "[" * 50_000 + "]" * 50_000 + "\n",
    "too_many_values": "suite: x\nd:\n" + "- 1\n" * (MAX_NODES + 1),
    "just_too_deep": "suite: x\nd: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n",
}


class Refusal:
    params = list(CASES)
    param_names = ["case"]

    def setup(self, case: str) -> None:
        self.folder = tempfile.TemporaryDirectory()
        self.path = Path(self.folder.name) / "hostile.suite.yaml"
        self.path.write_text(CASES[case])

    def teardown(self, case: str) -> None:
        self.folder.cleanup()

    def time_refused(self, case: str) -> None:
        try:
            load_suite(self.path)
        except SuiteError:
            return
        raise AssertionError(f"{case} was not refused")
