"""Sampled noise has the distribution its kind promises, at every placement and with every stream engine."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from sweeper.noise.pack import PackNoise
from sweeper.noise.philox import PhiloxStreams, kernel
from sweeper.noise.spec import NoiseSpec
from sweeper.noise.streams import GeneratorStreams, make_streams

N = 100_000
SIGMA = 0.3
SEEDS = [12345, 2**62 + 7]  # the second has high bits set, like sweeper's derived 63-bit seeds
SQRT3 = math.sqrt(3.0)


@pytest.fixture(scope="module")
def c_kernel():
    if kernel() is None:
        pytest.skip("the C noise kernel cannot be built here (no C compiler)")
    return kernel()


def philox_kernel(seeds):
    streams = PhiloxStreams(seeds)
    assert streams.lib is not None
    return streams


STREAMS = {
    "philox_kernel": philox_kernel,
    "philox_torch": lambda seeds: PhiloxStreams(seeds, use_kernel=False),
    "generator": GeneratorStreams,
}


@pytest.fixture(params=list(STREAMS))
def make(request):
    if request.param == "philox_kernel":
        request.getfixturevalue("c_kernel")
    return STREAMS[request.param]


def apply(noise, placement, x):
    """The pack's noise at ``placement`` applied to ``x: (members, n)`` the way the trainer applies it."""
    if placement == "gradients":
        g = x.clone()
        noise.perturb_grads([g])
        return g
    if placement == "targets":
        return noise.noisy_targets(x, n_classes=0)  # regression targets
    return noise.perturb(placement, x)


PLACEMENTS = ("input", "pre_activation", "post_activation", "weights", "gradients", "targets")


def assert_mean_std(values, mean, std):
    values = values.double()
    se = std / math.sqrt(values.numel())
    assert abs(values.mean().item() - mean) < 5 * se, (values.mean().item(), mean)
    assert values.std().item() == pytest.approx(std, rel=0.02)


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_additive_gaussian_noise_has_mean_zero_and_std_sigma(make, placement):
    noise = PackNoise([(NoiseSpec(placement, "gaussian", SIGMA),)] * 2, make(SEEDS))
    x = torch.zeros(2, N)
    eps = apply(noise, placement, x) - x
    for k in range(2):
        assert_mean_std(eps[k], 0.0, SIGMA)
        assert stats.kstest(eps[k].numpy() / SIGMA, "norm").pvalue > 1e-3


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_uniform_noise_has_std_sigma_and_support_plus_minus_sqrt3_sigma(make, placement):
    noise = PackNoise([(NoiseSpec(placement, "uniform", SIGMA),)] * 2, make(SEEDS))
    x = torch.full((2, N), 5.0)
    eps = (apply(noise, placement, x) - x).double()
    a = SQRT3 * SIGMA
    for k in range(2):
        assert_mean_std(eps[k], 0.0, SIGMA)
        assert eps[k].abs().max().item() <= a * (1 + 1e-5)
        assert eps[k].min().item() < -0.999 * a and eps[k].max().item() > 0.999 * a
        assert stats.kstest(eps[k].numpy(), "uniform", args=(-a, 2 * a)).pvalue > 1e-3


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_multiplicative_noise_has_mean_x_and_std_sigma_times_abs_x(make, placement):
    noise = PackNoise([(NoiseSpec(placement, "multiplicative", SIGMA),)] * 2, make(SEEDS))
    x = torch.tensor([2.0, -3.0])[:, None].expand(2, N).contiguous()
    y = apply(noise, placement, x)
    for k, xk in enumerate((2.0, -3.0)):
        assert_mean_std(y[k], xk, SIGMA * abs(xk))
        assert stats.kstest((y[k].double().numpy() / xk - 1.0) / SIGMA, "norm").pvalue > 1e-3
    # Zero stays zero: the noise scales the signal.
    assert (apply(noise, placement, torch.zeros(2, 100)) == 0).all()


def test_members_without_noise_at_a_site_get_their_input_back_unchanged(make):
    configs = [
        (NoiseSpec("input", "gaussian", SIGMA),),
        (),
        (NoiseSpec("input", "gaussian", 0.0),),
        (NoiseSpec("weights", "gaussian", SIGMA),),
    ]
    noise = PackNoise(configs, make([1, 2, 3, 4]))
    x = torch.randn(4, 1000, generator=torch.Generator().manual_seed(0))
    y = noise.perturb("input", x)
    assert not torch.equal(y[0], x[0])
    assert torch.equal(y[1:], x[1:])
    assert noise.perturb("pre_activation", x) is x  # no member uses that site


@pytest.mark.parametrize("kind", ["gaussian", "multiplicative", "uniform"])
def test_noise_does_not_depend_on_the_memory_layout_of_its_input(make, kind):
    # The cnn's stacked activations are transposed views: a member must still get the numbers it
    # gets for a contiguous tensor (and, with generator streams, the reference loop's numbers).
    config = (NoiseSpec("pre_activation", kind, SIGMA),)
    x = torch.randn(2, 3, 40, generator=torch.Generator().manual_seed(0))
    strided = x.transpose(0, 1).contiguous().transpose(0, 1)
    assert not strided.is_contiguous() and torch.equal(strided, x)
    a = PackNoise([config] * 2, make(SEEDS)).perturb("pre_activation", x)
    b = PackNoise([config] * 2, make(SEEDS)).perturb("pre_activation", strided)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    if make is GeneratorStreams:
        g = torch.Generator().manual_seed(SEEDS[1])
        draw = (
            torch.empty(3, 40).normal_(0.0, SIGMA, generator=g)
            if kind != "uniform"
            else torch.empty(3, 40).uniform_(-SQRT3 * SIGMA, SQRT3 * SIGMA, generator=g)
        )
        expected = x[1] * (1 + draw) if kind == "multiplicative" else x[1] + draw
        assert torch.equal(b[1], expected)


