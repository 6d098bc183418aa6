"""The report's section "Across data sets": which noise settings generalize over the sweep's tasks.

:func:`section` computes it from a :class:`~sweeper.stats.comparisons.Comparison` with
:mod:`sweeper.stats.across` (per setting: the interquartile mean of normalized scores with a stratified
bootstrap CI, the probability of improving on no noise, performance profiles; signed-rank tests over the
per-task means with Holm); :func:`terminal`, :func:`markdown` and :func:`html` show it, :func:`figure` draws
it. The report dict holds it under ``across_data_sets`` (None for a sweep of one task).
"""

from __future__ import annotations

import html as _html

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from sweeper.noise.spec import BASELINE
from sweeper.report.plots import VERDICT_COLOURS
from sweeper.stats import across
from sweeper.stats import statistics as st
from sweeper.stats.comparisons import CONFIDENCE, Comparison

#: Bootstrap resamples of the section (rliable's default for profiles; the intervals settle well before).
N_BOOT = 2000
#: Thresholds τ of the performance profiles, evenly spaced over the scores' range.
N_TAUS = 41
#: Settings drawn in the profiles besides no noise: the best by IQM.
PROFILE_LINES = 5
HEADER = ("setting", "IQM [95% CI]", "P(> none) [95% CI]", "won/tied/lost", "p adj.", "verdict")
NEMENYI_CAVEAT = (
    "Average ranks, Friedman's test and Nemenyi's critical difference are shown for reference only: whether "
    "two settings differ by Nemenyi depends on which other settings are in the sweep (Benavoli, Corani & "
    "Mangili 2016, JMLR 17); the verdicts across data sets are the signed-rank tests of 'Across data sets'."
)


def section(
    compared: Comparison,
    *,
    alpha: float,
    seed: int,
    n_boot: int = N_BOOT,
    confidence: float = CONFIDENCE,
) -> dict:
    """Every setting across the sweep's tasks, best IQM first, with the words and the methods.

    Rows: the IQM of the normalized test scores over all runs of all tasks with its stratified bootstrap
    CI, P(setting > no noise) with its CI, the tasks whose mean it won, tied and lost against no noise,
    and the two-sided Wilcoxon signed-rank p over those per-task means, Holm-adjusted over the ``k - 1``
    comparisons with no noise, and its verdict. ``pairs``: every pair of settings, Holm over all pairs.
    ``profiles``: the share of runs above each τ with its band. Resamples draw repeats within each task,
    the same repeats for every setting (they are paired). NaN is None, as in the rest of the report.
    """
    configs, tasks, higher = compared.configs, compared.tasks, compared.higher_is_better
    base = next(i for i, c in enumerate(configs) if c["params"] == {"placement": BASELINE})
    scores, _ = across.task_scores(tasks, base, higher_is_better=higher)
    k, _, n_tasks = scores.shape
    counts = across.stratified_counts([t.values.shape[0] for t in tasks], n_boot, np.random.default_rng(seed))
    iqm, iqm_ci = across.iqm_intervals(scores, counts, confidence)
    improve, improve_ci = across.improvement_intervals(scores, base, counts, confidence)
    finite = scores[np.isfinite(scores)]
    taus = np.linspace(finite.min(), finite.max(), N_TAUS) if finite.size else np.zeros(0)
    profile, band = across.profile_bands(scores, taus, counts, confidence)
    means = across.task_means(scores)  # (n_tasks, k)
    others = [c for c in range(k) if c != base]
    vs_none = {p["a"]: p for p in across.pairwise_signed_rank(means, alpha, pairs=[(c, base) for c in others])}

    def name(c):
        return {"trial": configs[c]["trial"], "label": configs[c]["label"]}

    rows = []
    for c in range(k):
        test = vs_none.get(c)
        rows.append(
            {
                **name(c),
                "iqm": iqm[c],
                "iqm_ci": iqm_ci[:, c].tolist(),
                "mean": float(np.nanmean(means[:, c])) if np.isfinite(means[:, c]).any() else None,
                "p_improve": improve[c],
                "p_improve_ci": improve_ci[:, c].tolist(),
                "won": None if test is None else test["wins"],
                "lost": None if test is None else test["losses"],
                "tied": None if test is None else test["n_tasks"] - test["wins"] - test["losses"],
                "p_value": None if test is None else test["p_value"],
                "p_adjusted": None if test is None else test["p_adjusted"],
                "verdict": "baseline" if test is None else test["verdict"],
                "profile": profile[c].tolist(),
                "profile_band": band[:, c].tolist(),
            }
        )
    order = sorted(range(k), key=lambda c: (-np.nan_to_num(iqm[c], nan=-np.inf), configs[c]["trial"]))
    pairs = [
        {
            "a": name(p["a"]),
            "b": name(p["b"]),
            **{key: p[key] for key in ("n_tasks", "median_difference", "wins", "losses", "p_value", "p_adjusted")},
            "verdict": p["verdict"],
        }
        for p in across.pairwise_signed_rank(means, alpha)
    ]
    out = {
        "n_tasks": n_tasks,
        "tasks": [t.name for t in tasks],
        "normalization": across.NORMALIZATION[higher],
        "metric": compared.metric,
        "n_boot": n_boot,
        "confidence": confidence,
        "alpha": alpha,
        "smallest_p": st.smallest_signed_rank_p(n_tasks),
        "tasks_for_a_verdict": st.repeats_for_a_verdict(len(others), alpha),
        "taus": taus.tolist(),
        "settings": [rows[c] for c in order],
        "pairs": pairs,
        "caveat": NEMENYI_CAVEAT,
    }
    out["summary"] = summary_line(out)
    out["methods"] = methods_line(out)
    return out


