"""Bad input of every kind: exit status 2, one line on stderr naming the file or flag and what is allowed,
no traceback, and nothing written to the database."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeper.store import open_store

GOOD = """\
name: bad
seed: 1
repeats: 2
task:
  dataset: circles
  n_train: 30
  hidden: [8]
  epochs: 5
search:
  sampler: grid
  configs:
    - {placement: input, std: 0.1}
"""
ONE_CONFIG = "{placement: input, std: 0.1}"
GRID = "sampler: grid\n  configs:\n    - " + ONE_CONFIG


def edit(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


#: name -> (file contents, fragments the one error line must hold besides the file name)
BAD_SPACES = {
    "typo_top_key": (edit("repeats:", "repeat:"), ["repeat: unknown key", "allowed:", "did you mean 'repeats'"]),
    "typo_task_key": (edit("hidden:", "hiden:"), ["task.hiden: unknown key", "allowed:", "'hidden'"]),
    "typo_search_key": (edit("configs:", "config:"), ["search.config: unknown key", "allowed:", "'configs'"]),
    "bad_placement": (edit("placement: input", "placement: hidden"),
                      ["search.configs[0].placement", "'hidden' is not allowed", "allowed:", "pre_activation"]),
    "negative_std": (edit("std: 0.1", "std: -0.1"),
                     ["search.configs[0].std", "-0.1 is not allowed", "allowed: a number >= 0"]),
    "flip_on_input": (edit(ONE_CONFIG, "{placement: input, kind: flip, std: 0.1}"),
                      ["search.configs[0]", "kind 'flip'", "applies only to placement 'targets'"]),
    "flip_probability_above_one": (edit(ONE_CONFIG, "{placement: targets, std: 1.5}"),
                                   ["search.configs[0]", "must be in [0, 1]"]),
    "unknown_kind": (edit(ONE_CONFIG, "{placement: input, kind: laplace, std: 0.1}"),
                     ["search.configs[0].kind", "'laplace' is not allowed", "allowed: gaussian"]),
    "unknown_schedule": (edit(ONE_CONFIG, "{placement: input, std: 0.1, schedule: cosine}"),
                         ["search.configs[0].schedule", "allowed: constant, annealed"]),
    "gamma_without_annealing": (edit(ONE_CONFIG, "{placement: input, std: 0.1, gamma: 0.5}"),
                                ["search.configs[0].gamma", "only with schedule annealed"]),
    "unknown_sampler": (edit("sampler: grid", "sampler: bayes"),
                        ["search.sampler", "'bayes' is not allowed", "allowed: grid, random, tpe"]),
    "tpe_without_n_trials": (edit(GRID, "sampler: tpe\n  space: {placement: input, std: [0.1]}"),
                             ["search.n_trials", "required key missing"]),
    "log_uniform_from_zero": (edit(GRID, "sampler: tpe\n  n_trials: 3\n"
                                         "  space: {placement: input, std: {log_uniform: [0, 1]}}"),
                              ["search.space.std.log_uniform[0]", "needs low > 0"]),
    "n_trials_on_grid": (edit("sampler: grid", "sampler: grid\n  n_trials: 3"),
                         ["search.n_trials", "applies only to samplers random and tpe"]),
    "yaml_syntax_error": (edit("n_train: 30", "n_train: [30"), ["line 7", "invalid YAML"]),
    "key_given_twice": (edit("seed: 1", "seed: 1\nseed: 2"), ["invalid YAML", "'seed' is given twice"]),
    "empty_file": ("", ["the file is empty", "name:, task: and search:"]),
    "metric_not_fitting_problem": (edit("repeats: 2", "repeats: 2\nmetric: test_mse"),
                                   ["metric", "'test_mse' is not allowed", "allowed: test_accuracy"]),
    "unknown_dataset": (edit("dataset: circles", "dataset: mnist"),
                        ["task.dataset", "'mnist' is not allowed", "allowed: circles"]),
    "cnn_without_images": (edit("hidden: [8]", "hidden: [8]\n  model: cnn"), ["task", "dataset 'digits'"]),
    "repeats_zero": (edit("repeats: 2", "repeats: 0"), ["repeats", "greater than or equal to 1"]),
    "bad_sweep_name": (edit("name: bad", "name: 'bad name'"), ["name", "allowed: letters, digits"]),
    "bad_batch_size": (edit("epochs: 5", "epochs: 5\n  batch_size: all"),
                       ["task.batch_size", "'all' is not allowed", "allowed: an integer or full"]),
}
#: Caught only when the data loads (the file alone cannot know the data set's size).
N_TRAIN_TOO_LARGE = (edit("n_train: 30", "n_train: 500"), ["task.n_train", "500", "at most 99"])

def assert_one_error_line(result, *fragments):
    """Exit status 2 and one line on stderr holding every fragment; no traceback, nothing on stdout."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def assert_no_database(path: Path):
    leftovers = [p.name for p in path.parent.iterdir() if p.name.startswith(path.name)]
    assert leftovers == [], f"the failed command wrote {leftovers}"


