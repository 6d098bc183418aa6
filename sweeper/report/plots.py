"""Figures of a sweep report: learning curves, a heatmap of differences from baseline, a forest plot.

Every function builds a ``matplotlib.figure.Figure`` directly, without pyplot, so nothing depends
on a display or on pyplot's global figure list; PNGs are rendered by Agg.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from sweeper import metrics
from sweeper.noise.spec import PLACEMENTS
from sweeper.report import numbers

VERDICT_COLOURS = {
    "better": "#1a9850",
    "worse": "#d73027",
    "no_difference": "#7f7f7f",
    "equivalent": "#4575b4",
    "baseline": "#000000",
    "incomparable": "#b8860b",
}
VERDICT_MARKS = {"better": "▲", "worse": "▼"}
#: Heatmap panels per row.
HEATMAP_COLUMNS = 4


def _left_out(report: dict) -> str | None:
    """What ``--top``/``--verdict`` left out of a figure, in words; None when nothing was."""
    shown = report.get("shown")
    if not shown or shown["configs"] == shown["of"]:
        return None
    return f"{shown['of'] - shown['configs']} of {shown['of']} configurations left out (--top / --verdict)"


def save_png(fig: Figure, path: str | Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG at ``path`` and return the path."""
    path = Path(path)
    fig.savefig(path, format="png", dpi=dpi, bbox_inches="tight")
    return path


def png_bytes(fig: Figure, *, dpi: int = 110) -> bytes:
    """``fig`` as PNG bytes (for embedding)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _metric_parts(metric: str) -> tuple[str, str, str]:
    """The curve names of a report's metric on the training, validation and test parts."""
    suffix = metric.removeprefix("early_").removeprefix("test_")
    return f"train_{suffix}", f"val_{suffix}", f"test_{suffix}"


