"""The population trainer: a pack of independent members trained as one vectorized program."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from sweeper.engine import fused as fused_engine
from sweeper.engine import losses
from sweeper.engine._memory import keep_freed_memory
from sweeper.engine._shared import (
    logged_metrics,
    member_inits,
    minibatches,
    optimizer,
    pack_data,
    results,
    shuffler,
    total_steps,
)
from sweeper.engine.functional import train_functional
from sweeper.noise.pack import PackNoise
from sweeper.noise.streams import make_streams
from sweeper.records import Member, RunResult
from sweeper.tasks.families import family
from sweeper.tasks.spec import TaskSpec

ENGINES = ("auto", "stacked")
#: torch's intra-op threads while a pack trains on the stacked program on the CPU. torch's CPU kernels
#: split some sums by the thread count (a grouped convolution's weight gradient, a recurrent layer's
#: products): a CNN or RNN pack gave other losses at 1 and at 2 threads (1e-11 after 4 epochs, up to
#: 1e-4 over a sweep). A fixed count gives a member the same numbers in every process: a Ray worker, a
#: local run on another machine's core count, ``sweeper rerun``. One, the count every machine has.
STACKED_CPU_THREADS = 1


#: Told, as a pack trains, the member-epochs it has trained so far (members x epochs done): once per
#: logging interval (``task.log_every``) and at the end, when it is members x ``task.epochs``.
OnEpochs = Callable[[int], None]


def train_population(
    task: TaskSpec,
    members: Sequence[Member],
    device: str | torch.device = "cpu",
    streams: str = "philox",
    engine: str = "auto",
    on_epochs: OnEpochs | None = None,
) -> list[RunResult]:
    """Trains every member for ``task.epochs`` epochs and returns one result per member, in order.

    A user's own model (``task.model: {factory: ...}``) trains with ``sweeper.engine.functional``
    (with ``auto``, on the fused engine where it is a plain stack of dense layers; ``stacked``: torch.func
    for all). ``engine``: ``auto`` (default) trains dense MLPs on the CPU with the fused engine
    (``sweeper.engine.fused``, every noise kind and placement) and everything else with the stacked
    torch program; ``stacked`` uses the torch program for all. The choice depends on the task, device,
    streams and the member's own configuration only, never on the other members of the pack.
    """
    device = torch.device(device)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; allowed: {', '.join(ENGINES)}")
    if task.user_model is not None:  # a user's own model: torch.func over its nn.Module
        return train_functional(task, members, device, streams, on_epochs, fused=engine == "auto")
    if engine == "auto" and streams == "philox" and fused_engine.task_fits(task, device):
        return fused_engine.train_fused(task, members, on_epochs)
    return train_stacked(task, members, device, streams, on_epochs)


def train_stacked(
    task: TaskSpec,
    members: Sequence[Member],
    device: str | torch.device = "cpu",
    streams: str = "philox",
    on_epochs: OnEpochs | None = None,
) -> list[RunResult]:
    """The stacked torch program: every member in one vectorized program.

    Members share the task and architecture, nothing else: each has its own data split, initial
    weights, noise configuration and random stream. Parameters are stacked (leading member dim) and
    one summed loss is backpropagated: no gradient crosses members, and Adam/SGD are elementwise, so
    each member gets exactly its own update. A member whose loss turns NaN/inf is recorded as diverged
    at that epoch; the others are unaffected (their numbers do not depend on it).

    ``streams``: ``philox`` (default; a member's numbers do not depend on its pack) or ``generator``
    (per-member ``torch.Generator``: the reference loop's numbers, for comparing the two).

    On the CPU it runs on ``STACKED_CPU_THREADS`` of torch's threads, whatever the process's count.
    """
    device = torch.device(device)
    if device.type != "cpu":
        return _train_stacked(task, members, device, streams, on_epochs)
    keep_freed_memory()
    threads = torch.get_num_threads()
    torch.set_num_threads(STACKED_CPU_THREADS)
    try:
        return _train_stacked(task, members, device, streams, on_epochs)
    finally:
        torch.set_num_threads(threads)


def _train_stacked(
    task: TaskSpec, members: Sequence[Member], device: torch.device, streams: str, on_epochs: OnEpochs | None
) -> list[RunResult]:
    start = time.perf_counter()
    forward = family(task).code.forward  # the stacked program of the task's model
    data = pack_data(task, members, device)
    inits = member_inits(task, members)
    params = {name: torch.stack([p[name] for p in inits]).to(device).requires_grad_() for name in inits[0]}
    opt = optimizer(task, list(params.values()))
    n, p = data.x_train.shape[1], len(members)
    noise = PackNoise(
        [m.config for m in members],
        make_streams([m.noise_seed for m in members], device, streams),
        total_steps(task, n),
        data.feature_std(),
    )
    noise.check_targets(data.n_classes)
    shufflers = [shuffler(m.init_seed) for m in members]
    rows = torch.arange(p, device=device)[:, None]
    diverged_epoch = torch.full((p,), -1, dtype=torch.long, device=device)
    log_epochs, logs = [], []
    with torch.no_grad():  # what training is judged against (failed to learn); not one of the logs
        untrained = logged_metrics(lambda x: forward(task, params, x), data)
    step = 0
    for epoch in range(1, task.epochs + 1):
        for x, y in minibatches(task, data, shufflers, rows):
            noise.step = step
            y = noise.noisy_targets(y, data.n_classes)
            loss = losses.loss(forward(task, params, x, noise), y, data.n_classes)  # (members,)
            opt.zero_grad(set_to_none=False)
            loss.sum().backward()
            noise.perturb_grads([t.grad for t in params.values()])
            opt.step()
            newly = ~torch.isfinite(loss) & (diverged_epoch < 0)
            diverged_epoch = torch.where(newly, epoch, diverged_epoch)
            step += 1
        if epoch % task.log_every == 0 or epoch == task.epochs:
            log_epochs.append(epoch)
            logs.append(evaluate(task, params, data))
            if on_epochs is not None:
                on_epochs(p * epoch)
    wall = (time.perf_counter() - start) / p
    return results(task, log_epochs, logs, diverged_epoch, wall, device, "stacked", data, untrained)


@torch.no_grad()
def evaluate(task: TaskSpec, params: dict[str, torch.Tensor], data) -> dict[str, torch.Tensor]:
    """Noise-free loss and metrics of every member on its training and test data."""
    return logged_metrics(lambda x: family(task).code.forward(task, params, x), data)
