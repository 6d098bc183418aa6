"""The search-space file: which noise a sweep tries, on which tasks, how often, judged by which metric.

A search space is a YAML file (see ``search_spaces/`` for annotated examples)::

    name: seed-case-study        # letters, digits, '-', '_', '.'
    description: free text       # optional
    seed: 1                      # sweep seed (default 0): data, inits and noise streams derive from it
    repeats: 30                  # runs per configuration, paired across configurations (default 10)
    metric: accuracy             # what the sweep selects on: accuracy (default) or loss; regression: mse
                                 # (default), r2 or loss; on the validation part (val_accuracy, ...), or on
                                 # the test part where the tasks have none (n_val: 0). test_* is refused.
    pack_size: 64                # optional cap on the members trained together as one population
    task: {dataset: circles, ...}            # one task (sweeper.tasks.spec.TaskSpec), or
    tasks: [{name: a, dataset: circles, ...}, ...]   # several; name defaults to the dataset
    search:
      sampler: grid              # grid | random | tpe (default grid)
      configs: [...]             # grid: an explicit list of configurations, and/or
      grid: {...}                # grid: a product grid (or a list of them)
      n_trials: 60               # random/tpe: trials besides the baseline
      space: {...}               # random/tpe: choices and ranges
      max_configurations: 100000 # the largest sweep accepted (default 100,000); raise it for a larger one

A configuration names its placement (``none`` for the baseline, one placement, or a list of them
for a combined placement) and for each site a kind, a std (for ``flip`` and ``dropout`` a probability),
a schedule, when annealed a gamma, when linear or cosine a ``std_min`` (the size the decay ends at,
default 0), and ``relative`` (input and targets: σ in units of each feature's standard deviation);
a scalar applies to every site, a list gives one value per site. ``kind`` defaults to ``flip`` for
the targets of a classification task and to ``gaussian`` elsewhere. Noise of std 0 is no noise:
such sites are dropped, so a configuration with std 0 everywhere is the baseline.

Every error is a one-line :class:`SpaceError` naming the file, the key path, what was wrong and
what is allowed. Sizes are checked before anything is expanded: a grid is counted from the lengths
of its lists, so a file describing millions of configurations is refused at once, with its size.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
import types
import typing
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, NoReturn

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sweeper.errors import SpaceError
from sweeper.noise.spec import (
    BASELINE,
    DECAYS,
    DEFAULT_GAMMA,
    DROPOUT_PLACEMENTS,
    KINDS,
    PLACEMENTS,
    RELATIVE_KINDS,
    RELATIVE_PLACEMENTS,
    SCHEDULES,
    NoiseConfig,
    NoiseSpec,
    make_config,
)
from sweeper.tasks.spec import MAX_SEED, TaskSpec

SAMPLERS = ("grid", "random", "tpe")
#: What a search space may name as its metric; a bare name is measured on the validation part (the test
#: part where the tasks have none), and ``test_`` names are refused: the test part is kept to report.
CLASSIFICATION_METRICS = ("accuracy", "loss", "val_accuracy", "val_loss", "train_accuracy", "train_loss")
REGRESSION_METRICS = ("mse", "r2", "loss", "val_mse", "val_r2", "val_loss", "train_mse", "train_r2", "train_loss")

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_NAME_RULE = "letters, digits, '-', '_' and '.', starting with a letter or digit"
_TOP_KEYS = ("name", "description", "seed", "repeats", "metric", "pack_size", "task", "tasks", "search")
_SEARCH_KEYS = ("sampler", "n_trials", "configs", "grid", "space", "max_configurations")
_NOISE_KEYS = ("placement", "kind", "std", "schedule", "gamma", "std_min", "relative")
_RANGES = ("log_uniform", "uniform")

#: A sweep of more configurations (the baseline included) is refused unless search.max_configurations
#: raises the limit: a grid is expanded in memory and every configuration becomes a stored trial.
MAX_CONFIGURATIONS = 100_000
#: The most search.max_configurations may say: trial numbers are 32-bit integers in the store.
MAX_CONFIGURATIONS_LIMIT = 2**31 - 1
MAX_REPEATS = 10_000
#: The most members any device trains as one pack (sweeper.engine.sizing.GPU_MAX_MEMBERS).
MAX_PACK_SIZE = 16_384
#: A search-space file is read whole and parsed in memory; a larger grid is a product (grid:), not a list.
MAX_FILE_BYTES = 4 << 20

#: One noise site before it becomes a NoiseSpec: (placement, kind, std, schedule, gamma, std_min, relative).
_Site = tuple[str, str, float, str, float, float, bool]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FloatRange(_Frozen):
    """A float drawn from [low, high], uniformly or log-uniformly."""

    low: float
    high: float
    log: bool = False


class SpaceSpec(_Frozen):
    """The adaptive samplers' space; every site of a trial draws its own kind, std, schedule, gamma,
    std_min and relative."""

    placements: tuple[tuple[str, ...], ...]  # choices; a tuple of several is a combined placement
    kinds: dict[str, tuple[str, ...]]  # placement -> the kinds that fit it on every task
    std: FloatRange | tuple[float, ...]  # a range, or categorical choices
    schedules: tuple[str, ...]
    gamma: FloatRange | tuple[float, ...]
    std_min: FloatRange | tuple[float, ...] = (0.0,)
    relative: tuple[bool, ...] = (False,)


class SearchSpec(_Frozen):
    """How configurations are proposed: a grid expanded here, or a space for Optuna's samplers."""

    sampler: Literal["grid", "random", "tpe"] = "grid"
    #: random/tpe: the number of sampled trials (the baseline is run besides them).
    n_trials: int | None = None
    #: grid: every configuration, the baseline first, duplicates dropped.
    configs: tuple[NoiseConfig, ...] = ()
    #: grid: what was skipped or dropped while expanding, one line each.
    notes: tuple[str, ...] = ()
    space: SpaceSpec | None = None


