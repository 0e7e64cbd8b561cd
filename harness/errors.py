"""The harness's error hierarchy.

Every error says what is wrong, where (file, line, case, quantity) and what
would fix it. The pytest plugin turns these into one-line failures, never
tracebacks.
"""

from __future__ import annotations

from pathlib import Path


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose."""


class SuiteError(HarnessError):
    """A suite file is malformed: names the file, line and field."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line
        self.field = field
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        where = ""
        if self.path is not None:
            where = str(self.path)
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        text = where
        if self.field:
            text += f"{self.field}: "
        text += self.message
        if self.fix:
            text += f" (fix: {self.fix})"
        return text


class ModelError(HarnessError):
    """A checkpoint cannot be loaded or evaluated (names the checkpoint)."""


class DataError(HarnessError):
    """Reference data are missing, malformed or inconsistent (names file and frame)."""


class CheckError(HarnessError):
    """A check cannot be computed from the evaluated data (names the check)."""
