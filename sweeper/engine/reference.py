"""The plain reference loop: one model, one optimizer, one member. The oracle and the speed baseline."""

from __future__ import annotations

import time

import torch

from sweeper.engine import losses
from sweeper.engine._memory import keep_freed_memory
from sweeper.engine._shared import (
    batch_order,
    logged_metrics,
    member_params,
    optimizer,
    pack_data,
    results,
    shuffler,
    total_steps,
)
from sweeper.engine.functional import train_member
from sweeper.noise.kinds import Draw, noise_kind
from sweeper.noise.layers import GradientNoise, LabelFlip, noise_layer
from sweeper.noise.spec import NoiseConfig, check_target_kind
from sweeper.records import Member, RunResult
from sweeper.tasks.data import input_shape, n_outputs
from sweeper.tasks.families import family
from sweeper.tasks.spec import TaskSpec


def train_reference(task: TaskSpec, member: Member, device: str | torch.device = "cpu") -> RunResult:
    """Trains one member the ordinary PyTorch way, drawing its noise from one ``torch.Generator``.

    Same seeds, same data and same draw order as the population trainer, so the two agree to float
    tolerance (exactly the same noise numbers, with the population's per-member generator streams).
    """
    if task.user_model is not None:  # a user's own model: its nn.Module, the same generator streams
        return train_member(task, member, device)
    device = torch.device(device)
    if device.type == "cpu":
        keep_freed_memory()  # as the stacked program does: the baseline gets the same allocator
    start = time.perf_counter()
    data = pack_data(task, [member], device)
    x_train, y_train = data.x_train[0], data.y_train[0]
    generator = torch.Generator(device=device).manual_seed(member.noise_seed)
    input_std = None if data.input_std is None else data.input_std[0]
    model = family(task).code.Reference(
        task, input_shape(task), n_outputs(task), member.config, generator, total_steps(task, len(x_train)), input_std
    )
    model.load_params(member_params(task, member.init_seed))
    model.to(device)
    opt = optimizer(task, model.canonical_parameters())
    target_std = None if data.target_std is None else data.target_std[0]
    grad_noise, target_noise = training_noise(model, member.config, data.n_classes, generator, target_std)
    shuffle = shuffler(member.init_seed)
    diverged_epoch = torch.tensor([-1])
    log_epochs, logs = [], []
    model.eval()
    with torch.no_grad():
        untrained = logged_metrics(lambda x: model(x[0])[None], data)  # what training is judged against
    for epoch in range(1, task.epochs + 1):
        model.train()
        for idx in batch_order(task, len(x_train), shuffle) or [None]:
            x, y = (x_train, y_train) if idx is None else (x_train[idx.to(device)], y_train[idx.to(device)])
            if target_noise is not None:
                y = target_noise(y)
            loss = losses.loss(model(x)[None], y[None], data.n_classes)[0]
            opt.zero_grad()
            loss.backward()
            if grad_noise is not None:
                grad_noise.add_()
            opt.step()
            if not torch.isfinite(loss) and diverged_epoch[0] < 0:
                diverged_epoch[0] = epoch
        if epoch % task.log_every == 0 or epoch == task.epochs:
            model.eval()
            with torch.no_grad():
                logs.append(logged_metrics(lambda x: model(x[0])[None], data))  # the member as a pack of one
            log_epochs.append(epoch)
    return results(
        task, log_epochs, logs, diverged_epoch, time.perf_counter() - start, device, "reference", data, untrained
    )[0]


def training_noise(
    model: torch.nn.Module,
    config: NoiseConfig,
    n_classes: int,
    generator: torch.Generator | None,
    target_std: torch.Tensor | None = None,
):
    """The gradient-noise and target-noise helpers a reference loop calls around each step
    (``target_std``: the training targets' standard deviation, for ``relative`` target noise)."""
    grad, targets = None, None
    steps = model.total_steps
    for spec in config:
        if spec.std <= 0:
            continue
        if spec.placement == "gradients":
            grad = GradientNoise(model.canonical_parameters(), noise_layer(spec, generator, total_steps=steps))
        elif spec.placement == "targets":
            check_target_kind(spec.kind, n_classes)
            targets = (
                LabelFlip(
                    spec.std,
                    n_classes,
                    schedule=spec.schedule,
                    gamma=spec.gamma,
                    std_min=spec.std_min,
                    total_steps=steps,
                    generator=generator,
                    kind=spec.kind,
                )
                if noise_kind(spec.kind).draw is Draw.FLIP
                else noise_layer(spec, generator, total_steps=steps, feature_std=target_std)
            )
    return grad, targets
