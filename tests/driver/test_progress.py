"""The progress of a sweep moves while its packs train, not once per pack.

The engine tells its executor the member-epochs it has trained at each logging interval; the driver
turns them into runs' worth of training (``Progress.training``) next to the runs stored
(``Progress.advance``), and the CLI bar shows their sum.
"""

from __future__ import annotations

import pytest

from sweeper.cli.progress import Bar, Lines
from sweeper.driver.executors import LocalExecutor
from sweeper.driver.sweep import run_sweep
from sweeper.space import parse_space
from sweeper.store import open_store

# 3 configurations x 4 repeats in packs of 4: three packs, each logged every 10 of its 40 epochs.
SPACE = """\
name: progress
seed: 3
repeats: 4
pack_size: 4
task: {dataset: circles, n_train: 30, hidden: [8], epochs: 40, log_every: 10}
search:
  sampler: grid
  configs:
    - {placement: none}
    - {placement: input, kind: gaussian, std: 0.1}
    - {placement: pre_activation, kind: gaussian, std: 0.1}
"""


class Spy:
    """A Progress that writes down every call, and the runs stored and in training it was told of."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.total = self.stored = self.in_training = 0

    def start(self, total: int, done: int) -> None:
        self.total, self.stored = total, done

    def advance(self, runs: int) -> None:
        self.stored += runs
        self.calls.append(("advance", runs))

    def training(self, runs: float, packs: int) -> None:
        self.in_training = runs
        self.calls.append(("training", runs, packs))


def test_progress_moves_at_every_log_interval_and_ends_on_the_runs_stored(tmp_path):
    spec = parse_space(SPACE, "progress.yaml")
    spy = Spy()
    with open_store(f"sqlite:///{tmp_path / 'sweeps.db'}") as store:
        outcome = run_sweep(spec, store, LocalExecutor("cpu"), spy)

    assert spy.total == outcome.runs_total == 12
    # Per pack: 4 members x 10, 20, 30, 40 epochs of 40 are 1, 2, 3, 4 runs' worth, each a step of one
    # run's worth; once the pack is stored it leaves training (a step of -4 runs' worth, one pack fewer)
    # and its 4 runs advance the count at once. A pack is stored while the next one trains, so the next
    # one's steps may come before it leaves: never more than two packs (one training, one being stored).
    steps, previous = [], ("training", 0.0, 0)
    for i, call in enumerate(spy.calls):
        if call[0] == "advance":
            assert call == ("advance", 4) and steps[-1] == "stored"
            continue
        runs, packs = call[1] - previous[1], call[2] - previous[2]
        if runs == -4.0 and packs == -1:
            steps.append("stored")
            assert spy.calls[i + 1] == ("advance", 4)
        else:
            assert runs == 1.0 and packs in (0, 1) and call[2] <= 2, spy.calls
            steps.append("logged")
        previous = call
    assert steps.count("logged") == 12 and steps.count("stored") == 3
    assert spy.calls[-2:] == [("training", 0.0, 0), ("advance", 4)]
    assert spy.stored == 12 and spy.in_training == 0


def test_the_bar_shows_runs_in_training_by_their_fraction_and_ends_on_the_exact_count():
    bar = Bar("banner")
    bar.start(total=10, done=2)

    def completed() -> float:
        return bar.bar.tasks[0].completed

    try:
        bar.training(1 / 3)
        assert completed() == pytest.approx(2 + 1 / 3)
        bar.training(2 / 3)
        assert completed() == pytest.approx(2 + 2 / 3)
        bar.training(0.0)
        bar.advance(1)
        assert completed() == 3  # exactly: set, not a sum of the fractions shown
    finally:
        bar.stop()


def test_the_cli_run_reports_member_epochs_before_its_one_pack_ends(tmp_path, monkeypatch, sweeper_cli):
    """One pack of all 12 runs: before it is stored, the progress already moved at every logging interval."""
    space = tmp_path / "space.yaml"
    space.write_text(SPACE.replace("pack_size: 4", "pack_size: 12"))
    shown = []
    training = Lines.training  # stderr is not a terminal here: progress lines
    monkeypatch.setattr(
        Lines, "training", lambda self, runs, packs: (shown.append(runs), training(self, runs, packs))[1]
    )

    result = sweeper_cli("run", space, "--db", f"sqlite:///{tmp_path / 'sweeps.db'}")

    assert result.exit_code == 0, result.stderr
    assert shown == [3.0, 6.0, 9.0, 12.0, 0.0]
    assert "12 runs trained" in result.stderr
