"""Tests that stay valid however often they are looked at: the always-valid test a raced sweep uses.

A raced sweep looks at its comparisons after every round and stops a configuration once its answer is
settled, so a test made for one look (the exact signed-rank test) would find differences that are not
there far more often than its alpha says. This module holds the sequential test that keeps its error
rate at any stopping time: a normal-mixture supermartingale for conditionally symmetric increments.

The test of "the paired differences d_i are symmetric about delta": increments, in repeat order,

    X_i = sign(d_i - delta) * min(|d_i - delta|, cap)

Under the null the d_i are independent and symmetric about delta, so given ALL the magnitudes the signs
are independent fair coin flips (de la Peña 1999, "A general class of exponential inequalities for
martingales and ratios", Ann. Probab. 27; Howard, Ramdas, McAuliffe & Sekhon 2020, "Time-uniform
Chernoff bounds via nonnegative supermartingales", Probability Surveys 17, the conditionally symmetric
case with intrinsic time V_t = sum X_i^2). With S_t = sum X_i, the two-sided normal mixture

    M_t = sqrt(rho / (V_t + rho)) * exp(S_t^2 / (2 (V_t + rho)))

is then a nonnegative supermartingale with M_0 = 1 for any ``cap`` and ``rho`` that are functions of the
magnitudes only. Here both come from the FIRST round's magnitudes (the repeats every configuration
runs) and stay fixed, so each comparison is one supermartingale from its first repeat to its last. By
Ville's inequality P(sup_t M_t >= 1/alpha) <= alpha, so p_t = min(1, min_{s<=t} 1/M_s) is an
always-valid p-value (Johari, Koomen, Pekelis & Walsh 2022, "Always valid inference: continuous
monitoring of A/B tests", Operations Research 70): P(p_tau <= alpha) <= alpha at ANY random time tau.
M is evaluated after every repeat, in repeat order (valid, since Ville's inequality holds at every t,
and never weaker than looking at the ends of rounds only). Holm's step-down over such p-values keeps
the family-wise error rate at alpha whatever the race did: it needs valid marginal p-values only.

The formulas are confseq's (Howard's C++ library, gostevehoward/confseq,
``src/confseq/uniform_boundaries.h``: ``TwoSidedNormalMixture::log_superMG`` lines 408-411, ``::bound``
lines 413-416, ``::best_rho`` lines 418-422); ``tests/stats/test_sequential.py`` checks them on numbers.

Differences come oriented (positive: the configuration did better) with -inf where only the
configuration diverged (the largest loss: it gets ``-cap``), +inf where only the baseline did, and NaN
where there is no pair (a repeat not run): a NaN adds nothing to S or V.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.special import ndtr

#: The cap on an increment, in multiples of the first round's median magnitude.
CAP_MULTIPLE = 3.0
#: Conditional power under which a comparison is futile (stochastic curtailment).
FUTILITY_POWER = 0.10


def log_mixture(s: np.ndarray, v: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """The log of the two-sided normal-mixture supermartingale at sum ``s`` and intrinsic time ``v``.

    ``s, v, rho``: broadcastable arrays. confseq ``TwoSidedNormalMixture::log_superMG``.
    """
    return 0.5 * np.log(rho / (v + rho)) + np.square(s) / (2.0 * (v + rho))


def boundary(v: np.ndarray, alpha: float | np.ndarray, rho: np.ndarray) -> np.ndarray:
    """The |S| at which the mixture reaches 1/alpha at intrinsic time ``v``: the test's rejection boundary.

    ``v, alpha, rho``: broadcastable arrays. confseq ``TwoSidedNormalMixture::bound`` with
    ``log_threshold = log(1/alpha)``.
    """
    return np.sqrt((v + rho) * (np.log1p(v / rho) + 2.0 * np.log(1.0 / np.asarray(alpha, dtype=float))))


def best_rho(v: np.ndarray, alpha: float) -> np.ndarray:
    """The mixture's scale that makes the boundary tightest at intrinsic time ``v`` for level ``alpha``.

    confseq ``TwoSidedNormalMixture::best_rho``.
    """
    log_inv = math.log(1.0 / alpha)
    return np.asarray(v, dtype=float) / (2.0 * log_inv + math.log(1.0 + 2.0 * log_inv))


def tuning(first: np.ndarray, n_max: int, alpha: float, delta=0.0) -> tuple[np.ndarray, np.ndarray]:
    """The cap and the mixture's scale of each comparison, from its first round's magnitudes only.

    ``first: (..., n_first)`` the first round's oriented differences; ``delta``: the centre tested,
    a scalar or an array broadcasting against ``first[..., 0]``. Returns ``cap, rho: (...)``.

    cap = CAP_MULTIPLE x the median of the nonzero finite magnitudes |d - delta| (1 where there are
    none); rho = best_rho(n_max * mean(min(|d - delta|, cap)^2), alpha): tuned to the intrinsic time
    the comparison would reach at ``n_max`` repeats. Functions of the magnitudes only, so the test
    stays valid (module docstring).
    """
    a = np.abs(np.asarray(first, dtype=float) - np.asarray(delta, dtype=float)[..., None])
    usable = np.where(np.isfinite(a) & (a > 0), a, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row without a nonzero finite magnitude
        median = np.nanmedian(usable, axis=-1) if a.shape[-1] else np.full(a.shape[:-1], np.nan)
    cap = np.where(np.isfinite(median), CAP_MULTIPLE * median, 1.0)
    capped = np.minimum(a, cap[..., None])  # NaN (no pair) stays NaN, inf (diverged) gets the cap
    count = (~np.isnan(capped)).sum(axis=-1)
    mean_square = np.nansum(np.square(capped), axis=-1) / np.maximum(count, 1)
    # No information in the first round (every difference zero): tune to the cap, any fixed scale will do.
    mean_square = np.where(mean_square > 0, mean_square, np.square(cap))
    return cap, best_rho(n_max * mean_square, alpha)


def increments(d: np.ndarray, cap: np.ndarray, delta=0.0) -> np.ndarray:
    """The capped signed increments X_i = sign(d_i - delta) * min(|d_i - delta|, cap), 0 where d_i is NaN.

    ``d: (..., n)``; ``cap`` and ``delta`` broadcast against ``d[..., 0]``. Returns ``(..., n)``.
    """
    centred = np.asarray(d, dtype=float) - np.asarray(delta, dtype=float)[..., None]
    with np.errstate(invalid="ignore"):
        x = np.sign(centred) * np.minimum(np.abs(centred), np.asarray(cap, dtype=float)[..., None])
    return np.where(np.isnan(x), 0.0, x)


def running_p(x: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """The always-valid p-value after each increment: min(1, min over s <= t of 1 / M_s).

    ``x: (..., n)`` increments, ``rho: (...)``. Returns ``(..., n)``, non-increasing along the last axis.
    """
    s = np.cumsum(x, axis=-1)
    v = np.cumsum(np.square(x), axis=-1)
    log_m = log_mixture(s, v, np.asarray(rho, dtype=float)[..., None])
    return np.minimum(1.0, np.exp(-np.maximum.accumulate(log_m, axis=-1)))


def sequential_test(d: np.ndarray, n_first: int, n_max: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Each comparison's always-valid p-value and direction, from its differences in repeat order.

    ``d: (k, n)`` oriented differences of k comparisons (NaN after a comparison's last repeat);
    ``n_first``: the repeats of the first round (cap and rho come from them); ``n_max``: the repeats
    rho is tuned to. Returns ``p: (k,)`` (the running minimum at the last repeat) and ``sign: (k,)``:
    the sign of S when that minimum was reached (+1 better, -1 worse, 0 where p = 1), so a verdict's
    direction is the one the test rejected in.
    """
    d = np.asarray(d, dtype=float)
    cap, rho = tuning(d[:, :n_first], n_max, alpha)
    x = increments(d, cap)
    p = running_p(x, rho)
    at = np.argmin(p, axis=-1)  # the first repeat the minimum was reached at
    s = np.take_along_axis(np.cumsum(x, axis=-1), at[:, None], axis=-1)[:, 0]
    final = p[:, -1] if p.shape[-1] else np.ones(d.shape[0])
    return final, np.where(final < 1.0, np.sign(s), 0.0)


