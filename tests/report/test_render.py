import base64
import csv
import html
import io
import json

import numpy as np
import pytest
from matplotlib.figure import Figure
from rich.console import Console

from sweeper.report import plots
from sweeper.report.build import build_report
from sweeper.report.render import (
    UNKNOWN_SETTING,
    ran_lines,
    render_csv,
    render_html,
    render_json,
    render_markdown,
    render_table,
    setting_lines,
    write_report,
)


@pytest.fixture
def sweep_rows(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(0), n_configs=6, effects={2: 1.5, 3: -1.5}, diverged={4: 3})
    return sweep, trials, runs, sim.curves(runs)


@pytest.fixture
def report(sweep_rows):
    sweep, trials, runs, _ = sweep_rows
    return build_report(sweep, trials, runs, n_boot=500)


def test_table_has_a_row_per_configuration_best_first(report):
    table = render_table(report)
    assert table.row_count == len(report["configs"]) == 6
    console = Console(width=250, record=True)
    console.print(table)
    text = console.export_text()
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert rows[0].startswith("│ pre_activation gaussian σ=0.2") and rows[-1].startswith("│ weights gaussian σ=0.3")
    assert "better" in text and "worse" in text
    console = Console(width=250, record=True)
    console.print(render_table(report, wide=True))
    wide = console.export_text()
    assert "│    1 │ pre_activation gaussian σ=0.2" in wide and "│    6 │ weights gaussian σ=0.3" in wide


def test_markdown_has_the_summary_a_row_per_config_and_the_images(report):
    md = render_markdown(report, {"forest": "r-forest.png"})
    assert report["summary"] in md
    assert "![forest](r-forest.png)" in md
    # the narrow table first, then every column; a header and a rule each
    assert sum(line.startswith("| ") for line in md.splitlines()) == 2 * (2 + len(report["configs"]))
    assert md.index(report["answer"]) < md.index("![forest](r-forest.png)") < md.index("| configuration |")


def test_html_embeds_images_as_base64_data_uris(report):
    png = plots.png_bytes(plots.forest_plot(report))
    page = render_html(report, {"forest": png})
    prefix = "data:image/png;base64,"
    assert prefix in page
    encoded = page.split(prefix, 1)[1].split("'", 1)[0]
    assert base64.b64decode(encoded) == png
    assert page.count("<tr class=") == 2 * len(report["configs"])  # the narrow table, and every column


def test_csv_has_a_row_per_config_with_flat_intervals(report):
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert len(rows) == len(report["configs"])
    first = rows[0]
    assert first["trial"] == str(report["configs"][0]["trial"])
    assert float(first["ci_low"]) < float(first["mean"]) < float(first["ci_high"])
    assert json.loads(first["params"]) == report["configs"][0]["params"]


def test_csv_of_several_tasks_adds_a_block_per_task(sim):
    report = build_report(*sim.sweep(np.random.default_rng(1), tasks=("a", "b")), n_boot=200)
    tasks = [row["task"] for row in csv.DictReader(io.StringIO(render_csv(report)))]
    assert tasks == ["all"] * 5 + ["a"] * 5 + ["b"] * 5


def test_json_never_contains_nan(sim):
    report = build_report(*sim.sweep(np.random.default_rng(2), diverged={1: 20}), n_boot=200)
    text = render_json(report)
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["configs"][-1]["mean"] is None


def test_write_report_markdown_puts_pngs_beside_the_file(tmp_path, report, sweep_rows):
    _, _, runs, curves = sweep_rows
    written = write_report(report, runs, curves, "markdown", tmp_path / "out" / "report.md")
    names = sorted(p.name for p in written)
    assert names == ["report-curves.png", "report-forest.png", "report-heatmap.png", "report.md"]
    assert all(p.stat().st_size > 1000 for p in written)
    assert "![heatmap](report-heatmap.png)" in (tmp_path / "out" / "report.md").read_text()


def test_write_report_html_is_one_self_contained_file(tmp_path, report, sweep_rows):
    _, _, runs, curves = sweep_rows
    written = write_report(report, runs, curves, "html", tmp_path / "report.html")
    assert written == [tmp_path / "report.html"] and list(tmp_path.iterdir()) == written
    assert written[0].read_text().count("data:image/png;base64,") == 3


def test_write_report_json_round_trips(tmp_path, report):
    (path,) = write_report(report, [], None, "json", tmp_path / "r.json")
    assert json.loads(path.read_text()) == report


def test_forest_plot_has_a_row_per_compared_configuration(report, sweep_rows):
    fig = plots.forest_plot(report, sweep_rows[2])
    assert isinstance(fig, Figure)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 5 and labels[0].startswith("pre_activation") and "(3 diverged)" in " ".join(labels)