# -- search-space files -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BAD_SPACES))
def test_run_refuses_an_invalid_search_space_without_writing(sweeper_cli, tmp_path, name):
    text, fragments = BAD_SPACES[name]
    space = tmp_path / f"{name}.yaml"
    space.write_text(text)
    db = tmp_path / "sweeps.db"

    result = sweeper_cli("run", space, "--db", f"sqlite:///{db}")

    assert_one_error_line(result, str(space), *fragments)
    assert_no_database(db)


@pytest.mark.parametrize("name", sorted(BAD_SPACES))
def test_validate_refuses_an_invalid_search_space(sweeper_cli, tmp_path, name):
    text, fragments = BAD_SPACES[name]
    space = tmp_path / f"{name}.yaml"
    space.write_text(text)

    assert_one_error_line(sweeper_cli("validate", space), str(space), *fragments)


@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_missing_search_space_file_is_named(sweeper_cli, tmp_path, command):
    missing = tmp_path / "nowhere.yaml"
    db = tmp_path / "sweeps.db"
    args = [command, missing] + (["--db", f"sqlite:///{db}"] if command == "run" else [])

    assert_one_error_line(sweeper_cli(*args), str(missing), "no such search-space file")
    assert_no_database(db)


def test_run_refuses_n_train_beyond_the_data_set_without_writing(sweeper_cli, tmp_path):
    text, fragments = N_TRAIN_TOO_LARGE
    space = tmp_path / "big.yaml"
    space.write_text(text)
    db = tmp_path / "sweeps.db"

    result = sweeper_cli("run", space, "--db", f"sqlite:///{db}")

    assert_one_error_line(result, str(space), *fragments)
    assert_no_database(db)


def test_run_refuses_n_train_beyond_the_data_set_in_an_existing_database(sweeper_cli, tmp_path, db_snapshot):
    text, fragments = N_TRAIN_TOO_LARGE
    space = tmp_path / "big.yaml"
    space.write_text(text)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    open_store(url).close()
    before = db_snapshot(url)

    result = sweeper_cli("run", space, "--db", url)

    assert db_snapshot(url) == before and before["sweeper_sweeps"] == []
    assert_one_error_line(result, *fragments)


def test_n_train_beyond_the_data_set_still_exits_2_naming_the_key(sweeper_cli, tmp_path):
    """What works today around the bug above: status 2 and the key in the last stderr line."""
    text, fragments = N_TRAIN_TOO_LARGE
    space = tmp_path / "big.yaml"
    space.write_text(text)

    result = sweeper_cli("run", space, "--db", f"sqlite:///{tmp_path / 'sweeps.db'}")

    assert result.exit_code == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and all(f in last for f in fragments), last


# -- flags ------------------------------------------------------------------------------------------

#: name -> (flags added to a run of a valid file, fragments of the one error line)
BAD_RUN_FLAGS = {
    "device_gpu": (["--device", "gpu"], ["--device", "'gpu' is not one of 'auto', 'cpu', 'cuda'"]),
    "repeats_zero": (["--repeats", "0"], ["--repeats", "0 is not allowed", "allowed: an integer >= 1"]),
    "epochs_negative": (["--epochs", "-3"], ["--epochs", "-3 is not allowed", "allowed: an integer >= 1"]),
    "executor_foo": (["--executor", "foo"], ["--executor", "'foo' is not one of 'local', 'ray'"]),
    "bad_name": (["--name", "no spaces"], ["--name", "'no spaces' is not allowed", "allowed: letters"]),
}


@pytest.mark.parametrize("name", sorted(BAD_RUN_FLAGS))
def test_run_refuses_a_bad_flag_without_writing(sweeper_cli, tmp_path, name):
    flags, fragments = BAD_RUN_FLAGS[name]
    space = tmp_path / "good.yaml"
    space.write_text(GOOD)
    db = tmp_path / "sweeps.db"

    result = sweeper_cli("run", space, "--db", f"sqlite:///{db}", *flags)

    assert_one_error_line(result, *fragments)
    assert_no_database(db)