def rejected_centres(d: np.ndarray, deltas: np.ndarray, n_first: int, n_max: int, alpha: float) -> np.ndarray:
    """Which centres of symmetry the test rejects at level ``alpha`` (at any repeat so far).

    ``d: (k, n)`` oriented differences, ``deltas: (g,)``. Returns ``(k, g)`` bool. Cap and rho are
    tuned per centre from the first round's magnitudes |d - delta|, so each centre's test is valid.
    The centres not rejected are the confidence sequence for the centre (location model).
    """
    d = np.asarray(d, dtype=float)[:, None, :]  # (k, 1, n)
    deltas = np.broadcast_to(np.asarray(deltas, dtype=float), (d.shape[0], len(deltas)))  # (k, g)
    cap, rho = tuning(d[..., :n_first], n_max, alpha, deltas)
    x = increments(d, cap, deltas)  # (k, g, n)
    return running_p(x, rho)[..., -1] <= alpha


def confidence_sequence(
    d: np.ndarray, n_first: int, n_max: int, alpha: float, points: int = 401
) -> tuple[np.ndarray, np.ndarray]:
    """The confidence sequence for each comparison's centre of symmetry, at level 1 - ``alpha``.

    ``d: (k, n)``. Returns ``low, high: (k,)``: the smallest and largest centre not rejected, on a
    grid of ``points`` spanning the finite differences (NaN where every grid point is rejected). The
    grid makes it approximate to one grid step.
    """
    d = np.asarray(d, dtype=float)
    finite = d[np.isfinite(d)]
    span = float(np.max(np.abs(finite))) if finite.size else 1.0
    grid = np.linspace(-span, span, points)
    kept = ~rejected_centres(d, grid, n_first, n_max, alpha)
    low = np.where(kept.any(axis=1), grid[np.argmax(kept, axis=1)], np.nan)
    high = np.where(kept.any(axis=1), grid[points - 1 - np.argmax(kept[:, ::-1], axis=1)], np.nan)
    return low, high


