"""Annealed noise shrinks as σ/(1+t)^γ with the optimizer step; label flips flip the stated fraction."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

import sweeper.engine.population as population
from sweeper import seeding
from sweeper.engine.result import Member
from sweeper.noise.layers import GaussianNoise, GradientNoise, LabelFlip
from sweeper.noise.pack import PackNoise, flip_labels
from sweeper.noise.philox import PhiloxStreams
from sweeper.noise.spec import DEFAULT_GAMMA, NoiseSpec
from sweeper.noise.streams import GeneratorStreams
from sweeper.tasks.data import input_shape, n_outputs
from sweeper.tasks.models import ReferenceModel, init_params
from sweeper.tasks.spec import TaskSpec

STREAMS = {
    "philox_kernel": PhiloxStreams,
    "philox_torch": lambda seeds: PhiloxStreams(seeds, use_kernel=False),
    "generator": GeneratorStreams,
}


# --- schedules --------------------------------------------------------------------------------------

@pytest.mark.parametrize("step", [0, 1, 2, 10, 100, 12345])
def test_annealed_std_is_sigma_over_one_plus_t_to_the_gamma(step):
    spec = NoiseSpec("gradients", "gaussian", 0.5, "annealed")
    assert spec.gamma == DEFAULT_GAMMA == 0.55
    assert spec.std_at(step) == 0.5 / (1 + step) ** 0.55
    assert NoiseSpec("input", "gaussian", 0.5, "annealed", gamma=1.0).std_at(step) == 0.5 / (1 + step)


def test_annealed_std_starts_at_sigma_and_decreases():
    spec = NoiseSpec("input", "uniform", 0.2, "annealed")
    sizes = [spec.std_at(t) for t in range(50)]
    assert sizes[0] == 0.2
    assert all(a > b for a, b in zip(sizes, sizes[1:]))
    assert NoiseSpec("input", "uniform", 0.2, "annealed", gamma=0.0).std_at(1000) == 0.2


@pytest.mark.parametrize("step", [0, 7, 1000])
def test_constant_std_never_changes(step):
    assert NoiseSpec("weights", "gaussian", 0.3).std_at(step) == 0.3


@pytest.mark.parametrize("streams", list(STREAMS))
@pytest.mark.parametrize("placement", ["input", "gradients"])
def test_pack_noise_applies_the_annealed_std_of_its_step(streams, placement):
    sigma, n = 1.0, 200_000
    configs = [(NoiseSpec(placement, "gaussian", sigma, "annealed"),), (NoiseSpec(placement, "gaussian", sigma),)]
    noise = PackNoise(configs, STREAMS[streams]([1, 2]))
    for step in (0, 100):
        noise.step = step
        x = torch.zeros(2, n)
        if placement == "gradients":
            noise.perturb_grads([x])
            eps = x
        else:
            eps = noise.perturb(placement, x)
        assert eps[0].double().std().item() == pytest.approx(sigma / (1 + step) ** DEFAULT_GAMMA, rel=0.02)
        assert eps[1].double().std().item() == pytest.approx(sigma, rel=0.02)  # the constant member


class _RecordingStreams:
    """Wraps the trainer's streams and records the noise size each member draws at each call."""

    def __init__(self, inner, log):
        self.inner, self.log = inner, log

    def _record(self, scale):
        if any(scale):  # a call where no member draws draws nothing
            self.log.append(list(scale))

    def normal_(self, out, scale):
        self._record(scale)
        return self.inner.normal_(out, scale)

    def uniform_(self, out, scale):
        self._record(scale)
        return self.inner.uniform_(out, scale)

    def add_normal(self, x, scale, relu):
        self._record(scale)
        return self.inner.add_normal(x, scale, relu)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_population_anneals_with_the_optimizer_step_not_the_epoch(monkeypatch):
    log = []
    make = population.make_streams
    monkeypatch.setattr(population, "make_streams", lambda *a, **k: _RecordingStreams(make(*a, **k), log))
    # 30 samples in batches of 8: four optimizer steps per epoch.
    task = TaskSpec(dataset="circles", hidden=(8,), epochs=3, log_every=3, batch_size=8)
    spec = NoiseSpec("input", "gaussian", 0.4, "annealed")
    members = [Member((spec,), 0, seeding.data_seed(0, 0), seeding.init_seed(0, 0), seeding.noise_seed(0, 0, (spec,))),
               Member((), 0, seeding.data_seed(0, 0), seeding.init_seed(0, 0), 1)]
    population.train_population(task, members, engine="stacked")  # the fused engine: tests/engine/test_fused.py
    assert log == [[0.4 / (1 + t) ** DEFAULT_GAMMA, 0.0] for t in range(12)]


def test_annealed_layer_shrinks_with_its_training_calls():
    layer = GaussianNoise(1.0, schedule="annealed", generator=torch.Generator().manual_seed(0))
    x = torch.zeros(200_000)
    assert layer(x).std().item() == pytest.approx(1.0, rel=0.02)
    for _ in range(99):
        layer(x[:1])
    assert layer(x).std().item() == pytest.approx(100 ** -DEFAULT_GAMMA, rel=0.02)
    layer.eval()
    layer(x)
    assert int(layer.step) == 101  # evaluation does not advance the schedule


