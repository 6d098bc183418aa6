"""What a validated search space is: its tasks, repeats, metric and the noise configurations to try.

``sweeper.space.loading`` builds these models from a file, each key checked there first with a
one-line message; pydantic's own checks are the last guard. They are frozen: a sweep's space cannot
change under it (``with_overrides`` makes a new one).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sweeper import metrics
from sweeper.errors import SpaceError
from sweeper.noise.spec import NoiseConfig
from sweeper.space.reading import _allowed, _bounds
from sweeper.tasks.spec import MAX_SEED, TaskSpec

SAMPLERS = ("grid", "random", "tpe")
#: What a search space may name as its metric; a bare name is measured on the validation part (the test
#: part where the tasks have none), and ``test_`` names are refused: the test part is kept to report.
CLASSIFICATION_METRICS = metrics.choices("binary")
REGRESSION_METRICS = metrics.choices("regression")

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_NAME_RULE = "letters, digits, '-', '_' and '.', starting with a letter or digit"

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


class RacingSpec(_Frozen):
    """A raced sweep's plan (``repeats: {min: 5, max: 60, step: 5}``): every configuration runs ``min``
    repeats, then rounds of ``step`` more go to the configurations whose answer is still open, up to the
    sweep's ``repeats`` (the maximum); ``min_effect``, in the metric's units, lets a configuration be
    called equivalent to the baseline (``sweeper.stats.racing``)."""

    min: int = Field(ge=2, le=MAX_REPEATS, strict=True)
    step: int = Field(5, ge=1, le=MAX_REPEATS, strict=True)
    min_effect: float | None = Field(None, gt=0)


class SweepSpec(_Frozen):
    """A validated search space: tasks, repeats, metric and the noise configurations to try."""

    #: Where the text came from (a path, or ``<string>``); error messages name it.
    source: str = "<string>"
    #: The YAML exactly as given; the store keeps it.
    source_text: str
    #: The folder the tasks' data file paths are relative to (absolute).
    data_dir: str = "."
    name: str = Field(pattern=_NAME_PATTERN, max_length=100)
    description: str | None = None
    seed: int = Field(0, ge=0, le=MAX_SEED, strict=True)
    #: Runs per configuration; a raced sweep's maximum.
    repeats: int = Field(10, ge=1, le=MAX_REPEATS, strict=True)
    #: A raced sweep's plan (``repeats:`` given as a mapping); None: every configuration runs ``repeats``.
    racing: RacingSpec | None = None
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
        """Accuracy and r2 grow with quality; losses and mse shrink (``sweeper.metrics``)."""
        return metrics.higher_is_better(self.metric)

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
                raise SpaceError(f"{self.source}: --{flag}: {value!r} is not allowed; allowed: {_allowed(model, flag)}")
            overrides[flag] = value
        if repeats is not None and self.racing is not None and repeats < self.racing.min:
            raise SpaceError(
                f"{self.source}: --repeats: {repeats} is below repeats.min {self.racing.min} of this raced sweep; "
                f"allowed: {self.racing.min} or more (the race's maximum)"
            )
        if repeats is not None:
            update["repeats"] = repeats
        if epochs is not None:
            update["tasks"] = {n: t.model_copy(update={"epochs": epochs}) for n, t in self.tasks.items()}
        if name is not None:
            if not isinstance(name, str) or not re.fullmatch(_NAME_PATTERN, name) or len(name) > 100:
                raise SpaceError(f"{self.source}: --name: {name!r} is not allowed; allowed: {_NAME_RULE}")
            update["name"] = overrides["name"] = name
        return self.model_copy(update={**update, "overrides": overrides})
