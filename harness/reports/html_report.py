"""One self-contained HTML report per run, rendered from its results document.

Images are PNGs inlined as base64 `data:` URIs, styles are inline: the file can
be mailed, attached to a CI run or opened offline. Each part of the report is a
`<section>` with a stable id (run-level: ``summary``, ``checks``; per suite i:
``accuracy-i``, ``provenance-i``, ``gradcam-per-element-i``,
``score-distribution-i``, ``shap-top-i``, ``angular-histogram-i``,
``overlap-matrix-i``, ``structure-i``, ``atom-classes-i``), so tests and people can find them.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from harness.files import atomic_write_text

SUITE_SECTIONS = (
    "accuracy",
    "provenance",
    "gradcam-per-element",
    "score-distribution",
    "shap-top",
    "angular-histogram",
    "overlap-matrix",
    "structure",
    "atom-classes",
)
RUN_SECTIONS = ("summary", "checks")

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:0.5em 0;font-size:0.9em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f2f2f2}
.pass{color:#17692f;font-weight:bold}.fail{color:#b00020;font-weight:bold}.nj{color:#8a6d00}.fragile{color:#8a6d00;font-style:italic}
.inconclusive{color:#1f4e9c;font-weight:bold}
.banner{padding:0.6em 1em;border-radius:6px;font-size:1.2em}
.banner.pass{background:#e3f4e7}.banner.fail{background:#fde7ea}
section{margin:1.5em 0;border-top:1px solid #ddd}
img.plot{max-width:100%;border:1px solid #eee;margin:4px}
.note{color:#666;font-style:italic}
code{font-size:0.85em}
"""


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))


def _range_html(range_A: Any) -> str:
    """'2.75&ndash;3.50' for a (lo, hi) distance range in A; 'n/a' for None."""
    return "n/a" if range_A is None else f"{range_A[0]:.2f}&ndash;{range_A[1]:.2f}"


