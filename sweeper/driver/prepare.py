"""A sweep checked before anything of it is written: what ``sweeper run`` and ``sweeper validate`` share.

:func:`prepare` reads the search-space file once (its data files with it), loads repeat 0's split of
every task, imports and checks a task's own model once, and sizes the packs for the executor's device;
``run_sweep`` then trains what it returns without checking any of it again. What only the store can
say (whether a stored sweep may be resumed) is checked by :func:`check_resumable` once the store is open.

Nothing here imports torch or optuna at module level: a bad file is refused before they load.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sweeper import seeding
from sweeper.driver import context
from sweeper.errors import SpaceError, StoreError, SweeperError, TaskError
from sweeper.noise.spec import old_annealing
from sweeper.space import SweepSpec, load_space, parse_space
from sweeper.tasks import files
from sweeper.tasks.data import load_split

if TYPE_CHECKING:
    from sweeper.driver.executors import Executor
    from sweeper.store import Store


@dataclass(frozen=True)
class Prepared:
    """A sweep ready to train: its spec, the executor it trains on and what the checks found."""

    spec: SweepSpec
    executor: Executor
    #: Task name -> (n_train, n_val, n_test): the samples of each part of a repeat's split.
    split_sizes: dict[str, tuple[int, int, int]]
    #: Task name -> members per pack on the executor's device (capped by the file's ``pack_size``).
    pack_sizes: dict[str, int]
    #: What the user should know before training: problems inferred from data files, grid combinations
    #: skipped, relative noise that changes nothing.
    notes: tuple[str, ...]
    #: What makes the sweep unable to answer its question: too few repeats for any verdict.
    warnings: tuple[str, ...] = ()


def prepare(
    sweep: str | Path | SweepSpec,
    executor: Executor | Callable[[SweepSpec], Executor],
    *,
    repeats: int | None = None,
    epochs: int | None = None,
    name: str | None = None,
    stored_in: str | None = None,
) -> Prepared:
    """Checks a sweep before anything of it is written; SweeperError, one line, at the first problem.

    ``sweep``: a search-space file, read here, or a spec already read; ``repeats``, ``epochs`` and
    ``name`` override the file's (the command line's quick-run flags). ``executor``: the executor to
    train on, or a function that makes it from the checked spec (called once the tasks' own models
    are imported, which a Ray job ships; closed again here if the packs cannot be sized).
    ``stored_in``: the database URL the sweep may be stored in already: a file that a sweeper without
    validation parts stored there is then read as that sweep ran (:func:`as_stored`).
    """
    spec = sweep if isinstance(sweep, SweepSpec) else _read(Path(sweep), stored_in, name)
    spec = spec.with_overrides(repeats=repeats, epochs=epochs, name=name)
    samples: dict[str, np.ndarray] = {}
    split_sizes = check_data(spec, samples, _stored_model_folders(spec, stored_in))
    made = callable(executor)
    executor = executor(spec) if made else executor
    try:
        sizes = pack_sizes(spec, executor, split_sizes)
        slow = member_by_member_notes(spec, samples, sizes)
    except BaseException:
        if made:
            executor.close()
        raise
    notes = (*files.notes(spec.tasks), *spec.search.notes, *slow)
    return Prepared(spec, executor, split_sizes, sizes, notes, tuple(filter(None, [too_few_repeats(spec)])))


def member_by_member_notes(spec: SweepSpec, samples: dict[str, np.ndarray], sizes: dict[str, int]) -> list[str]:
    """A line for each task whose own model torch.func cannot vectorize: it trains member by member, and
    what that costs with the task's pack size (``samples``: two training rows of each own model's task)."""
    if not samples:
        return []
    import torch

    from sweeper.engine.functional import member_by_member_note

    notes = []
    for name, sample in samples.items():
        try:
            note = member_by_member_note(spec.tasks[name], torch.as_tensor(sample), sizes[name])
        except TaskError as exc:
            where = "task.model" if len(spec.tasks) == 1 else f"tasks[{name}].model"
            raise SpaceError(f"{spec.source}: {where}: {exc}") from exc
        if note is not None:
            notes.append(note if len(spec.tasks) == 1 else f"tasks[{name}]: {note}")
    return notes


def too_few_repeats(spec: SweepSpec, alpha: float = 0.05) -> str | None:
    """One line where the sweep's repeats are too few for any configuration to be called better or worse
    than the baseline (the exact signed-rank test's smallest p-value, 2 / 2**repeats, times Holm's number
    of comparisons, above ``alpha``), naming the fewest repeats that can; None where they suffice.

    Only a one-task sweep: several tasks are compared by the stratified test's normal approximation,
    whose smallest p-value is not this bound. ``alpha``: the report's default
    (``sweeper.stats.comparisons.ALPHA``).
    """
    from sweeper.stats import statistics as st  # scipy loads only once the file is read

    comparisons = context.planned_configs(spec) - 1
    if len(spec.tasks) != 1 or comparisons < 1 or spec.racing is not None:  # a race's test is another
        return None
    if comparisons * st.smallest_signed_rank_p(spec.repeats) <= alpha:
        return None
    family = f"{comparisons} comparison{'s' if comparisons > 1 else ''}"
    return (
        f"{spec.source}: with {spec.repeats} repeats the signed-rank test cannot go below p = "
        f"{st.smallest_signed_rank_p(spec.repeats):.3g}, so after Holm over {family} no "
        f"configuration can be called better or worse than the baseline at alpha {alpha:g}; "
        f"use repeats: {st.repeats_for_a_verdict(comparisons, alpha)} or more"
    )


def race_plan(spec: SweepSpec) -> str | None:
    """A raced sweep's plan in one line (``sweeper validate`` says it); None for fixed repeats."""
    if spec.racing is None:
        return None
    r, configs = spec.racing, context.planned_configs(spec)
    most = configs * spec.repeats * len(spec.tasks)
    effect = f"; equivalent within ±{r.min_effect:g}" if r.min_effect else ""
    return (
        f"racing: every configuration runs {r.min} repeats, then rounds of {r.step} more go to those still open, "
        f"up to {spec.repeats} (at most {most} runs, a fixed sweep's; at least {configs * r.min * len(spec.tasks)}); "
        f"verdicts from the group-sequential signed-rank test with Holm over {configs - 1} comparisons{effect}"
    )


