"""The progress bar of ``sweeper run`` on stderr: a ``sweeper.driver.sweep.Progress``."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sweeper.cli.app import err, say


class Bar:
    """The run progress bar: runs done / total, runs/s, elapsed and ETA.

    ``banner`` is printed when the sweep has been accepted and training starts. Runs in training count
    by the fraction of their epochs trained, so the bar, the rate and the ETA move while a pack trains.
    """

    def __init__(self, banner: str):
        self.banner = banner
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} runs/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        self.task = None
        self.done = self.trained = 0
        self.in_training = 0.0

    def start(self, total: int, done: int) -> None:
        say(self.banner)
        self.bar.start()
        self.done = done
        self.task = self.bar.add_task("runs", total=total, completed=done, rate="-")
        self.t0 = time.perf_counter()

    def advance(self, runs: int) -> None:
        self.trained += runs
        self._show()

    def training(self, runs: float) -> None:
        self.in_training = runs
        self._show()

    def _show(self) -> None:
        # Set, not added up: the bar ends on the exact count of runs stored whatever fractions it showed.
        now = self.trained + self.in_training
        rate = now / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.update(self.task, completed=self.done + now, rate=f"{rate:.2f}")

    def stop(self) -> None:
        if self.task is not None:
            self.bar.stop()
