"""The report's first screen answers the question: one sentence, a table that fits, every column explained."""

import csv
import io
import re

import numpy as np
import pytest
from rich.console import Console

from sweeper.report import numbers, plots
from sweeper.report.build import build_report
from sweeper.report.columns import NARROW, columns, glossary
from sweeper.report.render import render_csv, render_html, render_markdown, render_table, render_terminal


def printed(report: dict, width: int, *, wide: bool = False) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO())
    render_terminal(report, console, wide=wide)
    return console.export_text().splitlines()


def wins_by_hand(runs: list[dict], trial: int, metric: str, higher: bool) -> int:
    base = {r["repeat"]: r[metric] for r in runs if r["trial"] == 0}
    sign = 1 if higher else -1
    return sum(sign * (r[metric] - base[r["repeat"]]) > 0 for r in runs if r["trial"] == trial)


@pytest.fixture
def helped(sim):
    """A sweep in which trial 2 reliably helps, trial 3 reliably hurts and the others cannot be told apart."""
    sweep, trials, runs = sim.sweep(np.random.default_rng(0), n_configs=6, effects={2: 1.5, 3: -1.5})
    for row in runs:  # accuracies, not the simulation's 5 ± 1
        row["test_accuracy"] = 0.7 + row["test_accuracy"] / 100
        row["train_accuracy"] = 0.7 + row["train_accuracy"] / 100
    return sweep, trials, runs, build_report(sweep, trials, runs, n_boot=500)


@pytest.mark.parametrize("width", [80, 120])
def test_the_terminal_report_opens_with_the_answer_and_fits_its_width(helped, width):
    sweep, trials, runs, report = helped
    lines = printed(report, width)

    wins = wins_by_hand(runs, 2, "test_accuracy", True)
    base = {r["repeat"]: r["test_accuracy"] for r in runs if r["trial"] == 0}
    points = 100 * np.mean([r["test_accuracy"] - base[r["repeat"]] for r in runs if r["trial"] == 2])
    low, high = (100 * x for x in next(c for c in report["configs"] if c["trial"] == 2)["delta_ci"])
    assert report["answer"].startswith(
        f"Use pre_activation gaussian σ=0.2: +{points:.1f} points [{low:+.1f}, {high:+.1f}] over no noise, "
        f"better in {wins} of 20 paired repeats; "
    )
    assert report["answer"].endswith("; 3 cannot be told apart; 1 reliably hurts.")
    # the first line is the sentence's start, wrapped to the width; nothing is wider than the terminal
    assert report["answer"].startswith(lines[0].rstrip()) and len(lines[0].rstrip()) > width // 2
    assert max(len(line) for line in lines) <= width
    text = " ".join(" ".join(lines).split())
    for column in columns(report, wide=False):  # a legend line under the table for each column
        assert f"{column.header(report)}: {column.legend(report)}" in text
    assert [c.key for c in columns(report, wide=False)] == list(NARROW)
    assert "a CI that excludes 0 beside no_difference is no contradiction: Holm corrects for 5 comparisons" in text


@pytest.mark.parametrize("width", [80, 120])
def test_every_column_with_wide_still_fits_in_tables_that_close_their_borders(helped, width):
    lines = printed(helped[3], width, wide=True)

    assert max(len(line) for line in lines) <= width
    table_lines = [line for line in lines if line and line[0] in "┏┃┡│└"]
    assert all(line.rstrip()[-1] in "┓┃┩│┘" for line in table_lines)
    headers = " ".join(line for line in lines if line.startswith("┃"))
    for name in ("rank", "div.", "no learn.", "P(best)", "gap", "MDE", "P(improve)", "p"):
        assert name in headers


def test_float_dust_prints_as_zero_and_undefined_as_a_dash():
    assert numbers.group([-4.44e-17, 0.00848], digits=2, signed=True) == ["0", "+0.0085"]
    assert numbers.interval(0.004, [-4.44e-17, 0.00848], signed=True) == "+0.00400 [0, +0.00848]"
    assert numbers.interval(2.5e-17, [-1e-17, 3e-17], signed=True, floor=1e-9) == "0 [0, 0]"
    assert numbers.number(None) == numbers.number(float("nan")) == "—"
    assert numbers.group([1.09e5, 3.0]) == ["1.09e+05", "0"]  # far below the larger one's precision


def test_a_dusty_interval_in_the_table_prints_as_zero(helped):
    report = helped[3]
    row = next(c for c in report["configs"] if c["verdict"] == "no_difference")
    row["delta"], row["delta_ci"] = 0.004, [-4.44e-17, 0.00848]
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(render_table(report))

    assert "+0.40 [0, +0.85]" in console.export_text()  # accuracy in points, one precision, no -4.44e-17


def test_a_tied_sweep_has_no_minimum_detectable_effect(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(6), n_configs=3, repeats=8)
    for row in runs:  # every configuration scores what the baseline scores on each repeat
        row["test_accuracy"] = 0.5 + 0.01 * row["repeat"]
    report = build_report(sweep, trials, runs, n_boot=200)

    compared = [c for c in report["configs"] if c["verdict"] != "baseline"]
    assert [c["mde"] for c in compared] == [None, None]
    lines = printed(report, 200, wide=True)
    (header,) = [line for line in lines if line.startswith("┃")]
    mde = [cell.strip() for cell in header.split("┃")].index("MDE")
    rows = [[cell.strip() for cell in line.split("│")] for line in lines if line.startswith("│")]
    assert {row[mde] for row in rows} == {"—"}
    assert "MDE 0" not in " ".join(lines)
    assert report["answer"] == (
        "Keep no noise: it scores best on the test part (no validation part); of the 2 noise settings, "
        "2 cannot be told apart."
    )