class SweepSpec(_Frozen):
    """A validated search space: tasks, repeats, metric and the noise configurations to try."""

    #: Where the text came from (a path, or ``<string>``); error messages name it.
    source: str = "<string>"
    #: The YAML exactly as given; the store keeps it.
    source_text: str
    name: str = Field(pattern=_NAME_PATTERN, max_length=100)
    description: str | None = None
    seed: int = Field(0, ge=0, le=MAX_SEED, strict=True)
    repeats: int = Field(10, ge=1, le=MAX_REPEATS, strict=True)
    metric: str
    #: Optional cap on the members of one pack.
    pack_size: int | None = Field(None, ge=1, le=MAX_PACK_SIZE, strict=True)
    #: Task name -> task, in file order.
    tasks: dict[str, TaskSpec]
    search: SearchSpec
    #: Command-line overrides applied on top of ``source_text`` (``repeats``, ``epochs``, ``name``).
    overrides: dict[str, int | str] = {}

    @property
    def selects_on_test(self) -> bool:
        """Whether the sweep selects on the test part, its tasks having no validation part (``n_val: 0``)."""
        return self.metric.startswith("test_")

    @property
    def higher_is_better(self) -> bool:
        """Accuracy and r2 grow with quality; losses and mse shrink."""
        return self.metric.endswith(("accuracy", "r2"))

    @property
    def direction(self) -> str:
        """Optuna's study direction for the metric."""
        return "maximize" if self.higher_is_better else "minimize"

    def grid_configs(self) -> tuple[list[NoiseConfig], list[str]]:
        """Sampler grid: every configuration, the baseline ``()`` first, and notes on what was skipped."""
        if self.search.sampler != "grid":
            raise SpaceError(
                f"{self.source}: search.sampler: {self.search.sampler!r} samples configurations one "
                "trial at a time (suggest); only sampler 'grid' has a list of configurations"
            )
        return list(self.search.configs), list(self.search.notes)

    def with_overrides(
        self, repeats: int | None = None, epochs: int | None = None, name: str | None = None
    ) -> SweepSpec:
        """The same sweep with the CLI's quick-run flags applied (epochs apply to every task)."""
        update: dict[str, Any] = {}
        overrides = dict(self.overrides)
        for flag, value, model in (("repeats", repeats, SweepSpec), ("epochs", epochs, TaskSpec)):
            if value is None:
                continue
            low, high = _bounds(model, flag)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise SpaceError(
                    f"{self.source}: --{flag}: {value!r} is not allowed; allowed: {_allowed(model, flag)}"
                )
            overrides[flag] = value
        if repeats is not None:
            update["repeats"] = repeats
        if epochs is not None:
            update["tasks"] = {n: t.model_copy(update={"epochs": epochs}) for n, t in self.tasks.items()}
        if name is not None:
            if not isinstance(name, str) or not re.fullmatch(_NAME_PATTERN, name) or len(name) > 100:
                raise SpaceError(f"{self.source}: --name: {name!r} is not allowed; allowed: {_NAME_RULE}")
            update["name"] = overrides["name"] = name
        return self.model_copy(update={**update, "overrides": overrides})


def load_space(path: str | Path) -> SweepSpec:
    """Read and validate a search-space file."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_FILE_BYTES:
            raise SpaceError(_too_large(str(path), size))
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpaceError(f"{path}: no such search-space file") from None
    except IsADirectoryError:
        raise SpaceError(f"{path}: is a directory, not a search-space file") from None
    except UnicodeDecodeError:
        raise SpaceError(f"{path}: not a UTF-8 text file") from None
    except OSError as e:
        raise SpaceError(f"{path}: cannot be read: {e.strerror}") from None
    return parse_space(text, str(path))


def parse_space(text: str, source: str = "<string>", *, stored: bool = False) -> SweepSpec:
    """Validate a search space given as YAML text; ``source`` names it in error messages.

    ``stored``: the text a sweep was stored with; one stored before validation parts existed names a
    ``test_`` metric, which a new file may not.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise SpaceError(_too_large(source, size))
    return _Reader(source).sweep(text, stored)


def _too_large(source: str, size: int) -> str:
    return (f"{source}: the file is {size / (1 << 20):.1f} MiB; allowed: at most {MAX_FILE_BYTES >> 20} MiB "
            "(describe a large grid as a product, grid: {placement: [...], std: [...]}, not as a list)")