def _bound(m: Mapping[str, Any]) -> str:
    lo, hi = m.get("min"), m.get("max")
    if lo is not None and hi is not None:
        return f"[{_fmt(lo)}, {_fmt(hi)}]"
    if lo is not None:
        return f"&ge; {_fmt(lo)}"
    return f"&le; {_fmt(hi)}" if hi is not None else ""


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    thead = f"<thead><tr>{head}</tr></thead>" if any(header) else ""  # key-value tables have no header
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _img(png: bytes, name: str, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="plot" data-plot="{escape(name)}" alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _section(ident: str, title: str, body: str) -> str:
    return f'<section id="{escape(ident)}"><h2>{escape(title)}</h2>{body}</section>'


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def outcome_status(outcome: Mapping[str, Any]) -> str:
    """'pass', 'fail' or 'inconclusive' (documents written before `status` existed: from `passed`)."""
    if not outcome.get("passed"):
        return "fail"
    return "inconclusive" if outcome.get("status") == "inconclusive" else "pass"


def _summary(doc: Mapping[str, Any]) -> str:
    passed = bool(doc.get("passed"))
    cls = "pass" if passed else "fail"
    checkpoint = doc.get("checkpoint") or {}
    facts = [
        ["suites", ", ".join(escape(s.get("suite", "?")) for s in doc.get("suites", [])) or "none"],
        ["harness version", escape(str(doc.get("harness_version")))],
        ["created", escape(str(doc.get("created")))],
    ] + [[f"checkpoint {k}", _fmt(v)] for k, v in checkpoint.items()]
    statuses = [outcome_status(o) for o in doc["outcomes"]]
    inconclusive = statuses.count("inconclusive")
    also = f", {inconclusive} inconclusive (the surrogate does not explain the error)" if inconclusive else ""
    banner = f'<p class="banner {cls}">{"PASSED" if passed else "FAILED"}: ' \
             f'{statuses.count("pass")} of {len(statuses)} checks passed{also}</p>'
    return _section("summary", "Run", banner + _table(["", ""], facts))


def _result(outcome: Mapping[str, Any], m: Mapping[str, Any]) -> str:
    fragile = ' <span class="fragile" title="within 3 measured spreads of the threshold">fragile</span>' \
        if m.get("fragile") else ""
    if m["passed"]:
        return '<span class="pass">PASS</span>' + fragile
    if not m["evaluated"]:
        return '<span class="nj">not judged</span>'
    if m.get("gate") and outcome.get("unexplained") and outcome.get("if_unexplained") in ("pass", "skip"):
        return '<span class="inconclusive">INCONCLUSIVE</span>'
    if m.get("undefined_reason"):
        return f'<span class="fail">FAIL</span>: undefined: {escape(m["undefined_reason"])}'
    return '<span class="fail">FAIL</span>'


def _checks(doc: Mapping[str, Any]) -> str:
    rows = []
    for o in doc["outcomes"]:
        where = [escape(o["model"]), escape(o["check"]), escape(o["kind"]), str(o["line"])]
        for m in o["measurements"]:
            ci = ""
            if m.get("ci_low") is not None or m.get("ci_high") is not None:
                ci = f" ({_fmt(m.get('ci_low'))} &ndash; {_fmt(m.get('ci_high'))})"
            rows.append([*where, escape(m["metric"]), _fmt(m["value"]) + ci, _bound(m), _result(o, m)])
        if outcome_status(o) == "inconclusive":
            rows.append([*where, "reason", "", "", f'<span class="inconclusive">INCONCLUSIVE</span> (if_unexplained: '
                         f'{escape(str(o.get("if_unexplained")))}): {escape(str(o.get("unexplained")))}'])
        elif o.get("reason"):
            rows.append([*where, "reason", "", "", f'<span class="fail">FAIL</span>: {escape(o["reason"])}'])
        elif o.get("unexplained") and o.get("if_unexplained") in ("pass", "skip"):  # failed on its other values
            rows.append([*where, "reason", "", "", '<span class="fail">FAIL</span> on its other values; SHAP part '
                         f'<span class="inconclusive">INCONCLUSIVE</span>: {escape(str(o["unexplained"]))}'])
    body = _table(["model", "check", "kind", "line", "metric", "value", "threshold", "result"], rows) if rows \
        else _note("no checks ran")
    return _section("checks", "Checks", body)


def _accuracy(i: int, suite: Mapping[str, Any]) -> str:
    keys = ["energy_rmse_meV_per_atom", "energy_mae_meV_per_atom", "force_rmse_meV_per_A", "force_mae_meV_per_A"]
    rows = [[escape(name)] + [_fmt(acc.get(k)) for k in keys] for name, acc in suite.get("accuracy", {}).items()]
    body = _table(["model", "E RMSE meV/atom", "E MAE meV/atom", "F RMSE meV/A", "F MAE meV/A"], rows) if rows \
        else _note("no model was evaluated")
    return _section(f"accuracy-{i}", "Accuracy", body)


def _provenance(i: int, suite: Mapping[str, Any]) -> str:
    prov = suite.get("provenance", {})
    ref = prov.get("reference", {})
    rows = [["suite file", f"<code>{escape(str(prov.get('suite_file')))}</code>"],
            ["reference", f"<code>{escape(str(ref.get('path')))}</code>"],
            ["reference sha256", f"<code>{escape(str(ref.get('sha256')))}</code>"],
            ["structures / atoms", f"{ref.get('n_structures')} / {ref.get('n_atoms')}"]]
    rows += [[f"model {escape(n)}", f"<code>{escape(str(m.get('checkpoint')))}</code><br>"
              f"<code>{escape(str(m.get('sha256')))}</code>"] for n, m in prov.get("models", {}).items()]
    rows += [[escape(k), f"<code>{escape(str(v))}</code>"] for k, v in prov.get("settings", {}).items()]
    return _section(f"provenance-{i}", "Provenance: hashes and settings", _table(["", ""], rows))


def _gradcam(ident: str, models: Mapping[str, Any]) -> str:
    from harness.reports import plots

    if not models:
        return _section(ident, "Grad-CAM per element", _note("no model was evaluated"))
    image = _img(plots.per_element_gradcam({n: m["gradcam"]["per_element_mean"] for n, m in models.items()}),
                 "gradcam-per-element", "mean Grad-CAM score per element and model")
    rows = [[escape(n), escape(g["variant"]), escape(g["normalisation"]), _fmt(g["overall_mean"]), _fmt(g["max"]),
             _fmt(g["relu_zero_fraction"])] for n, g in ((n, m["gradcam"]) for n, m in models.items())]
    table = _table(["model", "variant", "normalisation", "overall mean", "max", "ReLU-zeroed fraction"], rows)
    return _section(ident, "Grad-CAM per element", image + table)


def _distribution(ident: str, hist: Mapping[str, Any] | None) -> str:
    from harness.reports import plots

    if not hist:
        return _section(ident, "Distribution of per-atom scores", _note("no per-atom scores in this document"))
    image = _img(plots.score_distribution(hist["edges"], hist["counts"]), "score-distribution",
                 "histogram of per-atom Grad-CAM scores")
    return _section(ident, "Distribution of per-atom scores", image)


def _shap_top(ident: str, explained: Mapping[str, Any], top_n: int, missing: str) -> str:
    from harness.reports import plots

    title = f"Top-{top_n} SHAP features per model"
    if not explained:
        return _section(ident, title, _note(missing))
    body = "".join(
        _img(plots.top_features(n, s["top"]), f"shap-top-{n}", f"top SHAP features of {n}")
        + _note(f"{n}: surrogate cross-validated R^2 = {_fmt(s['surrogate_cv_r2'])} (target: {s['target']} "
                f"energy error per {s['per']}); a SHAP ranking is evidence only when the surrogate explains "
                "the error (the paper reports R^2 > 0.7)")
        for n, s in explained.items()
    )
    return _section(ident, title, body)


def _angular(ident: str, explained: Mapping[str, Any], missing: str) -> str:
    from harness.reports import plots

    title = "Angular channels of the top features"
    if not explained:
        return _section(ident, title, _note(missing))
    image = _img(plots.angular_histogram({n: s["angular_histogram"] for n, s in explained.items()}),
                 "angular-histogram", "angular channel histogram of the top SHAP features")
    return _section(ident, title, image)


def _overlaps(ident: str, suite: Mapping[str, Any], explained: Mapping[str, Any], top_n: int, missing: str) -> str:
    from harness.reports import plots

    title = f"Pairwise top-{top_n} overlap"
    if not explained:
        return _section(ident, title, _note(missing))
    names = list(explained)
    image = _img(plots.overlap_matrix(names, _overlap(names, suite, top_n), top_n), "overlap-matrix",
                 "shared top SHAP features of every pair of models")
    alone = _note("one model only: nothing to compare it with") if len(names) == 1 else ""
    return _section(ident, title, image + alone)


def _structure(ident: str, view: Mapping[str, Any] | None) -> str:
    from harness.reports import plots

    title = "One structure coloured by per-atom score"
    if not view:
        return _section(ident, title, _note("no structure in this document"))
    where = f"structure {view['index']}"
    body = _note(f"{where} (frame {view['frame']} of the reference file), chosen by {view['chosen_by']}") + "".join(
        _img(plots.structure_scores(view["symbols"], view["positions_A"], s, f"{n}: {where}"), f"structure-{n}",
             f"{where} coloured by the scores of {n}")
        for n, s in view["scores"].items()
    )
    return _section(ident, title, body)


def _atom_classes(ident: str, models: Mapping[str, Any]) -> str:
    """Per model: the top per-atom classes (species pair) with their distance ranges, and one structure coloured
    by the per-atom SHAP of the top class (harness.reports.atom_summary)."""
    from harness.reports import plots

    title = "Per-atom error classes (pair shells, SHAP grouped by species pair)"
    found = {n: m["atoms"] for n, m in models.items() if "atoms" in m}
    if not found:
        return _section(ident, title, _note("no per-atom explanation in this run (a suite with an atom_error_classes "
                                            "check computes one; --harness-explain fits one for every model)"))
    body = ""
    for n, a in found.items():
        if "error" in a:
            body += f"<h3>{escape(n)}</h3>" + _note(f"no per-atom surrogate: {a['error']}")
            continue
        rows = [[escape(c["class"]), escape(c["label"]), _range_html(c["distance_range_A"]),
                 _fmt(c["mean_abs_shap"]), _fmt(c["share"])] for c in a["top_classes"]]
        body += f"<h3>{escape(n)}</h3>" + _note(
            f"per-atom surrogate of the force-error norm: structure-grouped CV R^2 = {_fmt(a['surrogate_cv_r2'])} "
            f"on {a['n_atoms_sampled']} sampled atoms; a class is evidence only when the surrogate explains the error"
        ) + _table(["class", "where", "distance range (A)", "grouped mean |SHAP| (eV/A)", "share"], rows)
        view = a.get("structure")
        if view:
            where = f"structure {view['index']} (frame {view['frame']})"
            body += _img(plots.atom_class_shap(view["symbols"], view["positions_A"], view["shap"],
                                               f"{n}: {where}, class {view['class']}"),
                         f"atom-class-structure-{n}", f"{where} coloured by the per-atom SHAP of {view['class']} ({n})")
            body += _note(f"{where}, chosen by {view['chosen_by']}")
    return _section(ident, title, body)


def _suite_sections(i: int, suite: Mapping[str, Any]) -> list[str]:
    models: dict[str, Any] = suite.get("models", {})
    top_n = int(suite.get("top_n", 20))
    explained = {n: m["shap"] for n, m in models.items() if "shap" in m and "error" not in m["shap"]}
    missing = "no model has a fitted surrogate in this document (run with --harness-explain)" + "".join(
        f"; {n}: {m['shap']['error']}" for n, m in models.items() if "error" in m.get("shap", {})
    )
    return [
        f'<h1 id="suite-{i}">Suite {escape(suite.get("suite", "?"))}</h1>',
        _accuracy(i, suite),
        _provenance(i, suite),
        _gradcam(f"gradcam-per-element-{i}", models),
        _distribution(f"score-distribution-{i}", suite.get("score_histogram")),
        _shap_top(f"shap-top-{i}", explained, top_n, missing),
        _angular(f"angular-histogram-{i}", explained, missing),
        _overlaps(f"overlap-matrix-{i}", suite, explained, top_n, missing),
        _structure(f"structure-{i}", suite.get("structure_view")),
        _atom_classes(f"atom-classes-{i}", models),
    ]


def _overlap(names: list[str], suite: Mapping[str, Any], top_n: int) -> np.ndarray:
    pairs = suite.get("pairwise_shared", {})
    matrix = np.zeros((len(names), len(names)))
    for a, na in enumerate(names):
        for b, nb in enumerate(names):
            if a == b:
                matrix[a, b] = min(top_n, len(suite["models"][na]["shap"]["top"]))
            else:
                matrix[a, b] = pairs.get(f"{na}|{nb}", pairs.get(f"{nb}|{na}", np.nan))
    return matrix


def render_html(document: Mapping[str, Any]) -> str:
    """The report of one results document, as one HTML string."""
    title = "mlff-harness report: " + ", ".join(s.get("suite", "?") for s in document.get("suites", []))
    parts = [_summary(document), _checks(document)]
    for i, suite in enumerate(document.get("suites", [])):
        parts += _suite_sections(i, suite)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{''.join(parts)}</body></html>\n"
    )


def write_html(path: Path | str, document: Mapping[str, Any]) -> Path:
    """Render and write atomically (harness.files: temporary file, fsync, rename)."""
    path = Path(path)
    atomic_write_text(path, render_html(document))
    return path
