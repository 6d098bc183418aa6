"""The always-valid test of sweeper.stats.sequential: confseq's formulas, validity under symmetric nulls
whatever the stopping, power, the confidence sequence, and conditional power."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sweeper.stats import sequential as sq

ALPHA = 0.05

#: (v_opt, alpha_opt, s, v) -> (rho, log M(s, v), bound(v, log(1/alpha))) as printed by confseq's own C++
#: (gostevehoward/confseq at 70b1ef3, src/confseq/uniform_boundaries.h lines 408-422, TwoSidedNormalMixture's
#: log_superMG, bound and best_rho copied verbatim into a stub class, compiled with g++ -O0).
CONFSEQ = [
    ((10, 0.05, 3.0, 7.5), (1.2600560979256341, -0.45582769283516589, 8.3349695777397201)),
    ((100, 0.05, -12.0, 80.0), (12.60056097925634, -0.21974384568797856, 27.193929192274094)),
    ((25, 0.01, 4.5, 1.0), (2.1675533776492433, 3.006793149277478, 5.511432587157298)),
    ((40, 0.1, 0.0, 40.0), (6.3202539627402121, -0.99590996235420848, 17.480682404218321)),
]


@pytest.mark.parametrize(("given", "expected"), CONFSEQ)
def test_the_mixture_its_boundary_and_its_scale_equal_confseqs(given, expected):
    v_opt, alpha, s, v = given
    rho = sq.best_rho(v_opt, alpha)

    assert float(rho) == pytest.approx(expected[0], rel=1e-14)
    assert float(sq.log_mixture(s, v, rho)) == pytest.approx(expected[1], rel=1e-13, abs=1e-15)
    assert float(sq.boundary(v, alpha, rho)) == pytest.approx(expected[2], rel=1e-13)


def test_best_rho_worked_by_hand():
    # 2 log 20 = 5.99146, log(1 + 5.99146) = 1.94469: rho = 10 / 7.93615 = 1.26006
    assert float(sq.best_rho(10.0, 0.05)) == pytest.approx(10 / (2 * math.log(20) + math.log(1 + 2 * math.log(20))))
    assert float(sq.best_rho(10.0, 0.05)) == pytest.approx(1.26006, abs=1e-5)


def test_at_the_boundary_the_mixture_is_exactly_one_over_alpha():
    v, rho = np.array([0.5, 3.0, 40.0]), np.array([1.0, 2.0, 6.0])
    b = sq.boundary(v, ALPHA, rho)
    np.testing.assert_allclose(sq.log_mixture(b, v, rho), math.log(1 / ALPHA), rtol=1e-12)


def test_increments_are_capped_signs_a_divergence_takes_the_cap_and_a_missing_pair_adds_nothing():
    d = np.array([[np.inf, -np.inf, np.nan, 0.5, -2.0, 0.0]])
    np.testing.assert_array_equal(sq.increments(d, np.array([1.0])), [[1.0, -1.0, 0.0, 0.5, -1.0, 0.0]])


def test_cap_and_rho_come_from_the_first_rounds_magnitudes():
    first = np.array([[0.1, -0.2, 0.3, np.inf, 0.0]])  # nonzero finite magnitudes 0.1, 0.2, 0.3: median 0.2
    cap, rho = sq.tuning(first, n_max=20, alpha=ALPHA)
    assert cap[0] == pytest.approx(0.6)
    mean_square = (0.01 + 0.04 + 0.09 + 0.36 + 0.0) / 5  # the divergence counts at the cap
    assert rho[0] == pytest.approx(float(sq.best_rho(20 * mean_square, ALPHA)))
    # the same magnitudes with other signs: the same tuning (what keeps the test valid)
    np.testing.assert_array_equal(sq.tuning(-first, 20, ALPHA)[1], rho)


def test_the_running_p_value_never_rises_and_is_one_without_evidence():
    rng = np.random.default_rng(1)
    p = sq.running_p(sq.increments(rng.normal(size=(50, 40)), np.full(50, 2.0)), np.full(50, 5.0))
    assert np.all(np.diff(p, axis=1) <= 0) and np.all(p <= 1)
    assert np.all(sq.running_p(np.zeros((1, 10)), np.array([1.0])) == 1.0)


def _null(kind: str, rng, shape) -> np.ndarray:
    """Paired differences symmetric about 0 (the null), of several shapes."""
    sign = rng.choice([-1.0, 1.0], size=shape)
    if kind == "normal":
        return rng.normal(size=shape)
    if kind == "t2":
        return rng.standard_t(2, size=shape)
    if kind == "accuracy":  # differences of accuracies on 80 test points: a lattice with many ties
        return (rng.binomial(80, 0.7, size=shape) - rng.binomial(80, 0.7, size=shape)) / 80
    # a symmetric mixture: ties, small and large magnitudes, and runs that diverged on either side
    magnitude = rng.choice([0.0, 1.0, 10.0, np.inf], p=[0.2, 0.5, 0.25, 0.05], size=shape) * rng.exponential(size=shape)
    return sign * np.nan_to_num(magnitude, nan=0.0, posinf=np.inf)


@pytest.mark.parametrize("kind", ["normal", "t2", "accuracy", "mixture"])
def test_under_a_symmetric_null_the_chance_of_ever_rejecting_by_the_maximum_is_at_most_alpha(kind):
    rng = np.random.default_rng(7)
    n_sims, n_max = 4000, 60
    d = _null(kind, rng, (n_sims, n_max))

    p, _ = sq.sequential_test(d, n_first=5, n_max=n_max, alpha=ALPHA)

    rate = float(np.mean(p <= ALPHA))  # the minimum over all 60 looks: any stopping rule does no better
    assert rate <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / n_sims), rate


def test_the_confidence_sequence_covers_a_shifted_centre():
    rng = np.random.default_rng(3)
    n_sims, centre = 3000, 0.7
    d = centre + rng.standard_t(3, size=(n_sims, 40))

    missed = sq.rejected_centres(d, np.array([centre]), n_first=5, n_max=40, alpha=ALPHA)[:, 0]

    assert missed.mean() <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / n_sims)


def test_a_clear_effect_is_found_in_its_direction_and_the_sequence_brackets_it():
    rng = np.random.default_rng(5)
    d = 1.0 + rng.normal(size=(500, 30))

    p, sign = sq.sequential_test(np.concatenate([d, -d]), n_first=5, n_max=30, alpha=ALPHA)

    assert np.mean(p[:500] <= ALPHA) > 0.9 and np.all(sign[:500][p[:500] <= ALPHA] == 1)
    assert np.all(sign[500:][p[500:] <= ALPHA] == -1)
    low, high = sq.confidence_sequence(d[:20], n_first=5, n_max=30, alpha=ALPHA)
    assert np.mean((low < 1.0) & (high > 1.0)) >= 0.9 and np.mean(low > 0.0) >= 0.9


def test_equivalence_needs_the_whole_sequence_inside_the_margin():
    rng = np.random.default_rng(2)
    tight = 0.01 * rng.normal(size=(1, 60))
    assert sq.equivalent(tight, 0.1, n_first=5, n_max=60, alpha=ALPHA).tolist() == [True]
    assert sq.equivalent(tight + 0.2, 0.1, n_first=5, n_max=60, alpha=ALPHA).tolist() == [False]
    assert sq.equivalent(tight[:, :5], 0.1, n_first=5, n_max=60, alpha=ALPHA).tolist() == [False]  # too few


def test_conditional_power_is_high_on_a_strong_trend_and_low_on_none():
    rng = np.random.default_rng(4)
    d = np.full((2, 60), np.nan)
    d[0, :10] = 1.5 + rng.normal(size=10)
    d[1, :10] = rng.normal(size=10) - np.mean(rng.normal(size=10)) * 0
    d[1, :10] -= d[1, :10].mean()  # no trend at all

    power = sq.conditional_power(d, n_first=5, n_max=60, tuned_max=60, alpha=ALPHA, level=ALPHA / 10)

    assert power[0] > 0.95 and power[1] < 0.01
    # at the maximum: 1 where it rejects there, else 0
    full = 1.5 + rng.normal(size=(1, 60))
    assert sq.conditional_power(full, 5, 60, 60, ALPHA, ALPHA).tolist() == [1.0]
