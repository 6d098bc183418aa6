"""Workload W1 (DESIGN.md): the reference loop and the population trainer timed side by side."""

from __future__ import annotations

import platform
import time
from typing import Callable

import torch

from sweeper import seeding
from sweeper.engine.population import train_population
from sweeper.engine.reference import train_reference
from sweeper.engine.result import Member
from sweeper.engine.sizing import pack_size
from sweeper.noise.spec import NoiseSpec
from sweeper.tasks.spec import TaskSpec

#: The seed case study: make_circles(100, noise=0.1) 30/70, MLP 2-500-1, Adam 1e-3, full batch,
#: Gaussian noise σ=0.1 on the hidden pre-activations, metrics logged every 10 epochs.
W1 = TaskSpec(dataset="circles", dataset_seed=1, n_train=30, scaling="none", model="mlp", hidden=(500,),
              activation="relu", init="keras", epochs=4000, batch_size="full", log_every=10)
W1_NOISE = (NoiseSpec("pre_activation", "gaussian", 0.1),)


def _members(n: int) -> list[Member]:
    return [Member(W1_NOISE, r, 1, seeding.init_seed(0, r), seeding.noise_seed(0, r, W1_NOISE)) for r in range(n)]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def bench_w1(device: str = "cpu", *, members: int | None = None, epochs: int = 4000, reference_runs: int = 2,
             log: Callable[[str], None] = print) -> dict:
    """Runs/s of both trainers on W1 (``epochs`` per run) in this process, and their ratio."""
    dev = torch.device(device)
    task = W1.model_copy(update={"epochs": epochs})
    members = members or pack_size(task, dev, 30, 70)
    train_population(task.model_copy(update={"epochs": 2}), _members(members), dev)  # warm-up: kernel build, allocator
    if dev.type == "cuda":
        torch.cuda.synchronize()
    log(f"reference loop: {reference_runs} run(s) of {epochs} epochs on {dev.type} ...")
    t = time.perf_counter()
    for m in _members(reference_runs):
        train_reference(task, m, dev)
    ref = reference_runs / (time.perf_counter() - t)
    log(f"population trainer: {members} members x {epochs} epochs on {dev.type} ...")
    t = time.perf_counter()
    train_population(task, _members(members), dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    pop = members / (time.perf_counter() - t)
    return {"workload": "W1", "device": device_name(dev), "epochs": epochs, "members": members,
            "reference_runs_per_s": round(ref, 3), "population_runs_per_s": round(pop, 3),
            "speedup": round(pop / ref, 2)}
