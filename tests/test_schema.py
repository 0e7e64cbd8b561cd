"""The exported JSON Schema, the shipped suites, the CLI's schema/validate, Bound."""

from __future__ import annotations

import inspect
import json
import math
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from harness.suite import schema as schema_module
from harness.suite.bounds import Bound, IntervalBound, Strict
from harness.suite.check_kinds import AccuracyCheck
from harness.suite.loader import load_suite, parse_yaml
from harness.suite.schema import json_schema

REPO = Path(__file__).resolve().parent.parent
SUITES = sorted((REPO / "suites").glob("**/*.suite.yaml"))
ALL_SUITE_YAML = sorted((REPO / "suites").glob("**/*.yaml"))
MALFORMED = Path(__file__).parent / "malformed"

from conftest import cli_subprocess  # noqa: E402
from demo_suite import DEMO  # noqa: E402  (shared with the other suite tests)


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    (tmp_path / "structures.extxyz").write_text("")
    (tmp_path / "m.model").write_text("")
    path = tmp_path / "demo.yaml"
    path.write_text(DEMO)
    return path


def test_json_schema_is_valid_draft_2020_12() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"suite", "reference", "models", "checks"}
    json.dumps(schema)  # plain JSON


def test_json_schema_is_stable() -> None:
    """json_schema() edits the pydantic output: a second call must give the same result."""
    assert json_schema() == json_schema()


def _models() -> list[type[Strict]]:
    return [
        obj
        for _, obj in inspect.getmembers(schema_module, inspect.isclass)
        if issubclass(obj, Strict) and obj is not Strict
    ]


@pytest.mark.parametrize("model", _models(), ids=lambda m: m.__name__)
def test_every_model_field_has_a_description(model: type[Strict]) -> None:
    assert model.__doc__ and model.__doc__.strip(), f"{model.__name__} has no docstring"
    # `kind` is the internal discriminator: the YAML form writes it as the item's key,
    # and json_schema() removes it from every check.
    missing = [name for name, info in model.model_fields.items() if name != "kind" and not info.description]
    assert not missing, f"{model.__name__}: fields without a description: {missing}"


def test_every_json_schema_property_has_a_description() -> None:
    schema = json_schema()
    missing = [f"<suite>.{name}" for name, prop in schema["properties"].items() if "description" not in prop]
    for def_name, definition in schema["$defs"].items():
        assert definition.get("description"), f"$defs.{def_name} has no description"
        for name, prop in definition.get("properties", {}).items():
            if "description" not in prop:
                missing.append(f"{def_name}.{name}")
    assert not missing, f"properties without a description: {missing}"


def test_check_items_are_kind_keyed() -> None:
    items = json_schema()["properties"]["checks"]["items"]["oneOf"]
    kinds = [next(iter(item["properties"])) for item in items]
    assert kinds == list(schema_module.CHECK_KINDS)
    for item in items:
        assert item["additionalProperties"] is False and len(item["required"]) == 1
    for name in ("AccuracyCheck", "OverlapCheck"):
        body = json_schema()["$defs"][name]
        assert "kind" not in body["properties"]
        assert body["additionalProperties"] is False
    assert "with" in json_schema()["$defs"]["OverlapCheck"]["properties"]  # the alias, as written in YAML


def test_demo_suite_matches_json_schema(demo: Path) -> None:
    load_suite(demo)
    jsonschema.Draft202012Validator(json_schema()).validate(yaml.safe_load(demo.read_text()))


@pytest.mark.parametrize(
    "name",
    ["unknown_top_level_key.yaml", "unknown_key_in_check.yaml", "check_item_two_keys.yaml",
     "wrong_type_string_for_number.yaml", "unknown_check_kind.yaml", "missing_checks.yaml"],
)
def test_json_schema_rejects_malformed(name: str) -> None:
    data = yaml.safe_load((MALFORMED / name).read_text())
    assert not jsonschema.Draft202012Validator(json_schema()).is_valid(data)


