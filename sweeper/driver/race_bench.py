"""``sweeper bench --racing``: a raced sweep against the fixed sweep of its maximum, on three grids.

Each grid of ``search_spaces/racing/`` is swept twice into one throwaway SQLite file: as it is (fixed
repeats) and raced (``repeats: {min: 5, max: <the fixed repeats>, step: 5}``). The table says what the race
spent (its runs over the fixed sweep's; issue 22's target: at most 40%), whether it chose what the fixed
sweep chose (or one the fixed sweep cannot tell apart from it: its paired signed-rank test of the two on the
selection metric, p >= alpha), the share of the fixed sweep's better/worse verdicts it keeps (target: at
least 90%), and that every raced run equals the fixed sweep's run of the same (configuration, repeat) bit
for bit. A grid where nothing beats no noise gets the sentence the raced report ends on.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from sweeper.driver.executors import LocalExecutor
from sweeper.driver.prepare import prepare
from sweeper.space import load_space, parse_space
from sweeper.stats import racing
from sweeper.stats import statistics as st
from sweeper.stats.comparisons import ALPHA, compare
from sweeper.store import open_store

#: The shipped grids (issue 22's three), by the name the table gives them.
GRIDS = {
    "moons": "moons.yaml",
    "circles-fresh": "circles_fresh.yaml",
    "seed": "seed.yaml",
}
FOLDER = Path(__file__).resolve().parents[2] / "search_spaces" / "racing"
#: A run's columns that say where, when and how fast it trained, not what it holds.
_NOT_NUMBERS = {"sweep", "trial", "wall_time", "device", "engine", "sweeper_version", "torch_version", "cpu"}
_NOT_NUMBERS |= {"gpu", "host"}
#: --quick: every task's epochs and the fixed repeats (a race still has its rounds: min 5, step 5).
QUICK_EPOCHS, QUICK_REPEATS = 5, 10


def raced_text(text: str, repeats: int, minimum: int = 5, step: int = 5) -> str:
    """The search-space YAML ``text`` with its repeats raced: ``{min, max: repeats, step}``."""
    raw = yaml.safe_load(text)
    raw["repeats"] = {"min": min(minimum, repeats), "max": repeats, "step": step}
    raw["name"] = f"{raw['name']}-raced"
    return yaml.safe_dump(raw, sort_keys=False)


def bench_racing(
    quick: bool = False, url: str | None = None, log: Callable[[str], None] = print, grids=GRIDS
) -> list[dict]:
    """Both sweeps of each grid and their comparison, one row a grid (see the module's docstring).

    ``quick``: 5 epochs and 10 fixed repeats, so the whole bench runs in seconds (a test runs it end to
    end); ``url``: the database (default a temporary SQLite file, removed afterwards).
    """
    with tempfile.TemporaryDirectory() as folder:
        url = url or f"sqlite:///{folder}/bench-racing.db"
        return [_one_grid(name, FOLDER / file, url, quick, log) for name, file in grids.items()]


def _one_grid(name: str, file: Path, url: str, quick: bool, log: Callable[[str], None]) -> dict:
    fixed = load_space(file)
    if quick:
        fixed = fixed.with_overrides(repeats=QUICK_REPEATS, epochs=QUICK_EPOCHS)
    raced = parse_space(raced_text(fixed.source_text, fixed.repeats), str(file)).with_overrides(
        repeats=fixed.repeats, epochs=QUICK_EPOCHS if quick else None
    )
    executor = LocalExecutor("auto")
    from sweeper.driver.sweep import run_sweep

    with open_store(url) as store:
        for spec in (fixed, raced):
            if spec.name in {s["name"] for s in store.sweeps()}:
                store.delete_sweep(spec.name)
            log(f"racing bench: {name}: {spec.name} ({len(spec.search.configs)} configurations) ...")
            run_sweep(prepare(spec, executor), store)
        f_sweep, f_trials, f_runs = store.sweep(fixed.name), store.trials(fixed.name), store.runs(fixed.name)
        r_sweep, r_trials, r_runs = store.sweep(raced.name), store.trials(raced.name), store.runs(raced.name)
    planned = len(fixed.search.configs)
    f_cmp = compare(f_sweep, f_trials, f_runs, n_boot=200, planned=planned)
    plan = racing.plan_of(r_sweep.context)
    r_cmp = compare(r_sweep, r_trials, r_runs, n_boot=200, planned=planned, plan=plan)
    f_verdicts = {r["label"]: r["verdict"] for r in f_cmp.top.configs}
    r_verdicts = {r["label"]: r["verdict"] for r in r_cmp.top.configs}
    decided = [label for label, v in f_verdicts.items() if v in ("better", "worse")]
    kept = sum(r_verdicts.get(label) == f_verdicts[label] for label in decided)
    f_choice, r_choice = f_cmp.top.chosen["labels"][0], r_cmp.top.chosen["labels"][0]
    row = {
        "grid": name,
        "configs": planned,
        "runs_fixed": len(f_runs),
        "runs_raced": len(r_runs),
        "runs_share": round(len(r_runs) / len(f_runs), 3),
        "choice_fixed": f_choice,
        "choice_raced": r_choice,
        "choice": _choice(f_choice, r_choice, f_cmp),
        "verdicts_fixed": len(decided),
        "verdicts_kept": kept,
        "kept_share": round(kept / len(decided), 3) if decided else None,
        "raced_better": sum(v == "better" for v in r_verdicts.values()),
        "bit_identical": _identical(f_runs, r_runs),
    }
    said = racing.nothing_beats(list(r_verdicts.values()), len(r_runs), len(f_runs))
    if said is not None:
        row["said"] = said
    return row


def _choice(fixed: str, raced: str, compared) -> str:
    """``same``, or whether the fixed sweep's own paired signed-rank test on the selection metric tells
    the two choices apart (p < alpha: ``differs``)."""
    if fixed == raced:
        return "same"
    labels = [c["label"] for c in compared.configs]
    a, b = labels.index(fixed), labels.index(raced)
    t = compared.chosen_on[0]
    pair = t.present[:, a] & t.present[:, b]
    d = st.paired_differences(t.values[pair, a], t.values[pair, b], higher_is_better=compared.higher_is_better)
    p = st.signed_rank_test(d).pvalue
    return "cannot be told apart by the fixed sweep" if not p < ALPHA or np.isnan(p) else f"differs (p = {p:.3g})"


def _identical(fixed_runs: list[dict], raced_runs: list[dict]) -> bool:
    """Whether every raced run holds the numbers of the fixed sweep's run of the same configuration,
    task and repeat (seeds, every metric, divergence), bit for bit."""
    key = ("label", "task", "repeat")
    fixed = {tuple(r[k] for k in key): r for r in fixed_runs}
    for run in raced_runs:
        other = fixed.get(tuple(run[k] for k in key))
        if other is None or any(run[k] != other[k] for k in dict(run) if k not in _NOT_NUMBERS):
            return False
    return True
