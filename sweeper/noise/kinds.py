"""The noise kinds: one record each, in one registry that everything else reads.

A kind says what its size means and which sizes it takes, where it fits (placements, and whether it goes
on class labels), whether its size can be relative to the data's spread, how it is drawn, and the name
``engine/_c/mlp.c`` exports it under. The search space's checks, ``NoiseSpec``, the pack, the layers, the
Optuna adapter and the fused engine read these records; a kind added here (with an existing draw) needs
nothing more in Python, only its line in mlp.c's ``KIND_LIST`` and its branch there.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class Draw(enum.Enum):
    """How a kind's noise is drawn from a member's stream and applied: the pack, the layers and mlp.c
    implement each draw once, and dispatch on it (a new draw is new code in all three)."""

    ADD_NORMAL = "x + σε, ε ~ N(0, 1)"
    ADD_UNIFORM = "x + u, u ~ U(−√3σ, √3σ) (standard deviation σ)"
    MUL_NORMAL = "x·(1 + σε), ε ~ N(0, 1)"
    DROP = "x·m/(1 − p), m ~ Bernoulli(1 − p): a unit is dropped where its uniform draw is below p"
    FLIP = "each class label replaced by another class, chosen uniformly, with probability p"

    @property
    def additive(self) -> bool:
        """Whether the draw is added to the value (so it can be scaled by the value's spread)."""
        return self in (Draw.ADD_NORMAL, Draw.ADD_UNIFORM)


@dataclass(frozen=True)
class NoiseKind:
    """One kind of noise, everything sweeper needs to know about it."""

    #: The name a search-space file, a ``NoiseSpec`` and the store use.
    name: str
    #: What ``std`` is, as a noun phrase the messages use ("a standard deviation", "a flip probability").
    size: str
    #: How the noise is drawn and applied.
    draw: Draw
    #: The name mlp.c's ``KIND_LIST`` exports it under (``sweeper_mlp_enums``), looked up by ``engine/fused.py``.
    kernel: str
    #: Whether ``std`` is a probability (shown as p, and a layer's argument is ``p``), not a standard deviation (σ).
    probability: bool = False
    #: The largest size it takes, and whether that size itself is allowed (sizes start at 0).
    high: float = math.inf
    high_allowed: bool = True
    #: The placements it fits; None: every placement.
    placements: tuple[str, ...] | None = None
    #: Whether ``relative: true`` (σ in units of each feature's standard deviation) applies to it.
    relative: bool = False
    #: What its sites are called, added to the message that says where it applies.
    placement_note: str = ""

    def __post_init__(self) -> None:
        if self.relative and not self.draw.additive:
            raise ValueError(f"noise kind {self.name!r}: relative noise scales an additive draw only")
        if self.probability and not self.high <= 1.0:
            raise ValueError(f"noise kind {self.name!r}: a probability is at most 1")

    @property
    def class_labels(self) -> bool:
        """At ``targets``: whether it goes on class labels (flips; classification only) or on regression
        targets (every other draw)."""
        return self.draw is Draw.FLIP

    def fits(self, placement: str, classification: bool) -> bool:
        """Whether it can go at ``placement`` of a classification task (else a regression task)."""
        if self.placements is not None and placement not in self.placements:
            return False
        return placement != "targets" or self.class_labels == classification

    def fits_some_task(self, placement: str) -> bool:
        """Whether it can go at ``placement`` of a classification or of a regression task."""
        return self.fits(placement, True) or self.fits(placement, False)

    def allows(self, std: float) -> bool:
        """Whether ``std`` (already known to be >= 0) is a size it takes."""
        return std <= self.high if self.high_allowed else std < self.high

    @property
    def size_rule(self) -> str:
        """What its sizes are, in the words of every message that refuses one: ``std is a flip probability
        that must be in [0, 1]``."""
        if math.isinf(self.high):
            return f"std is {self.size} that must be >= 0"
        return f"std is {self.size} that must be in [0, {self.high:g}{']' if self.high_allowed else ')'}"

    @property
    def where(self) -> str:
        """Where it applies, in words: ``to placements input, weights`` or ``only to placement 'targets' of
        classification tasks``."""
        if self.placements is None:
            sites = "every placement"
        elif len(self.placements) == 1:
            sites = f"placement {self.placements[0]!r}"
        else:
            sites = f"placements {', '.join(self.placements)}"
        if self.class_labels:
            return f"only to {sites} of classification tasks{self.placement_note}"
        return f"to {sites}{self.placement_note}"


_STD = "a standard deviation"

#: Every kind, in the order the space lists them. Where a file names no kind, ``default_kind`` takes the
#: first that fits: a new kind goes after ``gaussian`` (and after ``flip``, if it goes on class labels), so
#: that such files keep their configurations.
NOISE_KINDS: dict[str, NoiseKind] = {
    k.name: k
    for k in (
        NoiseKind("gaussian", _STD, Draw.ADD_NORMAL, kernel="gaussian", relative=True),
        NoiseKind("multiplicative", _STD, Draw.MUL_NORMAL, kernel="multiplicative"),
        NoiseKind("uniform", _STD, Draw.ADD_UNIFORM, kernel="uniform", relative=True),
        NoiseKind(
            "flip",
            "a flip probability",
            Draw.FLIP,
            kernel="flip",
            probability=True,
            high=1.0,
            placements=("targets",),
        ),
        NoiseKind(
            "dropout",
            "the dropout rate, a probability",
            Draw.DROP,
            kernel="dropout",
            probability=True,
            high=1.0,
            high_allowed=False,
            # dropout drops units of the forward pass, and weights; gradients and targets have none
            placements=("input", "pre_activation", "post_activation", "weights"),
            placement_note=" (at weights it is DropConnect)",
        ),
    )
}
#: The kinds' names, in registry order.
KINDS = tuple(NOISE_KINDS)


def noise_kind(name: str) -> NoiseKind:
    """The record of kind ``name``; a ValueError naming the kinds there are if there is none."""
    try:
        return NOISE_KINDS[name]
    except KeyError:
        raise ValueError(f"kind {name!r} is not one of {', '.join(KINDS)}") from None
