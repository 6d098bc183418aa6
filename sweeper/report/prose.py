"""A sweep's report in words: the summary paragraph, the line on a partial sweep, the methods."""

from __future__ import annotations

import numpy as np

from sweeper import metrics
from sweeper.noise.spec import BASELINE
from sweeper.report import numbers
from sweeper.stats import racing
from sweeper.stats.comparisons import CONFIDENCE, POWER, Table

#: How a metric is named in a sentence and a table header.
NAMES = {"accuracy": "accuracy", "mse": "MSE", "rmse": "RMSE", "r2": "R²", "loss": "loss", "ece": "ECE"}


def metric_name(metric: str) -> str:
    """A metric's name as a reader knows it: ``RMSE`` for ``rmse``, ``R²`` for ``test_r2``."""
    base = metrics.base(metric)
    return NAMES.get(base, base)


def floor(report: dict) -> float:
    """What the stored metrics cannot resolve: a difference at most this small prints as 0."""
    base = (report.get("baseline") or {}).get("mean")
    return 1e-9 * max(1.0, abs(base) if base is not None else 1.0)


def effect(report: dict, row: dict, *, digits: int = 2) -> str:
    """A configuration's difference from no noise with its interval, in the units a reader acts on:
    points of accuracy, RMSE in the target's units for regression, else the metric's own."""
    name = metrics.base(report["metric"])
    if "rmse" in (report.get("also") or ()) and row.get("rmse_delta") is not None:
        value, ci, shown = row["rmse_delta"], row["rmse_delta_ci"], "RMSE"
    else:
        value, ci, shown = row.get("delta"), row.get("delta_ci"), metric_name(name)
    factor, unit = numbers.unit_scale(name if shown != "RMSE" else "rmse")
    scaled = None if value is None else value * factor
    scaled_ci = None if ci is None or None in ci else [x * factor for x in ci]
    text = numbers.interval(
        scaled, scaled_ci, digits=digits, decimals=1 if unit else 0, signed=True, floor=floor(report) * factor
    )
    if unit:  # "+4.3 points [3.7, 5.0]"
        value, _, rest = text.partition(" ")
        return f"{value} {unit} {rest}".strip()
    return f"{shown} {text}"


def _what_to_do(report: dict, compared: list[dict]) -> str:
    """What to do when nothing reliably helps: keep no noise, or run more repeats, and why."""
    if report.get("too_few_repeats"):
        return (
            f"With {report['repeats']} repeats no setting can be called better or worse after Holm's correction for "
            f"{report['family']} comparisons: run more repeats"
        )
    mdes = [r["mde"] for r in compared if r.get("mde") is not None]
    if not mdes:
        return "Keep no noise"
    factor, unit = numbers.unit_scale(report["metric"])
    size = numbers.number(float(np.median(mdes)) * factor, digits=2)
    size = f"{size} {unit}" if unit else f"{size} ({metric_name(report['metric'])})"
    return f"Keep no noise, or run more repeats: differences below about {size} cannot be detected with these"


def _counts(rows: list[dict], *, leaving: dict | None, others: str) -> str:
    """How many of ``rows`` (all but ``leaving``) reliably help, cannot be told apart and reliably hurt:
    ``"2 others also reliably help; 1 cannot be told apart; 1 reliably hurts"`` (``others``: "others also")."""
    rest = [r for r in rows if r is not leaving]
    n = {v: sum(r["verdict"] == v for r in rest) for v in ("better", "no_difference", "worse")}
    parts = []
    if n["better"]:
        who = f"{n['better']} {others.replace('others', 'other' if n['better'] == 1 else 'others')}".strip()
        parts.append(f"{who} reliably help{'s' if n['better'] == 1 else ''}".replace("  ", " "))
    if n["no_difference"]:
        parts.append(f"{n['no_difference']} cannot be told apart")
    if n["worse"]:
        parts.append(f"{n['worse']} reliably hurt{'s' if n['worse'] == 1 else ''}")
    return "; ".join(parts)


