"""The progress of ``sweeper run`` on stderr (a ``sweeper.driver.sweep.Progress``): a live bar on a terminal,
plain lines at a steady pace in a log file (``nohup ... > sweep.log``, a Slurm job, a container's log)."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from datetime import datetime, timezone

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

    def training(self, runs: float, packs: int = 0) -> None:
        self.in_training = runs
        self._show()

    def _show(self) -> None:
        # Set, not added up: the bar ends on the exact count of runs stored whatever fractions it showed.
        now = self.trained + self.in_training
        rate = now / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.update(self.task, completed=self.done + now, rate=f"{rate:.2f}")

    def race_round(self, k: int, open_: int, spent: int, fixed: int, over: bool) -> None:
        self.bar.console.print(race_line(k, open_, spent, fixed, over), markup=False, highlight=False)

    def stop(self) -> None:
        if self.task is not None:
            self.bar.stop()


class Lines:
    """Progress as one plain line at a time, for a log file that ``tail -f`` and ``grep`` read.

    A line every ``every`` seconds (none by time when 0) and whenever the sweep passes a tenth of its
    runs, and a last one when it stops: runs stored / planned, how far including the runs in training,
    runs per second (this process's), the ETA, and the packs in flight. ``as_json``: the same as one
    JSON object a line (for log collectors). Nothing but printable text and one newline per line.
    """

    def __init__(self, name: str, banner: str, every: float = 30.0, as_json: bool = False, stream=None):
        self.name, self.banner, self.every, self.as_json = name, banner, every, as_json
        self.stream = stream
        self.total = self.done = self.trained = self.packs = 0
        self.in_training = 0.0
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._tenth = 0  # the last tenth of the sweep a line was written for
        self._last: tuple | None = None  # what the last line said

    def start(self, total: int, done: int) -> None:
        say(self.banner)
        self.total, self.done, self.t0 = total, done, time.monotonic()
        self._tenth = self._tenths()
        self._write()
        if self.every > 0:
            self._thread = threading.Thread(target=self._tick, name="sweeper progress lines", daemon=True)
            self._thread.start()

    def advance(self, runs: int) -> None:
        self.trained += runs
        self._each_tenth()

    def training(self, runs: float, packs: int = 0) -> None:
        self.in_training, self.packs = runs, packs
        self._each_tenth()

    def race_round(self, k: int, open_: int, spent: int, fixed: int, over: bool) -> None:
        with self._lock:
            line = race_line(k, open_, spent, fixed, over)
            if self.as_json:
                line = json.dumps(
                    {"sweep": self.name, "round": k, "open": open_, "runs": spent, "fixed": fixed, "race_over": over}
                )
            with contextlib.suppress(OSError, ValueError):  # the terminal or pipe went away: the sweep goes on
                (self.stream or sys.stderr).write(line + "\n")
                (self.stream or sys.stderr).flush()

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
        if self.total:  # started: the state it stopped in, unless the last line said it already
            self._write(only_if_new=True)

    def _tick(self) -> None:
        while not self._stopped.wait(self.every):
            self._write()

    def _tenths(self) -> int:
        return int(10 * (self.done + self.trained + self.in_training) / self.total) if self.total else 0

    def _each_tenth(self) -> None:
        tenth = self._tenths()
        if tenth > self._tenth:
            self._tenth = tenth
            self._write()

    def state(self) -> dict:
        """What a line says, as the JSON object of ``--log-format json``."""
        elapsed = time.monotonic() - self.t0
        now = self.trained + self.in_training
        rate = now / elapsed if elapsed > 0 else 0.0
        left = max(0.0, self.total - self.done - now)
        return {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "sweep": self.name,
            "runs_stored": self.done + self.trained,
            "runs_planned": self.total,
            "runs_in_training": round(self.in_training, 2),
            "fraction_done": round((self.done + now) / self.total, 4) if self.total else 1.0,
            "runs_per_second": round(rate, 3),
            "eta_seconds": round(left / rate, 1) if rate > 0 else None,
            "elapsed_seconds": round(elapsed, 1),
            "packs_in_flight": self.packs,
        }

    def _write(self, only_if_new: bool = False) -> None:
        with self._lock:
            state = self.state()
            said = (state["runs_stored"], state["runs_in_training"], state["packs_in_flight"])
            if only_if_new and said == self._last:
                return
            self._last = said
            line = json.dumps(state) if self.as_json else _text(state)
            stream = self.stream or sys.stderr
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):  # the terminal or pipe went away (SIGHUP): the sweep goes on
                pass


def _text(state: dict) -> str:
    """``2026-12-07 13:50:00 UTC sweep 'name': 120/400 runs stored (37% done), 4.31 runs/s, ETA 1m05s,
    2 packs in flight``."""
    when = state["time"].replace("T", " ").replace("Z", " UTC")
    eta = duration(state["eta_seconds"]) if state["eta_seconds"] is not None else "-"
    packs = state["packs_in_flight"]
    return (
        f"{when} sweep {state['sweep']!r}: {state['runs_stored']}/{state['runs_planned']} runs stored "
        f"({100 * state['fraction_done']:.0f}% done), {state['runs_per_second']:.2f} runs/s, ETA {eta}, "
        f"{packs} pack{'' if packs == 1 else 's'} in flight"
    )


def race_line(k: int, open_: int, spent: int, fixed: int, over: bool) -> str:
    """A raced sweep's round: ``round 3: 12 configurations open, 450 of 1500 runs (30% of a fixed sweep's)``;
    ``over`` the line when the race ended."""
    share = f"{spent} of {fixed} runs ({100 * spent / fixed:.0f}% of a fixed sweep's)" if fixed else f"{spent} runs"
    if over:
        return f"race over after {k} round{'' if k == 1 else 's'}: {share}"
    return f"round {k}: {open_} configuration{'' if open_ == 1 else 's'} open, {share} so far"


def duration(seconds: float) -> str:
    """``45s``, ``3m07s``, ``2h05m``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
