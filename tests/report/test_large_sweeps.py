"""Reports of large sweeps: filters, figures that stay legible and say what they leave out, coloured verdicts."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.image import imread
from rich.console import Console

from sweeper.report import plots
from sweeper.report.build import build_report
from sweeper.report.render import filtered, render_markdown, render_table, select_configs

KINDS = ("gaussian", "multiplicative", "uniform", "dropout")
STDS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)


def config(trial: int, verdict: str, delta: float, params: dict | None = None) -> dict:
    return {
        "trial": trial,
        "label": f"config {trial}",
        "params": params or {"placement": "input"},
        "delta": delta,
        "delta_ci": [delta - 0.01, delta + 0.01],
        "verdict": verdict,
        "diverged": 0,
    }


def large_report(n: int = 100) -> dict:
    """A report of ``n`` noise configurations, best first: trials 3, 50 and 97 have verdicts."""
    verdicts = {3: "better", 50: "worse", 97: "worse"}
    configs = [config(0, "baseline", 0.0, {"placement": "none"})]
    configs += [config(t, verdicts.get(t, "no_difference"), 0.1 - 0.002 * t) for t in range(1, n + 1)]
    return {"sweep": "big", "metric": "test_accuracy", "higher_is_better": True, "confidence": 0.95, "configs": configs}


def test_the_forest_plot_keeps_best_worst_and_every_verdict_and_says_how_many_it_left_out():
    fig = plots.forest_plot(large_report(), max_rows=20)

    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 20
    assert {"config 1", "config 3", "config 50", "config 97", "config 100"} <= set(labels)
    assert "80 of 100 not shown: best, worst and every verdict kept" in fig.axes[0].get_title()


def test_the_heatmap_lays_eight_panels_out_in_rows_and_stays_a_page_wide():
    configs = [config(0, "baseline", 0.0, {"placement": "none"})]
    for kind in KINDS:
        for schedule in ("constant", "annealed"):
            for placement in ("input", "pre_activation", "post_activation", "weights"):
                for std in STDS:
                    configs.append(
                        config(
                            len(configs),
                            "no_difference",
                            0.01 * len(configs) % 0.05,
                            {"placement": placement, "kind": kind, "std": std, "schedule": schedule, "gamma": 0.55},
                        )
                    )
    report = {"sweep": "grid", "metric": "test_accuracy", "higher_is_better": True, "configs": configs}

    fig = plots.delta_heatmap(report)

    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 8
    assert len({round(ax.get_position().y0, 3) for ax in panels}) == 2  # two rows of four
    height, width, _ = imread(io.BytesIO(plots.png_bytes(fig))).shape
    assert width < 2400 and height < 1200  # was 6991 x 397 in one row
    assert width / 4 > 300  # each panel keeps room for its six labelled cells


def test_top_and_verdict_keep_what_they_say_and_the_baseline():
    configs = large_report()["configs"]

    assert [c["trial"] for c in select_configs(configs, top=3)] == [0, 1, 2, 3]
    assert [c["trial"] for c in select_configs(configs, verdicts=("better", "worse"))] == [0, 3, 50, 97]
    assert [c["trial"] for c in select_configs(configs, top=2, verdicts=("worse",))] == [0, 50, 97]


def test_a_filtered_report_says_what_it_shows_and_keeps_the_statistics(sim):
    report = build_report(*sim.sweep(np.random.default_rng(0), n_configs=6, effects={2: 1.5, 3: -1.5}), n_boot=200)

    cut = filtered(report, verdicts=("better",))

    assert [c["verdict"] for c in cut["configs"]] == ["better", "baseline"]
    assert cut["summary"] == report["summary"]
    assert (
        "Showing 2 of 6 configurations (verdict better; the baseline always); the statistics are those of "
        "the whole sweep."
    ) in render_markdown(cut, {})
    fig = plots.forest_plot(cut)
    assert "4 of 6 configurations left out (--top / --verdict)" in fig.axes[0].get_title()


@pytest.mark.parametrize("no_color", [False, True])
def test_verdicts_are_coloured_in_a_terminal_unless_no_color_is_set(sim, monkeypatch, no_color):
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    report = build_report(*sim.sweep(np.random.default_rng(0), n_configs=6, effects={2: 1.5, 3: -1.5}), n_boot=200)
    console = Console(file=io.StringIO(), force_terminal=True, color_system="standard", width=250)

    console.print(render_table(report))

    text = console.file.getvalue()
    green, red = "\x1b[1;32m", "\x1b[1;31m"
    assert (green in text and red in text) is not no_color
    assert "better" in text and "worse" in text
