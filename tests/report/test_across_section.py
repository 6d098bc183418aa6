"""The report's section "Across data sets": its numbers from the runs, its words and its renderings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rich.console import Console
from scipy import stats

from sweeper.report import across, build_report, render_html, render_markdown
from sweeper.stats import across as across_stats
from sweeper.stats.matrices import task_matrices

TASKS = tuple(f"data{i:02d}" for i in range(12))


def _report(sim, *, tasks=TASKS, metric="test_accuracy", effects=None, seed=5, truth=5.0):
    sweep, trials, runs = sim.sweep(
        np.random.default_rng(seed),
        tasks=tasks,
        repeats=10,
        metric=metric,
        effects=effects or {3: 1.5, 2: -1.0},
        truth=truth,
    )
    return build_report(sweep, trials, runs, n_boot=200), runs


def _runs_of(runs, trial, metric="test_accuracy"):
    """``(n_runs, n_tasks)`` of one trial, tasks in sorted order (as the report lays them out)."""
    tasks = sorted({r["task"] for r in runs})
    return np.array([[r[metric] for r in runs if r["trial"] == trial and r["task"] == t] for t in tasks]).T


def _row(report, trial):
    return next(r for r in report["across_data_sets"]["settings"] if r["trial"] == trial)


def test_a_clear_effect_on_every_data_set_is_better_and_ranks_first(sim):
    report, runs = _report(sim)
    sec = report["across_data_sets"]
    assert sec["n_tasks"] == 12 and sec["tasks"] == sorted(TASKS)
    assert [r["trial"] for r in sec["settings"]][0] == 3
    assert _row(report, 3)["verdict"] == "better" and _row(report, 2)["verdict"] == "worse"
    assert _row(report, 0)["verdict"] == "baseline" and _row(report, 0)["p_adjusted"] is None
    assert _row(report, 3)["won"] == 12 and _row(report, 3)["lost"] == 0
    assert _row(report, 3)["p_improve_ci"][0] > 0.5 > _row(report, 2)["p_improve_ci"][1]
    assert "1 better (weights gaussian σ=0.3)" in report["summary"]
    json.dumps(report, allow_nan=False)


def test_the_numbers_are_those_of_the_runs_accuracy_as_it_is(sim):
    report, runs = _report(sim)
    x, base = _runs_of(runs, 3), _runs_of(runs, 0)
    row = _row(report, 3)
    assert row["iqm"] == pytest.approx(stats.trim_mean(x, 0.25, axis=None))
    assert row["iqm_ci"][0] < row["iqm"] < row["iqm_ci"][1]
    assert row["p_improve"] == pytest.approx(
        np.mean([stats.mannwhitneyu(x[:, t], base[:, t]).statistic / 100 for t in range(12)])
    )
    # the verdict's test: Wilcoxon over the 12 per-data-set means, Holm over the 4 comparisons with no noise
    p = stats.wilcoxon(x.mean(axis=0) - base.mean(axis=0), zero_method="zsplit").pvalue
    assert row["p_value"] == pytest.approx(p)
    ordered = sorted(_row(report, t)["p_value"] for t in (1, 2, 3, 4))
    holm = np.maximum.accumulate([(4 - i) * q for i, q in enumerate(ordered)])  # step-down, ties stepped too
    assert row["p_adjusted"] == pytest.approx(min(1.0, holm[ordered.index(p)]))
    assert len(report["across_data_sets"]["pairs"]) == 10  # every pair of 5 settings
    taus = np.array(report["across_data_sets"]["taus"])
    assert row["profile"] == pytest.approx([np.mean((x > tau).mean(axis=0)) for tau in taus])


def test_a_loss_is_normalized_by_the_baseline_mean_of_its_data_set(sim):
    report, runs = _report(sim, metric="test_loss", truth=20.0)  # losses far from 0, as real ones are
    x, base = _runs_of(runs, 3, "test_loss"), _runs_of(runs, 0, "test_loss")
    normalized = base.mean(axis=0) / x  # lower loss than no noise: above 1
    assert _row(report, 3)["iqm"] == pytest.approx(stats.trim_mean(normalized, 0.25, axis=None))
    assert _row(report, 3)["verdict"] == "better"
    assert "no-noise mean over the run's value" in report["across_data_sets"]["normalization"]


def test_too_few_data_sets_for_a_verdict_are_said_and_decide_nothing(sim):
    report, _ = _report(sim, tasks=TASKS[:5])
    sec = report["across_data_sets"]
    assert sec["smallest_p"] == pytest.approx(2 / 2**5)
    assert all(r["verdict"] in ("no_difference", "baseline") for r in sec["settings"])
    assert "a verdict needs at least 8" in report["summary"]  # Holm over 4: 4 * 2 / 2**n <= 0.05


def test_one_task_has_no_section(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(1), n_configs=3)
    assert build_report(sweep, trials, runs, n_boot=100)["across_data_sets"] is None


def test_diverged_runs_score_as_the_worst_run_of_their_data_set(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(2), tasks=TASKS[:6], repeats=8, diverged={1: 3})
    report = build_report(sweep, trials, runs, n_boot=100)
    tasks = sorted(TASKS[:6])
    scores, _ = across_stats.task_scores(
        [_matrix(runs, t) for t in tasks], 0, higher_is_better=True
    )  # (5 configs, 8 runs, 6 tasks)
    worst = [min(r["test_accuracy"] for r in runs if r["task"] == t and not r["diverged"]) for t in tasks]
    assert scores[1, :3] == pytest.approx(np.tile(worst, (3, 1)))
    assert _row(report, 1)["iqm"] == pytest.approx(stats.trim_mean(scores[1], 0.25, axis=None))


def _matrix(runs, task):
    rows = [r for r in runs if r["task"] == task]
    return task_matrices(rows, "test_accuracy", list(range(5)), higher_is_better=True)[0]


def test_the_section_is_rendered_in_every_format_with_the_caveat_on_mean_ranks(sim):
    report, _ = _report(sim)
    md = render_markdown(report, {})
    assert "## Across data sets (12)" in md and "| weights gaussian σ=0.3 |" in md
    assert "Benavoli, Corani & Mangili 2016" in md  # beside Friedman and Nemenyi, and in the section
    page = render_html(report, {})
    assert "<h2>Across data sets (12)</h2>" in page and "<tr class='better'><td style='text-align:left'>weights" in page
    console = Console(width=130, record=True)
    console.print(across.terminal(report["across_data_sets"], width=130))
    text = console.export_text()
    assert "Across 12 data sets" in text and "12/0/0" in text and "P(> none) [95% CI]" in text
    narrow = Console(width=80, record=True)
    narrow.print(across.terminal(report["across_data_sets"], width=80))
    lines = narrow.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    # every verdict whole at the end of its row: only the settings' names wrap
    assert sum(line.rstrip().endswith(("better", "worse", "no_difference", "baseline")) for line in lines) == 5
    fig = across.figure(report["across_data_sets"])
    assert [ax.get_title() for ax in fig.axes][0] == "Across 12 data sets"
    assert len(fig.axes[1].get_lines()) == 5  # the 4 settings with noise and no noise


def test_a_task_with_fewer_repeats_pads_with_missing_runs_left_out(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(3), tasks=TASKS[:8], repeats=6)
    runs = [r for r in runs if not (r["task"] == TASKS[0] and r["repeat"] >= 4)]  # a partial task: 4 of 6
    report = build_report(sweep, trials, runs, n_boot=100)
    x = [r["test_accuracy"] for r in runs if r["trial"] == 1]
    assert len(x) == 6 * 7 + 4
    assert _row(report, 1)["iqm"] == pytest.approx(stats.trim_mean(x, 0.25))
    json.dumps(report, allow_nan=False)
