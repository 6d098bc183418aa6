"""What the report shows of a sweep besides its runs, stored when the sweep starts.

The report reads only the store: the number of configurations a sweep plans, and per task the data set,
split sizes, model and training, are worked out here from the ``SweepSpec`` (the split sizes, measured
on the data sets before the sweep starts, which the report never loads) and kept as the sweep's
``context`` (schema 0006).
"""

from __future__ import annotations

from sweeper.space import SweepSpec
from sweeper.tasks import features


def sweep_context(spec: SweepSpec, split_sizes: dict[str, tuple[int, int, int]]) -> dict:
    """A plain JSON-ready dict: ``planned`` (configurations, the baseline included), ``tasks`` (one dict
    each: data set, its seed, split sizes, model, epochs, batch size, optimizer, and ``features``, what the
    model sees: ``sweeper.tasks.features.described``), ``space`` (the search in words), ``sweep_seed``,
    ``repeats``, ``racing`` (a raced sweep's plan). ``split_sizes``: task name -> (n_train, n_val, n_test), as
    :func:`~sweeper.driver.prepare.prepare` measured them."""
    tasks = []
    for name, task in spec.tasks.items():
        n_train, n_val, n_test = split_sizes[name]
        o = task.optimizer
        tasks.append(
            {
                "task": name,
                "dataset": str(task.dataset),
                "dataset_seed": task.dataset_seed,
                "n_train": n_train,
                "n_val": n_val,
                "n_test": n_test,
                "model": (
                    str(task.model)
                    if task.user_model is not None  # a user's own: factory(args)
                    else f"{task.model} hidden {list(task.hidden)} {task.activation}, init {task.init}"
                ),
                "epochs": task.epochs,
                "batch_size": task.batch_size,
                "optimizer": f"{o.name} lr {o.lr:g}"
                + (f" momentum {o.momentum:g}" if o.name == "sgd" else "")
                + (f" weight decay {o.weight_decay:g}" if o.weight_decay else ""),
                "features": features.described(task),
            }
        )
    search = spec.search
    space = (
        f"grid of {len(search.configs)} configurations"
        if search.sampler == "grid"
        else f"{search.sampler}, {search.n_trials} trials and the baseline"
    )
    return {
        "planned": planned_configs(spec),
        "tasks": tasks,
        "space": space,
        "sweep_seed": spec.seed,
        "repeats": spec.repeats,
        # a raced sweep's plan (sweeper.stats.racing.plan_of reads it back), None for fixed repeats
        "racing": None if spec.racing is None else {"max": spec.repeats, **spec.racing.model_dump()},
    }


def planned_configs(spec: SweepSpec) -> int:
    """How many configurations a sweep plans, the baseline included."""
    return len(spec.search.configs) if spec.search.sampler == "grid" else spec.search.n_trials + 1
