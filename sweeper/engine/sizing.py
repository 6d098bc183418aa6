"""How many members fit in one pack: from the memory the device has free, not a fixed number.

A task one member of which needs more than all the free memory is refused, not trained in packs of
one until the allocator fails.
"""

from __future__ import annotations

import math
import os

import torch

from sweeper.errors import TaskError
from sweeper.tasks import user_models
from sweeper.tasks.data import input_shape, n_outputs
from sweeper.tasks.families import family
from sweeper.tasks.spec import TaskSpec

#: Share of free memory a pack may use (the rest is for the allocator, the data and other packs).
MEMORY_SHARE = {"cpu": 0.25, "cuda": 0.6}
#: On CPU, members beyond this add no speed (the vector units are busy) but delay storing: a pack is stored
#: when it ends, and an interrupted one is trained again.
CPU_MAX_MEMBERS = 64
GPU_MAX_MEMBERS = 16384


def member_bytes(task: TaskSpec, n_train: int, n_test: int) -> int:
    """An upper estimate of one member's memory while training (float32); ``n_test`` counts every sample
    only evaluated (validation and test)."""
    shape, n_out = input_shape(task), n_outputs(task)
    if task.user_model is not None:  # measured on the model: the input and every submodule's output per sample
        n_params, width = user_models.size(task)
        width += math.prod(shape)
    else:
        code = family(task).code
        n_params = sum(math.prod(s) for s in code.param_shapes(task, shape, n_out).values())
        width = code.activation_width(task, shape, n_out)  # per sample: the input and every layer's output
    batch = n_train if task.batch_size == "full" else min(task.batch_size, n_train)
    floats = (
        6 * n_params  # parameters, gradients, two Adam moments, weight-noise draws and perturbed copy
        + 8 * batch * width  # forward values, noise draws and their gradients during a step
        + 2 * (n_train + n_test) * width  # noise-free evaluation of every part
        + (n_train + n_test) * math.prod(shape)  # the member's data
    )
    return 4 * floats


def free_memory(device: torch.device) -> int:
    """Bytes free on ``device`` now."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def pack_size(
    task: TaskSpec, device: str | torch.device, n_train: int, n_test: int, free_bytes: int | None = None
) -> int:
    """The number of members to train together on ``device``: what fits in its share of free memory.

    Raises TaskError when one member needs more than all of ``free_bytes`` (default: what is free on
    ``device`` now).
    """
    device = torch.device(device)
    free = free_memory(device) if free_bytes is None else free_bytes
    need = member_bytes(task, n_train, n_test)
    if need > free:
        raise TaskError(
            f"one member needs about {_bytes(need)} while it trains (the engine's estimate for this model, "
            f"{n_train} training and {n_test} validation and test samples) but {_bytes(free)} are free on "
            f"{device.type}; "
            "allowed: a member that fits (fewer or narrower hidden layers or channels, less data, a smaller batch_size)"
        )
    fits = int(free * MEMORY_SHARE[device.type]) // need
    cap = GPU_MAX_MEMBERS if device.type == "cuda" else CPU_MAX_MEMBERS
    return max(1, min(cap, fits))


def _bytes(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n:,} bytes"
