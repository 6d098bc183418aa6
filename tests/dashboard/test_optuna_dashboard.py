"""optuna-dashboard on a real sweep's database shows what ``sweeper trials`` shows, in a real browser.

A small grid sweep runs through the CLI into a SQLite file (which records each trial's verdict); optuna-dashboard serves
that file. Through its HTTP API (the JSON its web page reads: ``/api/studies``, ``/api/studies/<id>``,
``/api/studies/<id>/param_importances``) each trial has the real noise parameters of its
configuration; the objective is named after the sweep's metric; the user attributes hold the label,
the number of runs, the mean and its interval, and the report's verdict; the intermediate values are
the mean validation curve over the trial's repeats. Headless Chromium then renders the study's page,
and the DOM it built holds the study, the metric and the parameters.

Skipped, with the reason, where optuna-dashboard (the ``dashboard`` extra, which ``make test``
installs) or Chromium is missing; ``.ci/run`` installs Chromium and sets ``SWEEPER_REQUIRE_BROWSER=1``,
which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

NAME = "dashboard-demo"
# One site per configuration: placement x kind x std, and the baseline. 9 configurations x 3 repeats.
SPACE = f"""\
name: {NAME}
seed: 4
repeats: 3
metric: accuracy             # on the validation part
task: {{dataset: circles, n_train: 30, hidden: [32], epochs: 200, log_every: 20}}
search:
  sampler: grid
  grid:
    placement: [input, pre_activation]
    kind: [gaussian, multiplicative]
    std: [0.03, 0.3]
