"""Suite loading: every malformed file is one SuiteError naming file, line and field.

The corpus under ``tests/malformed/`` holds one problem per file; ``EXPECTED``
pins the line, the field and the message of each. The property-based tests
generate valid suites (they load and round-trip) and mutate them into invalid
ones (they raise SuiteError, never anything else, with a line >= 1).
"""

from __future__ import annotations

import copy
import os
import re
import string
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from harness.errors import SuiteError
from harness.suite.bounds import MODEL_NAME_RE
from harness.suite.loader import LoadedSuite, load_suite, parse_yaml
from harness.suite.schema import _CHECK_MODELS, CHECK_KINDS, Suite, json_schema

MALFORMED = Path(__file__).parent / "malformed"

# filename: (line, field or None, substring of the message)
EXPECTED: dict[str, tuple[int, str | None, str]] = {
    # YAML syntax
    "yaml_bad_indentation.yaml": (4, None, "invalid YAML: expected <block end>"),
    "yaml_unclosed_bracket.yaml": (7, None, "invalid YAML: expected ',' or ']'"),
    "yaml_tab.yaml": (3, None, "invalid YAML: found character '\\t' that cannot start any token"),
    "duplicate_key.yaml": (5, None, "duplicate key 'suite' (first on line 1)"),
    "empty_file.yaml": (1, None, "the suite file is empty"),
    "top_level_list.yaml": (1, None, "a suite must be a YAML mapping, not a list"),
    # unknown keys
    "unknown_top_level_key.yaml": (5, "tolerance", "unknown field"),
    "unknown_key_in_reference.yaml": (4, "reference.energy_kye", "unknown field"),
    "unknown_key_in_models.yaml": (5, "models.baseline", "unknown field"),
    "unknown_key_in_check.yaml": (8, "checks[0].accuracy.tolerance", "unknown field"),
    # wrong types
    "wrong_type_string_for_number.yaml": (
        7,
        "checks[0].accuracy.energy_rmse_meV_per_atom.max",
        "Input should be a valid number",
    ),
    "wrong_type_list_for_mapping.yaml": (2, "reference", "Input should be a valid dictionary"),
    # missing required fields
    "missing_suite.yaml": (1, "suite", "Field required"),
    "missing_reference.yaml": (1, "reference", "Field required"),
    "missing_models.yaml": (1, "models", "Field required"),
    "missing_checks.yaml": (1, "checks", "Field required"),
    "missing_candidate.yaml": (3, "models.candidate", "Field required"),
    "missing_checkpoint.yaml": (4, "models.candidate.checkpoint", "Field required"),
    # missing files
    "missing_reference_file.yaml": (3, "reference.structures", "file not found: "),
    "missing_compare_with_file.yaml": (7, "models.compare_with.foundation.checkpoint", "file not found: "),
    # elements
    "unknown_element.yaml": (7, "checks[0].gradcam_locus.element", "'Xx' is not a chemical element symbol"),
    "unknown_species.yaml": (7, "descriptor.soap.species", "'Qq' is not a chemical element symbol"),
    "shap_element_not_in_species.yaml": (
        8,
        "checks[0].shap_classes",
        "names Cr, which is not in descriptor.soap.species ['Sb', 'Te']",
    ),
    # check items
    "unknown_check_kind.yaml": (7, "checks[1]", "unknown check kind 'precision'"),
    "check_item_two_keys.yaml": (6, "checks[0]", "a check must be a mapping with exactly one key"),
    "check_body_is_list.yaml": (6, "checks[0].accuracy", "the body of check 'accuracy' must be a mapping"),
    "empty_check_list.yaml": (5, "checks", "List should have at least 1 item"),
    "check_without_threshold.yaml": (6, "checks[0].accuracy", "no threshold"),
    "duplicate_check_names.yaml": (7, "checks[1].accuracy", "a second check is named 'accuracy'"),
    "check_on_unknown_model.yaml": (7, "checks[0].accuracy.models", "unknown model 'foundation'"),
    "overlap_with_unknown_model.yaml": (6, "checks[0].overlap.with", "unknown model 'foundation'"),
    # bounds
    "min_greater_than_max.yaml": (
        7,
        "checks[0].accuracy.force_rmse_meV_per_A",
        "min (50.0) is greater than max (10.0)",
    ),
    "bound_without_min_or_max.yaml": (
        7,
        "checks[0].accuracy.energy_mae_meV_per_atom",
        "a bound needs 'min', 'max' or both",
    ),
    # field values
    "sha256_not_hex.yaml": (6, "models.candidate.sha256", "sha256 must be 64 lowercase hexadecimal characters"),
    "sha256_wrong_length.yaml": (4, "reference.sha256", "sha256 must be 64 lowercase hexadecimal characters"),
    "negative_top_k.yaml": (8, "checks[0].gradcam_locus.top_k", "greater than or equal to 1"),
    "involving_share_without_involving.yaml": (
        6,
        "checks[0].shap_classes",
        "involving_share needs 'involving'",
    ),
    "bad_regex_must_include.yaml": (
        6,
        "checks[0].shap_classes",
        "must_include pattern 'Cr_Cr_l(' is not a regular expression",
    ),
    "reserved_model_name_candidate.yaml": (5, "models.compare_with", "'candidate' is reserved"),
    "r_cut_not_positive.yaml": (7, "descriptor.soap.r_cut_A", "Input should be greater than 0"),
    "n_max_zero.yaml": (7, "descriptor.soap.n_max", "greater than or equal to 1"),
    # issue 10: interval bounds, accuracy breakdown, faithfulness parameters
    "interval_bound_on_unknown.yaml": (
        9,
        "checks[0].attribution_faithfulness.top_to_random_dE_ratio.on",
        "Input should be 'point', 'ci_low' or 'ci_high'",
    ),
    "per_group_without_group_by.yaml": (6, "checks[0].accuracy", "per_group needs 'group_by'"),
    "faithfulness_k_above_k_max.yaml": (6, "checks[0].attribution_faithfulness", "k (6) must not exceed k_max (5)"),
}


