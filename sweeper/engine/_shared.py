"""What the population trainer and the reference loop share: data, initial weights, batches, results.

Sharing these keeps the two trainers fed identically, so comparing them tests the training itself.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sweeper import metrics, seeding
from sweeper.engine import losses
from sweeper.engine.chance import failed_to_learn_members
from sweeper.engine.machine import this_machine
from sweeper.records import Member, RunResult
from sweeper.tasks.data import Split, input_shape, load_split, n_outputs, part_sizes
from sweeper.tasks.families import family
from sweeper.tasks.spec import FileDataset, TaskSpec


@dataclass(frozen=True)
class PackData:
    """The members' splits stacked: ``x_train: (members, n_train, *input_shape)`` and so on."""

    x_train: torch.Tensor
    y_train: torch.Tensor  # (members, n_train): float 0/1 (binary), long (multiclass), float (regression)
    x_val: torch.Tensor  # (members, n_val, *input_shape); n_val is 0 without a validation part
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    y_std: torch.Tensor  # (members,) regression target scale, 1 otherwise
    n_classes: int
    #: Relative noise's units: each member's per-feature standard deviation of its training inputs,
    #: ``(members, *input_shape)``, and of its training targets, ``(members,)``; None where the task's
    #: scaling already makes them 1 (inputs under standard scaling; standardized regression targets;
    #: class labels have no spread to scale by).
    input_std: torch.Tensor | None = None
    target_std: torch.Tensor | None = None

    def feature_std(self) -> dict[str, torch.Tensor | None]:
        """What ``PackNoise`` scales relative noise by, per placement."""
        return {"input": self.input_std, "targets": self.target_std}


def pack_data(task: TaskSpec, members: Sequence[Member], device: torch.device) -> PackData:
    """Loads each member's split (once per distinct data seed) and stacks them on ``device``."""
    splits = {seed: split(task, seed) for seed in dict.fromkeys(m.data_seed for m in members)}
    n_classes = next(iter(splits.values())).n_classes
    y_dtype = torch.long if n_classes > 2 else torch.float32

    position = {seed: k for k, seed in enumerate(splits)}
    order = np.array([position[m.data_seed] for m in members], dtype=np.int64)  # each member's split

    def stack(field: str, dtype=torch.float32) -> torch.Tensor:
        arrays = np.stack([getattr(split, field) for split in splits.values()])[order]
        return torch.as_tensor(arrays, dtype=dtype, device=device)

    def spread(field: str) -> torch.Tensor:
        # float64 statistics of the float32 values the model sees, rounded to float32 once.
        arrays = [getattr(split, field).astype(np.float64).std(axis=0) for split in splits.values()]
        return torch.as_tensor(np.stack(arrays).astype(np.float32)[order], device=device)

    input_std = None if task.scaling == "standard" else spread("x_train")
    target_std = spread("y_train") if n_classes == 0 and task.scaling == "none" else None
    return PackData(
        stack("x_train"),
        stack("y_train", y_dtype),
        stack("x_val"),
        stack("y_val", y_dtype),
        stack("x_test"),
        stack("y_test", y_dtype),
        torch.tensor([splits[m.data_seed].y_std for m in members], device=device),
        n_classes,
        input_std,
        target_std,
    )


#: The most floats (all parts together) of a split that ``split`` keeps: 16 splits of this size are 64 MB.
_CACHED_SPLIT_FLOATS = 1_000_000


def split(task: TaskSpec, seed: int) -> Split:
    """``load_split(task, seed)``, drawn once per process for a bundled or generated data set of up to
    ``_CACHED_SPLIT_FLOATS`` floats: a sweep's packs share their repeats' splits (a grid of 10 repeats
    drew each split once per pack). The arrays are shared: read them, never write them."""
    if isinstance(task.dataset, FileDataset) or sum(part_sizes(task)) * task.data.n_features > _CACHED_SPLIT_FLOATS:
        return load_split(task, seed)  # a user's file: its task's equality would compare the file's rows
    return _cached_split(task, seed)