# --- the Philox streams themselves ------------------------------------------------------------------

PHILOX = {"kernel": lambda seeds: philox_kernel(seeds), "torch": lambda seeds: PhiloxStreams(seeds, use_kernel=False)}


@pytest.fixture(params=list(PHILOX))
def philox(request):
    if request.param == "kernel":
        request.getfixturevalue("c_kernel")
    return PHILOX[request.param]


def test_philox_normals_are_standard_normal(philox):
    z = philox(SEEDS).normal_(torch.zeros(2, N), [1.0, 1.0])
    for k in range(2):
        assert stats.kstest(z[k].numpy(), "norm").pvalue > 1e-3
        assert_mean_std(z[k], 0.0, 1.0)


def test_philox_uniforms_are_uniform(philox):
    streams = philox(SEEDS)
    u = streams.uniform_(torch.zeros(2, N), [1 / SQRT3, 1 / SQRT3])  # U(-1, 1)
    for k in range(2):
        assert stats.kstest(u[k].numpy(), "uniform", args=(-1.0, 2.0)).pvalue > 1e-3
    r = streams.rand(0, (N,))  # the uniforms label flips use
    assert r.min().item() > 0.0 and r.max().item() < 1.0
    assert stats.kstest(r.numpy(), "uniform").pvalue > 1e-3


@pytest.mark.parametrize("n", [1, 3, 4, 5, 2047, 2048, 2049, 8195, 70_001])
def test_c_kernel_and_torch_philox_give_the_same_numbers(c_kernel, n):
    seeds = [0, 1, 99, 2**63 - 1, 2**62 + 12345]
    fast, slow = PhiloxStreams(seeds), PhiloxStreams(seeds, use_kernel=False)
    scale = [1.0, 0.5, 2.0, 0.1, 1.0]
    for _ in range(2):  # and the counters advance alike
        a, b = fast.normal_(torch.zeros(5, n), scale), slow.normal_(torch.zeros(5, n), scale)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        a, b = fast.uniform_(torch.zeros(5, n), scale), slow.uniform_(torch.zeros(5, n), scale)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert fast.blocks == slow.blocks


def test_philox_torch_path_fills_non_contiguous_tensors_like_contiguous_ones(philox):
    a = philox(SEEDS).normal_(torch.zeros(2, 3, 50), [1.0, 1.0])
    b = philox(SEEDS).normal_(torch.zeros(3, 2, 50).transpose(0, 1), [1.0, 1.0])
    assert not b.is_contiguous()
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_philox_members_are_independent_of_each_other(philox):
    z = philox([1, 2, 3]).normal_(torch.zeros(3, N), [1.0, 1.0, 1.0]).double().numpy()
    corr = np.corrcoef(z)
    off_diagonal = corr[~np.eye(3, dtype=bool)]
    assert np.abs(off_diagonal).max() < 5 / math.sqrt(N)


def test_philox_draws_are_fresh_at_every_step(philox):
    streams = philox(SEEDS)
    first = streams.normal_(torch.zeros(2, N), [1.0, 1.0]).double()
    second = streams.normal_(torch.zeros(2, N), [1.0, 1.0]).double()
    for k in range(2):
        assert not torch.equal(first[k], second[k])
        assert abs(np.corrcoef(first[k].numpy(), second[k].numpy())[0, 1]) < 5 / math.sqrt(N)


def test_philox_member_draws_do_not_depend_on_its_pack(philox):
    n = 1001
    alone = philox([7]).normal_(torch.zeros(1, n), [0.5])
    packed = philox([3, 7, 11]).normal_(torch.zeros(3, n), [1.0, 0.5, 1.0])
    assert torch.equal(alone[0], packed[1])
    # A member that does not draw at a site does not consume its stream there.
    streams = philox([3, 7])
    streams.normal_(torch.zeros(2, n), [1.0, 0.0])
    late = streams.normal_(torch.zeros(2, n), [1.0, 0.5])
    assert torch.equal(late[1], alone[0])


def test_generator_streams_draw_what_a_seeded_torch_generator_draws():
    streams = GeneratorStreams([5, 6])
    out = streams.normal_(torch.zeros(2, 100), [0.5, 2.0])
    for k, (seed, s) in enumerate(((5, 0.5), (6, 2.0))):
        expected = torch.empty(100).normal_(0.0, s, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(out[k], expected)


def test_make_streams_names_the_two_engines():
    assert isinstance(make_streams([1], "cpu"), PhiloxStreams)
    assert isinstance(make_streams([1], "cpu", "generator"), GeneratorStreams)
    with pytest.raises(ValueError, match="philox"):
        make_streams([1], "cpu", "mersenne")
