"""Noise layers to drop into your own PyTorch models: active in ``train()``, identity in ``eval()``.

``GaussianNoise(0.1)`` is the PyTorch counterpart of Keras's ``GaussianNoise``. Every layer takes an
optional ``torch.Generator`` (so a run is reproducible without touching the global RNG) and a schedule:
``annealed`` shrinks σ as σ / (1 + t)^γ, where t counts the layer's training-mode calls (one per
optimizer step in an ordinary loop).
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterable, Iterator

import torch
from torch import nn

from sweeper.noise.pack import flip_labels
from sweeper.noise.spec import DEFAULT_GAMMA, NoiseSpec


class _Scheduled(nn.Module):
    """Holds σ, the schedule and the step counter shared by every noise layer."""

    kind = "gaussian"

    def __init__(self, std: float, *, schedule: str = "constant", gamma: float = DEFAULT_GAMMA,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.spec = NoiseSpec("input", self.kind, float(std), schedule, gamma)  # validates the values
        self.generator = generator
        self.register_buffer("step", torch.zeros((), dtype=torch.long), persistent=False)

    @property
    def std(self) -> float:
        return self.spec.std

    def _next_std(self) -> float:
        std = self.spec.std_at(int(self.step))
        if not self._holding:
            self.step += 1
        return std

    _holding = False

    @contextlib.contextmanager
    def one_step(self) -> Iterator[None]:
        """Training calls inside count as one step of the schedule (e.g. a layer applied at every time
        step of a recurrent cell): they share one σ, and the step advances once on exit."""
        self._holding, start = True, int(self.step)
        try:
            yield
        finally:
            self._holding = False
            if self.training:
                self.step.fill_(start + 1)

    def _draw(self, like: torch.Tensor, std: float) -> torch.Tensor:
        out = torch.empty_like(like)
        if self.kind == "uniform":
            a = math.sqrt(3.0) * std  # U(-a, a) has std a / sqrt(3)
            return out.uniform_(-a, a, generator=self.generator)
        return out.normal_(0.0, std, generator=self.generator)

    def extra_repr(self) -> str:
        sched = f", schedule=annealed, gamma={self.spec.gamma}" if self.spec.schedule == "annealed" else ""
        return f"std={self.spec.std}{sched}"


class GaussianNoise(_Scheduled):
    """Adds zero-mean Gaussian noise of standard deviation ``std`` while training: x + σε."""

    kind = "gaussian"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.spec.std == 0:
            return x
        return x + self._draw(x, self._next_std())


class UniformNoise(GaussianNoise):
    """Adds zero-mean uniform noise of standard deviation ``std`` while training."""

    kind = "uniform"


class GaussianDropout(_Scheduled):
    """Multiplies by 1 + σε while training ("multiplicative Gaussian noise", Keras's GaussianDropout
    up to its parametrisation by a rate)."""

    kind = "multiplicative"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.spec.std == 0:
            return x
        return x * (1.0 + self._draw(x, self._next_std()))


KIND_LAYERS = {"gaussian": GaussianNoise, "uniform": UniformNoise, "multiplicative": GaussianDropout}


def noise_layer(spec: NoiseSpec, generator: torch.Generator | None = None) -> nn.Module:
    """The layer that applies ``spec`` (any placement but targets and gradients)."""
    return KIND_LAYERS[spec.kind](spec.std, schedule=spec.schedule, gamma=spec.gamma, generator=generator)


class WeightNoise(nn.Module):
    """A parametrization: the forward pass sees noisy weights while training; the stored ones stay clean.

    ``torch.nn.utils.parametrize.register_parametrization(linear, "weight", WeightNoise(GaussianNoise(0.01)))``
    """

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        self.layer.train(self.training)
        return self.layer(weight)


class GradientNoise:
    """Adds noise to the gradients before the optimizer step (Neelakantan et al. 2015 when annealed).

    Call ``add_()`` between ``loss.backward()`` and ``optimizer.step()``.
    """

    def __init__(self, params: Iterable[nn.Parameter], layer: _Scheduled):
        self.params = list(params)
        self.layer = layer

    @torch.no_grad()
    def add_(self) -> None:
        std = self.layer.spec.std_at(int(self.layer.step))
        self.layer.step += 1
        if std == 0:
            return
        for p in self.params:
            if p.grad is not None:
                if self.layer.kind == "multiplicative":
                    p.grad.mul_(1.0 + self.layer._draw(p.grad, std))
                else:
                    p.grad.add_(self.layer._draw(p.grad, std))


class LabelFlip:
    """Replaces each training label by a different class with probability ``p`` (a fresh draw each call)."""

    def __init__(self, p: float, n_classes: int, *, schedule: str = "constant", gamma: float = DEFAULT_GAMMA,
                 generator: torch.Generator | None = None):
        self.spec = NoiseSpec("targets", "flip", float(p), schedule, gamma)
        self.n_classes = n_classes
        self.generator = generator
        self.step = 0

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        p = self.spec.std_at(self.step)
        self.step += 1
        if p == 0:
            return y
        return flip_labels(y, p, self.n_classes,
                           lambda shape: torch.rand(shape, generator=self.generator, device=y.device))