def _read(file: Path, stored_in: str | None, name: str | None) -> SweepSpec:
    """The sweep of ``file``; one that a sweeper without validation parts stored in ``stored_in`` as it
    ran there (its ``test_`` metric, which a new file may not name, and no validation part)."""
    try:
        return load_space(file)
    except SpaceError:
        spec = None if stored_in is None else _stored_before_validation(file, stored_in, name)
        if spec is None:
            raise
        return spec


def _stored_model_folders(spec: SweepSpec, url: str | None) -> dict[str, str | None]:
    """Task name -> the folder the stored sweep of ``spec``'s name found its own model's module in, so that
    a resumed sweep finds it from any folder; empty without an own model or a stored sweep."""
    if url is None or all(t.user_model is None for t in spec.tasks.values()):
        return {}
    from sweeper.store import open_store

    try:
        with open_store(url, read_only=True) as store:
            return files.model_folders(store.sweep(spec.name)["data_files"])
    except SweeperError:  # no database yet, or no such sweep: a new sweep
        return {}


def _stored_before_validation(file: Path, url: str, name: str | None) -> SweepSpec | None:
    from sweeper.regular_files import read_regular
    from sweeper.space.spec import MAX_FILE_BYTES
    from sweeper.store import open_store

    try:
        text = read_regular(file, MAX_FILE_BYTES, str(file), SpaceError, "search-space file").decode("utf-8")
        spec = parse_space(text, str(file), stored=True, base_dir=file.resolve().parent)
        with open_store(url, read_only=True) as store:
            row = store.sweep(name or spec.name)
    except (OSError, UnicodeDecodeError, SweeperError):
        return None
    if row["spec_yaml"] != text or not row["metric"].startswith("test_"):
        return None
    return as_stored(spec, row["metric"])


def spec_from_store(sweep: dict, source: str) -> SweepSpec:
    """The sweep spec a stored sweep (the store's row) ran with, its command-line overrides re-applied."""
    o = sweep["overrides"]
    # Data files are read from the folder they were read from when the sweep was stored.
    data_dir = (sweep.get("data_files") or {}).get("data_dir")
    spec = as_stored(parse_space(sweep["spec_yaml"], source, stored=True, base_dir=data_dir), sweep["metric"])
    return spec.with_overrides(repeats=o.get("repeats"), epochs=o.get("epochs"), name=o.get("name"))


def as_stored(spec: SweepSpec, metric: str) -> SweepSpec:
    """``spec`` as a stored sweep of metric ``metric`` ran it: one stored before validation parts existed
    selected on a ``test_`` metric, and its tasks had no validation part (``n_val: 0``)."""
    if metric.startswith("test_") and any(t.has_validation for t in spec.tasks.values()):
        spec = spec.model_copy(update={"tasks": {n: t.model_copy(update={"n_val": 0}) for n, t in spec.tasks.items()}})
    return spec