"""
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _missing(what: str) -> None:
    if os.environ.get("SWEEPER_REQUIRE_BROWSER"):
        pytest.fail(f"{what} (SWEEPER_REQUIRE_BROWSER is set: CI installs it)")
    pytest.skip(what)


def _program(*names: str) -> str | None:
    """The first of ``names`` on PATH, looking first beside this Python (its virtual environment)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return next((found for name in names if (found := shutil.which(name, path=path))), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def served(tmp_path_factory, sweeper_cli):
    """The sweep, run and reported once: its database URL, the address of optuna-dashboard serving it,
    and the report's verdict of each trial (by sweeper's trial number)."""
    dashboard = _program("optuna-dashboard")
    if dashboard is None:
        _missing("optuna-dashboard is not installed (pip install '.[dashboard]')")
    folder = tmp_path_factory.mktemp("dashboard")
    (folder / "space.yaml").write_text(SPACE)
    db = f"sqlite:///{folder / 'sweeps.db'}"
    result = sweeper_cli("run", folder / "space.yaml", "--db", db, "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    report = sweeper_cli("report", NAME, "--db", db, "--format", "json")  # the verdicts the sweep recorded
    assert report.exit_code == 0, report.stderr
    port = _free_port()
    with open(folder / "dashboard.log", "w") as log:
        server = subprocess.Popen(
            [dashboard, db, "--host", "127.0.0.1", "--port", str(port), "--quiet"], stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"{url}/api/meta")
                break
            except OSError:
                assert server.poll() is None, f"optuna-dashboard exited: {(folder / 'dashboard.log').read_text()}"
                assert time.monotonic() < deadline, "optuna-dashboard did not answer within 60 s"
                time.sleep(0.2)
        yield db, url, {c["trial"]: c["verdict"] for c in json.loads(report.stdout)["configs"]}
    finally:
        server.terminate()
        server.wait(timeout=30)


def _shown(sweeper_cli, *args) -> list[dict]:
    """What a ``sweeper`` listing prints as JSON."""
    result = sweeper_cli(*args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _study(url: str) -> tuple[int, dict]:
    (summary,) = [s for s in _get(f"{url}/api/studies")["study_summaries"] if s["study_name"] == NAME]
    return summary["study_id"], _get(f"{url}/api/studies/{summary['study_id']}?after=0")


def _expected_params(trial: dict) -> dict[str, object]:
    """A one-site configuration's parameters as ``sweeper trials`` lists it; the baseline is ``none``,
    std 0. (The grid leaves out a parameter with one value over all its configurations.)"""
    return {
        "placement": trial["placement"],
        "kind": trial["kind"] or "none",
        "std": trial["std"] or 0.0,
        "schedule": trial["schedule"] or "none",
    }


def _value(param: dict):
    """A parameter's value as the dashboard serves it (its text, typed by its distribution)."""
    text = param["param_external_value"]
    return float(text) if param["distribution"]["type"] == "FloatDistribution" else text


def test_the_dashboards_api_serves_each_trials_parameters_metric_and_mean_curve(served, sweeper_cli):
    db, url, verdicts = served
    trials = {t["optuna_trial_id"]: t for t in _shown(sweeper_cli, "trials", NAME, "--db", db)}
    (sweep,) = [s for s in _shown(sweeper_cli, "sweeps", "--db", db) if s["name"] == NAME]
    curves = _shown(
        sweeper_cli,
        "query",
        "--db",
        db,
        "select t.optuna_trial_id, c.epoch, avg(c.val_accuracy) as mean from sweeper_curves c "
        "join sweeper_runs r on r.id = c.run_id join sweeper_trials t on t.id = r.trial_id "
        "join sweeper_sweeps s on s.id = t.sweep_id "
        f"where s.name = '{NAME}' group by 1, 2 order by 1, 2",
    )
    study_id, study = _study(url)

    assert sweep["metric"] == "val_accuracy"
    assert study["objective_names"] == [sweep["metric"]]
    assert study["directions"] == ["maximize"]
    assert sorted(t["number"] for t in study["trials"]) == sorted(trials) and len(trials) == 9
    names = {p["name"] for p in study["trials"][0]["params"]}
    assert {"placement", "kind", "std"} <= names
    assert not names & {"config", "config_number"}  # the configuration's index is no parameter
    for shown in study["trials"]:
        trial = trials[shown["number"]]
        assert shown["state"] == "Complete"
        assert shown["values"] == [trial["objective"]]
        params = {p["name"]: _value(p) for p in shown["params"]}
        assert set(params) == names  # every trial carries the same parameters: the plots use them all
        expected = _expected_params(trial)
        assert params == {name: expected[name] for name in names}
        attrs = {a["key"]: a["value"] for a in shown["user_attrs"]}
        assert attrs["label"] == trial["label"]
        assert int(attrs["n_runs"]) == trial["n_runs"]
        assert float(attrs["mean"]) == trial["objective"]
        low, high = json.loads(attrs["ci"])  # the mean's 95% bootstrap interval
        assert low <= trial["objective"] <= high
        assert attrs["verdict"] == verdicts[trial["trial"]]  # as `sweeper report` gave it
        mean_curve = [c for c in curves if c["optuna_trial_id"] == shown["number"]]
        assert [c["epoch"] for c in mean_curve] == list(range(20, 201, 20))
        assert [v["step"] for v in shown["intermediate_values"]] == [c["epoch"] for c in mean_curve]
        assert [v["value"] for v in shown["intermediate_values"]] == pytest.approx(
            [c["mean"] for c in mean_curve], rel=1e-12
        )
    assert study["has_intermediate_values"]
    # Distributions the importance, slice and parallel-coordinate plots take: words as categories,
    # the std as a number over the grid's values (the baseline's 0 among them).
    space = {p["name"]: p["distribution"] for p in study["intersection_search_space"]}
    assert set(space) == names
    assert space["placement"]["type"] == "CategoricalDistribution"
    assert sorted(c["value"] for c in space["placement"]["choices"]) == ["input", "none", "pre_activation"]
    stds = [_expected_params(t)["std"] for t in trials.values()]
    assert space["std"] == {
        "type": "FloatDistribution",
        "low": min(stds),
        "high": max(stds),
        "step": None,
        "log": False,
    }
    (importances,) = _get(f"{url}/api/studies/{study_id}/param_importances")["param_importances"]
    assert {i["name"] for i in importances} == names


def test_headless_chromium_renders_the_study_with_its_metric_and_parameters(served, tmp_path):
    browser = _program(*BROWSERS)
    if browser is None:
        _missing("Chromium is not installed (apt-get install chromium)")
    _, url, _ = served
    study_id, study = _study(url)
    page = f"{url}/dashboard/studies/{study_id}"
    # The page is built by JavaScript from the API: the virtual time budget lets it load and draw
    # before the DOM is dumped (headless Chromium fast-forwards timers instead of waiting them out).
    common = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--virtual-time-budget=20000",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run([*common, "--dump-dom", page], capture_output=True, text=True, timeout=180, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = re.sub(
        r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", "", dom.stdout, flags=re.DOTALL))
    )

    assert f"{NAME} (id={study_id})" in text
    assert "val_accuracy" in text and "Objective 0" not in text  # the history plot's axis: the metric
    assert "Intermediate values" in text  # the learning curves' plot, drawn only when trials have them
    for name in {p["name"] for p in study["trials"][0]["params"]}:
        assert name in text  # the hyperparameter importance plot and the best trial's parameters
    assert "config_number" not in text

    shot = tmp_path / "dashboard.png"
    subprocess.run([*common, f"--screenshot={shot}", page], capture_output=True, timeout=180, check=True)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(png[16:20], "big") == 1400  # the IHDR's width: the window it drew