@pytest.mark.skipif(not SUITES, reason="no suites/**/*.suite.yaml yet: nothing to validate")
@pytest.mark.parametrize("path", SUITES, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_suite_loads_and_matches_json_schema(path: Path) -> None:
    load_suite(path)
    jsonschema.Draft202012Validator(json_schema()).validate(_yaml12(path))


@pytest.mark.skipif(not ALL_SUITE_YAML, reason="no YAML under suites/ yet")
@pytest.mark.parametrize("path", ALL_SUITE_YAML, ids=lambda p: str(p.relative_to(REPO)))
def test_every_yaml_under_suites_matches_json_schema(path: Path) -> None:
    """Also the non-gate inputs (e.g. measure.yaml); loading them needs the reference data."""
    jsonschema.Draft202012Validator(json_schema()).validate(_yaml12(path))


def _yaml12(path: Path) -> Any:
    """A suite as the harness reads it (YAML 1.2 booleans: the key `on` is a string, as in any YAML 1.2 parser)."""
    return parse_yaml(path.read_text(), path)[0]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return cli_subprocess(*args, cwd=REPO, timeout=120)


def test_cli_schema_prints_json_schema(tmp_path: Path) -> None:
    result = _cli("schema")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(json.dumps(json_schema()))
    out = tmp_path / "schema.json"
    result = _cli("schema", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text()) == json.loads(json.dumps(json_schema()))


def test_cli_validate(demo: Path) -> None:
    good = _cli("validate", str(demo))
    assert good.returncode == 0, good.stderr
    assert "4 checks" in good.stdout
    bad_path = MALFORMED / "unknown_top_level_key.yaml"
    bad = _cli("validate", str(bad_path))
    assert bad.returncode == 2  # bad input
    assert f"{bad_path}:5: tolerance: unknown field" in bad.stderr
    both = _cli("validate", str(demo), str(bad_path))
    assert both.returncode == 2
    assert "ok" in both.stdout and "INVALID" in both.stderr


def test_bound_admits() -> None:
    bound = Bound(min=1.0, max=2.0)
    assert bound.admits(1.0) and bound.admits(2.0) and bound.admits(1.5)
    assert not bound.admits(0.999) and not bound.admits(2.001)
    assert not bound.admits(math.nan)
    assert not Bound(min=0.0).admits(math.nan)
    assert not Bound(max=0.0).admits(float("nan"))
    assert Bound(min=0.0).admits(math.inf)
    assert not Bound(max=0.0).admits(math.inf)


@pytest.mark.parametrize(
    ("bound", "text"),
    [
        (Bound(min=1.0, max=2.5), "[1, 2.5]"),
        (Bound(min=0.5), ">= 0.5"),
        (Bound(max=3), "<= 3"),
        (Bound(min=-1e-9, max=1e9), "[-1e-09, 1e+09]"),
        (Bound(min=2.0, max=2.0), "[2, 2]"),
    ],
)
def test_bound_describe(bound: Bound, text: str) -> None:
    assert bound.describe() == text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({}, "a bound needs 'min', 'max' or both"), ({"min": 2, "max": 1}, "is greater than max")],
)
def test_bound_rejects(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Bound(**kwargs)


# --------------------------------------------------------------------------- issue 10

NEW_KINDS = """\
  - accuracy:
      per_element: {Cr: {force_rmse_meV_per_A: {max: 80}}}
      group_by: temperature_K
      per_group: {600.0: {energy_rmse_meV_per_atom: {max: 3}}, 300: {force_rmse_meV_per_A: {max: 60}}}
  - attribution_faithfulness:
      k: 2
      k_max: 4
      amplitude_A: 0.05
      draws: 3
      seed: 1
      bootstrap: {n_resamples: 500, level: 0.9, seed: 2}
      top_to_random_dE_ratio: {min: 2.0, on: ci_low}
      curve_area: {min: 0.1, min_resample_share: 0.9}
  - randomisation_sanity:
      max_structures: 50
      max_rank_correlation: {max: 0.5, on: ci_high}
  - surrogate_faithfulness:
      top_n: 10
      top_to_random_r2_drop_ratio: {min: 2.0, on: ci_low}
"""


@pytest.fixture
def new_kinds(tmp_path: Path) -> Path:
    (tmp_path / "structures.extxyz").write_text("")
    (tmp_path / "m.model").write_text("")
    path = tmp_path / "new.yaml"
    path.write_text(DEMO.split("checks:")[0] + "checks:\n" + NEW_KINDS)
    return path


def test_new_check_kinds_load_and_match_json_schema(new_kinds: Path) -> None:
    suite = load_suite(new_kinds).suite
    accuracy, attribution, randomisation, surrogate = suite.checks
    assert isinstance(accuracy, AccuracyCheck)
    assert sorted(accuracy.per_group) == ["300", "600"]  # YAML numbers name groups as written, 600.0 -> '600'
    assert set(accuracy.bounds()) == {
        "per_element.Cr.force_rmse_meV_per_A",
        "per_group.600.energy_rmse_meV_per_atom",
        "per_group.300.force_rmse_meV_per_A",
    }
    ratio = attribution.top_to_random_dE_ratio
    assert isinstance(ratio, IntervalBound) and ratio.on == "ci_low" and ratio.min == 2.0
    assert attribution.curve_area.on == "point" and attribution.curve_area.min_resample_share == 0.9
    assert (attribution.bootstrap.n_resamples, attribution.bootstrap.level, attribution.bootstrap.seed) == (500, 0.9, 2)
    assert randomisation.cascade is True and randomisation.max_rank_correlation.on == "ci_high"
    assert surrogate.heldout_r2.min == 0.5 and surrogate.draws == 20  # documented defaults
    jsonschema.Draft202012Validator(json_schema()).validate(_yaml12(new_kinds))


def test_json_schema_documents_the_new_kinds_and_on() -> None:
    schema = json_schema()
    kinds = [next(iter(item["properties"])) for item in schema["properties"]["checks"]["items"]["oneOf"]]
    assert {"attribution_faithfulness", "randomisation_sanity", "surrogate_faithfulness"} <= set(kinds)
    on = schema["$defs"]["IntervalBound"]["properties"]["on"]
    assert on["enum"] == ["point", "ci_low", "ci_high"] and on["default"] == "point" and "interval" in on["description"]
    faithfulness = schema["$defs"]["AttributionFaithfulnessCheck"]["properties"]
    for field, default in (("k", 3), ("k_max", 5), ("amplitude_A", 0.1), ("draws", 4)):
        assert faithfulness[field]["default"] == default and faithfulness[field]["description"]
    assert "IntervalBound" in json.dumps(faithfulness["top_to_random_dE_ratio"])


def test_yaml11_on_key_is_taken_back() -> None:
    """A YAML 1.1 parser (yaml.safe_load) reads `on:` as True; the bound still understands it."""
    data = yaml.safe_load("{min: 1.0, on: ci_low}")
    assert True in data
    assert IntervalBound.model_validate(data).on == "ci_low"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"per_element": {"Xx": {"force_rmse_meV_per_A": {"max": 1}}}}, "'Xx' is not a chemical element symbol"),
        ({"per_element": {"Cr": {}}}, "per_element.Cr has no threshold"),
        ({"group_by": "t", "per_group": {"a": {}}}, "per_group.a has no threshold"),
        ({"per_group": {"a": {"energy_rmse_meV_per_atom": {"max": 1}}}}, "per_group needs 'group_by'"),
    ],
)
def test_accuracy_breakdown_rejects(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AccuracyCheck(kind="accuracy", **body)