def test_corpus_matches_table() -> None:
    """Every corpus file has an entry and every entry a file (no silent drift)."""
    on_disk = {p.name for p in MALFORMED.glob("*.yaml")}
    assert on_disk == set(EXPECTED)
    assert len(on_disk) >= 30
    assert not list(MALFORMED.glob("*.suite.yaml")), "the corpus must not be collected by the plugin"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_file(name: str) -> None:
    line, field, message = EXPECTED[name]
    with pytest.raises(SuiteError) as info:
        load_suite(MALFORMED / name)
    err = info.value
    text = str(err)
    assert err.line == line, text
    assert err.field == field, text
    assert message in err.message, text
    assert name in text
    assert err.path is not None and err.path.name == name
    # the rendered form: file:line: [field: ]message
    prefix = f"{name}:{line}: " + (f"{field}: " if field else "")
    assert prefix in text, text
    assert text == err.render()


# --------------------------------------------------------------------------- valid suites

from demo_suite import DEMO  # noqa: E402  (shared with the other suite tests)
from demo_suite import write_placeholders as _placeholders  # noqa: E402


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    _placeholders(tmp_path)
    path = tmp_path / "demo.yaml"
    path.write_text(DEMO)
    return path


def test_valid_suite_loads(demo: Path) -> None:
    loaded = load_suite(demo)
    assert isinstance(loaded, LoadedSuite)
    suite = loaded.suite
    assert suite.suite == "demo"
    assert [c.kind for c in suite.checks] == ["accuracy", "gradcam_locus", "shap_classes", "overlap"]
    assert suite.models.names() == ["candidate", "foundation"]
    assert suite.checks[0].bounds()["energy_rmse_meV_per_atom"].max == 2.0
    assert suite.checks[3].with_ == "foundation"
    # defaults
    assert suite.descriptor.soap.species is None  # the elements of the reference data, read at run time
    assert suite.checks[2].surrogate_cv_r2.min == 0.7
    assert loaded.path == demo.resolve()
    assert loaded.root == demo.resolve().parent


