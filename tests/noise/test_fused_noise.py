"""The fused kernel (draw, add, ReLU in one pass) computes exactly what the separate steps compute."""

import pytest
import torch
import torch.nn.functional as F

from sweeper.noise.pack import PackNoise
from sweeper.noise.philox import PhiloxStreams, kernel
from sweeper.noise.spec import NoiseSpec

SEEDS = [21, 2**62 + 3, 5]
SCALES = [0.5, 0.0, 1.5]  # the middle member has no noise at the site


@pytest.fixture(autouse=True)
def c_kernel():
    if kernel() is None:
        pytest.skip("the C noise kernel cannot be built here (no C compiler)")


def pack(placement="pre_activation", streams=None):
    configs = [(NoiseSpec(placement, "gaussian", s),) if s else () for s in SCALES]
    return PackNoise(configs, streams or PhiloxStreams(SEEDS))


def z_like(n=3001):
    return torch.randn(3, 7, n, generator=torch.Generator().manual_seed(0))


def two_steps(z, act):
    eps = PhiloxStreams(SEEDS).normal_(torch.zeros_like(z), SCALES)
    return act(z + eps)


def test_fused_add_and_relu_equals_relu_of_x_plus_the_same_draws():
    z = z_like()
    noise = pack()
    assert noise.streams.can_add_normal(z)
    torch.testing.assert_close(noise.pre_activate(z, F.relu), two_steps(z, F.relu), rtol=0, atol=0)
    assert torch.equal(noise.pre_activate(z, F.relu)[1], F.relu(z[1]))  # fresh draws, but member 1 draws none


@pytest.mark.parametrize("placement", ["input", "weights", "post_activation"])
def test_fused_add_equals_x_plus_the_same_draws(placement):
    z = z_like()
    torch.testing.assert_close(pack(placement).perturb(placement, z), two_steps(z, lambda v: v), rtol=0, atol=0)


def test_fused_and_torch_philox_paths_agree():
    z = z_like()
    fused = pack().pre_activate(z, F.relu)
    slow = pack(streams=PhiloxStreams(SEEDS, use_kernel=False)).pre_activate(z, F.relu)
    torch.testing.assert_close(fused, slow, rtol=0, atol=1e-5)


def test_fused_relu_backward_is_relus_backward():
    z1 = z_like(501).requires_grad_()
    z2 = z1.detach().clone().requires_grad_()
    upstream = torch.randn(3, 7, 501, generator=torch.Generator().manual_seed(1))
    (pack().pre_activate(z1, F.relu) * upstream).sum().backward()
    (two_steps(z2, F.relu) * upstream).sum().backward()
    assert torch.equal(z1.grad, z2.grad)


def test_fused_relu_lets_nan_through_so_divergence_stays_visible():
    z = z_like(64)
    z[0, 0, 3] = float("nan")
    z[1, 2, 5] = float("nan")
    out = pack().pre_activate(z, F.relu)
    assert out[0, 0, 3].isnan() and out[1, 2, 5].isnan()
    assert out.isnan().sum() == 2


def test_fused_path_advances_the_streams_like_the_separate_draws():
    z = z_like(1001)
    fused, streams = pack(), PhiloxStreams(SEEDS)
    for _ in range(3):
        fused.pre_activate(z, F.relu)
        streams.normal_(torch.zeros_like(z), SCALES)
    assert fused.streams.blocks == streams.blocks
