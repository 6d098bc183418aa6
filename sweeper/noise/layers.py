"""Noise layers to drop into your own PyTorch models: active in ``train()``, identity in ``eval()``.

``GaussianNoise(0.1)`` is the PyTorch counterpart of Keras's ``GaussianNoise``; ``Dropout(0.5)`` behaves
as ``torch.nn.Dropout(0.5)`` (x·m/(1 − p) while training, identity in eval) and ``DropConnect(0.5)`` is
its counterpart for a layer's weights. Every layer takes an optional ``torch.Generator`` (so a run is
reproducible without touching the global RNG) and a schedule, with t counting the layer's
training-mode calls (one per optimizer step in an ordinary loop): ``annealed`` is Neelakantan et al.
2015's, σ_t = σ·(1 + t)^(−γ/2) (their variance η/(1 + t)^γ with η = σ²); ``linear`` and ``cosine``
decay from σ to ``std_min`` over ``total_steps`` steps. See ``sweeper.noise.spec.NoiseSpec``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from sweeper.noise.kinds import Draw, noise_kind
from sweeper.noise.pack import flip_labels
from sweeper.noise.philox import dropout_factors
from sweeper.noise.spec import DEFAULT_GAMMA, PLACEMENTS, NoiseSpec


class _Scheduled(nn.Module):
    """Holds σ, the schedule and the step counter shared by every noise layer."""

    #: How this layer draws (``sweeper.noise.kinds.Draw``), and the kind it applies unless told another.
    draw = Draw.ADD_NORMAL
    kind = "gaussian"

    def __init__(
        self,
        std: float,
        *,
        schedule: str = "constant",
        gamma: float = DEFAULT_GAMMA,
        std_min: float = 0.0,
        total_steps: int | None = None,
        feature_std: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        kind: str | None = None,
    ):
        """``total_steps``: the run's optimizer steps, which ``linear`` and ``cosine`` decay over (needed
        from their first training call on).
        ``feature_std`` (additive kinds): σ is in units of these per-feature standard deviations
        (e.g. of the training data, broadcast over the input's trailing dimensions).
        ``kind``: the noise kind applied, one that draws as this layer does (default: the layer's own)."""
        super().__init__()
        if kind is not None:
            if noise_kind(kind).draw is not self.draw:
                raise ValueError(f"{type(self).__name__} draws {self.draw.value}; kind {kind!r} does not")
            self.kind = kind
        # validates the values, at the first placement the kind fits
        placement = next(p for p in PLACEMENTS if noise_kind(self.kind).fits_some_task(p))
        self.spec = NoiseSpec(
            placement, self.kind, float(std), schedule, gamma, float(std_min), feature_std is not None
        )
        self.total_steps = total_steps
        self.generator = generator
        self.register_buffer("step", torch.zeros((), dtype=torch.long), persistent=False)
        self.register_buffer(
            "feature_std", None if feature_std is None else torch.as_tensor(feature_std), persistent=False
        )

    @property
    def std(self) -> float:
        return self.spec.std

    def _next_std(self) -> float:
        std = self.spec.std_at(int(self.step), self.total_steps)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.spec.std == 0:
            return x
        std = self._next_std()
        return self.apply_noise(x, std) if std else x

    def apply_noise(self, x: torch.Tensor, std: float) -> torch.Tensor:
        """``x`` with this layer's noise of size ``std`` (whatever the mode and step)."""
        raise NotImplementedError

    def _draw(self, like: torch.Tensor, std: float) -> torch.Tensor:
        out = torch.empty_like(like)
        if self.draw is Draw.ADD_UNIFORM:
            a = math.sqrt(3.0) * std  # U(-a, a) has std a / sqrt(3)
            return out.uniform_(-a, a, generator=self.generator)
        return out.normal_(0.0, std, generator=self.generator)

    def extra_repr(self) -> str:
        s = self.spec
        sched = ""
        if s.schedule == "annealed":
            sched = f", schedule=annealed, gamma={s.gamma}"
        elif s.schedule in ("linear", "cosine"):
            sched = f", schedule={s.schedule}, std_min={s.std_min}, total_steps={self.total_steps}"
        size = "p" if noise_kind(self.kind).probability else "std"
        return f"{size}={s.std}{sched}{', relative' if s.relative else ''}"


class GaussianNoise(_Scheduled):
    """Adds zero-mean Gaussian noise of standard deviation ``std`` while training: x + σε."""

    draw, kind = Draw.ADD_NORMAL, "gaussian"

    def apply_noise(self, x: torch.Tensor, std: float) -> torch.Tensor:
        eps = self._draw(x, std)
        if self.feature_std is not None:
            eps = eps * self.feature_std  # (σε)·sd_j, then + x: the engines' order of operations
        return x + eps


class UniformNoise(GaussianNoise):
    """Adds zero-mean uniform noise of standard deviation ``std`` while training."""

    draw, kind = Draw.ADD_UNIFORM, "uniform"


class GaussianDropout(_Scheduled):
    """Multiplies by 1 + σε while training ("multiplicative Gaussian noise", Keras's GaussianDropout
    up to its parametrisation by a rate: Gaussian dropout of rate p is σ² = p / (1 − p))."""

    draw, kind = Draw.MUL_NORMAL, "multiplicative"

    def apply_noise(self, x: torch.Tensor, std: float) -> torch.Tensor:
        return x * (1.0 + self._draw(x, std))


class Dropout(_Scheduled):
    """Dropout of rate ``p`` while training, as ``torch.nn.Dropout``: x·m/(1 − p), m ~ Bernoulli(1 − p).

    A unit is dropped when its uniform draw u is below p (the rule every sweeper engine uses), and
    ``p`` must be in [0, 1). The rate can follow a schedule like any noise size.
    """

    draw, kind = Draw.DROP, "dropout"

    def __init__(self, p: float = 0.5, **kwargs):
        super().__init__(p, **kwargs)

    def apply_noise(self, x: torch.Tensor, p: float) -> torch.Tensor:
        u = torch.rand(x.shape, generator=self.generator, device=x.device)
        return x * dropout_factors(u, p).to(x.dtype)


#: The layer of each draw a tensor takes (label flips are ``LabelFlip``).
DRAW_LAYERS = {layer.draw: layer for layer in (GaussianNoise, UniformNoise, GaussianDropout, Dropout)}


def noise_layer(
    spec: NoiseSpec,
    generator: torch.Generator | None = None,
    *,
    total_steps: int | None = None,
    feature_std: torch.Tensor | None = None,
) -> nn.Module:
    """The layer that applies ``spec`` (any placement but targets' flips and gradients), chosen by how its
    kind draws; ``feature_std`` is used where ``spec.relative``."""
    return DRAW_LAYERS[noise_kind(spec.kind).draw](
        spec.std,
        schedule=spec.schedule,
        gamma=spec.gamma,
        std_min=spec.std_min,
        total_steps=total_steps,
        feature_std=feature_std if spec.relative else None,
        generator=generator,
        kind=spec.kind,
    )


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


class DropConnect(WeightNoise):
    """DropConnect (Wan et al. 2013): a fresh Bernoulli mask of the weights at every training call,
    W·M/(1 − p); the stored weights stay clean and evaluation uses them as they are.

    ``register_parametrization(linear, "weight", DropConnect(0.5))``
    """

    def __init__(self, p: float = 0.5, **kwargs):
        super().__init__(Dropout(p, **kwargs))


class GradientNoise:
    """Adds noise to the gradients before the optimizer step (Neelakantan et al. 2015 when annealed).

    Call ``add_()`` between ``loss.backward()`` and ``optimizer.step()``.
    """

    def __init__(self, params: Iterable[nn.Parameter], layer: _Scheduled):
        self.params = list(params)
        self.layer = layer

    @torch.no_grad()
    def add_(self) -> None:
        std = self.layer.spec.std_at(int(self.layer.step), self.layer.total_steps)
        self.layer.step += 1
        if std == 0:
            return
        for p in self.params:
            if p.grad is not None:
                p.grad.copy_(self.layer.apply_noise(p.grad, std))


class LabelFlip:
    """Replaces each training label by a different class with probability ``p`` (a fresh draw each call)."""

    def __init__(
        self,
        p: float,
        n_classes: int,
        *,
        schedule: str = "constant",
        gamma: float = DEFAULT_GAMMA,
        std_min: float = 0.0,
        total_steps: int | None = None,
        generator: torch.Generator | None = None,
        kind: str = "flip",
    ):
        """``kind``: the noise kind applied, one that flips labels (``Draw.FLIP``)."""
        if noise_kind(kind).draw is not Draw.FLIP:
            raise ValueError(f"LabelFlip flips class labels; kind {kind!r} does not")
        self.spec = NoiseSpec("targets", kind, float(p), schedule, gamma, float(std_min))
        self.n_classes = n_classes
        self.total_steps = total_steps
        self.generator = generator
        self.step = 0

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        p = self.spec.std_at(self.step, self.total_steps)
        self.step += 1
        if self.spec.std == 0:
            return y
        return flip_labels(
            y, p, self.n_classes, lambda shape: torch.rand(shape, generator=self.generator, device=y.device)
        )
