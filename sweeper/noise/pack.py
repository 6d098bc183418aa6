"""Noise for a whole pack at once: every member its own configuration, its own stream.

Tensors handed to a site have the member dimension first: ``x: (members, ...)``. Members that do not
use a site draw nothing there, so a member's stream depends only on its own configuration.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sweeper.noise.kinds import Draw, noise_kind
from sweeper.noise.spec import NoiseConfig, NoiseSpec, check_target_kind
from sweeper.noise.streams import Streams


@dataclass(frozen=True)
class _PackPlacement:
    """One placement across the pack: per member, its spec or None, and how its kind draws."""

    specs: tuple[NoiseSpec | None, ...]

    @functools.cached_property
    def draws(self) -> tuple[Draw | None, ...]:
        return tuple(None if s is None else noise_kind(s.kind).draw for s in self.specs)

    @property
    def active(self) -> bool:
        return any(s is not None and s.std > 0 for s in self.specs)

    def scales(self, step: int, total_steps: int | None) -> dict[Draw, list[float]]:
        """Per draw, each member's noise size at ``step`` (0.0 for the members that do not draw it here)."""
        out = {draw: [0.0] * len(self.specs) for draw in Draw}
        for k, (s, draw) in enumerate(zip(self.specs, self.draws)):
            if s is not None:
                out[draw][k] = s.std_at(step, total_steps)
        return out


