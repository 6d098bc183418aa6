"""The columns of a report's table: each one's header, its cells, what it means, and whether the narrow
table (the terminal's default) shows it. Every format reads them here, so a column is explained where it
appears: a legend under the terminal and Markdown tables, a hover title and a glossary in HTML.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sweeper import metrics
from sweeper.report import numbers
from sweeper.report.prose import floor, metric_name
from sweeper.stats.comparisons import CONFIDENCE, POWER


@dataclass(frozen=True)
class Column:
    """One column: ``header(report)``, ``cell(report, config)``, ``legend(report)`` (what it means, one
    sentence), and whether this report fills it (``shown(report)``)."""

    key: str
    header: Callable[[dict], str]
    cell: Callable[[dict, dict], str]
    legend: Callable[[dict], str]
    shown: Callable[[dict], bool] = lambda report: True
    words: bool = False  # left-aligned text, not a number


def _words_some_rows_have(key: str, meaning: str) -> Column:
    """A column of words that only some sweeps' rows fill (a raced sweep's ``stopped``, say), shown where one does."""
    return Column(
        key,
        lambda r: key,
        lambda r, c: c.get(key) or "",
        lambda r: meaning,
        shown=lambda r: any(c.get(key) for c in r["configs"]),
        words=True,
    )


def _name(report: dict) -> str:
    return metric_name(report["metric"])


def _unit(report: dict) -> tuple[float, str]:
    return numbers.unit_scale(report["metric"])


def _delta_header(report: dict) -> str:
    factor, unit = _unit(report)
    return f"Δ {unit or _name(report)} [95% CI]"


def _delta(report: dict, c: dict) -> str:
    if c["verdict"] == "baseline":
        return "baseline"
    factor, _ = _unit(report)
    value = None if c["delta"] is None else c["delta"] * factor
    ci = None if c["delta_ci"] is None or None in c["delta_ci"] else [x * factor for x in c["delta_ci"]]
    if factor != 1.0:  # points: 2 digits, tenths of a point at least
        return numbers.interval(value, ci, digits=2, decimals=1, signed=True, floor=floor(report) * factor)
    return numbers.interval(value, ci, digits=2, signed=True, floor=floor(report))


def _delta_legend(report: dict) -> str:
    factor, unit = _unit(report)
    what = f"test {_name(report)}"
    scaled = f"; 1 point is {what} 0.01" if unit == "points" else ""
    return (
        f"{what} minus no noise's on the same repeat (same split, same initial weights), averaged{scaled}; "
        "[95% CI] a bootstrap interval over repeats"
    )


def _is_regression(report: dict) -> bool:
    return bool(report.get("also"))


def _other(name: str, *, delta: bool) -> Column:
    """A regression metric the sweep did not compare on (RMSE, MSE, R²): its mean, or its paired difference."""
    label = metric_name(name)

    def cell(report, c):
        if delta:
            if c["verdict"] == "baseline":
                return "baseline"
            return numbers.interval(
                c.get(f"{name}_delta"), c.get(f"{name}_delta_ci"), digits=2, signed=True, floor=floor(report)
            )
        return numbers.number(c.get(name), floor=floor(report))

    def legend(report):
        base = {
            "rmse": "root mean squared error on the test part, in the target's units: each run's sqrt(MSE), "
            "averaged over repeats",
            "mse": "mean squared error on the test part, in the target's units squared",
            "r2": "coefficient of determination on the test part (1 is perfect, 0 is predicting the mean)",
        }[name]
        if delta:
            return (
                f"the paired difference of {label} from no noise, repeat by repeat, averaged"
                + (" (the mean of differences of square roots, not the root of a difference)" if name == "rmse" else "")
                + "; [95% CI] a bootstrap interval"
            )
        return base

    return Column(
        key=f"{name}_delta" if delta else name,
        header=lambda report: f"Δ {label} [95% CI]" if delta else label,
        cell=cell,
        legend=legend,
        shown=lambda report: name in (report.get("also") or ()),
    )


def _count(key: str) -> Callable[[dict, dict], str]:
    return lambda report, c: str(c.get(key) or 0)


def _wins(report: dict, c: dict) -> str:
    return "—" if c.get("wins") is None else f"{c['wins']}/{c['n_pairs']}"


COLUMNS: tuple[Column, ...] = (
    Column(
        "rank",
        lambda r: "rank",
        lambda r, c: f"{c['rank']:.3g}",
        lambda r: f"average rank on {r['selected_on']} (across tasks: the mean of per-task ranks); 1 is the best",
    ),
    Column(
        "configuration",
        lambda r: "configuration",
        lambda r, c: c["label"],
        lambda r: "the noise setting: where it is added (placement), its kind and size σ; none is no noise",
        words=True,
    ),
    Column("n", lambda r: "n", _count("n"), lambda r: "runs that finished"),
    Column("diverged", lambda r: "div.", _count("diverged"), lambda r: "runs that diverged (NaN or inf)"),
    Column(
        "failed_to_learn",
        lambda r: "no learn.",
        _count("failed_to_learn"),
        lambda r: "runs that finished no better than chance on their own training data",
    ),
    Column(
        "selection_mean",
        lambda r: "selected on",
        lambda r, c: numbers.number(c.get("selection_mean"), floor=floor(r)),
        lambda r: f"mean {r['selected_on']}, what the configurations were ordered and chosen on",
        shown=lambda r: not r.get("shared"),
    ),
    Column(
        "mean",
        lambda r: f"test {_name(r)} [95% CI]",
        lambda r, c: numbers.interval(c["mean"], c["ci"], floor=floor(r)),
        lambda r: f"mean test {_name(r)} over repeats, with a {CONFIDENCE:.0%} bootstrap interval",
    ),
    Column(
        "ece",
        lambda r: "ECE",
        lambda r, c: numbers.number(c.get("ece"), floor=floor(r)),
        lambda r: "expected calibration error on the test part: how far confidence is from accuracy (lower is better)",
        shown=lambda r: any(c.get("ece") is not None for c in r["configs"]),
    ),
    Column("delta", _delta_header, _delta, _delta_legend),
    _other("rmse", delta=True),
    _other("rmse", delta=False),
    _other("mse", delta=True),
    _other("mse", delta=False),
    _other("r2", delta=True),
    _other("r2", delta=False),
    Column(
        "wins",
        lambda r: "wins",
        _wins,
        lambda r: "paired repeats on which it did better than no noise, of those paired",
        shown=lambda r: not _is_regression(r),
    ),
    Column(
        "p_improve",
        lambda r: "P(improve) [95% CI]",
        lambda r, c: numbers.interval(c.get("p_improve"), c.get("p_improve_ci"), digits=2, decimals=2),
        lambda r: "share of repeats on which it beat no noise, ties counting half; Wilson interval",
    ),
    Column(
        "p_value",
        lambda r: "p",
        lambda r, c: numbers.p_value(c.get("p_value")),
        lambda r: "two-sided Wilcoxon signed-rank p-value of the paired differences, before correction",
    ),
    Column(
        "p_adjusted",
        lambda r: "p adj.",
        lambda r, c: numbers.p_value(c.get("p_adjusted")),
        lambda r: f"p-value after Holm's correction for the {r.get('family', '')} comparisons with no noise",
    ),
    Column(
        "verdict",
        lambda r: "verdict",
        lambda r, c: c["verdict"],
        lambda r: (
            f"better or worse where the Holm-adjusted p < {r['alpha']:g}, else no_difference; a CI that "
            f"excludes 0 beside no_difference is no contradiction: Holm corrects for {r.get('family', 'all')} "
            "comparisons, the CI for none"
        ),
        words=True,
    ),
    Column(
        "p_best",
        lambda r: "P(best)",
        lambda r, c: numbers.probability(c.get("p_best")),
        lambda r: f"share of bootstrap resamples in which it has the best mean {r['selected_on']}",
    ),
    Column(
        "gap",
        lambda r: "gap",
        lambda r, c: numbers.number(c.get("gap"), signed=True, floor=floor(r)),
        lambda r: "train minus test (test minus train for losses and errors): positive means overfitting",
    ),
    Column(
        "mde",
        lambda r: "MDE",
        lambda r, c: numbers.number(c.get("mde"), floor=floor(r)),
        lambda r: (
            f"minimum detectable effect: the smallest true difference these repeats detect with power {POWER:g} "
            "at Holm's level; — where the paired differences do not vary"
        ),
    ),
    _words_some_rows_have("stopped", "why racing stopped this configuration before its last repeat"),
    _words_some_rows_have("test", "the test that gave the verdict"),
)

#: Terms the report's sentences use that no column header names.
TERMS = {
    "paired repeat": (
        "repeat r of every configuration shares the data split and the initial weights, so a configuration is "
        "compared with no noise repeat by repeat"
    ),
    "Holm": (
        "Holm's step-down correction: every planned comparison with no noise counts, so a small p-value among many "
        "is not mistaken for a real difference"
    ),
    "BBC": (
        "bootstrap bias-corrected estimate (Tsamardinos et al. 2018): without a validation part, the chosen "
        "configuration's test mean is optimistic; BBC corrects it for having been picked"
    ),
    "optimism": (
        "how much better the chosen configuration looks on the data it was chosen on than on the test part, "
        "beside the same difference for no noise, which was not picked"
    ),
}


#: The narrow table (the terminal's default): the answer and how sure it is; regression in the target's units.
NARROW = ("configuration", "delta", "wins", "p_adjusted", "verdict")
NARROW_REGRESSION = ("configuration", "rmse_delta", "rmse", "r2", "verdict")


def columns(report: dict, *, wide: bool) -> list[Column]:
    """The columns this report fills: the narrow table's, or every one (``wide``)."""
    shown = [c for c in COLUMNS if c.shown(report)]
    if wide:
        return shown
    keys = NARROW_REGRESSION if _is_regression(report) else NARROW
    return [c for c in shown if c.key in keys]


def glossary(report: dict) -> dict[str, str]:
    """Every column this report can show and every term its sentences use, with what each means."""
    entries = {c.header(report): c.legend(report) for c in COLUMNS if c.shown(report)}
    entries.update(TERMS)
    if metrics.base(report["metric"]) == "mse" or _is_regression(report):
        entries["MAE"] = "not computed: the engines log MSE and R²; RMSE is derived from each run's MSE"
    return entries