# --- words -----------------------------------------------------------------------------------------


def _num(x) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.3f}"


def _interval(value, ci) -> str:
    return f"{_num(value)} [{_num(ci[0])}, {_num(ci[1])}]"


def _p(x) -> str:
    if x is None or not np.isfinite(x):
        return "—"
    return f"{x:.2g}" if x >= 1e-3 else f"{x:.1e}"


def _prose(row: dict) -> str:
    return "no noise" if row["verdict"] == "baseline" else row["label"]


def _names(rows: list[dict], limit: int = 4) -> str:
    names = [r["label"] for r in rows]
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def summary_line(sec: dict) -> str:
    """The section in two sentences: the best IQM against no noise, then what the signed-rank tests say."""
    rows = sec["settings"]
    base = next(r for r in rows if r["verdict"] == "baseline")
    best = rows[0]
    n = sec["n_tasks"]
    text = f"Across {n} data sets, "
    if best is base:
        text += f"no noise has the highest interquartile mean, {_interval(base['iqm'], base['iqm_ci'])}."
    else:
        text += (
            f"{best['label']} has the highest interquartile mean, {_interval(best['iqm'], best['iqm_ci'])} against "
            f"{_interval(base['iqm'], base['iqm_ci'])} without noise, and beats no noise on a run with probability "
            f"{_interval(best['p_improve'], best['p_improve_ci'])}."
        )
    compared = [r for r in rows if r is not base]
    if not compared:
        return text
    if len(compared) * sec["smallest_p"] >= sec["alpha"]:
        return text + (
            f" With {n} data sets the signed-rank test over per-data-set means cannot reach p < {sec['alpha']:g} "
            f"after Holm over {len(compared)} comparisons: a verdict needs at least {sec['tasks_for_a_verdict']}."
        )
    better = [r for r in compared if r["verdict"] == "better"]
    worse = [r for r in compared if r["verdict"] == "worse"]
    parts = []
    if better:
        parts.append(f"{len(better)} better ({_names(better)})")
    if worse:
        parts.append(f"{len(worse)} worse ({_names(worse)})")
    rest = len(compared) - len(better) - len(worse)
    parts.append(f"{rest} cannot be told apart from it" if rest else "none left undecided")
    return text + (
        f" Against no noise over the {n} per-data-set means (Wilcoxon signed-rank, Holm over {len(compared)}): "
        + "; ".join(parts)
        + "."
    )


def methods_line(sec: dict) -> str:
    """How the section's numbers were computed, with the sources."""
    return (
        f"Scores are {sec['metric']} per run, normalized per data set: {sec['normalization']}; a diverged run "
        "scores as the worst finished run of its data set. IQM: the mean of the middle 50% of all runs of all "
        f"data sets; CIs: {sec['confidence']:.0%} percentile intervals of {sec['n_boot']} stratified bootstrap "
        "resamples (repeats drawn within each data set, the same repeats for every setting); P(> none): per data "
        "set the Mann–Whitney probability that a run of the setting beats a run without noise (ties half), "
        "averaged over data sets; performance profiles: the share of runs above τ, averaged over data sets "
        "(Agarwal et al. 2021, NeurIPS, 'Deep reinforcement learning at the edge of the statistical precipice'; "
        "the tests compare these numbers with rliable's). Verdicts: two-sided Wilcoxon signed-rank tests on the "
        "per-data-set mean scores, every setting against no noise, Holm-adjusted (Benavoli, Corani & Mangili "
        "2016, JMLR 17, 'Should we really use post-hoc tests based on mean-ranks?')."
    )


