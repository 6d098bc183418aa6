"""Workload W1 (docs/design.md): the reference loop and the population trainer timed side by side."""

from __future__ import annotations

import functools
import platform
import time
from collections.abc import Callable

import torch
from torch import nn

from sweeper import seeding
from sweeper.engine import fused
from sweeper.engine.population import train_population
from sweeper.engine.reference import train_reference
from sweeper.engine.sizing import pack_size
from sweeper.errors import SweeperError
from sweeper.noise.spec import NoiseSpec, config_label
from sweeper.records import Member
from sweeper.tasks.spec import ModelFactory, TaskSpec

#: The seed case study: make_circles(100, noise=0.1) 30/70, MLP 2-500-1, Adam 1e-3, full batch,
#: Gaussian noise σ=0.1 on the hidden pre-activations, metrics logged every 10 epochs.
W1 = TaskSpec(
    dataset="circles",
    dataset_seed=1,
    n_train=30,
    scaling="none",
    model="mlp",
    hidden=(500,),
    activation="relu",
    init="keras",
    epochs=4000,
    batch_size="full",
    log_every=10,
)
W1_NOISE = (NoiseSpec("pre_activation", "gaussian", 0.1),)


def w1_network(input_shape: tuple[int, ...], n_outputs: int, hidden: int = 500) -> nn.Module:
    """W1's network as a user writes it, an ``nn.Sequential`` factory (PyTorch's default init)."""
    return nn.Sequential(nn.Linear(input_shape[0], hidden), nn.ReLU(), nn.Linear(hidden, n_outputs))


#: W1 with its network given as a user's own model (``sweeper.engine.functional`` trains it).
W1_OWN_MODEL = TaskSpec(
    dataset="circles",
    dataset_seed=1,
    n_train=30,
    scaling="none",
    model=ModelFactory(factory="sweeper.engine.bench:w1_network"),
    epochs=4000,
    batch_size="full",
    log_every=10,
)


def parse_noise(text: str) -> NoiseSpec:
    """``sweeper bench --noise PLACEMENT:KIND:STD`` as the noise W1 runs with; SweeperError, one line, if not."""
    parts = text.split(":")
    if len(parts) != 3:
        raise SweeperError(f"--noise: {text!r} is not PLACEMENT:KIND:STD, e.g. weights:gaussian:0.1")
    try:
        return NoiseSpec(parts[0], parts[1], float(parts[2]))
    except ValueError as exc:
        raise SweeperError(f"--noise: {exc}") from None


def _members(n: int, config: tuple[NoiseSpec, ...] = W1_NOISE) -> list[Member]:
    return [Member(config, r, 1, seeding.init_seed(0, r), seeding.noise_seed(0, r, config)) for r in range(n)]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def _timed(train: Callable[[], object], device: torch.device) -> float:
    t = time.perf_counter()
    train()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def bench_w1(
    device: str = "cpu",
    *,
    members: int | None = None,
    epochs: int = 4000,
    reference_runs: int = 2,
    stacked: bool = True,
    noise: NoiseSpec | None = None,
    own_model: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Runs/s on W1 (``epochs`` per run) of the reference loop and the population trainer (its default
    engine, and with ``stacked`` also the stacked torch program), measured in this process one after
    the other, each after a short warm-up run (kernel build, lazy initialization, allocator).
    ``noise`` replaces W1's hidden noise (to time other kinds and placements on the same model).
    ``own_model`` adds a row: W1's network written as a user's ``nn.Sequential`` factory, its
    population (``sweeper.engine.functional``) against its reference loop (plain PyTorch)."""
    dev = torch.device(device)
    config = W1_NOISE if noise is None else (noise,)
    members_of = functools.partial(_members, config=config)
    task = W1.model_copy(update={"epochs": epochs})
    members = members or pack_size(task, dev, 30, 70)
    fusable = fused.task_fits(task, dev)
    engines = ["auto"] + (["stacked"] if stacked and fusable else [])  # without the fused engine, auto is stacked
    warm = task.model_copy(update={"epochs": 2})
    train_reference(warm, members_of(1)[0], dev)
    for engine in engines:
        train_population(warm, members_of(members), dev, engine=engine)
    log(f"reference loop: {reference_runs} run(s) of {epochs} epochs on {dev.type} ...")
    ref = reference_runs / _timed(lambda: [train_reference(task, m, dev) for m in members_of(reference_runs)], dev)
    result = {
        "workload": "W1",
        "noise": config_label(config),
        "device": device_name(dev),
        "epochs": epochs,
        "members": members,
        "engine": "fused" if fusable else "stacked",
        "reference_runs_per_s": round(ref, 3),
    }
    for engine in engines:
        name = "population" if engine == "auto" else "stacked"
        log(
            f"population trainer ({result['engine'] if engine == 'auto' else engine} engine): {members} members x "
            f"{epochs} epochs on {dev.type} ..."
        )
        runs = members / _timed(
            lambda engine=engine: train_population(task, members_of(members), dev, engine=engine), dev
        )
        result[f"{name}_runs_per_s"] = round(runs, 3)
        result[f"{name}_speedup"] = round(runs / ref, 2)
    if own_model:
        result |= _bench_own_model(dev, members, epochs, reference_runs, members_of, log)
    return result


def _bench_own_model(
    dev: torch.device, members: int, epochs: int, reference_runs: int, members_of, log: Callable[[str], None]
) -> dict:
    task = W1_OWN_MODEL.model_copy(update={"epochs": epochs})
    warm = task.model_copy(update={"epochs": 2})
    train_reference(warm, members_of(1)[0], dev)
    (engine,) = {r.engine for r in train_population(warm, members_of(members), dev)}
    log(f"own model (nn.Sequential factory): reference loop, {reference_runs} run(s) of {epochs} epochs ...")
    ref = reference_runs / _timed(lambda: [train_reference(task, m, dev) for m in members_of(reference_runs)], dev)
    log(f"own model: population ({engine} engine), {members} members x {epochs} epochs ...")
    runs = members / _timed(lambda: train_population(task, members_of(members), dev), dev)
    return {
        "own_model_engine": engine,
        "own_model_reference_runs_per_s": round(ref, 3),
        "own_model_population_runs_per_s": round(runs, 3),
        "own_model_speedup": round(runs / ref, 2),
    }
