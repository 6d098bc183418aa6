"""The search-space file: which noise a sweep tries, on which tasks, how often, judged by which metric.

A search space is a YAML file (see ``search_spaces/`` for annotated examples)::

    name: seed-case-study        # letters, digits, '-', '_', '.'
    description: free text       # optional
    seed: 1                      # sweep seed (default 0): data, inits and noise streams derive from it
    repeats: 30                  # runs per configuration, paired across configurations (default 10), or
                                 # raced: {min: 5, max: 60, step: 5, min_effect: 0.01} (sweeper.stats.racing)
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

The package: ``spec`` (the validated space, pydantic models), ``loading`` (the file, key by key),
``reading`` (one value at a time, and the words of the messages), ``grid`` (configurations from
``configs:`` and ``grid:``). Which placements and tasks a noise kind fits, and which sizes it takes, is
its record's (``sweeper.noise.kinds``).
"""

from sweeper.space.loading import load_space, parse_space
from sweeper.space.spec import (
    CLASSIFICATION_METRICS,
    MAX_CONFIGURATIONS,
    MAX_CONFIGURATIONS_LIMIT,
    MAX_FILE_BYTES,
    MAX_PACK_SIZE,
    MAX_REPEATS,
    REGRESSION_METRICS,
    SAMPLERS,
    FloatRange,
    RacingSpec,
    SearchSpec,
    SpaceSpec,
    SweepSpec,
)

__all__ = [
    "CLASSIFICATION_METRICS",
    "MAX_CONFIGURATIONS",
    "MAX_CONFIGURATIONS_LIMIT",
    "MAX_FILE_BYTES",
    "MAX_PACK_SIZE",
    "MAX_REPEATS",
    "REGRESSION_METRICS",
    "SAMPLERS",
    "FloatRange",
    "RacingSpec",
    "SearchSpec",
    "SpaceSpec",
    "SweepSpec",
    "load_space",
    "parse_space",
]