# --- rendering -------------------------------------------------------------------------------------


def _cells(row: dict) -> list[str]:
    record = "—" if row["won"] is None else f"{row['won']}/{row['tied']}/{row['lost']}"
    return [
        row["label"],
        _interval(row["iqm"], row["iqm_ci"]),
        "—" if row["verdict"] == "baseline" else _interval(row["p_improve"], row["p_improve_ci"]),
        record,
        _p(row["p_adjusted"]),
        row["verdict"],
    ]


def _legend(sec: dict) -> str:
    return (
        f"IQM: interquartile mean of the scores, normalized per data set: {sec['normalization']}; P(> none): "
        "probability that a run beats a run without noise; won/tied/lost (W/T/L): data sets whose mean beat, tied "
        f"or lost to no noise; p adj.: signed-rank test over the {sec['n_tasks']} per-data-set means, Holm-adjusted."
    )


def _pairs_line(sec: dict, limit: int = 6) -> str:
    """The pairs of settings that differ over data sets (Holm over all pairs), at most ``limit`` named."""
    baseline = {r["trial"] for r in sec["settings"] if r["verdict"] == "baseline"}

    def name(ref):
        return "no noise" if ref["trial"] in baseline else ref["label"]

    differ = [
        f"{name(p['a'])} {p['verdict']} than {name(p['b'])} (data sets won {p['wins']}, lost {p['losses']}; "
        f"Holm p {_p(p['p_adjusted'])})"
        for p in sorted(sec["pairs"], key=lambda p: p["p_adjusted"] if p["p_adjusted"] is not None else 2.0)
        if p["verdict"] != "no_difference"
    ]
    total = len(sec["pairs"])
    if not differ:
        return f"Every pair of settings (Holm over {total}): none can be told apart."
    more = f"; and {len(differ) - limit} more pairs" if len(differ) > limit else ""
    return f"Every pair of settings (Holm over {total}), those that differ: " + "; ".join(differ[:limit]) + more + "."


#: Below this terminal width P(> none) is shown without its interval, so that the numbers stay on one line.
NARROW = 120


def terminal(sec: dict, width: int | None = None) -> Group:
    """The section for a terminal: a table, its legend and the pairs that differ (the summary is the report's).

    In a terminal narrower than :data:`NARROW` the probability of improvement goes without its interval
    (the JSON, Markdown and HTML keep it); numbers never wrap, the settings' names do.
    """
    narrow = width is not None and width < NARROW
    styles = {v: f"bold {c}" for v, c in VERDICT_COLOURS.items()} | {"no_difference": "dim"}
    table = Table(
        title=f"Across {sec['n_tasks']} data sets",
        caption=_legend(sec),
        # narrow: columns apart by one space, no rules at the sides, the room left to the settings' names
        box=box.SIMPLE_HEAD if narrow else box.HEAVY_HEAD,
        padding=(0, 0) if narrow else (0, 1),
        show_edge=not narrow,
    )
    short = {"P(> none) [95% CI]": "P(> none)", "won/tied/lost": "W/T/L"}
    header = [short.get(h, h) if narrow else h for h in HEADER]
    for name in header:
        words = name in ("setting", "verdict")
        table.add_column(
            name,
            justify="left" if words else "right",
            overflow="fold",
            no_wrap=not words,
            min_width=len("no_difference") if name == "verdict" else None,
        )
    for row in sec["settings"]:
        cells = [Text(cell) for cell in _cells(row)]
        if narrow and row["verdict"] != "baseline":
            cells[2] = Text(_num(row["p_improve"]))
        cells[-1].stylize(styles[row["verdict"]])
        table.add_row(*cells)
    return Group(table, Text(_pairs_line(sec)))


