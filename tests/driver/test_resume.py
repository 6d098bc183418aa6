"""An interrupted sweep resumes to exactly the numbers of an uninterrupted one, without losing or repeating runs."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import optuna
import pytest
from helpers import RUN_NUMBERS, circles_space, interrupt_on_call

from sweeper.store import Store, open_store

RESUME_YAML = """\
name: resume-me
seed: 5
repeats: 3
metric: accuracy
pack_size: 2        # packs are stored one by one; a trial's 3 repeats span two packs
task:
  dataset: circles
  n_train: 30
  model: mlp
  hidden: [32]
  epochs: 100
search:
  sampler: grid
  configs:
    - {placement: input, std: 0.05}
    - {placement: pre_activation, std: 0.1}
    - {placement: weights, std: 0.01}
    - {placement: targets, std: 0.1}
"""
N_CONFIGS, REPEATS = 5, 3
TOTAL = N_CONFIGS * REPEATS
KEY = ("trial", "task", "repeat")
RUNS_SQL = (
    f'SELECT r.id, t.number AS trial, r.task, r."repeat", {", ".join("r." + n for n in RUN_NUMBERS)} '
    "FROM sweeper_runs r JOIN sweeper_trials t ON t.id = r.trial_id"
)


def read(db: Path, sql: str) -> list[tuple]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def runs_by_id(db: Path) -> dict[int, tuple]:
    """Run id -> (trial, task, repeat, seeds..., metrics...)."""
    return {row[0]: row[1:] for row in read(db, RUNS_SQL)}


def runs_by_key(db: Path) -> dict[tuple, tuple]:
    """(trial, task, repeat) -> (seeds..., metrics...); refuses a key stored twice."""
    rows = [row[1:] for row in read(db, RUNS_SQL)]
    by_key = {row[:3]: row[3:] for row in rows}
    assert len(by_key) == len(rows), "a (trial, task, repeat) is stored twice"
    return by_key


def sweep_status(db: Path) -> str:
    ((status,),) = read(db, "SELECT status FROM sweeper_sweeps WHERE name = 'resume-me'")
    return status


def objectives(db: Path) -> dict[int, float]:
    return dict(read(db, "SELECT number, objective FROM sweeper_trials"))


def optuna_states(db: Path) -> list[str]:
    return sorted(
        state
        for (state,) in read(
            db, "SELECT t.state FROM trials t JOIN studies s USING (study_id) WHERE s.study_name = 'resume-me'"
        )
    )


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "resume.yaml"
    path.write_text(RESUME_YAML)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, space, sweeper_cli) -> dict:
    """The same sweep run without interruption into a fresh database: its runs and trial objectives."""
    db = tmp_path_factory.mktemp("reference") / "reference.db"
    result = sweeper_cli("run", space, "--db", f"sqlite:///{db}")
    assert result.exit_code == 0, result.stderr
    runs = runs_by_key(db)
    assert len(runs) == TOTAL
    return {"db": db, "runs": runs, "objectives": objectives(db)}


@pytest.fixture
def start_sweep(launch):
    """``start_sweep(space, db)``: ``sweeper run`` as a process of its own (its stderr in ``.stderr`` of what it
    returns); killed if left running."""

    def start(space: Path, db: Path):
        return launch("run", space, "--db", f"sqlite:///{db}")

    return start


def wait_for_some_runs(process, db: Path, timeout: float = 120) -> int:
    """Polls the database until the sweep has stored a pack (and is still running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the sweep ended before it stored a run"
        if db.exists():
            try:
                ((count,),) = read(db, "SELECT count(*) FROM sweeper_runs")
            except sqlite3.Error:  # the tables are not there yet
                count = 0
            if count > 0:
                return count
        time.sleep(0.02)
    pytest.fail(f"no run stored after {timeout} s")


def interrupt(launched, db: Path, sig: int) -> dict[int, tuple]:
    """Sends ``sig`` once a pack is stored; the runs stored when the process is gone."""
    process = launched.process
    wait_for_some_runs(process, db)
    os.kill(process.pid, sig)
    process.wait(timeout=60)
    stored = runs_by_id(db)
    assert 0 < len(stored) < TOTAL, "the sweep finished before the signal landed: make it bigger"
    return stored


def assert_complete_and_equal_to_reference(db: Path, reference: dict) -> None:
    runs = runs_by_key(db)
    assert len(runs) == TOTAL
    assert sorted(runs) == sorted((t, "circles", r) for t in range(N_CONFIGS) for r in range(REPEATS))
    assert runs == reference["runs"]  # same sweep seed -> the same seeds and the same numbers
    assert objectives(db) == pytest.approx(reference["objectives"], rel=1e-12)
    assert sweep_status(db) == "completed"
    # A trial interrupted before it had a configuration goes on with it: no failed or extra trial.
    assert optuna_states(db) == ["COMPLETE"] * N_CONFIGS


@pytest.mark.slow
def test_a_sweep_killed_with_sigkill_resumes_to_the_uninterrupted_numbers(space, reference, tmp_path, start_sweep):
    db = tmp_path / "killed.db"
    stored = interrupt(start_sweep(space, db), db, signal.SIGKILL)
    assert sweep_status(db) == "running"  # SIGKILL leaves no chance to mark it

    resumed = start_sweep(space, db)

    assert resumed.wait() == 0, resumed.stderr
    assert f"{TOTAL - len(stored)} runs trained" in resumed.stderr
    after = runs_by_id(db)
    assert {run_id: after[run_id] for run_id in stored} == stored  # the runs stored before are untouched
    assert_complete_and_equal_to_reference(db, reference)


@pytest.mark.slow
def test_a_sweep_interrupted_with_sigint_exits_130_and_resumes(space, reference, tmp_path, sweeper_cli, start_sweep):
    db = tmp_path / "interrupted.db"
    launched = start_sweep(space, db)
    stored = interrupt(launched, db, signal.SIGINT)

    assert launched.process.returncode == 130
    stderr = launched.stderr
    assert "interrupted: finished packs are stored; run the same command to resume" in stderr
    assert "Traceback" not in stderr
    assert sweep_status(db) == "interrupted"

    resumed = sweeper_cli("run", space, "--db", f"sqlite:///{db}")

    assert resumed.exit_code == 0, resumed.stderr
    assert f"{TOTAL - len(stored)} runs trained" in resumed.stderr
    after = runs_by_id(db)
    assert {run_id: after[run_id] for run_id in stored} == stored
    assert_complete_and_equal_to_reference(db, reference)


@pytest.mark.slow
def test_a_sweep_sent_sigterm_stops_as_on_ctrl_c_exits_143_and_resumes(
    space, reference, tmp_path, sweeper_cli, start_sweep
):
    db = tmp_path / "terminated.db"
    launched = start_sweep(space, db)
    stored = interrupt(launched, db, signal.SIGTERM)

    assert launched.process.returncode == 143
    stderr = launched.stderr
    last = stderr.rstrip("\n").splitlines()[-1]
    assert last == "terminated (SIGTERM): finished packs are stored; run the same command to resume"
    assert "Traceback" not in stderr
    assert sweep_status(db) == "interrupted"
    assert read(db, "SELECT lease_token, lease_host, lease_pid FROM sweeper_sweeps") == [(None, None, None)]

    resumed = sweeper_cli("run", space, "--db", f"sqlite:///{db}")

    assert resumed.exit_code == 0, resumed.stderr
    assert f"{TOTAL - len(stored)} runs trained" in resumed.stderr
    after = runs_by_id(db)
    assert {run_id: after[run_id] for run_id in stored} == stored
    assert_complete_and_equal_to_reference(db, reference)


def test_a_sweep_interrupted_between_ask_and_suggest_resumes(space, reference, tmp_path, sweeper_cli, monkeypatch):
    db = tmp_path / "asked.db"
    # Ctrl-C after Optuna's trial of the second round was written, before the store's: the round's transaction
    # (which also tells the first round) is rolled back
    interrupt_on_call(monkeypatch, Store, "add_trials", 2)
    first = sweeper_cli("run", space, "--db", f"sqlite:///{db}")
    assert first.exit_code == 130
    assert len(runs_by_key(db)) == REPEATS
    monkeypatch.undo()

    resumed = sweeper_cli("run", space, "--db", f"sqlite:///{db}")

    assert resumed.exit_code == 0, resumed.stderr
    assert_complete_and_equal_to_reference(db, reference)


def test_a_sweep_interrupted_between_optuna_and_store_completes_every_trial(space, tmp_path, sweeper_cli, monkeypatch):
    url = f"sqlite:///{tmp_path / 'told.db'}"
    # Ctrl-C while the second round is told: its transaction is rolled back
    interrupt_on_call(monkeypatch, Store, "complete_trials", 2)
    assert sweeper_cli("run", space, "--db", url, "--epochs", "10").exit_code == 130
    monkeypatch.undo()

    resumed = sweeper_cli("run", space, "--db", url, "--epochs", "10")

    assert resumed.exit_code == 0, resumed.stderr
    with open_store(url, create=False) as store:
        trials = store.trials("resume-me")
    values = {t.number: t.value for t in optuna.load_study(study_name="resume-me", storage=url).trials}
    assert [(t["status"], t["n_runs"]) for t in trials] == [("complete", REPEATS)] * N_CONFIGS
    assert all(t["objective"] == pytest.approx(values[t["optuna_trial_id"]]) for t in trials)


def test_running_a_completed_sweep_again_trains_nothing_and_writes_nothing(space, reference, sweeper_cli):
    db = reference["db"]
    before = read(db, "SELECT * FROM sweeper_sweeps")

    again = sweeper_cli("run", space, "--db", f"sqlite:///{db}")

    assert again.exit_code == 0, again.stderr
    assert again.stderr == (
        f"sweep 'resume-me' is complete: 0 runs trained, nothing to do; {TOTAL} runs stored in all\n"
    )
    assert runs_by_key(db) == reference["runs"]
    assert read(db, "SELECT * FROM sweeper_sweeps") == before  # not even reopened and closed again
    assert sweep_status(db) == "completed"


def test_resuming_with_other_overrides_is_refused(space, reference, sweeper_cli):
    db = reference["db"]

    changed = sweeper_cli("run", space, "--db", f"sqlite:///{db}", "--repeats", "2")

    assert changed.exit_code == 2
    assert changed.stderr.splitlines()[-1] == (
        f"error: sweep 'resume-me' already exists in sqlite:///{db} with a different search space; "
        "pick another --name or delete it (sweeper delete resume-me); it differs in repeats 3 -> 2"
    )
    assert runs_by_key(db) == reference["runs"]


def test_a_refused_resume_is_one_line_on_stderr(space, reference, sweeper_cli):
    changed = sweeper_cli("run", space, "--db", f"sqlite:///{reference['db']}", "--repeats", "2")

    assert changed.exit_code == 2
    assert len(changed.stderr.splitlines()) == 1, changed.stderr


def test_a_resume_with_nothing_left_to_train_says_so_in_one_line(space, tmp_path, sweeper_cli, monkeypatch):
    url = f"sqlite:///{tmp_path / 'last.db'}"
    # one configuration per round: Ctrl-C while the last round is told, all its runs stored
    interrupt_on_call(monkeypatch, Store, "complete_trials", N_CONFIGS)
    assert sweeper_cli("run", space, "--db", url, "--epochs", "10").exit_code == 130
    monkeypatch.undo()

    resumed = sweeper_cli("run", space, "--db", url, "--epochs", "10")

    assert resumed.exit_code == 0, resumed.stderr
    assert (
        resumed.stderr.splitlines()[-1] == f"sweep 'resume-me': all {TOTAL} runs were stored already; nothing to train"
    )
    with open_store(url, create=False) as store:
        assert [t["status"] for t in store.trials("resume-me")] == ["complete"] * N_CONFIGS


# One trial a round (pack_size 2), 12 of them: past TPE's 10 random startup trials.
TPE_YAML = circles_space(
    "tpe-resume",
    seed=3,
    repeats=2,
    search="sampler: tpe\nn_trials: 12\nspace: {placement: [input, weights], std: {log_uniform: [0.01, 0.3]}}",
    epochs=20,
)


def tpe_trials(db: Path) -> dict[int, tuple]:
    return {
        number: rest
        for number, *rest in read(
            db,
            'SELECT t.number, t.placement, t.std, r."repeat", r.noise_seed, r.test_accuracy '
            'FROM sweeper_trials t JOIN sweeper_runs r ON r.trial_id = t.id ORDER BY t.number, r."repeat"',
        )
    }


def test_a_sampled_sweep_killed_between_two_suggestions_of_a_trial_resumes_to_its_configuration(
    tmp_path, sweeper_cli, monkeypatch
):
    """Optuna stores each parameter as it is suggested: a run stopped after a trial's placement was
    suggested and before its std was must not draw that std from a sampler in another state."""
    space = tmp_path / "tpe.yaml"
    space.write_text(TPE_YAML)
    reference, db = tmp_path / "reference.db", tmp_path / "stopped.db"
    assert sweeper_cli("run", space, "--db", f"sqlite:///{reference}").exit_code == 0
    suggest_float = optuna.trial.Trial.suggest_float

    def stopped_in_trial_11(self, name, *args, **kwargs):
        if self.number == 11:  # its placement is stored; TPE, past its startup trials, draws the std
            raise KeyboardInterrupt
        return suggest_float(self, name, *args, **kwargs)

    monkeypatch.setattr(optuna.trial.Trial, "suggest_float", stopped_in_trial_11)
    assert sweeper_cli("run", space, "--db", f"sqlite:///{db}").exit_code == 130
    ((placements,),) = read(
        db,
        "SELECT count(*) FROM trial_params p JOIN trials t USING (trial_id) WHERE t.number = 11",
    )
    assert placements == 1  # the kill landed between the two suggestions
    monkeypatch.undo()

    resumed = sweeper_cli("run", space, "--db", f"sqlite:///{db}")

    assert resumed.exit_code == 0, resumed.stderr
    assert tpe_trials(db) == tpe_trials(reference)
    states = read(db, "SELECT state FROM trials")
    assert sorted(s for (s,) in states) == ["COMPLETE"] * 13