def equivalent(
    d: np.ndarray, min_effect: float, n_first: int, n_max: int, alpha: float, points: int = 101
) -> np.ndarray:
    """Whether each comparison's confidence sequence lies inside (-min_effect, +min_effect).

    ``d: (k, n)``. Returns ``(k,)`` bool: every centre with |delta| >= ``min_effect`` on a grid from
    ``min_effect`` to beyond the largest finite |difference| (past which every sign agrees, and the
    test only gets stronger) is rejected at ``alpha``. A per-comparison claim at level ``alpha``.
    """
    d = np.asarray(d, dtype=float)
    finite = d[np.isfinite(d)]
    reach = float(np.max(np.abs(finite))) if finite.size else 0.0
    side = min_effect + np.linspace(0.0, reach + min_effect, points)
    return rejected_centres(d, np.concatenate([-side, side]), n_first, n_max, alpha).all(axis=1)


def conditional_power(
    d: np.ndarray, n_first: int, n_max: int, tuned_max: int, alpha: float, level: np.ndarray
) -> np.ndarray:
    """The chance each comparison's test would still reject by ``n_max`` repeats if its trend went on.

    Stochastic curtailment (Lan, Simon & Halperin 1982, "Stochastically curtailed tests in long-term
    clinical trials", Communications in Statistics C 1): S is projected to ``n_max`` with the current
    mean and standard deviation of the increments (a normal approximation), V with their current mean
    square, and the chance is that |S| ends beyond the boundary at ``level`` (``(k,)`` or a scalar).
    ``d: (k, n)`` (NaN after a comparison's last repeat); ``tuned_max`` and ``alpha``: what rho is
    tuned to (as :func:`sequential_test`).
    Returns ``(k,)``. A comparison already at ``n_max`` gets 1 if it rejects there, else 0.
    """
    d = np.asarray(d, dtype=float)
    cap, rho = tuning(d[:, :n_first], tuned_max, alpha)
    observed = ~np.isnan(d)
    n = observed.sum(axis=1)
    x = increments(d, cap)
    s, v = x.sum(axis=1), np.square(x).sum(axis=1)
    mean = s / np.maximum(n, 1)
    var = np.where(n > 1, (v - n * mean**2) / np.maximum(n - 1, 1), 0.0)
    left = np.maximum(n_max - n, 0)
    centre = s + left * mean
    sd = np.sqrt(np.maximum(var, 0.0) * left)
    b = boundary(v + left * (v / np.maximum(n, 1)), level, rho)
    with np.errstate(divide="ignore", invalid="ignore"):
        power = ndtr((centre - b) / sd) + ndtr((-b - centre) / sd)
    return np.where(sd > 0, power, (np.abs(centre) >= b).astype(float))
