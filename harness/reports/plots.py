"""Figures of a report and of a history, as PNG bytes (matplotlib, Agg canvas, imported lazily).

Every function takes plain numbers (from a results document), draws one
figure on its own `Figure` (no pyplot state, no display needed) and returns
the PNG bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DPI = 100


def _figure(width: float, height: float, *, projection: str | None = None) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(projection=projection) if projection else fig.add_subplot()
    return fig, ax


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _grouped_bars(ax: Any, groups: Sequence[str], series: Mapping[str, Sequence[float | None]]) -> None:
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, [np.nan if v is None else v for v in values], width, label=name)
    ax.set_xticks(x, groups)
    if len(series) > 1:
        ax.legend(fontsize="small")


def per_element_gradcam(per_model: Mapping[str, Mapping[str, float | None]]) -> bytes:
    """Mean Grad-CAM score per element, one bar group per element, one bar per model."""
    elements = sorted({el for means in per_model.values() for el in means})
    fig, ax = _figure(6, 3.5)
    _grouped_bars(ax, elements, {m: [means.get(el) for el in elements] for m, means in per_model.items()})
    ax.set_ylabel("mean Grad-CAM score")
    ax.set_title("Grad-CAM per element")
    return _png(fig)


def score_distribution(edges: Sequence[float], counts: Mapping[str, Sequence[int]]) -> bytes:
    """Histogram of per-atom scores of every model on shared bins (log count axis)."""
    fig, ax = _figure(6, 3.5)
    for name, c in counts.items():
        ax.stairs(np.asarray(c, dtype=float) + 0.0, np.asarray(edges), label=name, linewidth=1.5)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("per-atom Grad-CAM score")
    ax.set_ylabel("atoms")
    ax.set_title("Distribution of per-atom scores")
    ax.legend(fontsize="small")
    return _png(fig)


def top_features(model: str, top: Sequence[Mapping[str, Any]]) -> bytes:
    """Horizontal bars of mean |SHAP| of the top features, most important on top."""
    names = [t["name"] for t in top][::-1]
    values = [np.nan if t["mean_abs_shap"] is None else t["mean_abs_shap"] for t in top][::-1]
    fig, ax = _figure(6, 0.25 * max(4, len(names)) + 1.0)
    ax.barh(np.arange(len(names)), values, color="tab:blue")
    ax.set_yticks(np.arange(len(names)), names, fontsize="small")
    ax.set_xlabel("mean |SHAP|")
    ax.set_title(f"Top-{len(names)} SOAP features: {model}")
    return _png(fig)


def angular_histogram(per_model: Mapping[str, Mapping[str, float]]) -> bytes:
    """Share of each angular channel l among every model's top features."""
    ls = sorted({int(l) for hist in per_model.values() for l in hist})  # noqa: E741 - l: the angular channel
    fig, ax = _figure(6, 3.5)
    bars = {m: [h.get(str(l), 0.0) for l in ls] for m, h in per_model.items()}  # noqa: E741 - l: the angular channel
    _grouped_bars(ax, [f"l={l}" for l in ls], bars)  # noqa: E741 - l: the angular channel
    ax.set_ylabel("share of top features")
    ax.set_title("Angular channels of the top SHAP features")
    return _png(fig)


def overlap_matrix(names: Sequence[str], matrix: np.ndarray, top_n: int) -> bytes:
    """Shared top-N features for every pair of models (diagonal: N)."""
    fig, ax = _figure(max(3.6, 1.6 + 0.9 * len(names)), max(3.0, 1.2 + 0.8 * len(names)))
    image = ax.imshow(matrix, vmin=0, vmax=top_n, cmap="viridis")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center",
                    color="white" if matrix[i, j] < 0.6 * top_n else "black")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_title(f"Shared top-{top_n} SHAP features")
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    return _png(fig)


def structure_scores(
    symbols: Sequence[str], positions_A: Sequence[Sequence[float]], scores: Sequence[float | None], title: str,
    *, label_top: int = 3,
) -> bytes:
    """3-D scatter of one structure: colour and size by score, marker by element, the top atoms labelled."""
    pos = np.asarray(positions_A, dtype=float)
    values = np.asarray([np.nan if s is None else s for s in scores], dtype=float)
    symbols_arr = np.asarray(symbols)
    fig, ax = _figure(6.5, 5.5, projection="3d")
    markers = "osD^v<>ph*"
    vmin, vmax = float(np.nanmin(values)), float(np.nanmax(values))
    if not vmax > vmin:
        vmax = vmin + 1e-12
    scale = np.nan_to_num((values - vmin) / (vmax - vmin))
    image = None
    for k, element in enumerate(sorted(set(symbols))):
        mask = symbols_arr == element
        image = ax.scatter(pos[mask, 0], pos[mask, 1], pos[mask, 2], c=values[mask], cmap="inferno",
                           vmin=vmin, vmax=vmax, marker=markers[k % len(markers)], s=15 + 150 * scale[mask],
                           edgecolors="grey", linewidths=0.4, depthshade=False)
        ax.scatter([], [], [], marker=markers[k % len(markers)], color="grey", label=element)
    for i in np.argsort(np.nan_to_num(values, nan=-np.inf))[::-1][:label_top]:
        ax.text(pos[i, 0], pos[i, 1], pos[i, 2], f" {symbols[i]}{i}", fontsize="small", color="tab:blue")
    ax.set_xlabel("x (A)")
    ax.set_ylabel("y (A)")
    ax.set_zlabel("z (A)")
    ax.set_title(f"{title}\n(size and colour: score; top {label_top} atoms labelled)", fontsize="medium")
    ax.legend(fontsize="small", loc="upper left")
    if image is not None:
        fig.colorbar(image, ax=ax, shrink=0.6, label="Grad-CAM score")
    return _png(fig)