def answer(report: dict) -> str:
    """The report's answer in one sentence a person can act on: what to use, by how much, how reliably,
    and how many other settings help, hurt or cannot be told apart from no noise."""
    rows = report["configs"]
    compared = [r for r in rows if r["verdict"] != "baseline"]
    if not compared:
        return "Nothing to compare yet: only the no-noise baseline has runs."
    if all(r["verdict"] == "incomparable" for r in compared):
        return "No comparison is possible: the no-noise baseline diverged on every repeat, so nothing pairs with it."
    if not report.get("chosen"):
        return "Every run diverged: no configuration finished a run to compare."
    pick = next(r for r in rows if r["trial"] == report["chosen"]["trials"][0])
    where = "on the test part (no validation part)" if report.get("shared") else "on validation"
    better = [r for r in compared if r["verdict"] == "better"]
    over = "over" if metrics.base(report["metric"]) in numbers.POINTS else "vs"

    def record(r):
        shown = effect(report, r)
        if r.get("wins") is None:
            return shown
        return f"{shown} {over} no noise, better in {r['wins']} of {r['n_pairs']} paired repeats"

    def adjusted(r):
        return f"Holm-adjusted p {numbers.p_value(r['p_adjusted'])}"

    if pick["verdict"] == "baseline":
        text = f"Keep no noise: it scores best {where}"
        rest = _counts(compared, leaving=None, others="")
        text += f"; of the {_plural(len(compared), 'noise setting')}, {rest}" if rest else ""
    elif pick["verdict"] == "better":
        rest = _counts(compared, leaving=pick, others="others also")
        text = f"Use {pick['label']}: {record(pick)}" + (f"; {rest}" if rest else "")
    elif better:
        status = "is reliably worse" if pick["verdict"] == "worse" else "is not reliably better"
        rest = _counts(compared, leaving=better[0], others="others")
        text = (
            f"{better[0]['label']} reliably helps ({record(better[0])}), but the best {where}, {pick['label']}, "
            f"{status} than no noise ({effect(report, pick)}, {adjusted(pick)})" + (f"; {rest}" if rest else "")
        )
    else:
        status = "is reliably worse" if pick["verdict"] == "worse" else "cannot be told apart from it"
        rest = _counts(compared, leaving=pick, others="")
        text = (
            f"No noise setting reliably beats no noise: the best {where}, {pick['label']}, {record(pick)}, "
            f"{status} ({adjusted(pick)})" + (f"; of the others, {rest}" if rest else "")
        )
        text += ". " + _what_to_do(report, compared)
    progress = report.get("progress") or {}
    if progress.get("partial"):
        planned = progress.get("runs_planned")
        text += (
            f" (so far: {progress['runs']} of {planned} planned runs)"
            if planned and progress["runs"] < planned
            else f" (the sweep's status is {report.get('status')!r}: it may not be finished)"
        )
    return text + "."


def partial_line(progress: dict, status: str | None) -> str:
    planned, runs = progress["runs_planned"], progress["runs"]
    state = f" (status {status})" if status else ""
    if planned is None:
        return f"This sweep is not complete{state}: the report covers the runs stored so far."
    missing = progress["configs_planned"] - progress["configs_with_runs"]
    return (
        f"This sweep is partial{state}: {runs} of {planned} planned runs ({planned - runs} missing; "
        f"{progress['configs_with_runs']} of {progress['configs_planned']} configurations have runs, {missing} none); "
        f"Holm's correction counts all {progress['configs_planned'] - 1} planned comparisons."
    )


def table_summary(table: Table, metric: str, higher_is_better: bool, alpha: float, family: int) -> str:
    """The summary paragraph of one table (:func:`summary`) from what the comparisons found."""
    said = summary(
        table.configs,
        table.baseline,
        table.chosen,
        metric,
        higher_is_better,
        alpha,
        table.smallest_p,
        repeats=table.repeats,
        n_tasks=table.n_tasks,
        unpaired=table.unpaired,
        family=family,
    )
    return said + _race_line(table)


def _race_line(table: Table) -> str:
    """A raced sweep's outcome in one sentence: configurations equivalent to the baseline, and whether
    nothing in the grid beats no noise, after how many of a fixed sweep's runs."""
    race = table.sequential
    if race is None:
        return ""
    rows = [r for r in table.configs if r.get("verdict") not in ("baseline", "incomparable")]
    text = ""
    same = [r for r in rows if r["verdict"] == "equivalent"]
    if same:
        text += f" Equivalent to the baseline within ±{race['min_effect']:g}: {_names([_prose(r) for r in same])}."
    nothing = racing.nothing_beats([r["verdict"] for r in rows], race["runs"], race["fixed"], race["test"])
    if race["fixed"] and nothing:
        text += " " + nothing
    return text


