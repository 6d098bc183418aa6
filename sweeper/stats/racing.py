"""A raced sweep's decisions: which configurations get more repeats, why each stopped, and the verdicts a
raced or extended sweep reports: a raced sweep's from the group-sequential signed-rank test over its planned
looks (``sweeper.stats.group_sequential``), a fixed sweep extended after its report was read from the
always-valid test (``sweeper.stats.sequential``), which needs no planned looks.

Every decision is a pure function of the stored runs: :func:`race` replays the race from its first round
on the runs it is given, so a sweep resumed after a kill, or a raced sweep whose maximum was raised,
goes on exactly where the stored runs say it stands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sweeper.stats import group_sequential as gs
from sweeper.stats import sequential as sq
from sweeper.stats.statistics import holm

#: The level of the race's decisions and of the verdicts it stores: the report's default
#: (``sweeper.stats.comparisons.ALPHA``).
ALPHA = 0.05
#: Why a configuration stopped, in the words the report and Optuna's user attributes show.
STOPS = {
    "better": "better than the baseline, behind no other",
    "behind": "better than the baseline, behind the leader",
    "inseparable": "better than the baseline; best: cannot be separated from the leader by the maximum",
    "worse": "worse than the baseline",
    "equivalent": "equivalent to the baseline within min_effect",
    "futile": f"futile: conditional power under {sq.FUTILITY_POWER:.0%} (stochastic curtailment)",
    "max": "at the maximum repeats",
}
#: The name of each test a verdict can come from, as the report's rows say it.
TESTS = {
    "fixed": "signed-rank, exact",
    "sequential": "always-valid normal mixture",
    "group": "group-sequential signed-rank",
}


@dataclass(frozen=True)
class Plan:
    """What a sequential test and a race need: the first round's repeats (cap and rho come from them),
    the first planned maximum (rho is tuned to it, and a race's looks are spent up to it: fixed for good,
    so an extension keeps one test), the maximum and step of a race (None: not raced), and the
    equivalence margin."""

    first: int
    tuned_max: int
    maximum: int | None = None
    step: int | None = None
    min_effect: float | None = None

    @property
    def raced(self) -> bool:
        return self.step is not None

    @property
    def test(self) -> str:
        """The name of the test this plan's verdicts come from (:data:`TESTS`)."""
        return TESTS["group"] if self.raced else TESTS["sequential"]


def plan_of(context: dict | None) -> Plan | None:
    """The sequential plan of a stored sweep from its context (``sweeper.driver.context``), None for a
    sweep of fixed repeats never extended: its verdicts keep the exact signed-rank test.

    ``context``: the stored context, or anything with its ``racing`` and ``history`` keys."""
    if not context:
        return None
    history = context.get("history") or []
    racing = context.get("racing")
    planned = history[0].get("repeats") if history else context.get("repeats")
    if racing:
        first_max = planned or racing["max"]
        return Plan(racing["min"], first_max, racing["max"], racing["step"], racing.get("min_effect"))
    if any(step.get("event") == "extended" for step in history) and planned:
        return Plan(planned, planned)
    return None


def nothing_beats(verdicts: list[str], runs: int, fixed: int, test: str = TESTS["group"]) -> str | None:
    """The sentence a raced sweep with no configuration better than the baseline ends on (None if one is):
    ``verdicts`` of its comparisons, ``runs`` it spent, ``fixed`` a fixed sweep of its maximum would."""
    if "better" in verdicts:
        return None
    return (
        f"Nothing in this grid beats no noise: no configuration is reliably better than the baseline after "
        f"{runs} of the {fixed} runs a fixed sweep would spend ({test} test)."
    )


@dataclass(frozen=True)
class Race:
    """Where a race stands: the repeats each configuration should have now (``targets: (n_configs,)``,
    the baseline as many as the most-run configuration), why each stopped (None while open), the rounds
    decided, and whether the race is over."""

    targets: np.ndarray
    stopped: tuple[str | None, ...]
    rounds: int
    finished: bool

    @property
    def open(self) -> int:
        return sum(reason is None for reason in self.stopped) - 1  # the baseline is never stopped