@dataclass(frozen=True)
class HistoryPanel:
    """One metric over checkpoints: one line per model, thresholds, where each model first failed."""

    title: str
    series: Mapping[str, Sequence[float | None]]
    bound_min: float | None = None
    bound_max: float | None = None
    first_fail: Mapping[str, int | None] = field(default_factory=dict)  # index of the first failing checkpoint


def _draw_history(ax: Any, panel: HistoryPanel, x: Sequence[float], tick_labels: Sequence[str] | None) -> None:
    for name, values in panel.series.items():
        y = np.asarray([np.nan if v is None else v for v in values], dtype=float)
        (line,) = ax.plot(x, y, marker="o", label=name)
        fail = panel.first_fail.get(name)
        if fail is not None:
            ax.axvline(x[fail], color=line.get_color(), linestyle=":", linewidth=1.2)
            ax.plot([x[fail]], [y[fail]], marker="X", markersize=12, color="red", linestyle="none")
            ax.annotate(f"{name}: first fail", (x[fail], y[fail]), fontsize="small", color="red",
                        xytext=(4, 6), textcoords="offset points")
    for bound in (panel.bound_min, panel.bound_max):
        if bound is not None:
            ax.axhline(bound, color="red", linestyle="--", linewidth=1.0)
    if tick_labels is not None:
        ax.set_xticks(list(x), list(tick_labels), rotation=30, ha="right", fontsize="small")
    ax.set_title(panel.title, fontsize="small")
    ax.legend(fontsize="x-small")


def metric_history(
    panel: HistoryPanel, x: Sequence[float], *, x_label: str, tick_labels: Sequence[str] | None = None
) -> bytes:
    """One metric over checkpoints (thresholds dashed red, first failure marked with a red X)."""
    fig, ax = _figure(6, 3.2)
    _draw_history(ax, panel, x, tick_labels)
    ax.set_xlabel(x_label)
    return _png(fig)


def history_grid(
    panels: Sequence[HistoryPanel], x: Sequence[float], *, x_label: str, tick_labels: Sequence[str] | None = None
) -> bytes:
    """Every metric over checkpoints, one panel each, in one PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = 2 if len(panels) > 1 else 1
    rows = max(1, -(-len(panels) // cols))
    fig = Figure(figsize=(6 * cols, 3.2 * rows), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, panel in zip(axes, panels, strict=False):
        _draw_history(ax, panel, x, tick_labels)
        ax.set_xlabel(x_label, fontsize="small")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return _png(fig)


def atom_class_shap(
    symbols: Sequence[str], positions_A: Sequence[Sequence[float]], shap: Sequence[float | None], title: str
) -> bytes:
    """x-y projection of one structure, atoms coloured by one class's per-atom SHAP sum (diverging, 0 white).

    Atoms without a value (not sampled by the per-atom surrogate) are hollow grey rings; marker by element.
    """
    pos = np.asarray(positions_A, dtype=float)
    values = np.asarray([np.nan if v is None else v for v in shap], dtype=float)
    symbols_arr = np.asarray(symbols)
    fig, ax = _figure(6, 5)
    limit = float(np.nanmax(np.abs(values))) if np.any(np.isfinite(values)) else 0.0
    limit = limit if limit > 0 else 1e-12
    markers = "osD^v<>ph*"
    image = None
    order = np.argsort(pos[:, 2])  # far (low z) first, so near atoms are drawn on top
    for k, element in enumerate(sorted(set(symbols))):
        mask = (symbols_arr[order] == element)
        idx = order[mask]
        known = idx[np.isfinite(values[idx])]
        unknown = idx[~np.isfinite(values[idx])]
        marker = markers[k % len(markers)]
        image = ax.scatter(pos[known, 0], pos[known, 1], c=values[known], cmap="coolwarm", vmin=-limit, vmax=limit,
                           marker=marker, s=70, edgecolors="black", linewidths=0.5, label=element)
        ax.scatter(pos[unknown, 0], pos[unknown, 1], marker=marker, s=70, facecolors="none", edgecolors="grey")
    ax.set_xlabel("x (A)")
    ax.set_ylabel("y (A)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"{title}\n(projection on x-y; grey rings: atoms not sampled)", fontsize="medium")
    ax.legend(fontsize="small", loc="upper left")
    if image is not None:
        fig.colorbar(image, ax=ax, shrink=0.8, label="per-atom SHAP of the class (eV/A)")
    return _png(fig)
