"""What a noise setting is: a kind of noise, at a placement, of a size, on a schedule."""

from __future__ import annotations

from dataclasses import dataclass

#: Where noise can go, in the order a training step meets them.
PLACEMENTS = ("input", "pre_activation", "post_activation", "weights", "gradients", "targets")
#: ``none`` is the baseline: no noise anywhere.
BASELINE = "none"
#: ``gaussian``: x + σε; ``multiplicative``: x·(1 + σε) ("Gaussian dropout"); ``uniform``: x + u with
#: u uniform of standard deviation σ; ``flip``: each class label is replaced by another with probability σ.
KINDS = ("gaussian", "multiplicative", "uniform", "flip")
SCHEDULES = ("constant", "annealed")
#: Neelakantan et al. 2015, "Adding Gradient Noise Improves Learning for Very Deep Networks".
DEFAULT_GAMMA = 0.55


@dataclass(frozen=True, order=True)
class NoiseSpec:
    """Noise at one placement: ``kind`` noise of size ``std`` (a probability for ``flip``).

    With ``schedule='annealed'`` the size at optimizer step t is ``std / (1 + t) ** gamma``.
    """

    placement: str
    kind: str = "gaussian"
    std: float = 0.0
    schedule: str = "constant"
    gamma: float = DEFAULT_GAMMA

    def __post_init__(self) -> None:
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement {self.placement!r} is not one of {', '.join(PLACEMENTS)}")
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        if not self.std >= 0.0:
            raise ValueError(f"std must be >= 0, got {self.std!r}")
        if self.kind == "flip" and (self.placement != "targets" or self.std > 1.0):
            raise ValueError("kind 'flip' applies to placement 'targets' with a probability std in [0, 1]")
        if not self.gamma >= 0.0:
            raise ValueError(f"gamma must be >= 0, got {self.gamma!r}")

    def std_at(self, step: int) -> float:
        """The noise size at optimizer step ``step`` (0-based)."""
        if self.schedule == "annealed":
            return self.std / (1.0 + step) ** self.gamma
        return self.std

    def as_dict(self) -> dict:
        d = {"placement": self.placement, "kind": self.kind, "std": self.std, "schedule": self.schedule}
        if self.schedule == "annealed":
            d["gamma"] = self.gamma
        return d


#: A configuration is the noise at every placement it uses; the empty tuple is the baseline.
NoiseConfig = tuple[NoiseSpec, ...]


def make_config(specs) -> NoiseConfig:
    """A canonical configuration: one spec per placement, in placement order (so equal configs compare equal)."""
    specs = tuple(specs)
    placements = [s.placement for s in specs]
    if len(set(placements)) != len(placements):
        raise ValueError(f"a placement appears twice in one configuration: {placements}")
    return tuple(sorted(specs, key=lambda s: PLACEMENTS.index(s.placement)))


def check_target_kind(kind: str, n_classes: int) -> None:
    """Class labels take flips only; regression targets (``n_classes == 0``) take the other kinds."""
    if (kind == "flip") != (n_classes > 0):
        allowed = "flip" if n_classes > 0 else "gaussian, multiplicative, uniform"
        raise ValueError(f"targets noise of kind {kind!r} does not fit this task; allowed: {allowed}")


def config_label(config: NoiseConfig) -> str:
    """A short human label: ``none``, ``pre_activation gaussian σ=0.1``, ``input+weights ...``."""
    if not config:
        return BASELINE
    parts = []
    for s in config:
        size = f"p={s.std:g}" if s.kind == "flip" else f"σ={s.std:g}"
        sched = f" annealed(γ={s.gamma:g})" if s.schedule == "annealed" else ""
        parts.append(f"{s.placement} {s.kind} {size}{sched}")
    return " + ".join(parts)
