"""A baseline that diverged on every repeat has no values to compare with: the report says so in every
format, calls no configuration better or worse than it, and names no winner by tie-break."""

from __future__ import annotations

import json

import numpy as np
from rich.console import Console

from sweeper.report.build import build_report
from sweeper.report.render import render_html, render_json, render_markdown, render_table, write_report

REPEATS = 12
SAYS_SO = "The no-noise baseline diverged on every repeat (12 runs): no comparison with it is possible"


def test_configurations_are_incomparable_to_a_baseline_that_always_diverged(sim):
    sweep, trials, runs = sim.sweep(
        np.random.default_rng(1), n_configs=3, repeats=REPEATS, effects={2: 1.0}, diverged={0: REPEATS}
    )

    report = build_report(sweep, trials, runs, n_boot=500)

    compared = [c for c in report["configs"] if c["trial"] != 0]
    assert [c["verdict"] for c in compared] == ["incomparable", "incomparable"]
    for c in compared:
        assert (c["delta"], c["delta_ci"], c["p_value"], c["p_adjusted"], c["p_improve"], c["mde"], c["n_needed"]) == (
            None,
            [None, None],
            None,
            None,
            None,
            None,
            None,
        )
        assert c["n"] == REPEATS and c["mean"] is not None  # its own statistics are still there
    assert report["baseline"]["n"] == 0 and report["baseline"]["diverged"] == REPEATS
    assert report["summary"].startswith(SAYS_SO)
    assert "Chosen: no noise" not in report["summary"]
    best = max(compared, key=lambda c: c["p_best"])
    assert best["trial"] == 2
    assert f"Chosen: {best['label']}." in report["summary"]


def test_when_every_run_diverged_no_configuration_is_named_best(sim):
    sweep, trials, runs = sim.sweep(
        np.random.default_rng(2), n_configs=3, repeats=REPEATS, diverged={0: REPEATS, 1: REPEATS, 2: REPEATS}
    )

    report = build_report(sweep, trials, runs, n_boot=200)

    assert [c["p_best"] for c in report["configs"]] == [None, None, None]
    assert report["summary"] == (
        SAYS_SO + ", so no configuration is called better or worse than no noise. "
        "No other configuration finished a run either: every run diverged."
    )
    assert "Chosen" not in report["summary"]


def test_a_baseline_diverged_on_some_repeats_is_still_compared(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(3), n_configs=2, repeats=REPEATS, diverged={0: 3})

    report = build_report(sweep, trials, runs, n_boot=200)

    (config,) = [c for c in report["configs"] if c["trial"] == 1]
    assert config["verdict"] in ("better", "worse", "no_difference") and config["p_value"] is not None
    assert "diverged on every repeat" not in report["summary"]


def test_a_task_whose_baseline_always_diverged_is_left_out_of_the_comparison(sim):
    rng = np.random.default_rng(4)
    sweep, trials, runs = sim.sweep(rng, n_configs=3, repeats=REPEATS, effects={1: 1.5}, tasks=("moons", "circles"))
    runs = [
        dict(r, diverged=True, test_accuracy=None, train_accuracy=None)
        if r["task"] == "moons" and r["trial"] == 0
        else r
        for r in runs
    ]
    circles_only = [r for r in runs if r["task"] == "circles"]

    both = build_report(sweep, trials, runs, n_boot=300)
    alone = build_report(sweep, trials, circles_only, n_boot=300)

    pooled = {c["trial"]: c for c in both["configs"]}
    by_itself = {c["trial"]: c for c in alone["configs"]}
    for trial in (1, 2):
        assert pooled[trial]["p_value"] == by_itself[trial]["p_value"]
        assert pooled[trial]["delta"] == by_itself[trial]["delta"]
        assert pooled[trial]["verdict"] == by_itself[trial]["verdict"]
    assert pooled[1]["verdict"] == "better"
    assert (
        "The baseline diverged on every repeat of 1 task (moons); the comparisons use the other tasks only."
        in both["summary"]
    )
    (moons,) = [t for t in both["tasks"] if t["task"] == "moons"]
    assert {c["verdict"] for c in moons["configs"]} == {"baseline", "incomparable"}


def test_every_format_says_the_baseline_diverged(sim, tmp_path):
    sweep, trials, runs = sim.sweep(
        np.random.default_rng(5), n_configs=3, repeats=REPEATS, effects={2: 1.0}, diverged={0: REPEATS}
    )
    report = build_report(sweep, trials, runs, n_boot=200)
    console = Console(record=True, width=200)
    console.print(render_table(report, width=200))

    assert "incomparable" in console.export_text()
    assert SAYS_SO in render_markdown(report, {})
    assert SAYS_SO in render_html(report, {}) and 'class="incomparable"' in render_html(report, {})
    assert json.loads(render_json(report))["summary"].startswith(SAYS_SO)
    written = write_report(report, runs, sim.curves(runs), "markdown", tmp_path / "report.md")  # plots included
    assert SAYS_SO in written[0].read_text() and (tmp_path / "report-forest.png").stat().st_size > 0


DIVERGING = """\
name: diverging
seed: 1
repeats: 3
task: {dataset: circles, n_train: 30, hidden: [8], epochs: 30, optimizer: {name: sgd, lr: 1000000}}
search:
  configs:
    - {placement: input, std: 0.1}
    - {placement: pre_activation, std: 0.1}
"""


def test_the_report_of_a_sweep_whose_baseline_diverged_says_so(sweeper_cli, tmp_path):
    space, url = tmp_path / "diverging.yaml", f"sqlite:///{tmp_path / 'sweeps.db'}"
    space.write_text(DIVERGING)
    assert sweeper_cli("run", space, "--db", url).exit_code == 0

    table = sweeper_cli("report", "diverging", "--db", url)
    as_json = sweeper_cli("report", "diverging", "--db", url, "--format", "json")

    assert table.exit_code == 0 and as_json.exit_code == 0, table.stderr + as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["baseline"]["diverged"] == 3 and report["baseline"]["n"] == 0
    assert [c["verdict"] for c in report["configs"] if c["trial"] != 0] == ["incomparable", "incomparable"]
    assert report["summary"].startswith("The no-noise baseline diverged on every repeat (3 runs)")
    text = " ".join(table.stdout.split())
    assert "The no-noise baseline diverged on every repeat (3 runs): no comparison with it is possible" in text
    assert "Chosen: no noise" not in text