def test_html_has_the_answer_first_a_hover_title_on_every_header_and_a_glossary(helped):
    report = helped[3]
    page = render_html(report, {"forest": plots.png_bytes(plots.forest_plot(report))})

    body = page.split("<body>", 1)[1]
    assert body.index(report["answer"].split(":")[0]) < body.index("<img alt='forest'") < body.index("<table>")
    headers = re.findall(r"<th( [^>]*)?>", page.split("<summary>Every column")[0])
    assert len(headers) == len(columns(report, wide=False))
    assert all(" title='" in attributes for attributes in headers)  # every header has its hover text
    assert len(re.findall(r"<th[^>]* title='", page)) == len(headers) + len(columns(report, wide=True))
    assert "<th class='words' title='the noise setting: where it is added (placement)" in page
    glossary_html = page.split("<h2>Glossary</h2>", 1)[1]
    for term in ("MDE", "P(best)", "gap", "BBC", "Holm", "p adj.", "Δ points [95% CI]"):
        assert f"<dt>{term}</dt>" in glossary_html


def test_markdown_has_the_answer_then_one_figure_then_the_table_and_its_legend(helped):
    report = helped[3]
    md = render_markdown(report, {"forest": "r-forest.png", "heatmap": "r-heatmap.png"})

    lines = md.splitlines()
    assert lines[2] == f"**{report['answer']}**" and lines[4] == "![forest](r-forest.png)"
    legend = md.split("| configuration |", 1)[1]
    assert "- **p adj.**: p-value after Holm's correction for the 5 comparisons" in legend
    assert "![heatmap](r-heatmap.png)" in md.split("## Figures", 1)[1]  # the other figures further down
    assert "## Glossary" in md and "- **BBC**:" in md


def test_regression_reads_in_the_targets_units(sim):
    sweep, trials, runs = sim.sweep(
        np.random.default_rng(4), n_configs=4, metric="test_mse", effects={1: 1.5}, truth=30.0, validation=True
    )
    report = build_report(sweep, trials, runs, n_boot=400)

    assert report["also"] == ["rmse"]  # no R² in these runs; MSE is the metric itself
    for c in report["configs"]:
        mine = np.array([r["test_mse"] for r in runs if r["trial"] == c["trial"]])
        base = np.array([r["test_mse"] for r in runs if r["trial"] == 0])
        assert c["rmse"] == pytest.approx(np.sqrt(mine).mean())
        assert c["rmse_delta"] == pytest.approx((np.sqrt(mine) - np.sqrt(base)).mean(), abs=1e-12)
        assert c["rmse_delta_ci"][0] <= c["rmse_delta"] <= c["rmse_delta_ci"][1]
    assert "RMSE -" in report["answer"]
    assert [c.key for c in columns(report, wide=False)] == ["configuration", "rmse_delta", "rmse", "verdict"]
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert float(rows[0]["rmse"]) == pytest.approx(report["configs"][0]["rmse"])
    assert {"rmse_delta_ci_low", "rmse_delta_ci_high"} <= set(rows[0])
    assert "MAE" in glossary(report)


def test_the_optimism_line_compares_the_pick_with_the_baseline_measured_alike(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(5), n_configs=4, validation=True, effects={2: 1.0})
    report = build_report(sweep, trials, runs, n_boot=300)

    chosen, base = report["chosen"], report["baseline"]
    val = np.mean([r["val_accuracy"] for r in runs if r["trial"] == 0])
    test = np.mean([r["test_accuracy"] for r in runs if r["trial"] == 0])
    assert base["selection_mean"] == pytest.approx(val)
    assert chosen["baseline_optimism"] == pytest.approx(val - test)
    assert chosen["excess_optimism"] == pytest.approx(chosen["optimism"] - (val - test))
    assert "where no noise, which was not picked, shows" in report["summary"]


def test_the_heatmap_scale_is_fixed_by_the_metric_and_pales_what_has_no_verdict(helped):
    report = helped[3]
    fig = plots.delta_heatmap(report)

    colorbar = fig.axes[-1]
    assert colorbar.get_ylim() == pytest.approx((-10.0, 10.0))  # ±10 points of accuracy, whatever the data
    (image,) = fig.axes[0].images
    cells = image.get_array()
    decided = [c for c in report["configs"] if c["verdict"] in ("better", "worse")]
    undecided = [c for c in report["configs"] if c["verdict"] == "no_difference"]
    assert len(fig.axes[0].patches) == len(decided) == 2  # a frame on each reliable cell
    painted = cells.reshape(-1, 4)[:, :3]
    pale = painted.min(axis=1) >= 1.0 - plots.PALE - 1e-9
    assert pale.sum() >= len(undecided)  # the cells without a verdict are pale (white where nothing ran)
    assert (~pale).sum() == len(decided)


def test_a_column_racing_adds_shows_when_any_row_has_it(helped):
    report = helped[3]
    assert "stopped" not in [c.key for c in columns(report, wide=True)]

    report["configs"][1]["stopped"] = "futile after 6 repeats"
    wide = [c.key for c in columns(report, wide=True)]

    assert "stopped" in wide and "stopped" not in [c.key for c in columns(report, wide=False)]
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert rows[1]["stopped"] == "futile after 6 repeats" and rows[0]["stopped"] == ""