def _by_epoch(epochs: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and sd over repeats at each logged epoch, ignoring non-finite values. ``(n_rows,)`` each."""
    unique, where = np.unique(epochs, return_inverse=True)
    ok = np.isfinite(values)
    count = np.bincount(where, weights=ok, minlength=unique.size)
    total = np.bincount(where, weights=np.where(ok, values, 0.0), minlength=unique.size)
    squares = np.bincount(where, weights=np.where(ok, values, 0.0) ** 2, minlength=unique.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        sd = np.sqrt(np.maximum(squares / count - mean**2, 0.0) * count / np.maximum(count - 1, 1))
    return unique, mean, sd


def learning_curves(curves: list[dict], report: dict, *, task: str | None = None, max_panels: int = 12) -> Figure:
    """Train, validation and test metric against epoch, mean over repeats with a ±1 sd band, one panel per
    configuration.

    ``curves`` are the store's curve rows (``trial``, ``task``, ``repeat``, ``epoch``, metrics).
    Panels: the baseline first, then the configurations in the report's order (best first), at
    most ``max_panels``. The dotted line marks the epoch of the best mean validation metric (test
    metric without a validation part), so overfitting shows as the curves turning away after it.
    ``task`` defaults to the first.
    """
    train_key, val_key, test_key = _metric_parts(report["metric"])
    if not any(row.get(val_key) is not None for row in curves):
        val_key = None
    chosen_on = val_key or test_key
    task = task if task is not None else report["task_names"][0]
    configs = [report["baseline"]] + [c for c in report["configs"] if c["verdict"] != "baseline"]
    configs = configs[:max_panels]
    rows_by_trial = defaultdict(list)
    for row in curves:
        if str(row.get("task") or "default") == task:
            rows_by_trial[row["trial"]].append(row)

    ncols = min(4, len(configs))
    nrows = math.ceil(len(configs) / ncols)
    fig = Figure(figsize=(4.0 * ncols, 3.0 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    pick_best = np.nanargmax if report["higher_is_better"] else np.nanargmin
    for ax, config in zip(axes, configs):
        rows = rows_by_trial.get(config["trial"], [])
        ax.set_title(config["label"], fontsize=9, color=VERDICT_COLOURS.get(config["verdict"], "black"))
        if not rows:
            ax.text(0.5, 0.5, "no curves", ha="center", va="center", transform=ax.transAxes, color="grey")
            continue
        epochs = np.array([r["epoch"] for r in rows], dtype=float)
        parts = ((train_key, "#4575b4"), (val_key, "#7b3294"), (test_key, "#f46d43"))
        for key, colour in ((k, c) for k, c in parts if k is not None):
            values = np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)
            x, mean, sd = _by_epoch(epochs, values)
            ax.plot(x, mean, color=colour, lw=1.2, label=key)
            ax.fill_between(x, mean - sd, mean + sd, color=colour, alpha=0.2, lw=0)
            if key == chosen_on and np.isfinite(mean).any():
                ax.axvline(x[pick_best(mean)], color=colour, ls=":", lw=1)
    for ax in axes[len(configs) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8)
    fig.supxlabel("epoch")
    fig.suptitle(f"{report['sweep']} — {task}: mean over repeats ± 1 sd")
    return fig


#: The heatmap's colour range, fixed by the metric so that a difference nobody can tell from zero is never
#: drawn saturated: an absolute difference for bounded metrics, a share of no noise's value for errors.
HEATMAP_REACH = {"accuracy": 0.10, "r2": 0.10, "ece": 0.05}
#: Errors and losses (MSE, loss): colour by the difference as a share of no noise's mean.
RELATIVE_REACH = 0.20
#: How pale a cell without a verdict is drawn (the share of its colour kept).
PALE = 0.35


def heatmap_scale(report: dict) -> tuple[float, bool]:
    """The heatmap's symmetric colour range for the report's metric, and whether it is relative to no noise."""
    name = metrics.base(report["metric"])
    if name in HEATMAP_REACH:
        return HEATMAP_REACH[name], False
    return RELATIVE_REACH, True


def delta_heatmap(report: dict) -> Figure | None:
    """Mean difference from baseline over placement × std, one panel per noise kind (and schedule).

    Only single-placement configurations fit the grid; None when there are none. Colour is green where
    the configuration is better whichever way the metric points, on a scale fixed by the metric
    (:func:`heatmap_scale`: accuracy ±10 points), not zoomed to the data. A cell with a verdict (Holm's
    correction) is drawn in full colour, framed and marked ▲/▼; the others are pale.
    """
    panels: dict[str, dict[tuple[str, float], dict]] = defaultdict(dict)
    for config in report["configs"]:
        params = config["params"]
        if isinstance(params, list) or params.get("placement") == "none" or config["delta"] is None:
            continue
        name = params.get("kind", "?")
        if params.get("schedule") == "annealed":
            name += f", annealed γ={params.get('gamma', 0.55):g}"
        elif params.get("schedule") in ("linear", "cosine"):
            name += f", {params['schedule']} to {params.get('std_min', 0.0):g}"
        if params.get("relative"):
            name += ", relative"
        panels[name][(params["placement"], params["std"])] = config
    if not panels:
        return None

    sign = 1.0 if report["higher_is_better"] else -1.0
    reach, relative = heatmap_scale(report)
    base = (report.get("baseline") or {}).get("mean")
    per = abs(base) if relative and base else 1.0
    factor, unit = numbers.unit_scale(report["metric"])
    norm = Normalize(vmin=-reach, vmax=reach)
    cmap = colormaps["RdYlGn"]
    names = sorted(panels)
    # Panels in rows of at most HEATMAP_COLUMNS, each wide enough for a signed 2-digit label per cell
    # and tall enough for its placements, so that 8 panels stay a page wide and legible.
    width = max(len({s for _, s in cells}) for cells in panels.values())
    height = max(len({p for p, _ in cells}) for cells in panels.values())
    ncols = min(HEATMAP_COLUMNS, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig = Figure(
        figsize=(max(3.5, 1.4 + 0.55 * width) * ncols + 1.0, (1.3 + 0.45 * height) * nrows), layout="constrained"
    )
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    axes = axes[: len(names)]
    for ax, name in zip(axes, names):
        cells = panels[name]
        placements = sorted(
            {p for p, _ in cells}, key=lambda p: PLACEMENTS.index(p) if p in PLACEMENTS else len(PLACEMENTS)
        )
        stds = sorted({s for _, s in cells})
        colours = np.ones((len(placements), len(stds), 4))  # white where no configuration ran
        for (p, s), c in cells.items():
            i, j = placements.index(p), stds.index(s)
            rgba = np.array(cmap(norm(sign * c["delta"] / per)))
            decided = c["verdict"] in VERDICT_MARKS
            colours[i, j] = rgba if decided else 1.0 - PALE * (1.0 - rgba)
            label = numbers.number(c["delta"] * factor, digits=2, signed=True)
            ax.text(
                j,
                i,
                f"{label}\n{VERDICT_MARKS.get(c['verdict'], '')}",
                ha="center",
                va="center",
                fontsize=7,
                fontweight="bold" if decided else "normal",
                color="black" if decided else "#555555",
            )
            if decided:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.5, ec="black"))
        ax.imshow(colours, aspect="auto")
        ax.set_xticks(range(len(stds)), [f"{s:g}" for s in stds])
        ax.set_yticks(range(len(placements)), placements)
        ax.set_xlabel("std")
        ax.set_title(name, fontsize=9)
    what = f"Δ {report['metric']}" + (f", {unit}" if unit else "")
    shown = reach * (100 if relative else factor)
    fig.colorbar(
        ScalarMappable(norm=Normalize(-shown, shown), cmap=cmap),
        ax=list(axes),
        shrink=0.8,
        label=(f"{what}, % of no noise's" if relative else what) + "\n(green = better; fixed scale)",
    )
    notes = ["framed ▲/▼: reliably better/worse after Holm; pale: no verdict"]
    if _left_out(report):
        notes.append(_left_out(report))
    fig.suptitle("\n".join(notes), fontsize=8)
    return fig


def forest_plot(report: dict, runs: list[dict] | None = None, *, max_rows: int = 40) -> Figure:
    """Each configuration's difference from baseline with its bootstrap CI, coloured by verdict.

    Best first, top to bottom. With more than ``max_rows`` configurations it shows those that matter:
    the best and the worst, every one with a verdict, then the best of the rest, and says how many it
    left out. With ``runs`` the per-repeat paired differences are drawn as faint dots behind each interval.
    """
    every = [c for c in report["configs"] if c["verdict"] != "baseline"]
    configs = _forest_rows(every, max_rows)
    fig = Figure(figsize=(8.0, 1.2 + 0.32 * max(len(configs), 1)), layout="constrained")
    ax = fig.subplots()
    per_repeat = _paired_differences(report, runs) if runs else {}
    factor, unit = numbers.unit_scale(report["metric"])  # accuracy in points, as the table and the answer
    rng = np.random.default_rng(0)  # jitter only
    y = np.arange(len(configs))[::-1]
    for yi, c in zip(y, configs):
        colour = VERDICT_COLOURS[c["verdict"]]
        dots = per_repeat.get(c["trial"])
        if dots is not None and dots.size:
            ax.scatter(dots * factor, yi + rng.uniform(-0.15, 0.15, dots.size), s=6, color=colour, alpha=0.25, lw=0)
        if c["delta"] is None:
            continue
        lo, hi = c["delta_ci"]
        xerr = None if lo is None or hi is None else [[(c["delta"] - lo) * factor], [(hi - c["delta"]) * factor]]
        ax.errorbar(c["delta"] * factor, yi, xerr=xerr, fmt="o", color=colour, capsize=3, ms=5)
    ax.axvline(0.0, color="black", lw=0.8)
    labels = [c["label"] + (f"  ({c['diverged']} diverged)" if c["diverged"] else "") for c in configs]
    ax.set_yticks(y, labels, fontsize=8)
    direction = "higher" if report["higher_is_better"] else "lower"
    shown_in = f", {unit}" if unit else ""
    ax.set_xlabel(f"Δ {report['metric']} vs no noise{shown_in} ({direction} is better)")
    notes = []
    if len(configs) < len(every):
        notes.append(f"{len(every) - len(configs)} of {len(every)} not shown: best, worst and every verdict kept")
    if _left_out(report):
        notes.append(_left_out(report))
    shown = f"\n({'; '.join(notes)})" if notes else ""
    ax.set_title(
        f"{report['sweep']}: difference from baseline, {report['confidence']:.0%} bootstrap CI{shown}", fontsize=10
    )
    ax.legend(
        handles=[
            Line2D([], [], marker="o", ls="", color=VERDICT_COLOURS[v], label=v)
            for v in ("better", "no_difference", "worse")
        ],
        fontsize=8,
        loc="best",
    )
    return fig


def _forest_rows(configs: list[dict], max_rows: int) -> list[dict]:
    """At most ``max_rows`` of ``configs`` (best first), keeping the best, the worst and those with a verdict."""
    if len(configs) <= max_rows:
        return configs
    keep = {0, len(configs) - 1} | {i for i, c in enumerate(configs) if c["verdict"] in ("better", "worse")}
    if len(keep) > max_rows:  # more verdicts than room: the best and worst of them
        marked = sorted(keep)
        keep = set(marked[: max_rows // 2]) | set(marked[len(marked) - (max_rows - max_rows // 2) :])
    for i in range(len(configs)):  # fill up with the best of the rest
        if len(keep) >= max_rows:
            break
        keep.add(i)
    return [configs[i] for i in sorted(keep)]


def _paired_differences(report: dict, runs: list[dict]) -> dict[int, np.ndarray]:
    """Per-repeat raw differences from the baseline run of the same task and repeat, finished pairs only."""
    metric, base = report["metric"], report["baseline"]["trial"]

    def value(row):
        x = row.get(metric)
        return np.nan if row.get("diverged") or x is None else float(x)

    baseline = {(r.get("task"), r["repeat"]): value(r) for r in runs if r["trial"] == base}
    diffs = defaultdict(list)
    for r in runs:
        if r["trial"] != base and (r.get("task"), r["repeat"]) in baseline:
            diffs[r["trial"]].append(value(r) - baseline[(r.get("task"), r["repeat"])])
    return {trial: np.array(d)[np.isfinite(d)] for trial, d in diffs.items()}