def markdown(sec: dict) -> list[str]:
    """The section as Markdown lines (the figure is among the report's figures, ``across``)."""

    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [
        f"## Across data sets ({sec['n_tasks']})",
        "",
        sec["summary"],
        "",
        line(HEADER),
        line(["---"] * len(HEADER)),
        *(line(_cells(row)) for row in sec["settings"]),
        "",
        f"*{_legend(sec)}*",
        "",
        _pairs_line(sec),
        "",
        f"*{sec['caveat']}*",
        "",
        f"*Methods: {sec['methods']}*",
        "",
    ]


def html(sec: dict) -> list[str]:
    """The section as HTML elements, the report's verdict classes on its rows."""
    e = _html.escape
    # words left, numbers right (the report's style sheet aligns only its own tables' second column left)
    align = ["left" if name in ("setting", "verdict") else "right" for name in HEADER]
    head = "".join(f"<th style='text-align:{a}'>{e(h)}</th>" for h, a in zip(HEADER, align))
    body = "".join(
        f"<tr class='{row['verdict']}'>"
        + "".join(f"<td style='text-align:{a}'>{e(c)}</td>" for c, a in zip(_cells(row), align))
        + "</tr>"
        for row in sec["settings"]
    )
    return [
        f"<h2>Across data sets ({sec['n_tasks']})</h2>",
        f"<p>{e(sec['summary'])}</p>",
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
        f"<p><small>{e(_legend(sec))}</small></p>",
        f"<p>{e(_pairs_line(sec))}</p>",
        f"<p><small>{e(sec['caveat'])}</small></p>",
        f"<p><small>Methods: {e(sec['methods'])}</small></p>",
    ]


# --- figure ----------------------------------------------------------------------------------------


def figure(sec: dict, *, max_rows: int = 40) -> Figure:
    """Left: each setting's IQM with its CI, best at the top, coloured by its verdict against no noise.
    Right: performance profiles with their bands, no noise and the best settings by IQM."""
    rows = sec["settings"][:max_rows]
    fig = Figure(figsize=(11.0, 1.6 + 0.3 * max(len(rows), 6)), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1.1, 1.0])
    y = np.arange(len(rows))[::-1]
    for yi, row in zip(y, rows):
        if row["iqm"] is None:
            continue
        lo, hi = (np.nan if v is None else v for v in row["iqm_ci"])
        left.errorbar(
            row["iqm"],
            yi,
            xerr=[[row["iqm"] - lo], [hi - row["iqm"]]],
            fmt="o",
            color=VERDICT_COLOURS[row["verdict"]],
            capsize=3,
            ms=5,
        )
    base = next(r for r in sec["settings"] if r["verdict"] == "baseline")
    if base["iqm"] is not None:
        left.axvline(base["iqm"], color="black", lw=0.8, ls=":")
    left.set_yticks(y, [r["label"] for r in rows], fontsize=8)
    left.set_xlabel(f"IQM of normalized {sec['metric']}, {sec['confidence']:.0%} stratified bootstrap CI")
    cut = len(sec["settings"]) - len(rows)
    left.set_title(f"Across {sec['n_tasks']} data sets" + (f" ({cut} more not shown)" if cut else ""), fontsize=10)
    fig.legend(  # under the figure: the best setting's interval is at the top left, where a legend would sit
        handles=[
            Line2D([], [], marker="o", ls="", color=VERDICT_COLOURS[v], label=f"{v} vs no noise")
            for v in ("better", "no_difference", "worse")
        ],
        fontsize=8,
        loc="outside lower center",
        ncol=3,
        frameon=False,
    )

    taus = np.array(sec["taus"], dtype=float)
    drawn = [r for r in sec["settings"] if r["verdict"] != "baseline"][:PROFILE_LINES] + [base]
    colours = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"]
    for row, colour in zip(drawn, colours[: len(drawn) - 1] + ["#000000"]):
        profile = np.array(row["profile"], dtype=float)
        band = np.array(row["profile_band"], dtype=float)
        right.plot(taus, profile, color=colour, lw=1.4 if row is base else 1.1, label=_prose(row))
        right.fill_between(taus, band[0], band[1], color=colour, alpha=0.15, lw=0)
    right.set_xlabel(f"normalized {sec['metric']} τ")
    right.set_ylabel("share of runs with score > τ")
    right.set_ylim(-0.02, 1.02)
    right.set_title("performance profiles (no noise and the best IQMs)", fontsize=10)
    right.legend(fontsize=8, loc="best")
    return fig