def test_paths_resolve_relative_to_suite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _placeholders(tmp_path / "data")
    (tmp_path / "suites").mkdir()
    suite = tmp_path / "suites" / "rel.yaml"
    suite.write_text(
        DEMO.replace("structures.extxyz", "../data/structures.extxyz").replace("m.model", "../data/m.model")
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    loaded = load_suite(suite)
    assert loaded.resolve(loaded.suite.reference.structures) == (tmp_path / "data" / "structures.extxyz").resolve()
    assert loaded.resolve("../data/m.model") == (tmp_path / "data" / "m.model").resolve()
    absolute = (tmp_path / "data" / "m.model").resolve()
    assert loaded.resolve(str(absolute)) == absolute
    # the same relative path is missing when the suite sits elsewhere
    moved = tmp_path / "moved.yaml"
    moved.write_text(suite.read_text())
    with pytest.raises(SuiteError, match="file not found") as info:
        load_suite(moved)
    assert info.value.line == 2 and info.value.field == "reference.structures"


def test_line_of_and_check_line(demo: Path) -> None:
    loaded = load_suite(demo)
    assert loaded.line_of(("suite",)) == 1
    assert loaded.line_of(("reference",)) == 2
    assert loaded.line_of(("reference", "structures")) == 2
    assert loaded.line_of(("models",)) == 3
    assert loaded.line_of(("models", "candidate")) == 4
    assert loaded.line_of(("models", "compare_with", "foundation", "checkpoint")) == 5
    assert loaded.line_of(("checks",)) == 6
    assert [loaded.check_line(i) for i in range(4)] == [7, 8, 9, 10]
    assert loaded.line_of(("checks", 1, "gradcam_locus", "element")) == 8
    # a path that is not in the file falls back to its deepest ancestor
    assert loaded.line_of(("checks", 2, "shap_classes", "top_n")) == 9
    assert loaded.line_of(("descriptor", "soap")) == 1
    assert loaded.line_of(()) == 1


def test_check_line_block_style(tmp_path: Path) -> None:
    _placeholders(tmp_path)
    path = tmp_path / "block.yaml"
    path.write_text(
        "# a comment\n"
        "suite: block\n"
        "reference:\n"
        "  structures: structures.extxyz\n"
        "models:\n"
        "  candidate:\n"
        "    checkpoint: m.model\n"
        "checks:\n"
        "  - accuracy:\n"
        "      energy_rmse_meV_per_atom:\n"
        "        max: 2.0\n"
        "\n"
        "  - accuracy:\n"
        "      name: forces\n"
        "      force_rmse_meV_per_A: {max: 80}\n"
    )
    loaded = load_suite(path)
    assert loaded.line_of(("suite",)) == 2
    assert loaded.check_line(0) == 9
    assert loaded.check_line(1) == 13
    assert loaded.line_of(("checks", 0, "accuracy", "energy_rmse_meV_per_atom", "max")) == 11
    assert loaded.line_of(("checks", 1, "accuracy", "name")) == 14


def test_models_for_expands_all(tmp_path: Path) -> None:
    _placeholders(tmp_path)
    path = tmp_path / "all.yaml"
    path.write_text(
        DEMO.replace("compare_with: {foundation: {checkpoint: m.model}}",
                     "compare_with: {foundation: {checkpoint: m.model}, scratch: {checkpoint: m.model}}")
        + "  - accuracy: {name: every, models: [all], force_rmse_meV_per_A: {max: 80}}\n"
        + "  - accuracy: {name: two, models: [scratch, candidate, scratch], force_mae_meV_per_A: {max: 80}}\n"
    )
    loaded = load_suite(path)
    suite = loaded.suite
    assert suite.models_for(suite.checks[0]) == ["candidate"]  # the default
    assert suite.models_for(suite.checks[4]) == ["candidate", "foundation", "scratch"]
    assert suite.models_for(suite.checks[5]) == ["scratch", "candidate"]  # order kept, duplicates dropped


def test_kind_body_form(tmp_path: Path) -> None:
    """`- kind: {...}` items become checks of that kind; an empty body is allowed."""
    _placeholders(tmp_path)
    path = tmp_path / "kinds.yaml"
    path.write_text(
        "suite: kinds\n"
        "reference: {structures: structures.extxyz}\n"
        "models: {candidate: {checkpoint: m.model}}\n"
        "checks:\n"
        "  - shap_classes:\n"  # null body: every field takes its default (surrogate_cv_r2 >= 0.7)
        "  - regression: {baseline: base.json, shap_top_shared: {min: 10}}\n"
    )
    suite = load_suite(path).suite
    assert [c.kind for c in suite.checks] == ["shap_classes", "regression"]
    assert suite.checks[0].bounds() == {"surrogate_cv_r2": suite.checks[0].surrogate_cv_r2}
    assert suite.checks[1].baseline == "base.json"
    # the same through model_validate, and the flat form also validates
    data = yaml.safe_load(path.read_text())
    assert Suite.model_validate(data) == suite
    checks = [{**(body or {}), "kind": kind} for item in data["checks"] for kind, body in item.items()]
    flat = {**data, "checks": checks}
    assert Suite.model_validate(flat) == suite


def test_rendered_message_has_file_line_prefix(tmp_path: Path) -> None:
    _placeholders(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text(DEMO.replace("element: Cr", "element: Zz"))
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    text = str(info.value)
    assert text.startswith(f"{path}:8: checks[1].gradcam_locus.element: 'Zz' is not a chemical element symbol")
    assert re.match(r"^.+\.yaml:\d+: ", text)


def test_missing_suite_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="suite file not found"):
        load_suite(tmp_path / "nope.yaml")


# ----------------------------------------------------------------- edge cases of YAML itself


def _write(tmp_path: Path, text: str) -> Path:
    _placeholders(tmp_path)
    path = tmp_path / "x.yaml"
    path.write_text(text)
    return path


def test_unhashable_key_is_suite_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "suite: x\n? [a, b]\n: 1\n")
    with pytest.raises(SuiteError, match="a key must be a plain value") as info:
        load_suite(path)
    assert info.value.line == 2


