"""Dropout is x·m/(1 − p) with m ~ Bernoulli(1 − p), in every engine; DropConnect drops weights, not units.

The rates and means are tested against their binomial standard errors; the engines against each other
bit for bit (a unit is dropped where its uniform draw u < p, in float32, in every one of them).
"""

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from sweeper.noise.layers import DropConnect, Dropout, GaussianDropout, noise_layer
from sweeper.noise.pack import PackNoise
from sweeper.noise.philox import PhiloxStreams, kernel
from sweeper.noise.spec import NoiseSpec, keep_scale
from sweeper.noise.streams import GeneratorStreams

N = 200_000
P = 0.3
SEEDS = [12345, 2**62 + 7]
STREAMS = {
    "philox_kernel": PhiloxStreams,
    "philox_torch": lambda seeds: PhiloxStreams(seeds, use_kernel=False),
    "generator": GeneratorStreams,
}
FORWARD = ("input", "pre_activation", "post_activation", "weights")


@pytest.fixture(params=list(STREAMS))
def make(request):
    if request.param == "philox_kernel" and kernel() is None:
        pytest.skip("the C noise kernel cannot be built here (no C compiler)")
    return STREAMS[request.param]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def assert_rate(dropped: torch.Tensor, p: float):
    se = math.sqrt(p * (1 - p) / dropped.numel())
    assert abs(dropped.double().mean().item() - p) < 5 * se, (dropped.double().mean().item(), p)


def assert_mean(values: torch.Tensor, mean: float, std: float):
    se = std / math.sqrt(values.numel())
    assert abs(values.double().mean().item() - mean) < 5 * se, (values.double().mean().item(), mean)


@pytest.mark.parametrize("placement", FORWARD)
@pytest.mark.parametrize("p", [0.1, P, 0.8])
def test_dropout_drops_the_rate_p_and_keeps_the_mean(make, placement, p):
    noise = PackNoise([(NoiseSpec(placement, "dropout", p),), ()], make(SEEDS))
    x = torch.full((2, N), 1.5)
    y = noise.perturb(placement, x)
    dropped = y[0] == 0
    assert_rate(dropped, p)
    # Kept units are x / (1 − p) exactly; the mean is x (within its standard error), the variance
    # x²·p/(1 − p): Gaussian dropout of that σ² has the same two moments.
    assert torch.equal(y[0][~dropped], torch.full_like(y[0][~dropped], 1.5 * keep_scale(p)))
    assert_mean(y[0], 1.5, 1.5 * math.sqrt(p / (1 - p)))
    assert y[0].double().std().item() == pytest.approx(1.5 * math.sqrt(p / (1 - p)), rel=0.02)
    assert torch.equal(y[1], x[1])  # a member without dropout keeps every unit, unscaled


def test_dropout_masks_are_fresh_each_step_and_independent_of_position(make):
    noise = PackNoise([(NoiseSpec("pre_activation", "dropout", 0.5),)], make([3]))
    x = torch.ones(1, 1000)
    first, second = noise.perturb("pre_activation", x), noise.perturb("pre_activation", x)
    assert not torch.equal(first == 0, second == 0)
    # the masks of neighbouring units are uncorrelated
    m = (first[0] == 0).double()
    assert abs(torch.corrcoef(torch.stack([m[:-1], m[1:]]))[0, 1].item()) < 5 / math.sqrt(999)


def test_dropout_rate_zero_draws_nothing_and_is_the_identity(make):
    streams = make([5])
    x = torch.randn(1, 64, generator=gen(1))
    out = PackNoise([(NoiseSpec("input", "dropout", 0.0),)], streams).perturb("input", x)
    assert torch.equal(out, x)


def test_c_kernel_and_torch_ops_keep_exactly_the_same_units():
    if kernel() is None:
        pytest.skip("the C noise kernel cannot be built here (no C compiler)")
    out_c = PhiloxStreams(SEEDS).dropout_(torch.empty(2, 4099), [0.3, 0.7])
    out_t = PhiloxStreams(SEEDS, use_kernel=False).dropout_(torch.empty(2, 4099), [0.3, 0.7])
    assert torch.equal(out_c, out_t)
    assert set(out_c[0].unique().tolist()) == {0.0, keep_scale(0.3)}