def test_gradient_noise_helper_anneals_per_call():
    p = torch.nn.Parameter(torch.zeros(100_000))
    helper = GradientNoise([p], GaussianNoise(2.0, schedule="annealed", generator=torch.Generator().manual_seed(1)))
    for step in range(4):
        p.grad = torch.zeros_like(p)
        helper.add_()
        assert p.grad.std().item() == pytest.approx(2.0 / (1 + step) ** DEFAULT_GAMMA, rel=0.02)


# --- label flips ------------------------------------------------------------------------------------

N = 100_000
P = 0.3


def _labels(n_classes, seed=0):
    return torch.randint(n_classes, (N,), generator=torch.Generator().manual_seed(seed))


def _assert_fraction(changed, p):
    sd = math.sqrt(p * (1 - p) / changed.numel())
    assert abs(changed.float().mean().item() - p) < 4 * sd, changed.float().mean().item()


def _assert_uniform_over_other_classes(y, flipped, n_classes):
    """Among flipped labels, the new class is never the old one and each other class is equally likely."""
    assert (flipped != y).all()
    offsets = ((flipped - y) % n_classes).numpy()  # 1 .. n_classes-1 when uniform over the other classes
    counts = np.bincount(offsets, minlength=n_classes)
    assert counts[0] == 0
    if n_classes > 2:
        assert stats.chisquare(counts[1:]).pvalue > 1e-3


@pytest.mark.parametrize("streams", list(STREAMS))
def test_binary_label_flip_flips_the_stated_fraction(streams):
    y = _labels(2).float()[None].repeat(2, 1)  # (members, batch): float 0/1 like the trainer's
    noise = PackNoise([(NoiseSpec("targets", "flip", P),), ()], STREAMS[streams]([1, 2]))
    out = noise.noisy_targets(y, n_classes=2)
    changed = out[0] != y[0]
    _assert_fraction(changed, P)
    assert torch.equal(out[0][changed], 1 - y[0][changed])
    assert torch.equal(out[1], y[1])  # a member without flips keeps its labels


@pytest.mark.parametrize("streams", list(STREAMS))
def test_multiclass_label_flip_moves_the_stated_fraction_to_another_class_uniformly(streams):
    k = 10
    y = _labels(k)[None].repeat(2, 1)
    noise = PackNoise([(NoiseSpec("targets", "flip", P),), ()], STREAMS[streams]([1, 2]))
    out = noise.noisy_targets(y, n_classes=k)
    changed = out[0] != y[0]
    # Were a flip ever to land on the same class, fewer than P of the labels would change.
    _assert_fraction(changed, P)
    _assert_uniform_over_other_classes(y[0][changed], out[0][changed], k)
    assert torch.equal(out[1], y[1])


@pytest.mark.parametrize("n_classes", [3, 10])
def test_flip_with_probability_one_changes_every_label_uniformly(n_classes):
    y = _labels(n_classes)
    g = torch.Generator().manual_seed(3)
    out = flip_labels(y, 1.0, n_classes, lambda shape: torch.rand(shape, generator=g))
    _assert_uniform_over_other_classes(y, out, n_classes)


def test_flip_is_fresh_at_every_step():
    y = _labels(10)[None]
    noise = PackNoise([(NoiseSpec("targets", "flip", P),)], PhiloxStreams([4]))
    first, second = noise.noisy_targets(y, 10), noise.noisy_targets(y, 10)
    assert not torch.equal(first, second)


@pytest.mark.parametrize("streams", list(STREAMS))
def test_annealed_flip_probability_follows_the_step(streams):
    y = _labels(2).float()[None]
    noise = PackNoise([(NoiseSpec("targets", "flip", P, "annealed"),)], STREAMS[streams]([9]))
    noise.step = 100
    _assert_fraction(noise.noisy_targets(y, 2)[0] != y[0], P / 101 ** DEFAULT_GAMMA)


@pytest.mark.parametrize("n_classes", [2, 10])
def test_label_flip_layer_flips_the_stated_fraction(n_classes):
    y = _labels(n_classes)
    flip = LabelFlip(P, n_classes, generator=torch.Generator().manual_seed(5))
    out = flip(y)
    changed = out != y
    _assert_fraction(changed, P)
    _assert_uniform_over_other_classes(y[changed], out[changed], n_classes)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_reference_rnn_anneals_its_pre_activation_noise_once_per_optimizer_step(cell):
    task = TaskSpec(dataset="digits", model="rnn", cell=cell, hidden=(8,))
    spec = NoiseSpec("pre_activation", "gaussian", 0.5, "annealed")
    model = ReferenceModel(task, input_shape(task), n_outputs(task), (spec,), torch.Generator().manual_seed(0))
    model.load_params(init_params(task, input_shape(task), n_outputs(task), torch.Generator().manual_seed(1)))
    model(torch.zeros(4, *input_shape(task)))  # one training step's forward pass
    assert int(model.pre[0].step) == 1