def test_recursive_alias_is_suite_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "suite: &a [*a]\n")
    with pytest.raises(SuiteError):
        load_suite(path)


def test_non_string_key_line(tmp_path: Path) -> None:
    text = DEMO.rstrip("\n") + "\n1: extra\n"
    path = _write(tmp_path, text)
    with pytest.raises(SuiteError, match="Keys should be strings") as info:
        load_suite(path)
    assert info.value.line == text.count("\n")


def test_exclude_defaults_dump_round_trips(tmp_path: Path) -> None:
    _placeholders(tmp_path)
    path = tmp_path / "ok.yaml"
    path.write_text(DEMO)
    suite = load_suite(path).suite
    dumped = suite.model_dump(by_alias=True, exclude_defaults=True)
    assert Suite.model_validate(dumped) == suite


SPECIES_POOL = ("Cr", "Sb", "Te", "Ge", "Bi")
METRICS = {
    kind: tuple(name for name, f in model.model_fields.items() if "Bound" in str(f.annotation))
    for kind, model in _CHECK_MODELS.items()
}

numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
    st.integers(min_value=-(10**9), max_value=10**9),
)


@st.composite
def bounds(draw: st.DrawFn) -> dict[str, Any]:
    shape = draw(st.sampled_from(["min", "max", "both"]))
    if shape == "both":
        a, b = sorted([draw(numbers), draw(numbers)])
        return {"min": a, "max": b}
    return {shape: draw(numbers)}


@st.composite
def metric_bounds(draw: st.DrawFn, names: tuple[str, ...]) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
    return {name: draw(bounds()) for name in chosen}


model_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,8}", fullmatch=True).filter(
    lambda n: n not in ("candidate", "all") and MODEL_NAME_RE.match(n) is not None
)
free_text = st.text(alphabet=string.ascii_letters + string.digits + " _-.:#'\"!?", min_size=1, max_size=20)


