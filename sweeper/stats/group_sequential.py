"""The group-sequential test a raced sweep uses: the fixed sweep's signed-rank test at each planned look,
the looks' levels spent by an O'Brien-Fleming-type function and joined by Bonferroni's inequality.

A raced sweep looks at a comparison at the end of each round it is open in: after ``first`` repeats, then
every ``step`` repeats up to the maximum. These looks are planned when the sweep starts (``first``, ``step``
and the first planned maximum N). Look k, after n_k repeats, gets the weight

    w_k = (1 - RESERVE) * (t_k**RHO - t_{k-1}**RHO),    t_k = n_k / N,  t_0 = 0

the increments of the power family of spending functions alpha * t**rho (Kim & DeMets 1987, "Design and
analysis of group sequential tests based on the type I error spending rate function", Biometrika 74(1),
149-154; Jennison & Turnbull 2000, "Group Sequential Methods with Applications to Clinical Trials",
section 7.3: rho = 1 spends like Pocock's boundaries, rho = 3 like O'Brien and Fleming's; RHO = 2 lies
between them). A comparison's p-value is

    p = min(1, min over the looks taken of p_k / w_k)

with p_k the exact two-sided signed-rank p-value (:func:`sweeper.stats.statistics.exact_signed_rank_p`,
the test a fixed sweep reports, exact at any n) of its first n_k paired differences. Under the null each
p_k is a valid p-value, so by Bonferroni's inequality P(p <= x) <= sum_k P(p_k <= x w_k) <= x sum_k w_k
<= x, whatever rule decided when the comparison stopped: looks not taken only remove terms from the sum.
It is therefore a valid p-value at any stopping time, and Holm's step-down over such p-values keeps the
family-wise error rate at alpha (it needs valid marginal p-values only). Kim and DeMets compute boundaries
from the looks' joint normal distribution; the union bound needs none (the exact test's p-values are
discrete), at the price of the looks' correlation, which it ignores. With looks at 5, 10, 15 and 20 of 20
repeats the weights are 0.06, 0.18, 0.31 and 0.43 (times 1 - RESERVE): a configuration stopped at 15 is
tested at 0.31 of the level a fixed sweep of 15 would use, one run to the maximum at 0.43 of the fixed
sweep's.

Looks past the planned maximum (a race whose maximum was raised, or a raced sweep extended after its
report was read) get ``RESERVE * 2**-j`` for the j-th step past it, so the weights of every look there
could ever be sum to at most 1.

Differences come oriented (positive: the configuration did better), +-inf where only one of a pair
diverged (the test ranks it as the largest win or loss), NaN after a comparison's last repeat.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr, ndtri

from sweeper.stats import statistics as st

#: The share of the level kept for looks past the planned maximum.
RESERVE = 0.02
#: The power of the spending function t**RHO.
RHO = 2.0


def spent(t: np.ndarray, rho: float = RHO) -> np.ndarray:
    """The share of the level spent by information fraction ``t``: t**rho (0 at t = 0, 1 at t = 1)."""
    return np.minimum(np.asarray(t, dtype=float), 1.0) ** rho


def looks(first: int, step: int, planned_max: int, upto: int) -> np.ndarray:
    """The repeats at which a comparison is looked at, up to ``upto``: ``first``, then every ``step``, with the
    planned maximum itself a look (a race's last round may be shorter than a step)."""
    points = list(range(first, max(first, planned_max) + 1, max(step, 1)))
    if points[-1] != planned_max and planned_max > first:
        points.append(planned_max)
    n = points[-1]
    while n < upto:
        n += max(step, 1)
        points.append(n)
    return np.array([p for p in points if p <= max(upto, first)], dtype=int)


def weights(points: np.ndarray, planned_max: int, step: int) -> np.ndarray:
    """Each look's weight (module docstring): spending increments up to the planned maximum, the reserve
    halved at each step past it. ``points`` from :func:`looks`."""
    points = np.asarray(points, dtype=int)
    inside = points <= planned_max
    t = points[inside] / planned_max
    spend = spent(t)
    w = np.empty(points.shape)
    w[inside] = (1.0 - RESERVE) * np.diff(np.concatenate([[0.0], spend]))
    past = np.ceil((points[~inside] - planned_max) / max(step, 1))
    w[~inside] = RESERVE * 0.5**past
    return w


def look_p_values(d: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The signed-rank p-value and statistic of each comparison's first n_k differences, at each look.

    ``d: (k, n)`` oriented differences, NaN after a comparison's last repeat (and where a pair is missing:
    a look whose repeats are not all there is not taken). Returns ``p, statistic: (k, len(points))``, NaN
    at looks not taken.
    """
    d = np.asarray(d, dtype=float)
    p = np.full((d.shape[0], len(points)), np.nan)
    statistic = np.full(p.shape, np.nan)
    reached = np.cumprod(~np.isnan(d), axis=1).sum(axis=1)  # (k,): the repeats in a row from the first
    for j, n in enumerate(points):
        for i in np.flatnonzero(reached >= n):
            p[i, j] = st.exact_signed_rank_p(d[i, :n])
            statistic[i, j] = st.signed_rank_sum(d[i, :n])[0]
    return p, statistic


def test(d: np.ndarray, first: int, step: int, planned_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Each comparison's group-sequential p-value and direction, from its differences in repeat order.

    ``d: (k, n)``; ``first, step, planned_max``: the planned looks.
    Returns ``p: (k,)`` (module docstring) and ``sign: (k,)``: the sign of the signed-rank statistic at
    the look that gave the smallest p_k / w_k (+1 better, -1 worse, 0 where p = 1).
    """
    d = np.asarray(d, dtype=float)
    points = looks(first, step, planned_max, d.shape[1])
    w = weights(points, planned_max, step)
    p_k, statistic = look_p_values(d, points)
    scaled = np.where(np.isnan(p_k), np.inf, p_k / w)
    at = np.argmin(scaled, axis=1)[:, None]  # every comparison has the first look (``looks``)
    p = np.minimum(1.0, np.take_along_axis(scaled, at, axis=1)[:, 0])
    sign = np.sign(np.take_along_axis(np.nan_to_num(statistic), at, axis=1)[:, 0])
    return p, np.where(p < 1.0, sign, 0.0)


def conditional_power(d: np.ndarray, n_max: int, level: float | np.ndarray) -> np.ndarray:
    """The chance each comparison's signed-rank test would reject at ``level`` at ``n_max`` repeats if its
    trend went on (stochastic curtailment: Lan, Simon & Halperin 1982, "Stochastically curtailed tests in
    long-term clinical trials", Communications in Statistics C 1; the B-value form of Lan & Wittes 1988,
    Biometrics 44, 579-585: with information fraction t = n / n_max and the test's standard normal statistic
    Z_t, B = Z_t sqrt(t), drift theta = Z_t / sqrt(t), and Z_1 ~ N(B + theta (1 - t), 1 - t)).

    ``d: (k, n)`` (NaN after a comparison's last repeat); Z_t is the signed-rank sum over its null standard
    deviation (:func:`sweeper.stats.statistics.signed_rank_sum`). Returns ``(k,)``; a comparison already
    at ``n_max`` gets 1 if |Z| reaches the critical value, else 0.
    """
    d = np.asarray(d, dtype=float)
    level = np.broadcast_to(np.asarray(level, dtype=float), (d.shape[0],))
    power = np.zeros(d.shape[0])
    for i, row in enumerate(d):
        row = row[~np.isnan(row)]
        total, variance = st.signed_rank_sum(row)
        z = total / math.sqrt(variance) if variance > 0 else 0.0
        critical = float(ndtri(1.0 - level[i] / 2.0))
        t = min(row.size / n_max, 1.0) if n_max else 1.0
        if t >= 1.0 or row.size == 0:
            power[i] = float(abs(z) >= critical) if row.size else 0.0
            continue
        centre = z * math.sqrt(t) + z / math.sqrt(t) * (1.0 - t)
        sd = math.sqrt(1.0 - t)
        power[i] = float(ndtr((centre - critical) / sd) + ndtr((-critical - centre) / sd))
    return power
