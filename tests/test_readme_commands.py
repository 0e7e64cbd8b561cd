"""The README opens with the two commands a newcomer runs, and CI runs exactly the second one.

`.ci/run` may add flags (``--junitxml``) but nothing else: a README command that CI does not run
would rot unseen. Both commands pin torch through constraints.txt (a bare `torch` pulls CUDA).
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    head = text[: text.index("\n---\n")]  # the opening, before the first rule
    return [block.strip() for block in re.findall(r"```\n(.*?)```", head, flags=re.S)]


def _ci_command() -> str:
    lines = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line.startswith("python3 -m venv")]
    assert len(lines) == 1, lines
    return lines[0]


def test_the_readme_opens_with_the_main_job_and_the_tests() -> None:
    main_job, tests = _readme_commands()
    assert main_job.endswith("pytest suites/cr_sb2te3")
    assert "/pytest tests" in tests
    for command in (main_job, tests):
        assert command.startswith("python3 -m venv .venv && ")
        assert "-c constraints.txt" in command


def test_ci_runs_the_readmes_test_command_plus_junitxml_only() -> None:
    _, tests = _readme_commands()
    ci = _ci_command()
    extra = ci[len(tests):].split() if ci.startswith(tests) else None
    assert extra is not None, f".ci/run differs from the README's test command:\n{ci}\n{tests}"
    assert all(flag.startswith("--junitxml") for flag in extra), extra


def test_constraints_pin_torch_to_a_cpu_build() -> None:
    pins = (REPO / "constraints.txt").read_text()
    assert re.search(r"^torch==\d", pins, flags=re.M), "torch must be pinned (a bare torch pulls a CUDA build)"