def differences(values: np.ndarray, present: np.ndarray, base: int, *, higher_is_better: bool) -> np.ndarray:
    """Each configuration's oriented difference from the baseline at each repeat, averaged over tasks.

    ``values, present: (n_tasks, n_repeats, n_configs)``: the metric (NaN where the run diverged) and
    whether the run exists. Returns ``(n_configs, n_repeats)``: positive where the configuration did
    better; -inf where only it diverged (on a task), +inf where only the baseline did, NaN where a
    pair is missing on some task. The baseline's own row is 0 where it ran.
    """
    x = np.asarray(values, dtype=float) * (1.0 if higher_is_better else -1.0)
    gone = np.isnan(x)
    b, b_gone = x[..., [base]], gone[..., [base]]
    with np.errstate(invalid="ignore"):
        d = np.where(gone | b_gone, 0.0, x - b)
    d = np.where(gone & ~b_gone, -np.inf, np.where(b_gone & ~gone, np.inf, d))
    d = np.where(present & present[..., [base]], d, np.nan)
    with np.errstate(invalid="ignore"):
        mean = d.mean(axis=0)  # (n_repeats, n_configs)
    # +inf on one task and -inf on another: each diverged once, a tie.
    mixed = np.isnan(mean) & ~np.isnan(d).any(axis=0)
    return np.where(mixed, 0.0, mean).T