def check_data(
    spec: SweepSpec, samples: dict[str, np.ndarray] | None = None, stored_dirs: dict[str, str | None] | None = None
) -> dict[str, tuple[int, int, int]]:
    """Loads repeat 0's split of every task, so impossible data sizes fail before anything is written;
    a task's own model is imported and checked on it (``check_user_model``; ``stored_dirs``: task name
    -> the folder a stored sweep found its module in), and two of its training rows kept in ``samples`` (task
    name -> rows) when given.

    Returns task name -> (n_train, n_val, n_test): the samples of each part.
    """
    sizes = {}
    for name, task in spec.tasks.items():
        try:
            split = load_split(task, seeding.data_seed(spec.seed, 0, task.dataset_seed))
        except TaskError as exc:
            where = "" if len(spec.tasks) == 1 else f"tasks[{name}]: "
            raise SpaceError(f"{spec.source}: {where}{exc}") from exc
        if task.user_model is not None:
            check_user_model(spec, name, task, split.x_train[:2], (stored_dirs or {}).get(name))
            if samples is not None:
                samples[name] = split.x_train[:2]
        sizes[name] = (len(split.y_train), len(split.y_val), len(split.y_test))
    return sizes


def check_user_model(spec: SweepSpec, name: str, task, sample: np.ndarray, stored_dir: str | None = None) -> None:
    """Imports a task's own model from the search-space file's folder (or the Python path; first from
    ``stored_dir``, the folder a stored sweep found it in), builds it, runs it on ``sample`` and finds the sites
    of the sweep's placements; SpaceError, one line, if not."""
    import torch

    from sweeper.engine import sizing
    from sweeper.tasks.user_models import check_model

    source = Path(spec.source)
    if spec.search.sampler == "grid":
        placements = {s.placement for config in spec.search.configs for s in config}
    else:
        placements = {p for combined in spec.search.space.placements for p in combined}
    try:
        folder = source.parent if source.is_file() else None
        free = sizing.free_memory(torch.device("cpu"))  # the model is built on the CPU
        check_model(task, folder, torch.as_tensor(sample), placements, free, stored_dir)
    except TaskError as exc:
        where = "task.model" if len(spec.tasks) == 1 else f"tasks[{name}].model"
        raise SpaceError(f"{spec.source}: {where}: {exc}") from exc


def pack_sizes(spec: SweepSpec, executor: Executor, split_sizes: dict[str, tuple[int, int, int]]) -> dict[str, int]:
    """Members per pack for each task on the executor's device (capped by the file's pack_size).

    ``split_sizes`` is what :func:`check_data` returns. A task one member of which cannot fit in the
    memory free there is refused with the engine's estimate, so that nothing is written for it.
    """
    sizes = {}
    for name, task in spec.tasks.items():
        n_train, n_val, n_test = split_sizes[name]
        try:
            # An executor may size packs for its workers (a Ray cluster: the share of a worker a pack gets).
            sizes[name] = min(executor.pack_size(task, n_train, n_val + n_test), spec.pack_size or 1 << 30)
        except TaskError as exc:
            where = "task" if len(spec.tasks) == 1 else f"tasks[{name}]"
            raise SpaceError(f"{spec.source}: {where}: {exc}") from exc
    return sizes


def check_resumable(spec: SweepSpec, store: Store) -> Extension | None:
    """Refuses, in one line, to go on with a sweep the store holds whose runs new ones would not match:
    its data files changed, or its annealed runs were trained with the old formula. Returns what the
    file adds to the stored sweep where it extends it (:func:`extension`); the store refuses any other
    change of the file when the sweep starts."""
    if spec.name not in {s["name"] for s in store.sweeps()}:
        return None
    stored = store.sweep(spec.name)
    refuse_changed_data(spec, stored["data_files"])
    for version in {r["sweeper_version"] for r in store.runs(spec.name)} if uses_annealing(spec) else ():
        refuse_old_annealing(spec, version)
    return extension(spec, stored)


@dataclass(frozen=True)
class Extension:
    """A stored sweep that a new file grows: the stored file and overrides it extends (the store takes the
    growth only while the sweep still holds them)."""

    spec_yaml: str
    overrides: dict


