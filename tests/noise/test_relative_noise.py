"""Relative noise: σ in units of each feature's standard deviation on the training part.

It matters where the task leaves the data in its own units (scaling none or minmax) and changes nothing
under standard scaling, where every feature already has standard deviation 1.
"""

import math

import numpy as np
import pytest
import torch

from sweeper.engine._shared import pack_data
from sweeper.engine.population import train_population
from sweeper.noise.layers import GaussianNoise, UniformNoise
from sweeper.noise.pack import PackNoise
from sweeper.noise.philox import PhiloxStreams
from sweeper.noise.spec import NoiseSpec
from sweeper.noise.streams import GeneratorStreams
from sweeper.records import Member
from sweeper.tasks.data import load_split
from sweeper.tasks.spec import TaskSpec

STREAMS = {
    "philox_kernel": PhiloxStreams,
    "philox_torch": lambda seeds: PhiloxStreams(seeds, use_kernel=False),
    "generator": GeneratorStreams,
}


def member(config, noise_seed=99, repeat=0):
    return Member(config, repeat, 3 + repeat, 5 + repeat, noise_seed)


@pytest.mark.parametrize("scaling", ["none", "minmax"])
def test_feature_std_is_each_features_spread_on_the_training_part(scaling):
    task = TaskSpec(dataset="wine", n_train=40, scaling=scaling)
    data = pack_data(task, [member(()), member((), repeat=1)], torch.device("cpu"))
    for k, seed in enumerate([3, 4]):
        x_train = load_split(task, seed).x_train
        np.testing.assert_array_equal(
            data.input_std[k].numpy(), x_train.astype(np.float64).std(axis=0).astype(np.float32)
        )
    assert data.input_std.shape == (2, 13)
    if scaling == "none":  # wine's raw features range from hue (~0.2) to proline (~300)
        assert data.input_std.max() / data.input_std.min() > 100
    else:  # in [0, 1] after min-max scaling
        assert data.input_std.max() <= 0.5
    assert data.target_std is None  # class labels have no spread to scale by


def test_standard_scaling_and_standardized_targets_leave_nothing_to_scale():
    assert pack_data(TaskSpec(dataset="diabetes"), [member(())], torch.device("cpu")).input_std is None
    minmax = pack_data(TaskSpec(dataset="diabetes", scaling="minmax"), [member(())], torch.device("cpu"))
    assert minmax.input_std is not None and minmax.target_std is None  # regression targets are standardized
    raw = pack_data(TaskSpec(dataset="diabetes", scaling="none"), [member(())], torch.device("cpu"))
    y_train = load_split(TaskSpec(dataset="diabetes", scaling="none"), 3).y_train
    assert raw.target_std.item() == np.float32(y_train.astype(np.float64).std())


@pytest.mark.parametrize("kind", ["gaussian", "uniform"])
@pytest.mark.parametrize("streams", list(STREAMS))
def test_relative_input_noise_is_the_plain_draw_times_each_features_std(streams, kind):
    spreads = torch.tensor([[0.01, 1.0, 30.0], [2.0, 2.0, 2.0]])
    relative = [(NoiseSpec("input", kind, 0.2, relative=True),), (NoiseSpec("input", kind, 0.2),)]
    plain = [(NoiseSpec("input", kind, 0.2),)] * 2
    x = torch.zeros(2, 100_000, 3)
    noisy = PackNoise(relative, STREAMS[streams]([1, 2]), feature_std={"input": spreads}).perturb("input", x)
    drawn = PackNoise(plain, STREAMS[streams]([1, 2])).perturb("input", x)
    assert torch.equal(noisy[0], drawn[0] * spreads[0])  # the same draws, scaled per feature
    assert torch.equal(noisy[1], drawn[1])  # a member without relative noise is untouched
    for j, sd in enumerate(spreads[0].tolist()):
        assert noisy[0, :, j].double().std().item() == pytest.approx(0.2 * sd, rel=0.02)


def test_relative_target_noise_scales_by_the_targets_std():
    y = torch.zeros(1, 200_000)
    noise = PackNoise(
        [(NoiseSpec("targets", "gaussian", 0.1, relative=True),)],
        PhiloxStreams([4]),
        feature_std={"targets": torch.tensor([25.0])},
    )
    assert noise.noisy_targets(y, n_classes=0)[0].double().std().item() == pytest.approx(2.5, rel=0.02)


@pytest.mark.parametrize("layer_type", [GaussianNoise, UniformNoise])
def test_layer_with_feature_std_draws_the_plain_noise_times_the_std(layer_type):
    spread = torch.tensor([0.5, 4.0])
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    relative = layer_type(0.3, feature_std=spread, generator=torch.Generator().manual_seed(2))(x)
    plain = layer_type(0.3, generator=torch.Generator().manual_seed(2))(torch.zeros_like(x))
    assert torch.equal(relative, plain * spread + x)


@pytest.mark.parametrize(
    "placement, kind",
    [("pre_activation", "gaussian"), ("input", "multiplicative"), ("input", "dropout"), ("weights", "uniform")],
)
def test_relative_applies_to_additive_noise_on_the_data_only(placement, kind):
    with pytest.raises(ValueError, match="relative applies to kinds gaussian, uniform at placements input, targets"):
        NoiseSpec(placement, kind, 0.1, relative=True)


TASK = TaskSpec(dataset="circles", hidden=(16,), epochs=12, log_every=6)


@pytest.mark.parametrize("engine", ["auto", "stacked"])
def test_under_standard_scaling_relative_noise_trains_exactly_what_plain_noise_trains(engine):
    relative, plain = (NoiseSpec("input", "gaussian", 0.3, relative=True),), (NoiseSpec("input", "gaussian", 0.3),)
    a, b = train_population(TASK, [member(relative), member(plain)], engine=engine)  # same noise seed
    for name in a.curves:
        if engine == "stacked" and not name.endswith("accuracy"):
            # Float64 functions of the logits, which the stacked program computes to float32 rounding that
            # depends on a member's place in the pack (its batched products); accuracies round that away.
            # The fused engine computes each member alone: the same bits.
            np.testing.assert_allclose(a.curves[name], b.curves[name], rtol=1e-7)
        else:
            np.testing.assert_array_equal(a.curves[name], b.curves[name])


@pytest.mark.parametrize("engine", ["auto", "stacked"])
def test_without_scaling_relative_noise_is_sized_by_the_data(engine):
    task = TASK.model_copy(update={"scaling": "none"})
    relative, plain = (NoiseSpec("input", "gaussian", 0.3, relative=True),), (NoiseSpec("input", "gaussian", 0.3),)
    a, b, quiet = train_population(task, [member(relative), member(plain), member(())], engine=engine)
    assert not np.array_equal(a.curves["train_loss"], b.curves["train_loss"])
    assert not np.array_equal(a.curves["train_loss"], quiet.curves["train_loss"])
    assert all(math.isfinite(v) for v in a.final.values())