@st.composite
def valid_suites(draw: st.DrawFn) -> dict[str, Any]:
    """A valid suite in the YAML form (checks as `{kind: body}` items)."""
    others = draw(st.lists(model_names, max_size=3, unique=True))
    known = ["candidate", *others]
    species = draw(st.lists(st.sampled_from(SPECIES_POOL), min_size=1, max_size=4, unique=True))
    checkpoint = {"checkpoint": "m.model"}
    data: dict[str, Any] = {
        "suite": draw(free_text),
        "reference": {"structures": "structures.extxyz"},
        "models": {"candidate": dict(checkpoint)},
    }
    if draw(st.booleans()):
        data["description"] = draw(free_text)
    if others:
        data["models"]["compare_with"] = {name: dict(checkpoint) for name in others}
    if draw(st.booleans()):
        data["reference"]["sha256"] = draw(st.from_regex(r"[0-9a-f]{64}", fullmatch=True))
        data["reference"]["max_structures"] = draw(st.integers(1, 1000))
    soap: dict[str, Any] = {"species": species}
    if draw(st.booleans()):
        soap["r_cut_A"] = draw(st.floats(min_value=0.5, max_value=20))
        soap["n_max"] = draw(st.integers(1, 9))
        soap["l_max"] = draw(st.integers(0, 9))
    data["descriptor"] = {"soap": soap}

    kinds = draw(st.lists(st.sampled_from(CHECK_KINDS), min_size=1, max_size=5))
    repeated = {k for k in kinds if kinds.count(k) > 1}
    checks = []
    for index, kind in enumerate(kinds):
        body: dict[str, Any] = {}
        if kind in repeated or draw(st.booleans()):
            body["name"] = f"check{index}-{draw(free_text)}"  # never equal to a kind: labels stay unique
        if draw(st.booleans()):
            body["models"] = draw(
                st.one_of(st.just(["all"]), st.lists(st.sampled_from(known), min_size=1, max_size=3, unique=True))
            )
        if kind == "shap_classes":
            if draw(st.booleans()):
                body["surrogate_cv_r2"] = draw(bounds())
            if draw(st.booleans()):
                body["top_n"] = draw(st.integers(1, 50))
            if draw(st.booleans()):
                body["involving"] = draw(st.sampled_from(species))
                body["involving_share"] = draw(bounds())
            if draw(st.booleans()):
                body["angular_l"] = draw(st.lists(st.integers(0, 9), min_size=1, max_size=3))
                body["angular_l_share"] = draw(bounds())
            if draw(st.booleans()):
                body["pair"] = draw(st.lists(st.sampled_from(species), min_size=2, max_size=2))
                body["pair_share"] = draw(bounds())
            if draw(st.booleans()):
                body["top_feature_pair"] = draw(st.lists(st.sampled_from(species), min_size=2, max_size=2))
            if draw(st.booleans()):
                body["must_include"] = [re.escape(t) for t in draw(st.lists(free_text, max_size=2))]
        else:
            body.update(draw(metric_bounds(METRICS[kind])))
        if kind == "gradcam_locus":
            body["element"] = draw(st.sampled_from(SPECIES_POOL))
            if draw(st.booleans()):
                body["top_k"] = draw(st.integers(1, 100))
        if kind == "overlap":
            body["with"] = draw(st.sampled_from(known))
            if draw(st.booleans()):
                body["top_n"] = draw(st.integers(1, 50))
        if kind == "regression":
            body["baseline"] = "baseline.json"
        if kind == "atom_error_classes" and {"pair_class_share", "pair_class_rank"} & set(body):
            body["pair"] = draw(st.lists(st.sampled_from(species), min_size=2, max_size=2))
        if kind == "pair_force_bias":
            body["pair"] = draw(st.lists(st.sampled_from(species), min_size=2, max_size=2))
        # shuffle the body's key order: order must not matter
        keys = draw(st.permutations(list(body)))
        checks.append({kind: {k: body[k] for k in keys}})
    data["checks"] = checks
    return data


def to_yaml_form(dumped: dict[str, Any]) -> dict[str, Any]:
    """`Suite.model_dump(by_alias=True)` with each check back in the `{kind: body}` form."""
    out = dict(dumped)
    out["checks"] = [{check["kind"]: {k: v for k, v in check.items() if k != "kind"}} for check in dumped["checks"]]
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("prop")
    _placeholders(folder)
    return folder


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