# --- reading ---------------------------------------------------------------------------------------


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser, when built with it: 6x faster
    """YAML 1.1 SafeLoader that reads ``1e-3`` as a number and refuses a key given twice."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 wants a dot in a float ("1.0e-3"); people write 1e-3. (A subclass gets its own resolver table.)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _at(path: str, key: str | int) -> str:
    """The key path one step down: ``search.grid`` + ``std`` or + 2 -> ``search.grid.std[2]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _did_you_mean(value: Any, allowed) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, [str(a) for a in allowed], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _s(n: int) -> str:
    """The plural ending for a count."""
    return "s" if n != 1 else ""


def _length(value: Any) -> int:
    """How many values a grid axis gives: a list's length, one for a scalar or nothing."""
    return len(value) if isinstance(value, list) else 1


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Reader:
    """Validates one file's contents; every failure names the file and the key path."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, message: str) -> NoReturn:
        where = f"{self.source}: {path}: " if path else f"{self.source}: "
        raise SpaceError(" ".join((where + message).split()))

    # --- generic values ---

    def mapping(
        self, value: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict:
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping with keys {', '.join(allowed)}; got {_show(value)}")
        for key in value:
            if key not in allowed:
                self.fail(
                    _at(path, str(key)),
                    f"unknown key; allowed: {', '.join(allowed)}{_did_you_mean(key, allowed)}",
                )
        for key in required:
            if key not in value or value[key] is None:
                self.fail(_at(path, key), "required key missing")
        return value

    def choice(self, value: Any, path: str, allowed, why: str = "") -> Any:
        if not isinstance(value, str) or value not in allowed:
            self.fail(
                path,
                f"{_show(value)} is not allowed{why}; allowed: {', '.join(map(str, allowed))}"
                f"{_did_you_mean(value, allowed)}",
            )
        return value

    def number(self, value: Any, path: str, what: str, low: float = 0.0) -> float:
        if not _is_number(value) or not math.isfinite(value) or value < low:
            self.fail(path, f"{_show(value)} is not allowed; allowed: a finite number >= {low:g} ({what})")
        return float(value)

    def std(self, value: Any, path: str) -> float:
        return self.number(value, path, "the noise size; a probability for kinds flip and dropout")

    def std_min(self, value: Any, path: str) -> float:
        return self.number(value, path, "the size a linear or cosine decay ends at")

    def flag(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            self.fail(path, f"{_show(value)} is not allowed; allowed: true or false")
        return value

    def gamma(self, value: Any, path: str) -> float:
        return self.number(value, path, "the annealing exponent")

    def items(self, value: Any, path: str) -> list[tuple[Any, str]]:
        """A list's items with their paths; a scalar is a list of one."""
        if not isinstance(value, list):
            return [(value, path)]
        if not value:
            self.fail(path, "an empty list; give at least one value")
        return [(v, _at(path, i)) for i, v in enumerate(value)]

    def placement(self, value: Any, path: str, allow_baseline: bool) -> tuple[str, ...]:
        """One placement or a list of them (a combined placement); ``none`` -> ``()``."""
        if allow_baseline and value == BASELINE:
            return ()
        if isinstance(value, list):
            names = tuple(self.choice(v, p, PLACEMENTS) for v, p in self.items(value, path))
            if len(set(names)) != len(names):
                self.fail(path, f"a placement appears twice in {_show(value)}; give each site once")
            return names
        allowed = ((BASELINE,) if allow_baseline else ()) + PLACEMENTS
        why = " (the baseline is always run; leave it out)" if value == BASELINE else ""
        return (self.choice(value, path, allowed, why),)

    def pydantic(self, err: ValidationError, path: str, model: type[BaseModel], extra_keys=()) -> NoReturn:
        """Turn pydantic's first error into one line with the YAML key path."""
        errors = err.errors()
        first = errors[0]
        loc, model_at = _yaml_loc(first["loc"], model)
        at = path
        for item in loc:
            at = _at(at, item)
        value = first.get("input")
        kind = first["type"]
        name = next((k for k in reversed(loc) if isinstance(k, str)), "")
        if kind == "extra_forbidden":
            allowed = (tuple(extra_keys) if model_at is model else ()) + tuple(model_at.model_fields)
            self.fail(at, f"unknown key; allowed: {', '.join(allowed)}{_did_you_mean(loc[-1], allowed)}")
        if kind == "missing":
            self.fail(at, "required key missing")
        if kind == "value_error":
            self.fail(at, first["msg"].removeprefix("Value error, "))
        # A union (batch_size: int | 'full') reports one error per member at the same key path.
        same = [e for e in errors if _yaml_loc(e["loc"], model)[0] == loc]
        if len(same) > 1 or kind == "literal_error":
            allowed, values = [], []
            for e in same:
                if e["type"] == "literal_error":
                    values += re.findall(r"'([^']*)'", e["ctx"]["expected"])
                    allowed.append(", ".join(re.findall(r"'([^']*)'", e["ctx"]["expected"])))
                else:
                    allowed.append(_allowed(model_at, name) or e["type"].split("_")[0])
            hint = _did_you_mean(value, values)
            self.fail(at, f"{_show(value)} is not allowed; allowed: {' or '.join(allowed)}{hint}")
        if kind in _NUMBER_ERRORS and _allowed(model_at, name):
            self.fail(at, f"{_show(value)} is not allowed; allowed: {_allowed(model_at, name)}")
        message = first["msg"].replace("a valid tuple", "a list")
        self.fail(at, f"{message[0].lower()}{message[1:]} (got {_show(value)})")

    # --- the file ---

    def sweep(self, text: str, stored: bool = False) -> SweepSpec:
        raw = self.yaml(text)
        if raw is None:
            self.fail("", "the file is empty; a search space needs at least name:, task: and search:")
        raw = self.mapping(raw, "", _TOP_KEYS, required=("name",))
        tasks = self.tasks(raw)
        metric = self.metric(raw.get("metric"), tasks, stored)
        search = self.search(raw.get("search"), tasks)
        fields = {k: raw[k] for k in ("name", "description", "seed", "repeats", "pack_size") if k in raw}
        try:
            return SweepSpec(
                source=self.source, source_text=text, metric=metric, tasks=tasks, search=search, **fields
            )
        except ValidationError as e:
            if e.errors()[0]["type"] == "string_pattern_mismatch":
                self.fail("name", f"{_show(raw['name'])} is not allowed; allowed: {_NAME_RULE}")
            self.pydantic(e, "", SweepSpec)

    def yaml(self, text: str) -> Any:
        try:
            return yaml.load(text, Loader=_Loader)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            self.fail("", f"{where}invalid YAML: {e.problem or e.context}")
        except yaml.YAMLError as e:
            self.fail("", f"invalid YAML: {e}")

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
            task = TaskSpec.model_validate(fields)
        except ValidationError as e:
            self.pydantic(e, path, TaskSpec, extra_keys=("name",))
        if name is None:
            return task.dataset, task
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
            self.fail("metric", f"{value!r} would select on the test part, which sweeper keeps untouched to "
                                f"report the chosen configuration; write metric: {value[5:]} (the validation part, "
                                "or the test part where tasks have n_val: 0) or val_" + value[5:])
        if len(tasks) == 1:
            why = f" for {problems.pop()} task {next(iter(tasks))!r}"
        else:
            why = f" for {' and '.join(sorted(problems))} tasks"
        name = allowed[0] if value is None else self.choice(value, "metric", allowed, why)
        if name.startswith("train_"):
            return name
        without = [n for n, t in tasks.items() if not t.has_validation]
        if without and len(without) < len(tasks):
            self.fail("metric", f"tasks {', '.join(without)} have no validation part (n_val: 0) but the others do; "
                                "a sweep selects on one part for all of its tasks: give every task n_val: 0, or none")
        if without and name.startswith("val_"):
            self.fail("metric", f"{name!r} needs a validation part, and n_val: 0 leaves none; write metric: "
                                f"{name[4:]} (the test part, shared with the estimate) or set n_val")
        return ("test_" if without else "val_") + name.removeprefix("val_")

    # --- search ---

    def search(self, value: Any, tasks: dict[str, TaskSpec]) -> SearchSpec:
        if value is None:
            self.fail("search", "required key missing; give sampler: and configs:, grid: or space:")
        raw = self.mapping(value, "search", _SEARCH_KEYS)
        sampler = self.choice(raw.get("sampler", "grid"), "search.sampler", SAMPLERS)
        limit = raw.get("max_configurations", MAX_CONFIGURATIONS)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CONFIGURATIONS_LIMIT:
            self.fail("search.max_configurations",
                      f"{_show(limit)} is not allowed; allowed: an integer from 1 to {MAX_CONFIGURATIONS_LIMIT:,}")
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
            return SearchSpec(sampler=sampler, configs=configs, notes=notes + _relative_notes(relative, tasks))

        for key in ("configs", "grid"):
            if key in raw:
                self.fail(_at("search", key), f"applies only to sampler grid; sampler {sampler} takes space:")
        n_trials = raw.get("n_trials")
        if n_trials is None:
            self.fail("search.n_trials", f"required key missing; sampler {sampler} needs a count, e.g. 60")
        if isinstance(n_trials, bool) or not isinstance(n_trials, int) or not 1 <= n_trials < limit:
            if limit < 2:
                self.fail("search.max_configurations", f"{limit} leaves no room for a trial besides the baseline; "
                          "allowed: an integer of at least 2")
            self.fail("search.n_trials", f"{_show(n_trials)} is not allowed; allowed: an integer from 1 to "
                      f"{limit - 1:,} (search.max_configurations, {limit:,}, counts the baseline too; raise it "
                      "for more trials)")
        if "space" not in raw:
            self.fail("search.space", f"required key missing; sampler {sampler} samples from a space")
        space = self.space(raw["space"], tasks)
        relative = {p for places in space.placements for p in places if True in space.relative
                    and p in RELATIVE_PLACEMENTS and set(space.kinds[p]) & set(RELATIVE_KINDS)}
        return SearchSpec(sampler=sampler, n_trials=n_trials, space=space, notes=_relative_notes(relative, tasks))

    def grid_size(self, raw: dict, limit: int) -> None:
        """Refuse a grid of more than ``limit`` configurations, counted from its lists' lengths alone.

        The count is of combinations before any is skipped or dropped as a duplicate (the most the
        grid can hold), so that a grid of millions is refused without being expanded or validated.
        """
        parts, total = [], 1  # the baseline
        if isinstance(raw.get("configs"), list):
            total += len(raw["configs"])
            parts.append(f"search.configs: {len(raw['configs']):,} listed")
        blocks = raw.get("grid")
        blocks = list(enumerate(blocks)) if isinstance(blocks, list) else [(None, blocks)]
        for i, block in blocks:
            if not isinstance(block, dict):
                continue  # grid() says what is wrong with it
            size = {key: _length(block.get(key)) for key in ("placement", "kind", "std")}
            schedules = block.get("schedule", "constant")
            schedules = schedules if isinstance(schedules, list) else [schedules]
            gammas, std_mins = _length(block.get("gamma")), _length(block.get("std_min"))
            annealed = sum(s == "annealed" or (isinstance(s, list) and "annealed" in s) for s in schedules)
            decays = sum(s in DECAYS or (isinstance(s, list) and bool(set(s) & set(DECAYS))) for s in schedules)
            size["schedule"] = len(schedules) + annealed * (gammas - 1) + decays * (std_mins - 1)
            size["relative"] = _length(block.get("relative"))
            count = math.prod(size.values())
            total += count
            axes = " x ".join(f"{n:,} {key}s" for key, n in size.items() if n != 1) or "1 combination"
            extra = [key for key, more in (("gamma", annealed and gammas > 1), ("std_min", decays and std_mins > 1))
                     if more]
            if extra:
                axes = axes.replace("schedules", f"schedule and {' and '.join(extra)} choices")
            parts.append(f"{'search.grid' if i is None else _at('search.grid', i)}: {axes}")
        if total > limit:
            self.fail("search", f"{total:,} configurations ({'; '.join(parts)}; and the baseline) are more than "
                      f"allowed; allowed: at most {limit:,} configurations (search.max_configurations; raise it "
                      "to run a larger sweep)")

    def grid(self, raw: dict, tasks: dict[str, TaskSpec]) -> tuple[tuple[NoiseConfig, ...], tuple[str, ...]]:
        """The configurations of ``configs:`` then of ``grid:``; the baseline first, duplicates dropped."""
        explicit, from_grid, skipped = [], [], Counter()
        if "configs" in raw:
            if not isinstance(raw["configs"], list) or not raw["configs"]:
                got = _show(raw["configs"])
                self.fail("search.configs", f"expected a non-empty list of configurations; got {got}")
            explicit = [self.config(v, _at("search.configs", i), tasks) for i, v in enumerate(raw["configs"])]
        if "grid" in raw:
            if raw["grid"] == []:
                self.fail("search.grid", "an empty list; give a product grid (a mapping) or a list of them")
            if isinstance(raw["grid"], list):
                blocks = [(block, _at("search.grid", i)) for i, block in enumerate(raw["grid"])]
            else:
                blocks = [(raw["grid"], "search.grid")]
            for block, path in blocks:
                combinations = list(self.product(block, path, tasks))
                reasons = [reason for _, reason in combinations if reason]
                if len(reasons) == len(combinations):
                    self.fail(path, f"every combination is skipped, e.g. {reasons[0]}")
                skipped.update(reasons)
                from_grid += [config for config, reason in combinations if not reason]

        candidates = [(), *explicit, *from_grid]
        configs = tuple(dict.fromkeys(candidates))
        notes = [f"skipped {n} combination{_s(n)}: {reason}" for reason, n in skipped.items()]
        zero = from_grid.count(())
        if zero:
            notes.append(f"dropped {zero} combination{_s(zero)} with std 0: the baseline")
        duplicates = len(candidates) - len(configs) - (candidates.count(()) - 1)
        if duplicates:
            notes.append(f"dropped {duplicates} duplicate configuration{_s(duplicates)}")
        return configs, tuple(notes)

    def config(self, value: Any, path: str, tasks: dict[str, TaskSpec]) -> NoiseConfig:
        """One explicit configuration; anything that does not fit the tasks is an error."""
        raw = self.mapping(value, path, _NOISE_KEYS, required=("placement",))
        placements = self.placement(raw["placement"], _at(path, "placement"), allow_baseline=True)
        if not placements:
            for key in raw:
                if key != "placement":
                    self.fail(_at(path, key), "placement 'none' (the baseline) takes no other keys")
            return ()
        if raw.get("std") is None:
            self.fail(_at(path, "std"), "required key missing; give the noise size (for flip and dropout a probability)")
        n = len(placements)
        if raw.get("kind") is None:
            kinds = tuple(_default_kind(p, tasks) for p in placements)
        else:
            kinds = self.per_site(raw["kind"], _at(path, "kind"), n, lambda v, p: self.choice(v, p, KINDS))
        stds = self.per_site(raw["std"], _at(path, "std"), n, self.std)
        schedules = self.per_site(
            raw.get("schedule", "constant"), _at(path, "schedule"), n,
            lambda v, p: self.choice(v, p, SCHEDULES),
        )
        if "gamma" in raw and "annealed" not in schedules:
            self.fail(_at(path, "gamma"), "the annealing exponent applies only with schedule annealed")
        gammas = self.per_site(raw.get("gamma", DEFAULT_GAMMA), _at(path, "gamma"), n, self.gamma)
        if "std_min" in raw and not set(schedules) & set(DECAYS):
            self.fail(_at(path, "std_min"), _STD_MIN_RULE)
        std_mins = self.per_site(raw.get("std_min", 0.0), _at(path, "std_min"), n, self.std_min)
        relatives = self.per_site(raw.get("relative", False), _at(path, "relative"), n, self.flag)
        sites = list(zip(placements, kinds, stds, schedules, gammas, std_mins, relatives))
        reason = _unfit(sites, tasks)
        if reason:
            self.fail(path, reason)
        return _config(sites)

    def per_site(self, value: Any, path: str, n: int, item: Callable[[Any, str], Any]) -> tuple:
        """A scalar for every site, or a list with one value per site."""
        if isinstance(value, list):
            if len(value) != n:
                self.fail(path, f"{len(value)} values for {n} placement{_s(n)}; give one, or one per site")
            return tuple(item(v, p) for v, p in self.items(value, path))
        return (item(value, path),) * n

    def product(self, value: Any, path: str, tasks: dict[str, TaskSpec]):
        """Yield (configuration, None) or (None, why it is skipped) for each combination of a product grid."""
        raw = self.mapping(value, path, _NOISE_KEYS, required=("placement", "std"))
        placement_items = self.items(raw["placement"], _at(path, "placement"))
        placements = [self.placement(v, p, allow_baseline=False) for v, p in placement_items]
        sizes = {len(p) for p in placements}

        def axis(key: str, default: Any, item: Callable[[Any, str], Any]) -> list:
            """One grid axis: each value a scalar or, for combined placements, a list per site."""
            values = []
            for v, p in self.items(raw.get(key, default), _at(path, key)):
                if isinstance(v, list):
                    if len(v) not in sizes:
                        self.fail(p, f"{len(v)} values, but no placement of this grid has {len(v)} sites")
                    values.append(tuple(item(x, q) for x, q in self.items(v, p)))
                else:
                    values.append(item(v, p))
            return values

        kinds = axis("kind", None, lambda v, p: v if v is None else self.choice(v, p, KINDS))
        stds = axis("std", None, self.std)
        schedules = axis("schedule", "constant", lambda v, p: self.choice(v, p, SCHEDULES))
        if "gamma" in raw and not any("annealed" in (s if isinstance(s, tuple) else (s,)) for s in schedules):
            self.fail(_at(path, "gamma"), "the annealing exponent applies only with schedule annealed")
        gamma_items = self.items(raw.get("gamma", DEFAULT_GAMMA), _at(path, "gamma"))
        gammas = [self.gamma(v, p) for v, p in gamma_items]
        decaying = any(set(s if isinstance(s, tuple) else (s,)) & set(DECAYS) for s in schedules)
        if "std_min" in raw and not decaying:
            self.fail(_at(path, "std_min"), _STD_MIN_RULE)
        std_mins = [self.std_min(v, p) for v, p in self.items(raw.get("std_min", 0.0), _at(path, "std_min"))]
        relatives = axis("relative", False, self.flag)

        for places, kind, std, schedule, relative in itertools.product(placements, kinds, stds, schedules, relatives):
            n = len(places)
            mismatch = [(key, v) for key, v in (("kind", kind), ("std", std), ("schedule", schedule),
                                                ("relative", relative))
                        if isinstance(v, tuple) and len(v) != n]
            if mismatch:
                key, v = mismatch[0]
                label = "+".join(places)
                yield None, f"{key} {list(v)} has {len(v)} values for placement {label!r} of {n} site{_s(n)}"
                continue
            if kind is None:
                kind = tuple(_default_kind(p, tasks) for p in places)
            site_kinds, site_stds, site_schedules, site_relatives = (
                v if isinstance(v, tuple) else (v,) * n for v in (kind, std, schedule, relative)
            )
            for gamma in gammas if "annealed" in site_schedules else [DEFAULT_GAMMA]:
                for std_min in std_mins if set(site_schedules) & set(DECAYS) else [0.0]:
                    sites = list(zip(places, site_kinds, site_stds, site_schedules, (gamma,) * n, (std_min,) * n,
                                     site_relatives))
                    reason = _unfit(sites, tasks)
                    yield (None, reason) if reason else (_config(sites), None)

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
            kinds = {p: (_default_kind(p, tasks),) for p in sites}
        else:
            items = self.items(raw["kind"], _at(path, "kind"))
            choices = list(dict.fromkeys(self.choice(v, p, KINDS) for v, p in items))
            kinds = {p: tuple(k for k in choices if _unfit_site(p, k, tasks) is None) for p in sites}
            for p in sites:
                if not kinds[p]:
                    why = _unfit_site(p, choices[0], tasks)
                    self.fail(_at(path, "kind"), f"no kind fits placement {p!r} ({why})")
            for k, p in items:
                if not any(k in fitting for fitting in kinds.values()):
                    why = _unfit_site(sites[0], k, tasks)
                    self.fail(p, f"kind {k!r} fits no placement of this space ({why})")

        std = self.distribution(raw["std"], _at(path, "std"), self.std)
        top = std.high if isinstance(std, FloatRange) else max(std)
        if top > 1 and any("flip" in fitting for fitting in kinds.values()):
            self.fail(
                _at(path, "std"),
                f"reaches {top:g}, but kind 'flip' takes a probability in [0, 1]; "
                "narrow std or sample flip in a sweep of its own",
            )
        if top >= 1 and any("dropout" in fitting for fitting in kinds.values()):
            self.fail(
                _at(path, "std"),
                f"reaches {top:g}, but kind 'dropout' takes a rate, a probability in [0, 1); "
                "narrow std or sample dropout in a sweep of its own",
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
            self.fail(_at(path, "std_min"), f"reaches {high_min:g}, above the smallest std {low:g}; allowed: "
                      "at most the smallest std (a decay ends at or below where it starts)")
        relative_items = self.items(raw.get("relative", False), _at(path, "relative"))
        relative = tuple(dict.fromkeys(self.flag(v, p) for v, p in relative_items))
        if True in relative and not any(p in RELATIVE_PLACEMENTS and set(kinds[p]) & set(RELATIVE_KINDS)
                                        for p in sites):
            self.fail(_at(path, "relative"), _RELATIVE_RULE)
        return SpaceSpec(placements=tuple(placements), kinds=kinds, std=std, schedules=schedules, gamma=gamma,
                         std_min=std_min, relative=relative)

    def distribution(
        self, value: Any, path: str, number: Callable[[Any, str], float]
    ) -> FloatRange | tuple[float, ...]:
        """A number, a list of numbers (categorical), {log_uniform: [low, high]} or {uniform: [low, high]}."""
        if not isinstance(value, dict):
            return tuple(dict.fromkeys(number(v, p) for v, p in self.items(value, path)))
        raw = self.mapping(value, path, _RANGES)
        if len(raw) != 1:
            self.fail(path, "give exactly one of log_uniform: [low, high] or uniform: [low, high]")
        (key, bounds), = raw.items()
        at = _at(path, key)
        if not isinstance(bounds, list) or len(bounds) != 2:
            self.fail(at, f"{_show(bounds)} is not allowed; allowed: [low, high]")
        low, high = (number(v, _at(at, i)) for i, v in enumerate(bounds))
        if key == "log_uniform" and low <= 0:
            self.fail(_at(at, 0), f"{low:g} is not allowed; a log-uniform range needs low > 0")
        if not low < high:
            self.fail(at, f"[{low:g}, {high:g}] is not allowed; a range needs low < high")
        return FloatRange(low=low, high=high, log=key == "log_uniform")


# --- noise rules -----------------------------------------------------------------------------------


def _default_kind(placement: str, tasks: dict[str, TaskSpec]) -> str:
    """``flip`` for the targets of classification tasks, ``gaussian`` everywhere else."""
    if placement == "targets" and all(t.problem != "regression" for t in tasks.values()):
        return "flip"
    return "gaussian"


_STD_MIN_RULE = "the size a decay ends at applies only with schedules linear and cosine"
_RELATIVE_RULE = (f"relative noise applies to kinds {' and '.join(RELATIVE_KINDS)} at placements "
                  f"{' and '.join(RELATIVE_PLACEMENTS)} (σ in units of each feature's standard deviation)")


def _unfit_site(placement: str, kind: str, tasks: dict[str, TaskSpec]) -> str | None:
    """Why ``kind`` noise at ``placement`` cannot be used on every one of ``tasks``, or None."""
    if kind == "dropout" and placement not in DROPOUT_PLACEMENTS:
        return (f"kind 'dropout' on placement {placement!r}: dropout applies to "
                f"{', '.join(DROPOUT_PLACEMENTS)} (at weights it is DropConnect)")
    for name, task in tasks.items():
        classification = task.problem != "regression"
        if placement == "targets" and classification and kind != "flip":
            return (f"placement 'targets' with kind {kind!r}: the targets of classification task {name!r} "
                    "take only kind 'flip'")
        if kind == "flip" and not (placement == "targets" and classification):
            where = f"placement {placement!r}" if placement != "targets" else f"regression task {name!r}"
            return f"kind 'flip' on {where}: flip applies only to placement 'targets' of classification tasks"
    return None


def _unfit(sites: list[_Site], tasks: dict[str, TaskSpec]) -> str | None:
    """Why a configuration's sites cannot be used on every task, or None."""
    for placement, kind, std, schedule, _, std_min, relative in sites:
        reason = _unfit_site(placement, kind, tasks)
        if reason:
            return reason
        if kind == "flip" and std > 1:
            return f"kind 'flip' with std {std:g}: a flip probability must be in [0, 1]"
        if kind == "dropout" and std >= 1:
            return f"kind 'dropout' with std {std:g}: std is the dropout rate, a probability that must be in [0, 1)"
        if relative and (placement not in RELATIVE_PLACEMENTS or kind not in RELATIVE_KINDS):
            return f"relative {kind} noise on placement {placement!r}: {_RELATIVE_RULE}"
        if schedule in DECAYS and 0 < std < std_min:
            return f"std_min {std_min:g} with std {std:g}: a {schedule} decay ends at or below where it starts"
    return None


def _relative_notes(placements: set[str], tasks: dict[str, TaskSpec]) -> tuple[str, ...]:
    """Where ``relative: true`` changes nothing: the task's scaling already gives the site's features
    standard deviation 1 on the training part."""
    notes = []
    for name, task in tasks.items():
        if "input" in placements and task.scaling == "standard":
            notes.append(f"relative input noise changes nothing on task {name!r}: its scaling is standard, so "
                         "every input feature already has standard deviation 1 on the training part")
        if "targets" in placements and task.problem == "regression" and task.scaling != "none":
            notes.append(f"relative targets noise changes nothing on task {name!r}: with scaling "
                         f"{task.scaling} its regression targets are standardized on the training part")
    return tuple(notes)


def _config(sites: list[_Site]) -> NoiseConfig:
    """The canonical configuration: zero-size sites dropped, gamma kept only where annealed, std_min only
    where a schedule decays."""
    return make_config(
        NoiseSpec(p, k, float(s), sch, g if sch == "annealed" else DEFAULT_GAMMA,
                  float(m) if sch in DECAYS else 0.0, bool(r))
        for p, k, s, sch, g, m, r in sites
        if s > 0
    )


# --- pydantic errors ------------------------------------------------------------------------------

#: Pydantic error types that mean "not a number in the field's range".
_NUMBER_ERRORS = {
    "greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number",
    "int_type", "int_parsing", "int_from_float", "float_type", "float_parsing", "bool_type",
}


def _constraints(model: type[BaseModel], name: str) -> tuple[type | None, list]:
    """A numeric field's type (int or float) and its constraints (``Ge(ge=1)``, ``AllowInfNan(False)``...),
    also those of its items (``hidden: tuple[Annotated[int, Field(ge=1)], ...]``) and of a union's numeric member."""
    field = model.model_fields.get(name)
    if field is None:
        return None, []
    kind, metadata, todo = None, list(field.metadata), [field.annotation]
    while todo:
        t = todo.pop(0)
        if t in (int, float):
            kind = kind or t
        elif typing.get_origin(t) is Annotated:
            base, *extra = typing.get_args(t)
            todo.append(base)
            metadata += [m for e in extra for m in getattr(e, "metadata", [e])]
        elif typing.get_origin(t) in (tuple, typing.Union, types.UnionType):
            todo += typing.get_args(t)
    return kind, metadata


def _bounds(model: type[BaseModel], name: str) -> tuple[float, float]:
    """The inclusive range of an integer field."""
    _, metadata = _constraints(model, name)
    low = max([m.ge for m in metadata if hasattr(m, "ge")], default=-math.inf)
    high = min([m.le for m in metadata if hasattr(m, "le")], default=math.inf)
    return low, high


def _allowed(model: type[BaseModel], name: str) -> str | None:
    """What a numeric field allows, in words: ``an integer from 1 to 10,000,000``, ``a finite number > 0``."""
    kind, metadata = _constraints(model, name)
    if kind is None:
        return None
    lows = [(m.ge, "[", ">=") for m in metadata if hasattr(m, "ge")]
    lows += [(m.gt, "(", ">") for m in metadata if hasattr(m, "gt")]
    highs = [(m.le, "]", "<=") for m in metadata if hasattr(m, "le")]
    highs += [(m.lt, ")", "<") for m in metadata if hasattr(m, "lt")]
    if kind is int:
        if lows and highs:
            return f"an integer from {lows[0][0]:,} to {highs[0][0]:,}"
        return "an integer" + "".join(f" {op} {v:,}" for v, _, op in lows + highs)
    if lows and highs:
        (low, left, _), (high, right, _) = lows[0], highs[0]
        return f"a finite number in {left}{low:g}, {high:g}{right}"
    return "a finite number" + "".join(f" {op} {v:g}" for v, _, op in lows + highs)


def _yaml_loc(loc: tuple, model: type[BaseModel]) -> tuple[tuple, type[BaseModel]]:
    """Pydantic's error location as YAML keys (union member tags dropped), and the model of its last key."""
    out, current, owner = [], model, model
    for item in loc:
        if isinstance(item, int):
            out.append(item)
        elif current is not None:  # else: a union member tag such as 'int' or "literal['full']"
            out.append(item)
            owner = current
            field = current.model_fields.get(item)
            annotation = field.annotation if field else None
            is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
            current = annotation if is_model else None
    return tuple(out), owner


def _show(value: Any) -> str:
    """A value as a user wrote it, short."""
    if isinstance(value, (list, dict)):
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    elif value is None:
        text = "nothing (null)"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