def across_tasks_line(across: dict, configs: list[dict], alpha: float) -> str:
    """Ranks across tasks in one sentence: the best, the Friedman test, those within the Nemenyi distance."""
    by_trial = {c["trial"]: c for c in configs}
    ranking = across["ranking"]
    best, k, cd = ranking[0], len(ranking), across["nemenyi_cd"]
    friedman = across["friedman"]
    text = (
        f"Across {across['n_tasks']} tasks, {_prose(by_trial[best['trial']])} has the best average rank "
        f"({best['average_rank']:.2f} of {k})"
    )
    if friedman is None:
        text += "; with fewer than 3 configurations there is no Friedman test."
    else:
        differ = friedman["iman_davenport_p"] < alpha
        text += (
            f"; the Friedman test {'finds' if differ else 'does not find'} that the configurations rank differently "
            f"(Iman–Davenport p = {_fmt(friedman['iman_davenport_p'])})"
        )
        tied = across["indistinguishable_from_best"]
        others = [_prose(by_trial[c["trial"]]) for c in tied if c["trial"] != best["trial"]]
        if others:
            text += f"; within the Nemenyi critical difference ({cd:.2f}) of it: {_names(others)}."
        else:
            text += f", and no other configuration is within the Nemenyi critical difference ({cd:.2f}) of it."
    return text


def _fmt(x: float | None, signed: bool = False) -> str:
    """A number in a sentence: 4 significant digits, 0 for float dust, — where undefined."""
    if x is None or not np.isfinite(x):
        return numbers.UNDEFINED
    if abs(x) <= 1e-12:
        return "0"
    return f"{x:+.4g}" if signed else f"{x:.4g}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _prose(config: dict) -> str:
    """A configuration's name in a sentence (the baseline's label, ``none``, reads badly there)."""
    return "no noise" if config["params"] == {"placement": BASELINE} else config["label"]


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _diverged_count(config: dict) -> str:
    return f"{_prose(config)}: {config['diverged']}"


def summary(
    rows, baseline, chosen, metric, higher_is_better, alpha, smallest_p, *, repeats, n_tasks, unpaired, family
) -> str:
    """One paragraph in plain words: what was chosen and how well it does on data it was not chosen on,
    what helped, what hurt, what could not be told apart, and why.

    ``unpaired`` names the tasks on which the baseline diverged on every repeat.
    """
    compared = [r for r in rows if r["verdict"] != "baseline"]
    if not compared:
        return f"Only the no-noise baseline has runs so far ({metric} {_fmt(baseline['mean'])}); nothing to compare."
    if len(unpaired) == n_tasks:
        text = [
            f"The no-noise baseline diverged on every repeat ({_plural(baseline['diverged'], 'run')}): no "
            "comparison with it is possible, so no configuration is called better or worse than no noise."
        ]
        text.append(
            _chosen_line(chosen, metric)
            if chosen
            else "No other configuration finished a run either: every run diverged."
        )
        return " ".join(text)
    where = f"over {_plural(repeats, 'repeat')}" + (f" of each of {n_tasks} tasks" if n_tasks > 1 else "")
    text = [
        f"{_plural(len(compared), 'noise configuration')} {'was' if len(compared) == 1 else 'were'} compared "
        "with the no-noise baseline "
        f"({metric} {_fmt(baseline['mean'])} {where}; {'higher' if higher_is_better else 'lower'} is better), "
        f"repeat by repeat, with Holm's correction at α = {alpha:g}"
        + (f" over all {family} planned comparisons." if family > len(compared) else ".")
    ]
    if chosen:
        text.append(_chosen_line(chosen, metric))
    if unpaired:
        text.append(
            f"The baseline diverged on every repeat of {_plural(len(unpaired), 'task')} "
            f"({_names(unpaired)}); the comparisons use the other tasks only."
        )

    def described(r):
        value, low, high = numbers.group([r["delta"], *r["delta_ci"]], digits=4, signed=True, floor=1e-12)
        return f"{_prose(r)} (Δ {value}, 95% CI [{low}, {high}])"

    better = [r for r in compared if r["verdict"] == "better"]
    worse = [r for r in compared if r["verdict"] == "worse"]
    undecided = [r for r in compared if r["verdict"] == "no_difference"]
    text.append(
        f"Reliably better: {_names([described(r) for r in better])}." if better else "None was reliably better."
    )
    if worse:
        text.append(f"Reliably worse: {_names([described(r) for r in worse])}.")
    if undecided:
        text.append(f"{len(undecided)} could not be told apart from the baseline.")

    diverged = [r for r in rows if r["diverged"]]
    if diverged:
        total = sum(r["diverged"] for r in diverged)
        text.append(
            f"{_plural(total, 'run')} diverged ({_names([_diverged_count(r) for r in diverged])}); "
            "they are left out of means and count as losses against the baseline."
        )

    # Most runs at chance: its mean is a real outcome, but of a network that learned nothing.
    unlearned = [r for r in rows if 2 * r["failed_to_learn"] > r["n"] + r["diverged"]]
    if unlearned:
        counts = [
            f"{_prose(r)}: {r['failed_to_learn']} of {r['n'] + r['diverged']} runs failed to learn" for r in unlearned
        ]
        text.append(
            f"{_names(counts)} (training metric no better than chance or than before training); "
            "such runs count in the means as they finished."
        )

    if smallest_p is not None and smallest_p * family >= alpha:
        text.append(
            f"Too few repeats: with {repeats} the signed-rank test cannot go below p = {smallest_p:.3g}, so after "
            f"correcting for {family} comparisons no configuration can be called better or worse; run more repeats."
        )
        return " ".join(text)
    mdes = [r["mde"] for r in compared if r["mde"] is not None and np.isfinite(r["mde"])]
    if mdes:
        text.append(
            f"At this number of repeats, differences smaller than about {_fmt(float(np.median(mdes)))} "
            f"cannot be detected reliably (median over configurations, power {POWER:g})."
        )
    settle = [r for r in undecided if r["n_needed"] is not None and r["n_needed"] > repeats]
    if settle:
        closest = min(settle, key=lambda r: r["n_needed"])
        text.append(
            f"Of the undecided, {_prose(closest)} is nearest to a verdict: if its difference "
            f"(Δ {_fmt(closest['delta'], True)}) is real, about {closest['n_needed']} repeats would detect it "
            f"with power {POWER:g}."
        )
    if repeats < 10:
        text.append("With fewer than 10 repeats the bootstrap intervals and P(best) are rough.")
    return " ".join(text)