#: What an extension may change: the repeats, and a grid's configurations or a random search's trials.
_GROWS = {"source", "source_text", "overrides", "repeats", "data_dir", "search"}
_SEARCH_GROWS = {"configs", "notes", "n_trials"}


def extension(spec: SweepSpec, stored) -> Extension | None:
    """What ``spec`` adds to the stored sweep (the store's row), where it only grows it: more repeats,
    and for a grid more configurations (every stored one kept), for a random search more trials.

    Seeds are pure functions of (sweep seed, repeat, configuration), and a random search's proposals of
    (sweep seed, trial number), so the grown sweep holds what a sweep of its final size holds. A TPE
    search grows by repeats only: its proposals after the first depend on the objectives it was told,
    so its stored trials keep the configurations chosen at the first size (their new runs are exact);
    more TPE trials are refused in one line. None where the file does not grow the sweep (unchanged,
    or changed otherwise: the store then refuses it as before).
    """
    if spec.source_text.rstrip("\n") == stored["spec_yaml"].rstrip("\n") and spec.overrides == stored["overrides"]:
        return None
    try:
        old = spec_from_store(stored, spec.source)
    except SweeperError:
        return None
    same = old.model_dump(exclude=_GROWS) == spec.model_dump(exclude=_GROWS) and old.search.model_dump(
        exclude=_SEARCH_GROWS
    ) == spec.search.model_dump(exclude=_SEARCH_GROWS)
    if not same or spec.repeats < old.repeats:
        return None
    sampler = spec.search.sampler
    if sampler == "grid":
        kept = {seeding.config_json(c) for c in spec.search.configs}
        if not all(seeding.config_json(c) in kept for c in old.search.configs):
            return None
    elif spec.search.n_trials < old.search.n_trials:
        return None
    elif sampler == "tpe" and spec.search.n_trials != old.search.n_trials:
        raise StoreError(
            f"sweep {spec.name!r}: a tpe search grows by repeats only (its proposals depend on the objectives "
            f"it was told, so n_trials {old.search.n_trials} -> {spec.search.n_trials} would not give what a "
            "sweep of that size gives); keep n_trials, or run it under another --name"
        )
    if spec.repeats == old.repeats and context.planned_configs(spec) == context.planned_configs(old):
        return None
    return Extension(stored["spec_yaml"], stored["overrides"])


def uses_annealing(spec: SweepSpec) -> bool:
    """Whether any configuration of the sweep (or, sampled, its space) anneals its noise."""
    if spec.search.sampler == "grid":
        return any(s.schedule == "annealed" for config in spec.search.configs for s in config)
    return spec.search.space is not None and "annealed" in spec.search.space.schedules


def refuse_old_annealing(spec: SweepSpec, sweeper_version: str | None) -> None:
    """Refuses, in one line, to resume (or rerun) a stored sweep whose annealed runs were trained with
    sweeper <= 0.1.0's formula, std / (1 + t)^γ, which shrank the noise far faster than the paper's.

    Refused rather than resumed with the old formula: keeping both alive would mean a second schedule
    in every engine (the C trainer, the torch program, the public layers) for good, and an ``annealed``
    whose meaning depends on a stored version number; a sweep of the old formula is better kept as it
    is (its stored numbers stay readable and reportable) and run again under a new name.
    """
    if uses_annealing(spec) and old_annealing(sweeper_version):
        made = "before versions were recorded" if sweeper_version is None else f"by sweeper {sweeper_version}"
        raise StoreError(
            f"sweep {spec.name!r} was stored {made}, whose annealed schedule was std / (1 + t)^gamma; this "
            "version anneals the variance as Neelakantan et al. 2015 do, std * (1 + t)^(-gamma/2), so new runs "
            f"would not match the stored ones: run it again under another --name (or sweeper delete {spec.name})"
        )


def refuse_changed_data(spec: SweepSpec, stored: dict | None) -> None:
    """Refuses, in one line, to resume or rerun a sweep whose data files or own model's code changed
    since it was stored (``stored``: the sweep row's ``data_files``): its runs were trained on the old
    contents, and the new ones would not be comparable with them."""
    try:
        said = files.changed(stored, files.described(spec.tasks, spec.data_dir, files.model_folders(stored)))
    except TaskError as exc:
        raise StoreError(f"sweep {spec.name!r}: {exc}") from exc
    if said is not None:
        restore = "the model's files" if said.startswith("the model") else "the file"
        raise StoreError(
            f"sweep {spec.name!r}: {said} changed since the sweep was stored, so new runs "
            f"would not match the stored ones: restore {restore}, or run it under another --name"
        )