# HARNESS_HYPOTHESIS_EXAMPLES=1000 for a longer search
PROPERTY = settings(
    max_examples=int(os.environ.get("HARNESS_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SCHEMA_VALIDATOR = jsonschema.Draft202012Validator(json_schema())


@PROPERTY
@given(data=valid_suites())
def test_valid_suites_load_and_round_trip(workdir: Path, data: dict[str, Any]) -> None:
    path = workdir / "valid.yaml"
    text = _dump(data)
    path.write_text(text)
    loaded = load_suite(path)
    suite = loaded.suite
    assert len(suite.checks) == len(data["checks"])
    for index, item in enumerate(data["checks"]):
        assert loaded.check_line(index) >= 1
        assert suite.checks[index].kind == next(iter(item))
    # the dump round-trips, in the YAML form and in the flat form
    dumped = suite.model_dump(by_alias=True)
    assert Suite.model_validate(to_yaml_form(dumped)) == suite
    assert Suite.model_validate(dumped) == suite
    # and through YAML and the loader again
    path.write_text(_dump(to_yaml_form(suite.model_dump(by_alias=True, mode="json"))))
    assert load_suite(path).suite == suite
    # what loads also satisfies the exported JSON Schema
    SCHEMA_VALIDATOR.validate(yaml.safe_load(text))


def _mappings(node: Any, loc: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = []
    if isinstance(node, dict):
        found.append(loc)
        for key, value in node.items():
            found += _mappings(value, loc + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _mappings(value, loc + (index,))
    return found


def _numbers(node: Any, loc: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, bool):
        return []
    if isinstance(node, (int, float)):
        return [loc]
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    return [found for key, value in items for found in _numbers(value, loc + (key,))]


def _get(node: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        node = node[part]
    return node


def _is_bound(loc: tuple[Any, ...], value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and set(value) <= {"min", "max"}
        and len(loc) >= 4
        and loc[0] == "checks"
    )


def _load_error(workdir: Path, data: Any) -> tuple[SuiteError, str]:
    path = workdir / "invalid.yaml"
    text = _dump(data)
    path.write_text(text)
    try:
        load_suite(path)
    except SuiteError as err:
        assert err.line is not None and err.line >= 1, str(err)
        assert str(err).startswith(f"{path}:{err.line}: ")
        return err, text
    raise AssertionError(f"loaded an invalid suite:\n{text}")


@PROPERTY
@given(data=valid_suites(), pick=st.data())
def test_unknown_key_anywhere_is_suite_error(workdir: Path, data: dict[str, Any], pick: st.DataObject) -> None:
    data = copy.deepcopy(data)
    places = _mappings(data)
    loc = pick.draw(st.sampled_from(places), label="where")
    mapping = _get(data, loc)
    items = list(mapping.items())
    position = pick.draw(st.integers(0, len(items)), label="position")
    items.insert(position, ("zz_unknown", 1))
    mapping.clear()
    mapping.update(items)
    err, text = _load_error(workdir, data)
    with pytest.raises(jsonschema.ValidationError):
        SCHEMA_VALIDATOR.validate(yaml.safe_load(text))
    key_line = text.splitlines().index(next(line for line in text.splitlines() if "zz_unknown:" in line)) + 1
    if len(loc) == 2 and loc[0] == "checks":  # the {kind: body} item itself now has two keys
        assert "exactly one key" in err.message
        assert err.line == parse_yaml(text, Path("x"))[1][loc]
    elif loc == ("models", "compare_with"):  # a model named zz_unknown whose spec is not a mapping
        assert err.line == key_line
        assert err.field == "models.compare_with.zz_unknown"
    else:
        assert err.message == "unknown field", str(err)
        assert err.line == key_line
        assert err.field is not None and err.field.endswith("zz_unknown")


@PROPERTY
@given(data=valid_suites(), pick=st.data())
def test_min_greater_than_max_is_suite_error(workdir: Path, data: dict[str, Any], pick: st.DataObject) -> None:
    data = copy.deepcopy(data)
    places = [loc for loc in _mappings(data) if _is_bound(loc, _get(data, loc))]
    assume(places)
    loc = pick.draw(st.sampled_from(places), label="bound")
    low, high = pick.draw(st.tuples(numbers, numbers).filter(lambda t: t[0] != t[1]).map(sorted), label="pair")
    bound = _get(data, loc)
    bound.clear()
    bound.update({"min": high, "max": low})
    err, text = _load_error(workdir, data)
    assert "is greater than max" in err.message, str(err)
    assert err.line == parse_yaml(text, Path("x"))[1][loc]


@PROPERTY
@given(data=valid_suites(), pick=st.data(), junk=st.text(alphabet=string.ascii_letters, max_size=6))
def test_string_for_number_is_suite_error(
    workdir: Path, data: dict[str, Any], pick: st.DataObject, junk: str
) -> None:
    data = copy.deepcopy(data)
    places = _numbers(data)
    assume(places)
    loc = pick.draw(st.sampled_from(places), label="number")
    _get(data, loc[:-1])[loc[-1]] = f"xbad{junk}"
    err, text = _load_error(workdir, data)
    with pytest.raises(jsonschema.ValidationError):
        SCHEMA_VALIDATOR.validate(yaml.safe_load(text))
    lines = text.splitlines()
    leaf_line = next(i for i, line in enumerate(lines, 1) if "xbad" in line)
    assert err.line == leaf_line, str(err)
    assert err.fix == "give a value of the type the schema asks for", str(err)