def test_a_unit_is_dropped_exactly_when_its_uniform_is_below_p():
    # Philox's uniforms for the same member and counter, as label flips draw them.
    u = PhiloxStreams([9], use_kernel=False).rand(0, (10_000,))
    factors = PhiloxStreams([9]).dropout_(torch.empty(1, 10_000), [0.4])[0]
    assert torch.equal(factors == 0, u < 0.4)


def test_generator_streams_draw_what_the_dropout_layer_draws():
    x = torch.randn(2, 32, 50, generator=gen(1))
    streams = GeneratorStreams([11, 12])
    out = PackNoise([(NoiseSpec("post_activation", "dropout", 0.25),)] * 2, streams).perturb("post_activation", x)
    for k, seed in enumerate([11, 12]):
        assert torch.equal(out[k], Dropout(0.25, generator=gen(seed))(x[k]))


def test_dropout_layer_behaves_like_torchs_dropout_in_train_and_eval():
    x = torch.randn(300, 400, generator=gen(2))
    ours, torchs = Dropout(P, generator=gen(3)), nn.Dropout(P)
    y = ours(x)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        z = torchs(x)
    for out in (y, z):  # the same rule: zeros at rate p, the rest x / (1 − p)
        dropped = out == 0
        assert_rate(dropped, P)
        torch.testing.assert_close(out[~dropped], x[~dropped] / (1 - P))
    ours.eval()
    torchs.eval()
    assert ours(x) is x and torch.equal(torchs(x), x)
    assert list(ours.parameters()) == [] and ours.state_dict() == {}


def test_dropout_layer_backward_passes_the_kept_units_gradients_scaled():
    x = torch.randn(1000, generator=gen(4), requires_grad=True)
    y = Dropout(0.5, generator=gen(5))(x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.where(y == 0, 0.0, 2.0))


@pytest.mark.parametrize("p", [1.0, 1.5, -0.1])
def test_dropout_refuses_a_rate_outside_0_to_1(p):
    with pytest.raises(ValueError, match=r"\[0, 1\)|>= 0"):
        Dropout(p)
    with pytest.raises(ValueError):
        NoiseSpec("input", "dropout", p)


@pytest.mark.parametrize("placement", ["gradients", "targets"])
def test_dropout_applies_to_units_and_weights_only(placement):
    with pytest.raises(
        ValueError, match="'dropout' applies to placements input, pre_activation, post_activation, weights"
    ):
        NoiseSpec(placement, "dropout", 0.5)


def test_noise_layer_builds_dropout_with_its_schedule():
    layer = noise_layer(NoiseSpec("pre_activation", "dropout", 0.4, "linear", std_min=0.1), total_steps=10)
    assert type(layer) is Dropout and layer.std == 0.4
    x = torch.ones(100_000)
    layer.step.fill_(5)  # halfway: the rate is 0.25
    assert_rate(layer(x) == 0, 0.25)


def test_dropconnect_drops_weights_fresh_each_step_and_leaves_the_stored_weights_clean():
    linear = nn.Linear(400, 300)
    clean_w, clean_b = linear.weight.detach().clone(), linear.bias.detach().clone()
    parametrize.register_parametrization(linear, "weight", DropConnect(P, generator=gen(6)))
    first = linear.weight  # training mode: a masked, rescaled copy
    dropped = first == 0
    assert_rate(dropped, P)
    torch.testing.assert_close(first[~dropped], clean_w[~dropped] / (1 - P))
    assert not torch.equal(linear.weight == 0, dropped)  # a fresh mask at every call
    assert torch.equal(linear.parametrizations.weight.original, clean_w)
    x = torch.randn(8, 400, generator=gen(7))
    linear.eval()
    assert torch.equal(linear(x), nn.functional.linear(x, clean_w, clean_b))
    # gradients reach the clean weights through the mask
    linear.train()
    linear(x).sum().backward()
    assert linear.parametrizations.weight.original.grad is not None


def test_gaussian_dropout_at_equal_variance_matches_dropouts_first_two_moments():
    # Srivastava et al. 2014, section 10: multiplicative N(1, p/(1 − p)) noise has dropout's mean and variance.
    x = torch.full((N,), 2.0)
    bern = Dropout(P, generator=gen(8))(x).double()
    gauss = GaussianDropout(math.sqrt(P / (1 - P)), generator=gen(9))(x).double()
    for out in (bern, gauss):
        assert_mean(out, 2.0, 2.0 * math.sqrt(P / (1 - P)))
        assert out.std().item() == pytest.approx(2.0 * math.sqrt(P / (1 - P)), rel=0.02)
