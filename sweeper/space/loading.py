"""Loading a search-space file: the YAML read, every key checked, the grid expanded, a ``SweepSpec`` made.

Every error is a one-line :class:`SpaceError` naming the file, the key path, what was wrong and what
is allowed; nothing is built from a file that fails.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sweeper.errors import SpaceError
from sweeper.noise.kinds import KINDS, NOISE_KINDS
from sweeper.noise.spec import (
    DECAYS,
    DEFAULT_GAMMA,
    RELATIVE_RULE,
    SCHEDULES,
    default_kind,
    relative_fits,
    relative_notes,
    unfit_site,
)
from sweeper.space.grid import _NOISE_KEYS, _STD_MIN_RULE, _GridReader
from sweeper.space.reading import _at, _is_number, _show
from sweeper.space.spec import (
    _NAME_PATTERN,
    _NAME_RULE,
    CLASSIFICATION_METRICS,
    MAX_CONFIGURATIONS,
    MAX_CONFIGURATIONS_LIMIT,
    MAX_FILE_BYTES,
    MAX_REPEATS,
    REGRESSION_METRICS,
    SAMPLERS,
    FloatRange,
    RacingSpec,
    SearchSpec,
    SpaceSpec,
    SweepSpec,
)
from sweeper.tasks.spec import TaskSpec

_TOP_KEYS = ("name", "description", "seed", "repeats", "metric", "pack_size", "task", "tasks", "search")
_SEARCH_KEYS = ("sampler", "n_trials", "configs", "grid", "space", "max_configurations")
_RANGES = ("log_uniform", "uniform")


def load_space(path: str | Path) -> SweepSpec:
    """Read and validate a search-space file."""
    from sweeper.regular_files import read_regular

    try:
        size = Path(path).stat().st_size
    except FileNotFoundError:
        raise SpaceError(f"{path}: no such search-space file") from None
    except OSError as e:
        raise SpaceError(f"{path}: cannot be read: {e.strerror}") from None
    if size > MAX_FILE_BYTES:
        raise SpaceError(_too_large(str(path), size))
    # Only a regular file, never read past the limit: a FIFO, /dev/zero or a file growing while read is refused.
    raw = read_regular(path, MAX_FILE_BYTES, str(path), SpaceError, "search-space file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpaceError(f"{path}: not a UTF-8 text file") from None
    return parse_space(text, str(path), base_dir=Path(path).resolve().parent)


def parse_space(
    text: str, source: str = "<string>", *, stored: bool = False, base_dir: str | Path | None = None
) -> SweepSpec:
    """Validate a search space given as YAML text; ``source`` names it in error messages.

    ``stored``: the text a sweep was stored with; one stored before validation parts existed names a
    ``test_`` metric, which a new file may not. ``base_dir``: the folder data file paths are relative
    to (the search-space file's; default: the current folder).
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise SpaceError(_too_large(source, size))
    return _Reader(source, Path(base_dir or ".").resolve()).sweep(text, stored)


def _too_large(source: str, size: int) -> str:
    return (
        f"{source}: the file is {size / (1 << 20):.1f} MiB; allowed: at most {MAX_FILE_BYTES >> 20} MiB "
        "(describe a large grid as a product, grid: {placement: [...], std: [...]}, not as a list)"
    )


class _Reader(_GridReader):
    """Validates one file's contents; every failure names the file and the key path."""

    def sweep(self, text: str, stored: bool = False) -> SweepSpec:
        raw = self.yaml(text)
        if raw is None:
            self.fail("", "the file is empty; a search space needs at least name:, task: and search:")
        raw = self.mapping(raw, "", _TOP_KEYS, required=("name",))
        tasks = self.tasks(raw)
        metric = self.metric(raw.get("metric"), tasks, stored)
        search = self.search(raw.get("search"), tasks)
        fields = {k: raw[k] for k in ("name", "description", "seed", "repeats", "pack_size") if k in raw}
        if isinstance(raw.get("repeats"), dict):
            fields["repeats"], fields["racing"] = self.racing(raw["repeats"], search)
        try:
            return SweepSpec(
                source=self.source,
                source_text=text,
                metric=metric,
                tasks=tasks,
                search=search,
                data_dir=str(self.base_dir),
                **fields,
            )
        except ValidationError as e:
            if e.errors()[0]["type"] == "string_pattern_mismatch":
                self.fail("name", f"{_show(raw['name'])} is not allowed; allowed: {_NAME_RULE}")
            self.pydantic(e, "", SweepSpec)

    def racing(self, value: dict, search: SearchSpec) -> tuple[int, RacingSpec]:
        """A raced sweep's ``repeats: {min, max, step, min_effect}``: its maximum and its plan."""
        keys = ("min", "max", "step", "min_effect")
        value = self.mapping(value, "repeats", keys, required=("min", "max"))
        low, high = 2, MAX_REPEATS
        for key in ("min", "max", "step"):
            n = value.get(key, 5)
            if isinstance(n, bool) or not isinstance(n, int) or not (1 if key == "step" else low) <= n <= high:
                self.fail(
                    f"repeats.{key}",
                    f"{_show(n)} is not allowed; allowed: a whole number from {1 if key == 'step' else low} to {high}",
                )
        if value["max"] < value["min"]:
            self.fail("repeats.max", f"{value['max']} is below repeats.min {value['min']}; allowed: max >= min")
        effect = value.get("min_effect")
        if effect is not None and (not _is_number(effect) or not math.isfinite(effect) or effect <= 0):
            self.fail(
                "repeats.min_effect",
                f"{_show(effect)} is not allowed; allowed: a finite number > 0, in the metric's units",
            )
        if search.sampler != "grid":
            self.fail(
                "repeats",
                f"racing (repeats: {{min, max}}) needs sampler 'grid', not {search.sampler!r}: its rounds compare "
                "every configuration at once; give repeats: a number",
            )
        racing = RacingSpec(
            min=value["min"], step=value.get("step", 5), min_effect=None if effect is None else float(effect)
        )
        return value["max"], racing

    def tasks(self, raw: dict) -> dict[str, TaskSpec]:
        if "task" in raw and "tasks" in raw:
            self.fail("tasks", "give either task: (one task) or tasks: (a list of tasks), not both")
        if "task" in raw:
            name, task = self.task(raw["task"], "task")
            return {name: task}
        if "tasks" not in raw:
            self.fail("task", "required key missing; give task: (one task) or tasks: (a list of tasks)")
        if not isinstance(raw["tasks"], list) or not raw["tasks"]:
            self.fail("tasks", f"expected a non-empty list of tasks; got {_show(raw['tasks'])}")
        tasks: dict[str, TaskSpec] = {}
        for i, item in enumerate(raw["tasks"]):
            name, task = self.task(item, _at("tasks", i))
            if name in tasks:
                self.fail(_at(_at("tasks", i), "name"), f"{name!r} names two tasks; give each its own name:")
            tasks[name] = task
        return tasks

    def task(self, value: Any, path: str) -> tuple[str, TaskSpec]:
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping of task keys (dataset, model, ...); got {_show(value)}")
        fields = dict(value)
        name = fields.pop("name", None)
        try:
            task = TaskSpec.model_validate(fields, context={"base_dir": self.base_dir})
        except ValidationError as e:
            self.pydantic(e, path, TaskSpec, extra_keys=("name",))
        if name is None:
            return task.dataset_name, task
        if not isinstance(name, str) or not re.fullmatch(_NAME_PATTERN, name):
            self.fail(_at(path, "name"), f"{_show(name)} is not allowed; allowed: {_NAME_RULE}")
        return name, task

    def metric(self, value: Any, tasks: dict[str, TaskSpec], stored: bool = False) -> str:
        """The metric as the store names it (``val_accuracy``, or ``test_accuracy`` for tasks with no
        validation part), which every task must have; the default is the first allowed one.

        ``stored``: a sweep's own stored text, which before validation parts named ``test_`` metrics.
        """
        problems = {"regression" if t.problem == "regression" else "classification" for t in tasks.values()}
        lists = [CLASSIFICATION_METRICS if p == "classification" else REGRESSION_METRICS for p in problems]
        allowed = [m for m in lists[0] if all(m in other for other in lists)]
        if stored and isinstance(value, str) and value.startswith("test_") and value[5:] in allowed:
            return value
        if isinstance(value, str) and value.startswith("test_") and value[5:] in allowed:
            self.fail(
                "metric",
                f"{value!r} would select on the test part, which sweeper keeps untouched to "
                f"report the chosen configuration; write metric: {value[5:]} (the validation part, "
                "or the test part where tasks have n_val: 0) or val_" + value[5:],
            )
        if len(tasks) == 1:
            why = f" for {problems.pop()} task {next(iter(tasks))!r}"
        else:
            why = f" for {' and '.join(sorted(problems))} tasks"
        name = allowed[0] if value is None else self.choice(value, "metric", allowed, why)
        if name.startswith("train_"):
            return name
        without = [n for n, t in tasks.items() if not t.has_validation]
        if without and len(without) < len(tasks):
            self.fail(
                "metric",
                f"tasks {', '.join(without)} have no validation part (n_val: 0) but the others do; "
                "a sweep selects on one part for all of its tasks: give every task n_val: 0, or none",
            )
        if without and name.startswith("val_"):
            self.fail(
                "metric",
                f"{name!r} needs a validation part, and n_val: 0 leaves none; write metric: "
                f"{name[4:]} (the test part, shared with the estimate) or set n_val",
            )
        return ("test_" if without else "val_") + name.removeprefix("val_")

    def search(self, value: Any, tasks: dict[str, TaskSpec]) -> SearchSpec:
        if value is None:
            self.fail("search", "required key missing; give sampler: and configs:, grid: or space:")
        raw = self.mapping(value, "search", _SEARCH_KEYS)
        sampler = self.choice(raw.get("sampler", "grid"), "search.sampler", SAMPLERS)
        limit = raw.get("max_configurations", MAX_CONFIGURATIONS)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CONFIGURATIONS_LIMIT:
            self.fail(
                "search.max_configurations",
                f"{_show(limit)} is not allowed; allowed: an integer from 1 to {MAX_CONFIGURATIONS_LIMIT:,}",
            )
        if sampler == "grid":
            why = {"n_trials": "a grid runs every configuration", "space": "give configs: or grid:"}
            for key in ("n_trials", "space"):
                if key in raw:
                    self.fail(_at("search", key), f"applies only to samplers random and tpe; {why[key]}")
            if "configs" not in raw and "grid" not in raw:
                self.fail(
                    "search.configs",
                    "required key missing; sampler grid needs configs: (a list), grid: (a product) or both",
                )
            self.grid_size(raw, limit)
            configs, notes = self.grid(raw, tasks)
            relative = {s.placement for c in configs for s in c if s.relative}
            return SearchSpec(sampler=sampler, configs=configs, notes=notes + relative_notes(relative, tasks))

        for key in ("configs", "grid"):
            if key in raw:
                self.fail(_at("search", key), f"applies only to sampler grid; sampler {sampler} takes space:")
        n_trials = raw.get("n_trials")
        if n_trials is None:
            self.fail("search.n_trials", f"required key missing; sampler {sampler} needs a count, e.g. 60")
        if isinstance(n_trials, bool) or not isinstance(n_trials, int) or not 1 <= n_trials < limit:
            if limit < 2:
                self.fail(
                    "search.max_configurations",
                    f"{limit} leaves no room for a trial besides the baseline; allowed: an integer of at least 2",
                )
            self.fail(
                "search.n_trials",
                f"{_show(n_trials)} is not allowed; allowed: an integer from 1 to "
                f"{limit - 1:,} (search.max_configurations, {limit:,}, counts the baseline too; raise it "
                "for more trials)",
            )
        if "space" not in raw:
            self.fail("search.space", f"required key missing; sampler {sampler} samples from a space")
        space = self.space(raw["space"], tasks)
        relative = {
            p
            for places in space.placements
            for p in places
            if True in space.relative and any(relative_fits(p, k) for k in space.kinds[p])
        }
        return SearchSpec(sampler=sampler, n_trials=n_trials, space=space, notes=relative_notes(relative, tasks))

    def space(self, value: Any, tasks: dict[str, TaskSpec]) -> SpaceSpec:
        path = "search.space"
        raw = self.mapping(value, path, _NOISE_KEYS, required=("placement", "std"))
        placements = []
        for v, p in self.items(raw["placement"], _at(path, "placement")):
            places = self.placement(v, p, allow_baseline=False)
            if places in placements:
                self.fail(p, f"{_show(v)} is listed twice")
            placements.append(places)
        sites = list(dict.fromkeys(p for places in placements for p in places))

        if raw.get("kind") is None:
            kinds = {p: (default_kind(p, tasks),) for p in sites}
        else:
            items = self.items(raw["kind"], _at(path, "kind"))
            choices = list(dict.fromkeys(self.choice(v, p, KINDS) for v, p in items))
            kinds = {p: tuple(k for k in choices if unfit_site(p, k, tasks) is None) for p in sites}
            for p in sites:
                if not kinds[p]:
                    why = unfit_site(p, choices[0], tasks)
                    self.fail(_at(path, "kind"), f"no kind fits placement {p!r} ({why})")
            for k, p in items:
                if not any(k in fitting for fitting in kinds.values()):
                    why = unfit_site(sites[0], k, tasks)
                    self.fail(p, f"kind {k!r} fits no placement of this space ({why})")

        std = self.distribution(raw["std"], _at(path, "std"), self.std)
        top = std.high if isinstance(std, FloatRange) else max(std)
        for kind in NOISE_KINDS.values():
            if not kind.allows(top) and any(kind.name in fitting for fitting in kinds.values()):
                self.fail(
                    _at(path, "std"),
                    f"reaches {top:g}, but for kind {kind.name!r} {kind.size_rule}; "
                    f"narrow std or sample {kind.name} in a sweep of its own",
                )
        schedule_items = self.items(raw.get("schedule", "constant"), _at(path, "schedule"))
        schedules = tuple(dict.fromkeys(self.choice(v, p, SCHEDULES) for v, p in schedule_items))
        if "gamma" in raw and "annealed" not in schedules:
            self.fail(_at(path, "gamma"), "the annealing exponent applies only with schedule annealed")
        gamma = self.distribution(raw.get("gamma", DEFAULT_GAMMA), _at(path, "gamma"), self.gamma)
        if "std_min" in raw and not set(schedules) & set(DECAYS):
            self.fail(_at(path, "std_min"), _STD_MIN_RULE)
        std_min = self.distribution(raw.get("std_min", 0.0), _at(path, "std_min"), self.std_min)
        low = std.low if isinstance(std, FloatRange) else min(std)
        high_min = std_min.high if isinstance(std_min, FloatRange) else max(std_min)
        if high_min > low:
            self.fail(
                _at(path, "std_min"),
                f"reaches {high_min:g}, above the smallest std {low:g}; allowed: "
                "at most the smallest std (a decay ends at or below where it starts)",
            )
        relative_items = self.items(raw.get("relative", False), _at(path, "relative"))
        relative = tuple(dict.fromkeys(self.flag(v, p) for v, p in relative_items))
        if True in relative and not any(relative_fits(p, k) for p in sites for k in kinds[p]):
            self.fail(_at(path, "relative"), RELATIVE_RULE)
        return SpaceSpec(
            placements=tuple(placements),
            kinds=kinds,
            std=std,
            schedules=schedules,
            gamma=gamma,
            std_min=std_min,
            relative=relative,
        )

    def distribution(
        self, value: Any, path: str, number: Callable[[Any, str], float]
    ) -> FloatRange | tuple[float, ...]:
        """A number, a list of numbers (categorical), {log_uniform: [low, high]} or {uniform: [low, high]}."""
        if not isinstance(value, dict):
            return tuple(dict.fromkeys(number(v, p) for v, p in self.items(value, path)))
        raw = self.mapping(value, path, _RANGES)
        if len(raw) != 1:
            self.fail(path, "give exactly one of log_uniform: [low, high] or uniform: [low, high]")
        ((key, bounds),) = raw.items()
        at = _at(path, key)
        if not isinstance(bounds, list) or len(bounds) != 2:
            self.fail(at, f"{_show(bounds)} is not allowed; allowed: [low, high]")
        low, high = (number(v, _at(at, i)) for i, v in enumerate(bounds))
        if key == "log_uniform" and low <= 0:
            self.fail(_at(at, 0), f"{low:g} is not allowed; a log-uniform range needs low > 0")
        if not low < high:
            self.fail(at, f"[{low:g}, {high:g}] is not allowed; a range needs low < high")
        return FloatRange(low=low, high=high, log=key == "log_uniform")