@functools.lru_cache(maxsize=16)
def _cached_split(task: TaskSpec, seed: int) -> Split:
    loaded = load_split(task, seed)
    for value in vars(loaded).values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return loaded


#: The most parameters of a member whose initial values ``member_inits`` keeps: 16 of them are 16 MB.
_CACHED_PARAMS = 250_000


def member_inits(task: TaskSpec, members: Sequence[Member]) -> list[dict[str, torch.Tensor]]:
    """Each member's initial parameters (``member_params``), drawn once per distinct init seed, and for a
    bundled or generated data set and up to ``_CACHED_PARAMS`` parameters once per process: the members of
    a repeat share one dict, so read them, never change them in place."""
    shapes = family(task).code.param_shapes(task, input_shape(task), n_outputs(task))
    small = sum(math.prod(shape) for shape in shapes.values()) <= _CACHED_PARAMS
    draw = _cached_params if small and not isinstance(task.dataset, FileDataset) else member_params
    drawn = {seed: draw(task, seed) for seed in dict.fromkeys(m.init_seed for m in members)}
    return [drawn[m.init_seed] for m in members]


@functools.lru_cache(maxsize=16)
def _cached_params(task: TaskSpec, init_seed: int) -> dict[str, torch.Tensor]:
    return member_params(task, init_seed)


def member_params(task: TaskSpec, init_seed: int) -> dict[str, torch.Tensor]:
    """One member's initial parameters, drawn from the Philox stream keyed by its init seed on the CPU: every
    device and CPU starts from the same bits."""
    return family(task).code.init_params(task, input_shape(task), n_outputs(task), init_seed)


def shuffler(init_seed: int) -> torch.Generator:
    """The generator of one member's minibatch order (common to all configurations of a repeat)."""
    return torch.Generator().manual_seed(seeding.shuffle_seed(init_seed))