def test(d: np.ndarray, plan: Plan, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Each comparison's sequential p-value and direction from its differences ``d: (k, n)`` in repeat order
    (NaN after its last repeat): a raced sweep's group-sequential signed-rank test over its planned looks,
    an extended one's always-valid test (tuned to ``alpha``). Returns ``p, sign: (k,)``."""
    if plan.raced:
        return gs.test(d, plan.first, plan.step, plan.tuned_max)
    return sq.sequential_test(d, plan.first, plan.tuned_max, alpha)


def futility(d: np.ndarray, plan: Plan, level: float) -> np.ndarray:
    """The chance each open comparison ``d: (k, n)`` would still be decided at ``level`` at a later look of
    the race if its trend went on (stochastic curtailment): the largest over the looks to come of the
    chance that the signed-rank p there is below ``level`` times that look's weight. (The largest, not
    the last look's: a maximum raised past the planned one adds looks of small weight, and a race's
    decisions must not change for them.)"""
    n = int((~np.isnan(d)).sum(axis=1).max()) if d.size else 0
    points = gs.looks(plan.first, plan.step, plan.tuned_max, plan.maximum)
    w = gs.weights(points, plan.tuned_max, plan.step)
    later = [(m, weight) for m, weight in zip(points.tolist(), w) if m > n] or [(points[-1], w[-1])]
    return np.max([gs.conditional_power(d, m, level * weight) for m, weight in later], axis=0)


def verdicts(
    d: np.ndarray, plan: Plan, family: int, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The sequential test's verdicts of k comparisons with the baseline, Holm over the ``family``.

    ``d: (k, n)`` oriented differences in repeat order (NaN after a comparison's last repeat);
    ``family``: the planned comparisons (those without runs count as p = 1). Returns ``p, p_adjusted,
    sign: (k,)`` and the verdicts: ``better``/``worse`` where the adjusted p is below ``alpha``
    (direction: the test's own at the look that decided), ``equivalent`` where ``plan.min_effect``
    is given and the always-valid confidence sequence lies inside (-min_effect, +min_effect), else
    ``no_difference``.
    """
    d = np.asarray(d, dtype=float)
    p, sign = test(d, plan, alpha)
    unrun = np.ones(max(0, family - len(p)))
    adjusted = holm(np.concatenate([p, unrun]))[: len(p)]
    said = np.where((adjusted < alpha) & (sign > 0), "better", np.where((adjusted < alpha) & (sign < 0), "worse", ""))
    if plan.min_effect:
        undecided = np.flatnonzero(said == "")
        if undecided.size:
            close = sq.equivalent(d[undecided], plan.min_effect, plan.first, plan.tuned_max, alpha)
            said[undecided[close]] = "equivalent"
    return p, adjusted, sign, [v or "no_difference" for v in said.tolist()]


def race(d: np.ndarray, base: int, plan: Plan, family: int, alpha: float) -> Race:
    """The race replayed on the differences stored so far: who runs next, who stopped and why.

    ``d: (n_configs, n_repeats)`` from :func:`differences` (the validation part: the selection metric),
    NaN where a pair is missing. Round 1 gives every configuration ``plan.first`` repeats; each later
    round adds ``plan.step`` (up to ``plan.maximum``) to the configurations still open. After a round a
    configuration stops when its answer against the baseline is settled (better or worse after Holm over
    the ``family``; equivalent; futile: conditional power under 10% at the Holm level it would at best
    need, alpha over the open comparisons; never the open configuration of the highest mean) and it is no
    contender for best: one not better than the baseline, one behind the leader (the better
    configuration of the highest mean difference) by the same sequential test on their own paired
    differences, or one inseparable from it (that comparison futile by the same rule, :func:`_best_race`).
    Better ones neither behind nor inseparable keep going while two or more remain. The race ends when every
    configuration stopped or at the maximum; the baseline runs as far as the furthest configuration, so
    it stops with the last one. A round whose runs are not all stored yet is where the race stands: its
    targets are what to train.
    """
    d = np.asarray(d, dtype=float)
    k = d.shape[0]
    comps = np.array([c for c in range(k) if c != base], dtype=int)
    reps = np.full(k, plan.first)
    stopped: list[str | None] = [None] * k
    n, rounds = plan.first, 0
    while True:
        live = np.array([c for c in comps if stopped[c] is None], dtype=int)
        if live.size == 0 or d.shape[1] < n or np.isnan(d[live, :n]).any():
            break  # this round's runs are not all stored: it is what to train
        rounds += 1
        seen = np.where(np.arange(d.shape[1])[None, :] < reps[comps][:, None], d[comps], np.nan)[:, :n]
        _, _, sign, said = verdicts(seen, plan, family, alpha)
        said = dict(zip(comps.tolist(), said))
        index = {c: i for i, c in enumerate(comps.tolist())}
        open_now = [c for c in live.tolist() if said[c] not in ("better", "worse", "equivalent")]
        if open_now and n < plan.maximum:  # at the maximum an open one stops for that reason
            level = alpha / max(len(open_now), 1)
            power = futility(seen[[index[c] for c in open_now]], plan, level)
            # The open configuration of the highest mean is never futile: it may be the best, and a best
            # named on five repeats would be the winner's curse (its mean, not its effect, put it first).
            leader = _leader(d, live.tolist(), n)
            for c, chance in zip(open_now, power):
                if chance < sq.FUTILITY_POWER and c != leader:
                    said[c] = "futile"
        better = [c for c in live.tolist() if said[c] == "better"]
        for c in live.tolist():
            if said[c] in ("worse", "equivalent", "futile"):
                stopped[c] = said[c]
        contenders, behind, inseparable = _best_race(d, better, n, plan, alpha)
        for c in behind:
            stopped[c] = "behind"
        for c in inseparable:
            stopped[c] = "inseparable"
        if len(contenders) == 1 and all(said[c] != "no_difference" for c in live.tolist()):
            stopped[contenders[0]] = "better"
        if n >= plan.maximum:
            for c in comps.tolist():
                if stopped[c] is None:
                    stopped[c] = "max"
            break
        n = min(n + plan.step, plan.maximum)
        for c in comps.tolist():
            if stopped[c] is None:
                reps[c] = n
    reps[base] = reps[comps].max() if comps.size else plan.first
    stopped[base] = None
    finished = all(stopped[c] is not None for c in comps.tolist())
    return Race(reps, tuple(stopped), rounds, finished)


def _leader(d: np.ndarray, candidates: list[int], n: int) -> int | None:
    """The candidate of the highest mean finite difference over its first ``n`` repeats (None if none)."""
    if not candidates:
        return None
    rows = d[candidates, :n]
    finite = np.isfinite(rows)
    means = np.where(finite, rows, 0.0).sum(axis=1) / np.maximum(finite.sum(axis=1), 1)
    means = np.where(finite.any(axis=1), means, -np.inf)
    return candidates[int(np.argmax(means))]


def _best_race(
    d: np.ndarray, better: list[int], n: int, plan: Plan, alpha: float
) -> tuple[list[int], list[int], list[int]]:
    """The race for best among the ``better`` configurations: who contends, who is behind, who is inseparable.

    The leader is the better configuration of the highest mean difference over its first ``n`` repeats.
    Another is *behind* once the sequential test on its paired differences with the leader says the
    leader is better (p < ``alpha``), and *inseparable* once that comparison is futile (before the
    maximum): its conditional power to be decided by ``plan.maximum`` at ``alpha`` is under 10%, the
    rule that stops an open comparison with the baseline, applied to the leader-minus-contender
    differences. By that projection a fixed sweep of the maximum would not tell the pair apart either,
    so the leader is the choice. Stopping never changes a verdict against the baseline (those are
    already decided), so validity is untouched.
    Returns ``contenders`` (the leader first), ``behind`` and ``inseparable``.
    """
    if len(better) < 2:
        return better, [], []
    leader = _leader(d, better, n)
    others = [c for c in better if c != leader]
    with np.errstate(invalid="ignore"):
        gap = d[others, :n] - d[[leader], :n]  # positive where the other beat the leader
    gap = np.where(np.isnan(gap) & ~np.isnan(d[others, :n]), 0.0, gap)  # both diverged: a tie
    p, sign = test(gap, plan, alpha)
    behind = (p < alpha) & (sign < 0)
    apart = np.zeros(len(others), dtype=bool)  # inseparable: futile before the maximum
    if n < plan.maximum:
        power = futility(gap, plan, alpha)
        apart = ~behind & (power < sq.FUTILITY_POWER)
    contenders = [leader, *(c for c, b, a in zip(others, behind, apart) if not (b or a))]
    return contenders, [c for c, b in zip(others, behind) if b], [c for c, a in zip(others, apart) if a]
