"""The public noise layers behave like their Keras counterparts."""

import math

import pytest
import torch
from scipy import stats

from sweeper.noise.layers import GaussianDropout, GaussianNoise, UniformNoise, noise_layer
from sweeper.noise.spec import NoiseSpec


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_gaussian_noise_is_kerass_gaussian_noise_identity_in_eval_x_plus_normal_in_train():
    sigma = 0.2
    x = torch.randn(400, 500, generator=gen(1))
    layer = GaussianNoise(sigma, generator=gen(2))

    y = layer(x)  # training mode, as a fresh nn.Module (Keras: training=True)
    eps = (y - x).double()
    assert y.shape == x.shape and y.dtype == x.dtype
    assert abs(eps.mean().item()) < 5 * sigma / math.sqrt(eps.numel())
    assert eps.std().item() == pytest.approx(sigma, rel=0.01)
    assert stats.kstest(eps.flatten().numpy() / sigma, "norm").pvalue > 1e-3
    # Exactly x + σε with ε the generator's standard normals: reproducible without the global RNG.
    assert torch.equal(y, x + torch.empty_like(x).normal_(0.0, sigma, generator=gen(2)))

    layer.eval()  # Keras: training=False
    assert layer(x) is x


def test_gaussian_noise_has_no_weights_and_nothing_in_its_state_dict():
    layer = GaussianNoise(0.1)
    assert list(layer.parameters()) == []
    assert layer.state_dict() == {}


def test_gaussian_noise_without_generator_uses_the_global_rng():
    x = torch.zeros(1000)
    with torch.random.fork_rng():  # leaves the global RNG as it found it
        torch.manual_seed(3)
        first = GaussianNoise(1.0)(x)
        torch.manual_seed(3)
        assert torch.equal(GaussianNoise(1.0)(x), first)


def test_zero_std_is_the_identity_even_while_training():
    x = torch.randn(10)
    for layer_type in (GaussianNoise, UniformNoise, GaussianDropout):
        assert layer_type(0.0)(x) is x


def test_gaussian_dropout_multiplies_by_one_plus_sigma_epsilon():
    x = torch.randn(50, generator=gen(1))
    y = GaussianDropout(0.4, generator=gen(2))(x)
    assert torch.equal(y, x * (1.0 + torch.empty_like(x).normal_(0.0, 0.4, generator=gen(2))))


def test_uniform_noise_adds_uniform_of_std_sigma():
    x = torch.zeros(200_000)
    eps = UniformNoise(0.3, generator=gen(1))(x).double()
    a = math.sqrt(3) * 0.3
    assert eps.std().item() == pytest.approx(0.3, rel=0.01)
    assert eps.abs().max().item() <= a
    assert stats.kstest(eps.numpy(), "uniform", args=(-a, 2 * a)).pvalue > 1e-3


@pytest.mark.parametrize(
    "kind, layer_type", [("gaussian", GaussianNoise), ("uniform", UniformNoise), ("multiplicative", GaussianDropout)]
)
def test_noise_layer_builds_the_layer_of_a_spec(kind, layer_type):
    layer = noise_layer(NoiseSpec("post_activation", kind, 0.25, "annealed", gamma=0.7))
    assert type(layer) is layer_type
    assert layer.std == 0.25 and layer.spec.schedule == "annealed" and layer.spec.gamma == 0.7


@pytest.mark.parametrize("bad", [-0.1, float("nan")])
def test_layers_refuse_a_negative_or_nan_std(bad):
    with pytest.raises(ValueError, match="std"):
        GaussianNoise(bad)