def _chosen_line(chosen: dict, metric: str) -> str:
    """What the sweep chose, with its test estimate beside the number it was chosen on."""
    names = [("no noise" if label == "none" else label) for label in chosen["labels"]]
    low, high = chosen["ci"]
    test = f"{metric} {_fmt(chosen['mean'])} (95% CI [{_fmt(low)}, {_fmt(high)}])"
    if chosen["bbc"] is not None:
        blow, bhigh = chosen["bbc_ci"]
        where = (
            f"Selection and estimate share the test part (n_val: 0): the chosen configuration's {test} is "
            f"optimistic; corrected for the selection (BBC) it is {_fmt(chosen['bbc'])} "
            f"(95% CI [{_fmt(blow)}, {_fmt(bhigh)}])."
        )
    else:
        where = (
            f"On the test part, which took no part in choosing: {test}, against {_fmt(chosen['selection_mean'])} "
            f"on the data it was chosen on ({_optimism(chosen)})."
        )
    if chosen["tied"]:
        return (
            f"{len(names)} configurations tie for the best on the data the sweep selects on "
            f"({_fmt(chosen['selection_mean'])}: {_names(names)}); the repeats cannot separate them. "
            f"For the first of them: {where[0].lower()}{where[1:]}"
        )
    return f"Chosen: {names[0]}. {where}"


def _optimism(chosen: dict) -> str:
    """The chosen configuration's optimism beside the baseline's, measured alike: only the excess is the
    winner's curse; the rest is how the validation and test parts differ for every configuration."""
    own = chosen.get("baseline_optimism")
    text = f"optimism {_fmt(chosen['optimism'], True)}"
    if own is None:
        return text
    mine, base, excess = numbers.group(
        [chosen["optimism"], own, chosen.get("excess_optimism")], digits=4, signed=True, floor=1e-12
    )
    return (
        f"optimism {mine}, where no noise, which was not picked, shows {base} the same way: picking it added {excess}"
    )