class PackNoise:
    """Applies each member's noise configuration at the named sites of a stacked forward pass."""

    def __init__(
        self,
        configs: Sequence[NoiseConfig],
        streams: Streams,
        total_steps: int | None = None,
        feature_std: dict[str, torch.Tensor | None] | None = None,
    ):
        """``total_steps``: the run's optimizer steps (the linear and cosine schedules decay over them).
        ``feature_std``: per placement (input, targets) each member's per-feature standard deviations
        on its training part, ``(members, *feature shape)``, that ``relative`` noise is scaled by; None
        where the task's scaling already gives every feature standard deviation 1."""
        self.streams = streams
        self.total_steps = total_steps
        by_place: dict[str, list[NoiseSpec | None]] = {}
        for k, config in enumerate(configs):
            for spec in config:
                by_place.setdefault(spec.placement, [None] * len(configs))[k] = spec
        sites = {p: _PackPlacement(tuple(v)) for p, v in by_place.items()}
        self.sites = {p: site for p, site in sites.items() if site.active}
        # placement -> (members, 1, *feature shape): a relative member's feature std, 1 for the others.
        self.relative = {}
        for p, site in self.sites.items():
            std = (feature_std or {}).get(p)
            if std is not None and any(s is not None and s.relative for s in site.specs):
                rows = [
                    std[k] if s is not None and s.relative else torch.ones_like(std[k])
                    for k, s in enumerate(site.specs)
                ]
                self.relative[p] = torch.stack(rows).unsqueeze(1)
        self.step = 0  # the optimizer step being taken; set by the trainer

    def _normal(self, like: torch.Tensor, scale: list[float]) -> torch.Tensor:
        return self.streams.normal_(_buffer(like, all(scale)), scale)

    def perturb(self, placement: str, x: torch.Tensor) -> torch.Tensor:
        """``x`` with each member's noise of ``placement`` added (additive) or applied (multiplicative,
        dropout)."""
        site = self.sites.get(placement)
        if site is None:
            return x
        # Draw in one fixed order per member: each member has one kind per site, so it draws once.
        additive, uniform, multiplicative, dropout = _by_draw(site.scales(self.step, self.total_steps))
        relative = self.relative.get(placement)
        if any(additive) and relative is None and self._fusable(site, x):
            return _FusedAdd.apply(x, self.streams, additive, False)
        if any(additive) or any(uniform):
            both = [a or u for a, u in zip(additive, uniform)]
            eps = _buffer(x, all(both))
            self.streams.normal_(eps, additive)
            self.streams.uniform_(eps, uniform)
            if relative is not None:
                eps.mul_(relative)  # (σε)·sd_j, then + x: the C engine's order of operations
            x = eps.add_(x)  # reuses the draw's memory; an additive site needs no saved tensor
        if any(multiplicative):
            x = x * (1.0 + self._normal(x, multiplicative))
        if any(dropout):
            x = x * self.streams.dropout_(_buffer(x, all(dropout), fill=1.0), dropout)
        return x

    def factors(
        self,
        placement: str,
        shape: tuple[int, ...],
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The noise of ``placement`` on a tensor of ``shape`` (members first), drawn now and applied
        later as ``(x + add) * mul`` (None: that part is absent for every member).

        Each member draws what ``perturb`` would draw for it, and its result is what ``perturb`` gives:
        a member has one kind per site, so one of its parts is exactly 0 or 1. For the sites of a user's
        model, whose draws are made outside ``torch.func.vmap`` (not for relative noise).
        """
        site = self.sites.get(placement)
        if site is None:
            return None, None
        additive, uniform, multiplicative, dropout = _by_draw(site.scales(self.step, self.total_steps))

        def buffer(every_member_draws: bool, fill: float = 0.0) -> torch.Tensor:
            if every_member_draws:
                return torch.empty(shape, dtype=dtype, device=device)
            return torch.full(shape, fill, dtype=dtype, device=device)

        add = mul = None
        if any(additive) or any(uniform):
            add = buffer(all(a or u for a, u in zip(additive, uniform)))
            self.streams.normal_(add, additive)
            self.streams.uniform_(add, uniform)
        if any(multiplicative):
            mul = 1.0 + self.streams.normal_(buffer(all(multiplicative)), multiplicative)
        if any(dropout):
            kept = self.streams.dropout_(buffer(all(dropout), fill=1.0), dropout)
            mul = kept if mul is None else mul * kept
        return add, mul

    def pre_activate(self, z: torch.Tensor, act) -> torch.Tensor:
        """``act`` of ``z`` with the pre-activation noise added: one fused pass for Gaussian noise
        before a ReLU where the streams can (the CPU kernel), else the two steps."""
        site = self.sites.get("pre_activation")
        if act is F.relu and site is not None and self._fusable(site, z):
            return _FusedAdd.apply(z, self.streams, site.scales(self.step, self.total_steps)[Draw.ADD_NORMAL], True)
        return act(self.perturb("pre_activation", z))

    def _fusable(self, site: _PackPlacement, x: torch.Tensor) -> bool:
        # Only additive Gaussian noise draws what the fused kernel draws.
        return all(d in (None, Draw.ADD_NORMAL) for d in site.draws) and getattr(
            self.streams, "can_add_normal", lambda _: False
        )(x)

    def perturb_grads(self, grads: Sequence[torch.Tensor]) -> None:
        """Adds gradient noise in place, parameter by parameter in their canonical order."""
        site = self.sites.get("gradients")
        if site is None:
            return
        for g in grads:
            g.copy_(self.perturb("gradients", g))

    def check_targets(self, n_classes: int) -> None:
        """Raises if a member's targets noise does not fit the task (once per pack, not per step)."""
        for spec in self.sites.get("targets", _PackPlacement(())).specs:
            if spec is not None:
                check_target_kind(spec.kind, n_classes)

    def noisy_targets(self, y: torch.Tensor, n_classes: int) -> torch.Tensor:
        """Targets ``y: (members, batch)`` with label flips (classification) or additive/multiplicative noise."""
        site = self.sites.get("targets")
        if site is None:
            return y
        if n_classes == 0:
            return self.perturb("targets", y)
        y = y.clone()
        flipping = [k for k, spec in enumerate(site.specs) if spec is not None and spec.std > 0]
        rand_many = getattr(self.streams, "rand_many", None)
        if rand_many is not None and flipping:  # every member's flips in one draw (Philox streams)
            rates = [site.specs[k].std_at(self.step, self.total_steps) for k in flipping]
            rate = torch.tensor(rates, dtype=torch.float32, device=y.device).view(-1, *([1] * (y.dim() - 1)))
            y[flipping] = flip_labels(y[flipping], rate, n_classes, lambda shape: rand_many(flipping, shape[1:]))
            return y
        for k in flipping:
            y[k] = flip_labels(
                y[k],
                site.specs[k].std_at(self.step, self.total_steps),
                n_classes,
                lambda shape, k=k: self.streams.rand(k, shape),
            )
        return y


class _FusedAdd(torch.autograd.Function):
    """``f(x + σε)`` (f = identity or ReLU) drawn and applied by the streams in one pass over memory."""

    @staticmethod
    def forward(ctx, x, streams, scale, relu):
        y = streams.add_normal(x.detach(), scale, relu)
        ctx.relu = relu
        if relu:
            ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        if ctx.relu:
            (y,) = ctx.saved_tensors
            grad = torch.ops.aten.threshold_backward(grad, y, 0.0)  # what torch.relu's backward computes
        return grad, None, None, None


def _by_draw(scales: dict[Draw, list[float]]) -> tuple[list[float], ...]:
    """The members' sizes of the draws a site's tensor takes, in the order they are drawn and applied:
    additive normal, additive uniform (one buffer for both), multiplicative, dropout."""
    return tuple(scales[d] for d in (Draw.ADD_NORMAL, Draw.ADD_UNIFORM, Draw.MUL_NORMAL, Draw.DROP))


def _buffer(like: torch.Tensor, every_member_draws: bool, fill: float = 0.0) -> torch.Tensor:
    """A contiguous draw buffer shaped like ``like`` (a strided view would receive draws in memory
    order, not in the member's logical order); filled with ``fill`` when some members draw nothing."""
    if every_member_draws:
        return torch.empty(like.shape, dtype=like.dtype, device=like.device)
    return torch.full(like.shape, fill, dtype=like.dtype, device=like.device)


def flip_labels(y: torch.Tensor, p: float | torch.Tensor, n_classes: int, rand) -> torch.Tensor:
    """Replaces each label by a different class, chosen uniformly, with probability ``p``.

    ``rand(shape)`` draws uniforms in [0, 1) from the caller's stream. ``p``: a number, or float32
    probabilities that broadcast against ``y`` (one per member of a pack, ``(members, 1)``): the
    comparison is made in float32 either way.
    """
    flip = rand(y.shape) < p
    if n_classes == 2:
        return torch.where(flip, 1 - y, y)
    offset = 1 + (rand(y.shape) * (n_classes - 1)).long().clamp_(max=n_classes - 2)
    return torch.where(flip, (y + offset) % n_classes, y)
