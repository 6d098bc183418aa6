"""What trains a run: sweeper's and torch's versions, the device, the CPU or GPU by name, and the host.

Measured in the process that trains (on a Ray cluster: the worker), so a sweep whose packs ran on
different hosts records each one's own.
"""

from __future__ import annotations

import functools
import platform
import socket
from importlib import metadata

from sweeper.records import Machine


def this_machine(device="cpu") -> Machine:
    """This process's versions, CPU and host, and the name of ``device`` (a str or torch.device) when it is a GPU."""
    import torch

    device = torch.device(device)
    # A driver may drive CUDA packs on a cluster's workers without a GPU of its own.
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" and torch.cuda.is_available() else None
    return Machine(device=device.type, gpu=gpu, **_process())


@functools.cache
def _process() -> dict:
    """What stays the same for the life of the process (reading it takes a few milliseconds)."""
    import torch

    return {
        "sweeper_version": sweeper_version(),
        "torch_version": torch.__version__,
        "cpu": cpu_name(),
        "host": socket.gethostname(),
    }


def sweeper_version() -> str:
    """The installed sweeper's version (the source tree's when it is not installed)."""
    try:
        return metadata.version("sweeper")
    except metadata.PackageNotFoundError:
        from sweeper import __version__

        return __version__


def cpu_name() -> str | None:
    """The CPU's model name as the kernel reports it (``platform.processor()`` where it does not)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or None