def test_run_refuses_a_database_url_that_is_not_one(sweeper_cli, tmp_path):
    space = tmp_path / "good.yaml"
    space.write_text(GOOD)

    assert_one_error_line(sweeper_cli("run", space, "--db", "notaurl"), "'notaurl' is not a database URL",
                          "sqlite:///")


#: Requests on a copy of a database holding sweep tiny: (arguments before --db, fragments of the error line).
BAD_STORED = [
    pytest.param(["sweeps", "--format", "xml"], ["--format", "'xml'", "'table', 'csv', 'json'"],
                 id="sweeps_format_xml"),
    pytest.param(["trials", "tiny", "--format", "xml"], ["--format", "'table', 'csv', 'json'"],
                 id="trials_format_xml"),
    pytest.param(["runs", "tiny", "--format", "xml"], ["--format", "'table', 'csv', 'json'"],
                 id="runs_format_xml"),
    pytest.param(["query", "SELECT 1", "--format", "xml"], ["--format", "'table', 'csv', 'json'"],
                 id="query_format_xml"),
    pytest.param(["rerun", "tiny", "0", "--format", "xml"], ["--format", "'table', 'csv', 'json'"],
                 id="rerun_format_xml"),
    pytest.param(["report", "tiny", "--format", "xml"], ["--format", "'table', 'markdown', 'html', 'json', 'csv'"],
                 id="report_format_xml"),
    pytest.param(["trials", "nosuch"], ["no sweep 'nosuch'", "sweeps there: tiny"], id="trials_unknown_sweep"),
    pytest.param(["runs", "nosuch"], ["no sweep 'nosuch'", "sweeps there: tiny"], id="runs_unknown_sweep"),
    pytest.param(["rerun", "nosuch", "0"], ["no sweep 'nosuch'", "sweeps there: tiny"], id="rerun_unknown_sweep"),
    pytest.param(["rerun", "tiny", "99"], ["sweep 'tiny' has no trial 99", "sweeper trials tiny"],
                 id="rerun_unknown_trial"),
    pytest.param(["rerun", "tiny", "0", "--repeat", "7"], ["trial 0", "repeat 7"], id="rerun_unknown_repeat"),
    pytest.param(["report", "nosuch"], ["no sweep 'nosuch'", "sweeps there: tiny"], id="report_unknown_sweep"),
    pytest.param(["rerun", "tiny", "0", "--device", "gpu"], ["--device", "'gpu'", "'auto', 'cpu', 'cuda'"], id="rerun_device_gpu"),
]


@pytest.mark.parametrize("args, fragments", BAD_STORED)
def test_a_bad_request_on_a_stored_sweep_changes_nothing(sweeper_cli, tiny_sqlite_copy, db_snapshot,
                                                        args, fragments):
    url = f"sqlite:///{tiny_sqlite_copy}"
    before = db_snapshot(url)

    result = sweeper_cli(*args, "--db", url)

    assert_one_error_line(result, *fragments)
    assert db_snapshot(url) == before


@pytest.mark.parametrize("args, fragments", [
    (["trials", "nosuch"], ["no database at", "missing.db"]),
    (["runs", "nosuch"], ["no database at", "missing.db"]),
    (["sweeps", "--format", "xml"], ["--format", "'table', 'csv', 'json'"]),
    (["query", "SELECT 1"], ["no database at", "missing.db"]),
], ids=["trials", "runs", "sweeps_format_xml", "query"])
def test_a_listing_of_a_missing_database_file_creates_nothing(sweeper_cli, tmp_path, args, fragments):
    db = tmp_path / "missing.db"

    result = sweeper_cli(*args, "--db", f"sqlite:///{db}")

    assert_no_database(db)
    assert_one_error_line(result, *fragments)


@pytest.mark.parametrize("flags, fragments", [
    (["--device", "gpu"], ["--device", "'gpu'", "'auto', 'cpu', 'cuda'"]),
    (["--format", "xml"], ["--format", "'xml'", "'table', 'json'"]),
    (["--noise", "weights"], ["--noise", "'weights'", "PLACEMENT:KIND:STD"]),
    (["--noise", "wings:gaussian:0.1"], ["--noise", "'wings'", "input, pre_activation"]),
    (["--noise", "weights:gaussian:lots"], ["--noise", "'lots'"]),
], ids=["device_gpu", "format_xml", "noise_shape", "noise_placement", "noise_std"])
def test_bench_refuses_a_bad_flag(sweeper_cli, flags, fragments):
    result = sweeper_cli("bench", "--epochs", "1", "--members", "1", "--reference-runs", "1", *flags)

    assert_one_error_line(result, *fragments)
