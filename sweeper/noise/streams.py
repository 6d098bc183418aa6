"""One independent random stream per member, so a member's noise never depends on its pack.

Two engines draw the same distributions:

* ``philox`` (the default): counter-based Philox4x32-10 streams (``sweeper.noise.philox``), a
  vectorized C kernel on CPU and the same algorithm in torch ops on CUDA, one call per site for the
  whole pack. Value j of a member is a function of its own key and counter only.
* ``generator``: one ``torch.Generator`` per member. A member draws exactly what the plain reference
  loop (which uses ``torch.Generator`` like any PyTorch code) draws, so the two can be compared number
  for number with noise on; CPU Mersenne Twister is slower.

``out`` always has the member dimension first; only members whose ``scale`` (or dropout rate) is
non-zero draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch

from sweeper.noise.philox import PhiloxStreams, dropout_factors

_SQRT3 = math.sqrt(3.0)
STREAMS = ("philox", "generator")


class Streams(Protocol):
    def normal_(self, out: torch.Tensor, scale: Sequence[float]) -> torch.Tensor: ...
    def uniform_(self, out: torch.Tensor, scale: Sequence[float]) -> torch.Tensor: ...
    def dropout_(self, out: torch.Tensor, rate: Sequence[float]) -> torch.Tensor: ...
    def rand(self, member: int, shape: tuple[int, ...]) -> torch.Tensor: ...


class GeneratorStreams:
    """A ``torch.Generator`` per member, seeded with the member's noise seed."""

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu"):
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def normal_(self, out: torch.Tensor, scale: Sequence[float]) -> torch.Tensor:
        for k, s in enumerate(scale):
            if s:
                out[k].normal_(0.0, s, generator=self.generators[k])
        return out

    def uniform_(self, out: torch.Tensor, scale: Sequence[float]) -> torch.Tensor:
        # U(-a, a) has std a/sqrt(3): a = sqrt(3)·σ gives std σ.
        for k, s in enumerate(scale):
            if s:
                out[k].uniform_(-_SQRT3 * s, _SQRT3 * s, generator=self.generators[k])
        return out

    def dropout_(self, out: torch.Tensor, rate: Sequence[float]) -> torch.Tensor:
        for k, p in enumerate(rate):
            if p:
                out[k] = dropout_factors(self.rand(k, out[k].shape), p)
        return out

    def rand(self, member: int, shape: tuple[int, ...]) -> torch.Tensor:
        g = self.generators[member]
        return torch.rand(shape, generator=g, device=g.device)


def make_streams(seeds: Sequence[int], device: torch.device | str, kind: str = "philox") -> Streams:
    """The members' noise streams: ``philox`` (default, fast) or ``generator`` (reference-loop numbers)."""
    if kind == "philox":
        return PhiloxStreams(seeds, device)
    if kind == "generator":
        return GeneratorStreams(seeds, device)
    raise ValueError(f"unknown noise streams {kind!r}; allowed: {', '.join(STREAMS)}")