def methods(
    n_boot: int,
    alpha: float,
    n_compared: int,
    *,
    multi_task: bool,
    shared: bool,
    at: str,
    sequential: dict | None = None,
) -> dict:
    test = (
        "Wilcoxon signed-rank test on the per-repeat differences (scipy, zero_method='zsplit': exact for n <= 50 "
        "without ties, exact permutation for n <= 13 with ties, normal approximation otherwise), two-sided"
    )
    if sequential is not None:
        if sequential.get("test") == racing.TESTS["group"]:
            test = (
                "the sweep was raced, so every verdict comes from a group-sequential test valid however the race "
                "stopped: the exact signed-rank test (every sign flip, ties and zeros included) at each of its "
                "planned looks, each look's level a share of alpha from the power spending function t^2 (Kim & "
                "DeMets 1987), the shares joined by Bonferroni's inequality: p = min over the looks taken of "
                "p_look / share"
            )
        else:
            test = (
                "the sweep was extended after looking, so every verdict comes from an always-valid test: "
                "the two-sided normal-mixture supermartingale on the capped signed per-repeat differences "
                "(Howard et al. 2020, conditionally symmetric case; confseq's formulas), whose p-value "
                "min(1, 1/max M) holds at any stopping time (Ville's inequality; Johari et al. 2022)"
            )
        test += " on the per-repeat differences averaged over tasks" if multi_task else ""
        if sequential.get("min_effect"):
            test += f"; equivalent when its always-valid confidence sequence lies within ±{sequential['min_effect']:g}"
    elif multi_task:
        test += "; pooled over tasks by ranking within each task and adding the signed-rank sums (normal approximation)"
    return {
        "selection": (
            (
                "the configurations are ordered, P(best) computed and one chosen on the test part itself: the tasks "
                "have no validation part (n_val: 0), so the chosen configuration's test mean is optimistic; bbc is the "
                "bootstrap bias-corrected estimate (Tsamardinos et al. 2018), resampling repeats, picking the best on "
                "the repeats drawn and scoring it on those left out"
            )
            if shared
            else "the configurations are ordered, P(best) computed and one chosen on the validation part only; means, "
            "intervals, differences and verdicts are on the test part, which took no part in choosing"
        )
        + (
            "; every metric is the one each run had at the logged epoch of its best validation metric "
            "(of its best test metric without a validation part)"
            if at == "best_val"
            else ""
        ),
        "pairing": (
            "repeat r of every configuration shares data split and initial weights, so each comparison is paired "
            "by repeat"
        ),
        "test": test,
        "multiple_comparisons": (
            f"Holm's step-down adjustment over the {n_compared} comparisons with the baseline the "
            "sweep planned (a configuration without runs counts as p = 1)"
        ),
        "ece": (
            "expected calibration error on the test part: 15 equal-width confidence bins, the share-weighted "
            "mean |accuracy - confidence| (Naeini et al. 2015, Guo et al. 2017)"
        ),
        "verdict": (
            f"better or worse when the Holm-adjusted p-value < {alpha:g}, in the direction of the signed-rank sum; "
            "incomparable when the baseline diverged on every repeat (of every task): there is nothing to pair with"
        ),
        "intervals": (
            f"{CONFIDENCE:.0%} percentile bootstrap, {n_boot} resamples of repeats drawn jointly for all configurations"
            + (" within each task" if multi_task else "")
        ),
        "p_improve": "share of repeats where the configuration beat the baseline, ties counting half; Wilson interval",
        "p_best": (
            "share of bootstrap resamples in which the configuration has the best mean on the selection metric "
            "(best average rank across tasks); configurations tied in a resample share it equally"
        ),
        "diverged": (
            "a diverged run is left out of mean, std, median, IQM, gap and delta (n counts finished runs, diverged "
            "counts the rest); "
            "in the paired test and p_improve it is a loss to a finished baseline run and a tie with a diverged one; "
            "for ranking, p_best and the across-task tests it scores as the worst finished run of its task"
        ),
        "failed_to_learn": (
            "a finished run whose training metric is no better than chance nor than the same network before "
            "training: classification, its count of training samples right is within what a guesser right as often "
            "as the better of the majority-class rate and the untrained network reaches by luck (one-sided binomial "
            "test, p >= 0.05); regression, training R² at most the larger of 0 and the untrained network's. Such "
            "runs count in every statistic like any finished run; failed_to_learn counts them (runs stored before "
            "schema 0004 were not judged and are not counted)"
        ),
        "gap": (
            "train minus test for accuracy and r2, test minus train for losses and errors: positive means overfitting"
        ),
        "mde": (
            f"smallest true mean difference detected with power {POWER:g} by a two-sided paired t-test at the level "
            "Holm applies to the smallest p-value (alpha / number compared), from the observed sd of paired "
            "differences; n_needed is the number of repeats at which the observed difference would reach that"
        ),
    }
