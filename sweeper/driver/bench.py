"""``sweeper bench --driver``: where a sweep's time goes when training is cheap.

A grid of tiny models (circles, hidden [8], 20 epochs) is swept into a database; the time of each
configuration is split into training (the executor), the store's writes of runs and curves (of which
``store_hidden`` ran while the next pack trained), and the driver (everything else after the first pack
is handed over: Optuna's trials, sweeper's trial rows, telling objectives, the verdicts at the end); what
comes before (data checked, the study created) is ``setup_s``, once per sweep.
``driver_runs_per_s`` is what the driver and the store alone would allow: runs / (driver + store time). The figures
show whether the driver keeps up with a fast trainer, and whether its cost grows with the grid.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence

from sweeper.driver.executors import Executor, LocalExecutor
from sweeper.errors import SweeperError
from sweeper.space import parse_space
from sweeper.store import Store, open_store

#: The grids swept when none is given (CONFIGSxREPEATS): one ten times the other's configurations, to
#: show whether the driver's cost per configuration grows with the grid.
DEFAULT_GRIDS = ("391x10", "3901x2")
#: Placements and kinds of the bench grid: 15 noises, each at many stds (one configuration each).
_PLACEMENTS = ("input", "pre_activation", "post_activation", "weights", "gradients")
_KINDS = ("gaussian", "multiplicative", "uniform")


def grid_yaml(configs: int, repeats: int, epochs: int, name: str) -> str:
    """A grid of ``configs`` configurations (the baseline among them): 15 noises x stds, rounded up."""
    per_noise = max(1, -(-(configs - 1) // (len(_PLACEMENTS) * len(_KINDS))))
    stds = ", ".join(f"{0.001 * (k + 1):.3f}" for k in range(per_noise))
    return (
        f"name: {name}\nseed: 0\nrepeats: {repeats}\nmetric: accuracy\n"
        f"task: {{dataset: circles, n_train: 30, hidden: [8], epochs: {epochs}, log_every: 10}}\n"
        f"search:\n  sampler: grid\n  grid:\n    placement: [{', '.join(_PLACEMENTS)}]\n"
        f"    kind: [{', '.join(_KINDS)}]\n    std: [{stds}]\n"
    )


class _Timed:
    """Wraps a callable, keeping the (start, end) of each call (from any thread) in ``spans``."""

    def __init__(self, call: Callable):
        self.call, self.spans = call, []

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.call(*args, **kwargs)
        finally:
            self.spans.append((start, time.perf_counter()))

    @property
    def seconds(self) -> float:
        return sum(end - start for start, end in self.spans)


def overlap(spans: list[tuple[float, float]], others: list[tuple[float, float]]) -> float:
    """Seconds during which a span of ``spans`` and one of ``others`` both ran (each list's spans disjoint)."""
    return sum(max(0.0, min(end, b) - max(start, a)) for start, end in spans for a, b in others)


class _TimedExecutor(Executor):
    """The local executor, keeping the (start, end) of each pack's training in ``spans``."""

    def __init__(self):
        self.inner, self.spans, self.first = LocalExecutor("cpu"), [], None
        self.device = self.inner.device

    def run(self, packs, on_epochs=None):
        self.first = self.first or time.perf_counter()  # when the first pack is handed over
        iterator = iter(self.inner.run(packs, on_epochs))
        while True:
            start = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                self.spans.append((start, time.perf_counter()))
            yield item

    @property
    def seconds(self) -> float:
        return sum(end - start for start, end in self.spans)

    def pack_size(self, task, n_train: int, n_test: int) -> int:
        return self.inner.pack_size(task, n_train, n_test)

    def close(self) -> None:
        self.inner.close()


def bench_driver(url: str, *, configs: int, repeats: int, epochs: int = 20, name: str | None = None) -> dict:
    """Sweeps a fresh grid of ``configs`` x ``repeats`` into ``url`` and splits its time per configuration.

    The sweep ``name`` (default ``bench-driver-<configs>x<repeats>``) is deleted first if the
    database holds it, so each call measures a sweep from the start.
    """
    from sweeper.driver.sweep import run_sweep

    name = name or f"bench-driver-{configs}x{repeats}"
    spec = parse_space(grid_yaml(configs, repeats, epochs, name), "<bench>")
    with open_store(url) as store:
        if name in {s["name"] for s in store.sweeps()}:
            store.delete_sweep(name)
        executor = _TimedExecutor()
        save_runs = _Timed(Store.save_runs)
        store.save_runs = lambda *args, **kwargs: save_runs(store, *args, **kwargs)
        start = time.perf_counter()
        outcome = run_sweep(spec, store, executor)
        backend = store.display_url.split(":", 1)[0]
    n = len(spec.search.configs)
    total = outcome.seconds
    setup = executor.first - start  # data checked, study created or loaded: once per sweep
    # A pack is stored while the next one trains: only what storing adds to training is the sweep's time.
    hidden = overlap(save_runs.spans, executor.spans)
    driver = total - setup - executor.seconds - (save_runs.seconds - hidden)
    per_config = 1000 / n
    return {
        "database": backend,
        "configs": n,
        "repeats": repeats,
        "runs": outcome.runs_trained,
        "seconds": round(total, 3),
        "setup_s": round(setup, 3),
        "runs_per_s": round(outcome.runs_trained / total, 1),
        "train_ms_per_config": round(executor.seconds * per_config, 3),
        "store_ms_per_config": round(save_runs.seconds * per_config, 3),
        "store_hidden_ms_per_config": round(hidden * per_config, 3),
        "driver_ms_per_config": round(driver * per_config, 3),
        "driver_runs_per_s": round(outcome.runs_trained / (driver + save_runs.seconds), 1),
    }


def parse_grid(text: str) -> tuple[int, int]:
    """``--grid CONFIGSxREPEATS`` as (configurations, repeats); SweeperError, one line, if it is not that."""
    configs, _, repeats = text.partition("x")
    if not (configs.isdigit() and repeats.isdigit() and int(configs) >= 2 and int(repeats) >= 1):
        raise SweeperError(
            f"--grid: {text!r} is not CONFIGSxREPEATS (e.g. 391x10: 391 configurations, the baseline among "
            "them, of 10 repeats each; at least 2 configurations and 1 repeat)"
        )
    return int(configs), int(repeats)


def bench_grids(
    grids: Sequence[str], url: str | None, epochs: int = 20, log: Callable[[str], None] = print
) -> list[dict]:
    """:func:`bench_driver` of each grid (``CONFIGSxREPEATS``, all checked first) in turn, into ``url``
    (default: a temporary SQLite file, removed afterwards)."""
    sizes = [parse_grid(grid) for grid in grids]
    with tempfile.TemporaryDirectory() as folder:
        url = url or f"sqlite:///{folder}/bench.db"
        rows = []
        for configs, repeats in sizes:
            log(f"driver bench: {configs} configurations x {repeats} repeats, {epochs} epochs ...")
            rows.append(bench_driver(url, configs=configs, repeats=repeats, epochs=epochs))
    return rows
