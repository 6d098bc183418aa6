"""Workload W1 (docs/design.md): the reference loop and the population trainer timed side by side."""

from __future__ import annotations

import functools
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from sweeper import seeding
from sweeper.engine import fused, machine
from sweeper.engine.population import train_population
from sweeper.engine.reference import train_reference
from sweeper.engine.sizing import pack_size
from sweeper.errors import SweeperError
from sweeper.noise.spec import NoiseSpec, config_label
from sweeper.records import Member
from sweeper.tasks.data import part_sizes
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


#: W1 with its network given as a user's own model (a plain dense stack: the fused engine trains it,
#: ``sweeper.engine.fused.dense_stack``; with ``engine="stacked"``, ``sweeper.engine.functional``).
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
    # The vector instructions torch's CPU kernels use (AVX2, AVX512, ...) move convolution speed by half.
    cpu = machine.cpu_name() or platform.processor() or platform.machine()
    return f"{cpu} ({torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads)"


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
    own_engine: str = "auto",
    log: Callable[[str], None] = print,
) -> dict:
    """Runs/s on W1 (``epochs`` per run) of the reference loop and the population trainer (its default
    engine, and with ``stacked`` also the stacked torch program), measured in this process one after
    the other, each after a short warm-up run (kernel build, lazy initialization, allocator).
    ``noise`` replaces W1's hidden noise (to time other kinds and placements on the same model).
    ``own_model`` adds a row: W1's network written as a user's ``nn.Sequential`` factory, its
    population against its reference loop (plain PyTorch) and against the built-in population
    (``own_model_vs_population``: the share of the built-in's runs/s). ``own_engine``: ``auto`` (a plain
    dense stack trains on the fused engine) or ``stacked`` (torch.func, ``sweeper.engine.functional``)."""
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
        task = W1_OWN_MODEL.model_copy(update={"epochs": epochs})
        own = _bench_own_model(task, "nn.Sequential factory", dev, members, reference_runs, members_of, own_engine, log)
        result |= {f"own_model_{k}": v for k, v in own.items()}
        result["own_model_vs_population"] = round(own["population_runs_per_s"] / result["population_runs_per_s"], 3)
    return result


def bench_own_space(
    file: str,
    device: str = "cpu",
    *,
    members: int | None = None,
    epochs: int | None = None,
    reference_runs: int = 2,
    own_engine: str = "auto",
    rounds: int = 1,
    log: Callable[[str], None] = print,
) -> dict:
    """Runs/s of the task of a search-space file whose model is the user's own (its first task; the
    first configuration of its grid that has noise, or none): its population against its reference
    loop, both on repeat 0's data. ``epochs``: the task's unless given."""
    from sweeper.space import load_space
    from sweeper.tasks import user_models

    spec = load_space(file)
    name, task = next(iter(spec.tasks.items()))
    if task.user_model is None:
        raise SweeperError(f"--own-space: {file}: task {name!r} has no model factory (task.model: {{factory: ...}})")
    user_models.import_factory(task.user_model, Path(file).resolve().parent)
    task = task.model_copy(update={"epochs": epochs or task.epochs})
    noisy = [c for c in (spec.search.configs if spec.search.sampler == "grid" else ()) if c]
    config = noisy[0] if noisy else ()
    data = seeding.data_seed(spec.seed, 0, task.dataset_seed)

    def members_of(n: int) -> list[Member]:
        return [Member(config, r, data, seeding.init_seed(0, r), seeding.noise_seed(0, r, config)) for r in range(n)]

    dev = torch.device(device)
    members = members or pack_size(task, dev, part_sizes(task)[0], 100)  # n_train may be a fraction
    result = {
        "workload": f"{file} ({task.user_model})",
        "noise": config_label(config),
        "device": device_name(dev),
        "epochs": task.epochs,
        "members": members,
    }
    return result | _bench_own_model(
        task, str(task.user_model), dev, members, reference_runs, members_of, own_engine, log, rounds
    )


def _bench_own_model(
    task: TaskSpec,
    what: str,
    dev: torch.device,
    members: int,
    reference_runs: int,
    members_of,
    engine: str,
    log: Callable[[str], None],
    rounds: int = 1,
) -> dict:
    """A user's model: its reference loop and its population (``engine``) timed, each after a warm-up;
    with ``rounds`` > 1 the two alternate that many times and the figures are medians (``speedup``: the
    median of the rounds' ratios, ``speedup_range`` their least and greatest), as a machine whose speed
    moves between minutes needs."""
    epochs = task.epochs
    warm = task.model_copy(update={"epochs": 2, "log_every": 1})
    train_reference(warm, members_of(1)[0], dev)
    (used,) = {r.engine for r in train_population(warm, members_of(members), dev, engine=engine)}
    refs, pops = [], []
    for k in range(rounds):
        at = f" (round {k + 1} of {rounds})" if rounds > 1 else ""
        log(f"own model ({what}): reference loop, {reference_runs} run(s) of {epochs} epochs{at} ...")
        refs.append(
            reference_runs / _timed(lambda: [train_reference(task, m, dev) for m in members_of(reference_runs)], dev)
        )
        log(f"own model: population ({used} engine), {members} members x {epochs} epochs{at} ...")
        pops.append(members / _timed(lambda: train_population(task, members_of(members), dev, engine=engine), dev))
    ratios = [pop / ref for pop, ref in zip(pops, refs)]
    result = {
        "engine": used,
        "reference_runs_per_s": round(statistics.median(refs), 3),
        "population_runs_per_s": round(statistics.median(pops), 3),
        "speedup": round(statistics.median(ratios), 2),
    }
    if rounds > 1:
        result |= {"rounds": rounds, "speedup_range": [round(min(ratios), 2), round(max(ratios), 2)]}
    return result
