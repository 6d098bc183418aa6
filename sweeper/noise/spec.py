"""What a noise setting is: a kind of noise, at a placement, of a size, on a schedule."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sweeper.noise.kinds import KINDS, NOISE_KINDS, noise_kind

if TYPE_CHECKING:  # noise stays below tasks: the rules read a task's problem and scaling, nothing more
    from sweeper.tasks.spec import TaskSpec

#: Where noise can go, in the order a training step meets them.
PLACEMENTS = ("input", "pre_activation", "post_activation", "weights", "gradients", "targets")
#: ``none`` is the baseline: no noise anywhere.
BASELINE = "none"
#: ``relative`` scales additive noise by each feature's spread in the data: only data has features.
RELATIVE_PLACEMENTS = ("input", "targets")
SCHEDULES = ("constant", "annealed", "linear", "cosine")
#: Schedules that decay over the whole run to ``std_min``: they need the run's number of steps.
DECAYS = ("linear", "cosine")
#: Neelakantan et al. 2015, "Adding Gradient Noise Improves Learning for Very Deep Networks", eq. (1).
DEFAULT_GAMMA = 0.55
#: Sweeps stored by this version or before ran ``annealed`` as std / (1 + t)^γ (see ``old_annealing``).
LAST_OLD_ANNEALING_VERSION = (0, 1, 0)


@dataclass(frozen=True, order=True)
class NoiseSpec:
    """Noise at one placement: ``kind`` noise (``sweeper.noise.kinds``) of size ``std`` (a probability for
    ``flip`` and ``dropout``: the kind's record says which sizes it takes).

    The size at optimizer step t (0-based) of a run of T steps, with σ = ``std``:

    * ``constant``: σ.
    * ``annealed``: Neelakantan et al. 2015 (arXiv:1511.06807, eq. 1) anneal the *variance*,
      σ_t² = η / (1 + t)^γ with γ = 0.55; with η = σ² the size starts at σ and falls as
      σ_t = σ · (1 + t)^(−γ/2).
    * ``linear``: from σ to ``std_min`` in a straight line, σ_min + (σ − σ_min)(1 − t/T).
    * ``cosine``: σ_min + (σ − σ_min)(1 + cos(π t/T)) / 2, the cosine annealing of Loshchilov & Hutter
      2017 (SGDR) applied to the noise size.

    ``relative`` (input and targets, additive kinds): σ is in units of each feature's standard
    deviation on the training part, not in the data's own units.
    """

    placement: str
    kind: str = "gaussian"
    std: float = 0.0
    schedule: str = "constant"
    gamma: float = DEFAULT_GAMMA
    std_min: float = 0.0
    relative: bool = False

    def __post_init__(self) -> None:
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement {self.placement!r} is not one of {', '.join(PLACEMENTS)}")
        kind = noise_kind(self.kind)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        if not self.std >= 0.0:
            raise ValueError(f"std must be >= 0, got {self.std!r}")
        # Which task it goes to is not known here: the kind must fit this placement of some task.
        if not kind.fits_some_task(self.placement):
            raise ValueError(f"kind {self.kind!r} applies {kind.where}, not {self.placement!r}")
        too_large = out_of_range(self.kind, self.std)
        if too_large:
            raise ValueError(too_large)
        if not self.gamma >= 0.0:
            raise ValueError(f"gamma must be >= 0, got {self.gamma!r}")
        if not 0.0 <= self.std_min <= self.std and self.schedule in DECAYS:
            raise ValueError(
                f"std_min, where the decay ends, must be in [0, std] = [0, {self.std:g}], got {self.std_min!r}"
            )
        if self.std_min != 0.0 and self.schedule not in DECAYS:
            raise ValueError(f"std_min applies only to the schedules {', '.join(DECAYS)}")
        if self.relative and not relative_fits(self.placement, self.kind):
            kinds, places = ", ".join(relative_kinds()), ", ".join(RELATIVE_PLACEMENTS)
            raise ValueError(f"relative applies to kinds {kinds} at placements {places}")

    def std_at(self, step: int, total_steps: int | None = None) -> float:
        """The noise size at optimizer step ``step`` (0-based) of a run of ``total_steps`` steps.

        A scheduled size is computed in float64 and rounded to float32, the precision every engine draws
        in, so the fused C engine, the torch program and the layers use the very same number
        (``constant`` returns ``std`` itself, which every engine rounds to the same float32).
        """
        if self.schedule == "constant":
            return self.std
        t = float(step)
        if self.schedule == "annealed":
            size = self.std / (1.0 + t) ** (self.gamma / 2.0)
        else:
            if total_steps is None or total_steps < 1:
                raise ValueError(f"schedule {self.schedule!r} needs the run's number of optimizer steps (total_steps)")
            frac = min(t / total_steps, 1.0)
            if self.schedule == "linear":
                decay = 1.0 - frac
            else:
                decay = 0.5 * (1.0 + math.cos(math.pi * frac))
            size = self.std_min + (self.std - self.std_min) * decay
        return float(np.float32(size))

    def as_dict(self) -> dict:
        d = {"placement": self.placement, "kind": self.kind, "std": self.std, "schedule": self.schedule}
        if self.schedule == "annealed":
            d["gamma"] = self.gamma
        if self.schedule in DECAYS:
            d["std_min"] = self.std_min
        if self.relative:
            d["relative"] = True
        return d


def sizes(spec: NoiseSpec, first_step: int, steps: int, total_steps: int | None = None) -> np.ndarray:
    """``(steps,)`` float32: the size of ``spec`` at optimizer steps ``first_step`` .. ``first_step + steps - 1``.

    The one table every engine reads (``std_at`` per step), so they agree bit for bit by construction.
    """
    if spec.schedule == "constant":
        return np.full(steps, spec.std, dtype=np.float32)
    return np.array([spec.std_at(t, total_steps) for t in range(first_step, first_step + steps)], dtype=np.float32)


def keep_scale(p: float) -> float:
    """The factor 1 / (1 − p) that kept units get under dropout of rate ``p``, as the float32 every engine
    multiplies by (computed in float64 from the float32 rate, then rounded)."""
    p32 = float(np.float32(p))
    return float(np.float32(1.0 / (1.0 - p32)))


def old_annealing(sweeper_version: str | None) -> bool:
    """Whether a sweep recorded with ``sweeper_version`` ran ``annealed`` as std / (1 + t)^γ.

    sweeper 0.1.0 and before (and sweeps whose version was not recorded, which predate recording it)
    annealed the standard deviation with γ instead of the variance as Neelakantan et al. do.
    """
    if sweeper_version is None:
        return True
    release = re.match(r"\s*v?(\d+(?:\.\d+)*)", sweeper_version)
    if release is None:
        return True
    parts = tuple(int(p) for p in release.group(1).split("."))
    parts += (0,) * (3 - len(parts))
    return parts <= LAST_OLD_ANNEALING_VERSION


#: A configuration is the noise at every placement it uses; the empty tuple is the baseline.
NoiseConfig = tuple[NoiseSpec, ...]


def make_config(specs) -> NoiseConfig:
    """A canonical configuration: one spec per placement, in placement order (so equal configs compare equal)."""
    specs = tuple(specs)
    placements = [s.placement for s in specs]
    if len(set(placements)) != len(placements):
        raise ValueError(f"a placement appears twice in one configuration: {placements}")
    return tuple(sorted(specs, key=lambda s: PLACEMENTS.index(s.placement)))


# --- which kind fits where: the one place that says it -------------------------------------------------


def fits(placement: str, kind: str, classification: bool) -> bool:
    """Whether ``kind`` noise can go at ``placement`` of a classification task (else a regression task):
    the kind's record says (``NoiseKind.fits``). Class labels take flips only, and flips take nothing but
    class labels; dropout drops units of the forward pass; every other kind fits every other site."""
    return noise_kind(kind).fits(placement, classification)


def probability_kinds() -> tuple[str, ...]:
    """The kinds whose size is a probability (``NoiseKind.probability``), in registry order."""
    return tuple(k.name for k in NOISE_KINDS.values() if k.probability)


def relative_kinds() -> tuple[str, ...]:
    """The kinds whose size can be relative (``NoiseKind.relative``), in registry order."""
    return tuple(k.name for k in NOISE_KINDS.values() if k.relative)


def relative_fits(placement: str, kind: str) -> bool:
    """Whether ``relative`` (σ in units of each feature's standard deviation) applies to ``kind`` at
    ``placement``: kinds that can be relative, on the sites that hold data features."""
    return placement in RELATIVE_PLACEMENTS and noise_kind(kind).relative


#: The search space's words for ``relative_fits``.
RELATIVE_RULE = (
    f"relative noise applies to kinds {' and '.join(relative_kinds())} at placements "
    f"{' and '.join(RELATIVE_PLACEMENTS)} (σ in units of each feature's standard deviation)"
)


def check_target_kind(kind: str, n_classes: int) -> None:
    """Class labels take flips only; regression targets (``n_classes == 0``) take the other kinds."""
    classification = n_classes > 0
    if not fits("targets", kind, classification):
        allowed = ", ".join(k for k in KINDS if fits("targets", k, classification))
        raise ValueError(f"targets noise of kind {kind!r} does not fit this task; allowed: {allowed}")


def default_kind(placement: str, tasks: Mapping[str, TaskSpec]) -> str:
    """The first kind that fits ``placement`` of every one of ``tasks``: ``flip`` for the targets of
    classification tasks, ``gaussian`` everywhere else (and where none fits them all)."""
    problems = {t.problem != "regression" for t in tasks.values()}
    for kind in NOISE_KINDS.values():
        if all(kind.fits(placement, classification) for classification in problems):
            return kind.name
    return KINDS[0]


def out_of_range(kind: str, std: float) -> str | None:
    """Why ``std`` (>= 0) is not a size ``kind`` takes (``kind 'flip' with std 1.5: std is a flip
    probability that must be in [0, 1]``), or None."""
    record = noise_kind(kind)
    return None if record.allows(std) else f"kind {kind!r} with std {std:g}: {record.size_rule}"


def unfit_site(placement: str, kind: str, tasks: Mapping[str, TaskSpec]) -> str | None:
    """Why ``kind`` noise at ``placement`` cannot be used on every one of ``tasks`` (name -> task), or None."""
    record = noise_kind(kind)
    if not record.fits_some_task(placement):  # the same for every task
        return f"kind {kind!r} on placement {placement!r}: {kind} applies {record.where}"
    for name, task in tasks.items():
        classification = task.problem != "regression"
        if record.fits(placement, classification):
            continue
        if classification:
            labels = " or ".join(f"{k.name!r}" for k in NOISE_KINDS.values() if k.class_labels)
            return (
                f"placement {placement!r} with kind {kind!r}: the targets of classification task {name!r} "
                f"take only kind {labels}"
            )
        return f"kind {kind!r} on regression task {name!r}: {kind} applies {record.where}"
    return None


def relative_notes(placements: Iterable[str], tasks: Mapping[str, TaskSpec]) -> tuple[str, ...]:
    """Where ``relative: true`` at ``placements`` changes nothing: the task's scaling already gives the
    site's features standard deviation 1 on the training part."""
    placements = set(placements)
    notes = []
    for name, task in tasks.items():
        if "input" in placements and task.scaling == "standard":
            notes.append(
                f"relative input noise changes nothing on task {name!r}: its scaling is standard, so "
                "every input feature already has standard deviation 1 on the training part"
            )
        if "targets" in placements and task.problem == "regression" and task.scaling != "none":
            notes.append(
                f"relative targets noise changes nothing on task {name!r}: with scaling "
                f"{task.scaling} its regression targets are standardized on the training part"
            )
    return tuple(notes)


def config_label(config: NoiseConfig) -> str:
    """A short human label: ``none``, ``pre_activation gaussian σ=0.1``, ``input+weights ...``."""
    if not config:
        return BASELINE
    parts = []
    for s in config:
        size = f"p={s.std:g}" if noise_kind(s.kind).probability else f"σ={s.std:g}"
        if s.relative:
            size += "×sd"
        sched = ""
        if s.schedule == "annealed":
            sched = f" annealed(γ={s.gamma:g})"
        elif s.schedule in DECAYS:
            sched = f" {s.schedule}(→{s.std_min:g})"
        parts.append(f"{s.placement} {s.kind} {size}{sched}")
    return " + ".join(parts)