def total_steps(task: TaskSpec, n: int) -> int:
    """The optimizer steps of a whole run on ``n`` training rows (the noise schedules' t runs over them)."""
    per_epoch = 1 if task.batch_size == "full" or task.batch_size >= n else -(-n // task.batch_size)
    return task.epochs * per_epoch


def batch_order(task: TaskSpec, n: int, generator: torch.Generator | None) -> list[torch.Tensor] | None:
    """One epoch's minibatches as index tensors, or None for a full batch."""
    if task.batch_size == "full" or task.batch_size >= n:
        return None
    return list(torch.randperm(n, generator=generator).split(task.batch_size))


def minibatches(
    task: TaskSpec, data: PackData, shufflers: list[torch.Generator], rows: torch.Tensor
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch's training steps as ``(x, y)``: the whole training part at once (full batch), or every
    member's own next minibatch, in the order its shuffler drew for the epoch, stacked (``rows``: the
    members' indices as a column, ``(members, 1)``)."""
    orders = [batch_order(task, data.x_train.shape[1], g) for g in shufflers]
    if orders[0] is None:
        yield data.x_train, data.y_train
        return
    for b in range(len(orders[0])):
        idx = torch.stack([o[b] for o in orders]).to(rows.device)  # (members, batch)
        yield data.x_train[rows, idx], data.y_train[rows, idx]


def optimizer(task: TaskSpec, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    """Adam or SGD over ``params``; both are elementwise, so stacked members never mix."""
    o = task.optimizer
    # fused: one pass over each parameter per step (same update as the loop implementation).
    if o.name == "adam":
        return torch.optim.Adam(
            params, lr=o.lr, betas=o.betas, eps=task.adam_eps, weight_decay=o.weight_decay, fused=True
        )
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, fused=True)


def results(
    task: TaskSpec,
    epochs: list[int],
    logs: list[dict[str, torch.Tensor]],
    diverged_epoch: torch.Tensor,
    wall_time: float,
    device: torch.device,
    engine: str,
    data: PackData,
    untrained: dict[str, torch.Tensor],
) -> list[RunResult]:
    """Per-member results from logs (name -> (members,) per logged epoch); diverged members get NaN.

    Each carries the ``engine`` that trained it and the machine it trained on, measured here (in the
    process that trained), and whether it failed to learn: judged on its training part in ``data``
    against ``untrained``, the logged metrics of the members before their first step.
    """
    y_train = data.y_train.cpu().numpy()  # (members, n_train)
    before = {name: v.cpu().numpy().astype(np.float64) for name, v in untrained.items()}  # name -> (members,)
    machine = this_machine(device)
    epochs_arr = np.asarray(epochs)
    curves = {
        name: torch.stack([log[name] for log in logs], 1).cpu().numpy().astype(np.float64) for name in logs[0]
    }  # name -> (members, n_logs)
    bad = diverged_epoch.cpu().numpy()
    # Diverged: a non-finite training loss, or a non-finite logged metric (an update can overflow the
    # weights after a finite loss, and the next log sees it first). From that epoch on its curves are NaN.
    finite = np.logical_and.reduce([np.isfinite(c) for c in curves.values()])  # (members, n_logs)
    never = np.iinfo(np.int64).max
    first_logged = np.where(finite.all(axis=1), never, epochs_arr[np.argmin(finite, axis=1)])
    first = np.minimum(np.where(bad >= 0, bad, never), first_logged)  # (members,)
    diverged = first < never
    after = diverged[:, None] & (epochs_arr >= first[:, None])  # (members, n_logs)
    for c in curves.values():
        c[after] = np.nan
    # The best epoch is chosen on validation, by the problem's default metric; only a task without a
    # validation part (n_val: 0) uses its test part. The first epoch of the best; none if none is finite.
    part = "val" if "val_loss" in curves else "test"
    primary = f"{part}_{metrics.choices(task.problem)[0]}"
    score = curves[primary] if metrics.higher_is_better(primary) else -curves[primary]
    scored = np.isfinite(score).any(axis=1)
    at = np.argmax(np.where(np.isnan(score), -np.inf, score), axis=1)  # (members,) what nanargmax gives
    rows = np.arange(len(bad))
    kept_early = tuple(f"{p}_" for p in metrics.EARLY_PARTS)
    early = {
        metrics.EARLY_PREFIX + name: np.where(scored, c[rows, at], np.nan).tolist()
        for name, c in curves.items()
        if name.startswith(kept_early)
    }
    final = {name: c[:, -1] for name, c in curves.items()}
    failed = failed_to_learn_members(final, before, y_train, data.n_classes)
    final_values = {name: v.tolist() for name, v in final.items()}
    best = np.where(scored, epochs_arr[at], -1).tolist()
    return [
        RunResult(
            final={name: v[k] for name, v in final_values.items()} | {name: v[k] for name, v in early.items()},
            curve_epochs=epochs_arr,
            curves={name: c[k] for name, c in curves.items()},
            best_epoch=best[k] if scored[k] else None,
            diverged=bool(diverged[k]),
            diverged_epoch=int(first[k]) if diverged[k] else None,
            wall_time=wall_time,
            device=device.type,
            engine=engine,
            machine=machine,
            failed_to_learn=None if diverged[k] else failed[k],
        )
        for k in range(len(bad))
    ]


def logged_metrics(forward, data: PackData) -> dict[str, torch.Tensor]:
    """Noise-free loss and metrics of every member on its training, validation and test data, named
    ``train_*``, ``val_*`` (none without a validation part) and ``test_*`` as ``sweeper.metrics`` lists
    them (the test part's expected calibration error ``test_ece`` for classification); ``forward(x)``
    maps inputs ``(members, rows, ...)`` to outputs ``(members, rows, n_out)``."""
    logged = {}
    for part, x, y in data_parts(data):
        values = losses.metrics(forward(x), y, data.n_classes, data.y_std, part)
        logged |= {f"{part}_{name}": value for name, value in values.items()}
    return logged


def data_parts(data: PackData) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """The parts of the data that hold samples, in ``sweeper.metrics.PARTS`` order: ``(part, x, y)``."""
    parts = (("train", data.x_train, data.y_train), ("val", data.x_val, data.y_val), ("test", data.x_test, data.y_test))
    return [(part, x, y) for part, x, y in parts if x.shape[1]]
