"""The JSON Schema of results documents (`mlff-harness-results/1`), shipped as package data.

`mlff-harness schema --results` prints it; :func:`validate_results` checks a
document against it and names the first wrong place by its JSON path.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from harness.errors import DataError

SCHEMA_RESOURCE = "results-1.schema.json"


def results_json_schema() -> dict[str, Any]:
    """The shipped schema, as a dict."""
    # one name per joinpath: Traversable.joinpath takes several only from Python 3.11
    text = (resources.files("harness.reports") / "schemas" / SCHEMA_RESOURCE).read_text(encoding="utf-8")
    return json.loads(text)


def _where(path: Any) -> str:
    parts = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return "$" + parts


def schema_errors(document: Any) -> list[str]:
    """Every violation of the schema, as '$.json.path: message', sorted by path."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(
        results_json_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{_where(e.absolute_path)}: {e.message}" for e in errors]


def validate_results(document: Any, *, source: Path | str = "<results>") -> dict[str, Any]:
    """Return ``document`` if it is a valid results document, else raise DataError naming file and path."""
    errors = schema_errors(document)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise DataError(
            f"{source}: not a valid mlff-harness-results/1 document: {errors[0]}{more} "
            "(fix: write it with pytest --harness-results from this harness version)"
        )
    return document


def load_results_file(path: Path | str) -> dict[str, Any]:
    """Read and validate a results JSON file."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read results JSON ({err})") from None
    return validate_results(document, source=path)