def test_heatmap_has_a_panel_per_kind_and_skips_combined_placements(report):
    fig = plots.delta_heatmap(report)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["gaussian"]
    combined = {
        **report,
        "configs": [{**c, "params": [c["params"], c["params"]]} for c in report["configs"] if c["trial"]],
    }
    assert plots.delta_heatmap(combined) is None


def test_learning_curves_have_a_panel_per_configuration(report, sweep_rows):
    fig = plots.learning_curves(sweep_rows[3], report)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 6
    assert panels[0].get_title() == "none"  # the baseline first, for reference
    assert {line.get_label() for line in panels[0].get_lines()} >= {"train_accuracy", "test_accuracy"}


WORKER = {
    "engine": "fused",
    "device": "cpu",
    "cpu": "AMD EPYC 7763",
    "gpu": None,
    "sweeper_version": "0.2.0",
    "torch_version": "2.13.0+cpu",
    "host": "w1",
}
GPU_WORKER = {**WORKER, "engine": "stacked", "device": "cuda", "gpu": "NVIDIA H100", "host": "g1"}


@pytest.fixture
def ran_report(sim):
    """A report of runs trained on two workers: repeats 0-14 on a CPU worker, 15-19 on a GPU worker."""
    sweep, trials, runs = sim.sweep(np.random.default_rng(3), n_configs=3)
    runs = [{**run, **(WORKER if run["repeat"] < 15 else GPU_WORKER)} for run in runs]
    sweep = {
        **sweep,
        "sweeper_version": "0.2.0",
        "torch_version": "2.13.0+cpu",
        "device": "cpu",
        "cpu": "Intel",
        "gpu": None,
        "host": "laptop",
    }
    return build_report(sweep, trials, runs, n_boot=200)


def test_the_report_says_what_trained_the_runs_and_drove_the_sweep(ran_report):
    assert ran_report["ran"]["runs"] == [{**WORKER, "n_runs": 45}, {**GPU_WORKER, "n_runs": 15}]
    assert ran_report["ran"]["sweep"]["host"] == "laptop"
    assert ran_report["configs"][0]["ran"] == {
        **{k: f"{WORKER[k]}, {GPU_WORKER[k]}" for k in ("engine", "device")},
        "cpu": "AMD EPYC 7763",
        "gpu": "NVIDIA H100",
        "sweeper_version": "0.2.0",
        "torch_version": "2.13.0+cpu",
        "host": "g1, w1",
    }


def test_every_format_shows_what_ran(ran_report):
    lines = [
        UNKNOWN_SETTING,  # the report was built without the sweep's setting
        "45 runs: fused engine on cpu (AMD EPYC 7763), sweeper 0.2.0, torch 2.13.0+cpu, host w1",
        "15 runs: stacked engine on cuda (NVIDIA H100), sweeper 0.2.0, torch 2.13.0+cpu, host g1",
        "driven by `sweeper run`: cpu (Intel), sweeper 0.2.0, torch 2.13.0+cpu, host laptop",
    ]
    md = render_markdown(ran_report, {})
    page = render_html(ran_report, {})
    rows = list(csv.DictReader(io.StringIO(render_csv(ran_report))))

    assert ran_lines(ran_report) == lines  # the terminal prints them after the summary
    assert "## What ran\n\n" + "\n".join(f"- {line}" for line in lines) in md
    assert "<h2>What ran</h2><ul>\n" + "\n".join(f"<li>{html.escape(line)}</li>" for line in lines) in page
    assert {(row["engine"], row["host"], row["gpu"]) for row in rows} == {("fused, stacked", "g1, w1", "NVIDIA H100")}
    assert json.loads(render_json(ran_report))["ran"]["runs"][1]["gpu"] == "NVIDIA H100"


def test_what_ran_says_when_the_sweep_was_extended_and_by_what():
    history = [
        {"event": "planned", "at": "2026-12-01T10:00:00+00:00", "repeats": 3, "planned": 5},
        {
            "event": "extended",
            "at": "2026-12-02T09:30:00+00:00",
            "changes": "repeats 3 -> 5",
            "repeats": 5,
            "planned": 5,
        },
    ]
    task = {"task": "circles", "dataset": "circles", "dataset_seed": None, "n_train": 20, "n_val": 10, "n_test": 70}
    task |= {
        "model": "mlp hidden [4] relu, init default",
        "epochs": 20,
        "batch_size": None,
        "optimizer": "adam lr 0.001",
    }
    setting = {"tasks": [task], "space": "grid of 5 configurations", "sweep_seed": 3, "repeats": 5}

    unextended = setting_lines({"setting": {**setting, "history": history[:1]}})
    extended = setting_lines({"setting": {**setting, "history": history}})

    assert extended[:-1] == unextended  # a sweep never extended shows no history: its start says it all
    assert extended[-1] == (
        "history: planned 5 configurations x 3 repeats at 2026-12-01T10:00:00+00:00; extended at "
        "2026-12-02T09:30:00+00:00 (repeats 3 -> 5) to 5 configurations x 5 repeats"
    )
