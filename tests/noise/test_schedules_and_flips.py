"""Schedules follow their formulas at every optimizer step, in every engine; label flips flip the stated fraction.

``annealed`` is Neelakantan et al. 2015's: the variance falls as η/(1 + t)^γ, so the std as (1 + t)^(−γ/2).
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats

import sweeper.engine.population as population
from sweeper import seeding
from sweeper.engine import fused
from sweeper.noise.layers import GaussianNoise, GradientNoise, LabelFlip
from sweeper.noise.pack import PackNoise, flip_labels
from sweeper.noise.philox import PhiloxStreams
from sweeper.noise.spec import DEFAULT_GAMMA, NoiseSpec
from sweeper.noise.streams import GeneratorStreams
from sweeper.records import Member
from sweeper.tasks.data import input_shape, n_outputs
from sweeper.tasks.families import family
from sweeper.tasks.spec import OptimizerSpec, TaskSpec

STREAMS = {
    "philox_kernel": PhiloxStreams,
    "philox_torch": lambda seeds: PhiloxStreams(seeds, use_kernel=False),
    "generator": GeneratorStreams,
}


# --- schedules --------------------------------------------------------------------------------------

SIGMA, T = 0.5, 4000
STEPS = [0, 1, 2, 10, 100, 1000, 3999]


def formula(schedule, t, sigma=SIGMA, gamma=DEFAULT_GAMMA, std_min=0.0, total=T):
    """The schedules as the literature writes them, in float64."""
    if schedule == "annealed":  # Neelakantan et al. 2015: σ_t² = η / (1 + t)^γ with η = σ²
        return math.sqrt(sigma**2 / (1 + t) ** gamma)
    if schedule == "linear":
        return std_min + (sigma - std_min) * (1 - t / total)
    if schedule == "cosine":
        return std_min + (sigma - std_min) * (1 + math.cos(math.pi * t / total)) / 2
    return sigma


SCHEDULED = [
    NoiseSpec("gradients", "gaussian", SIGMA, "annealed"),
    NoiseSpec("gradients", "gaussian", SIGMA, "annealed", gamma=1.0),
    NoiseSpec("gradients", "gaussian", SIGMA, "linear"),
    NoiseSpec("gradients", "gaussian", SIGMA, "linear", std_min=0.1),
    NoiseSpec("gradients", "gaussian", SIGMA, "cosine", std_min=0.05),
]


def _expected(spec, t):
    return formula(spec.schedule, t, spec.std, spec.gamma, spec.std_min)


@pytest.mark.parametrize("spec", SCHEDULED, ids=lambda s: f"{s.schedule}-{s.gamma}-{s.std_min}")
@pytest.mark.parametrize("step", STEPS)
def test_scheduled_std_is_the_literatures_formula_rounded_to_float32(spec, step):
    size = spec.std_at(step, T)
    assert size == pytest.approx(_expected(spec, step), rel=1e-7)
    assert size == float(np.float32(size))  # the precision every engine draws in


def test_annealing_shrinks_the_variance_with_gamma_so_the_std_falls_with_half_of_it():
    spec = NoiseSpec("gradients", "gaussian", 1.0, "annealed")
    assert spec.gamma == DEFAULT_GAMMA == 0.55
    assert spec.std_at(0) == 1.0
    # After 4000 steps the std has fallen to 0.10 of its start (the old std / (1 + t)^γ gave 0.010).
    assert spec.std_at(4000) == pytest.approx(4001**-0.275, rel=1e-6)
    assert 0.10 < spec.std_at(4000) < 0.11
    assert spec.std_at(4000) ** 2 == pytest.approx(1.0 / 4001**0.55, rel=1e-6)


def test_decays_start_at_std_end_at_std_min_and_decrease():
    for schedule in ("linear", "cosine"):
        spec = NoiseSpec("input", "uniform", 0.2, schedule, std_min=0.02)
        sizes = [spec.std_at(t, 100) for t in range(101)]
        assert sizes[0] == pytest.approx(0.2) and sizes[-1] == pytest.approx(0.02)
        assert all(a > b for a, b in zip(sizes, sizes[1:]))
        assert spec.std_at(500, 100) == pytest.approx(0.02)  # past the run: the floor
    assert NoiseSpec("input", "uniform", 0.2, "linear").std_at(50, 100) == pytest.approx(0.1)
    assert NoiseSpec("input", "uniform", 0.2, "cosine").std_at(50, 100) == pytest.approx(0.1)
    assert NoiseSpec("input", "uniform", 0.2, "cosine").std_at(25, 100) == pytest.approx(0.1 * (1 + math.sqrt(0.5)))


def test_decays_need_the_runs_length_and_a_floor_below_the_start():
    with pytest.raises(ValueError, match="total_steps"):
        NoiseSpec("input", "gaussian", 0.2, "linear").std_at(3)
    with pytest.raises(ValueError, match="std_min"):
        NoiseSpec("input", "gaussian", 0.2, "cosine", std_min=0.3)
    with pytest.raises(ValueError, match="std_min applies only"):
        NoiseSpec("input", "gaussian", 0.2, "annealed", std_min=0.1)
    with pytest.raises(ValueError, match="total_steps"):
        GaussianNoise(0.2, schedule="linear")(torch.zeros(3))
    assert torch.equal(GaussianNoise(0.2, schedule="linear").eval()(torch.zeros(3)), torch.zeros(3))


@pytest.mark.parametrize("step", [0, 7, 1000])
def test_constant_std_never_changes(step):
    assert NoiseSpec("weights", "gaussian", 0.3).std_at(step) == 0.3


# Every engine uses the table NoiseSpec.std_at gives: the stacked program's streams, the public layers
# (and so the reference loop built from them) and the fused C trainer.


@pytest.mark.parametrize("spec", SCHEDULED, ids=lambda s: f"{s.schedule}-{s.gamma}-{s.std_min}")
@pytest.mark.parametrize("streams", list(STREAMS))
def test_stacked_program_draws_each_steps_size_of_the_schedule(streams, spec):
    noise = PackNoise([(spec,)], STREAMS[streams]([7]), total_steps=T)
    exact = STREAMS[streams]([7])  # the same stream, drawn at the formula's sizes
    for step in STEPS:
        noise.step = step
        g = torch.zeros(1, 3000)
        noise.perturb_grads([g])
        size = spec.std_at(step, T)
        assert size == pytest.approx(_expected(spec, step), rel=1e-7)
        assert torch.equal(g, exact.normal_(torch.zeros(1, 3000), [size]))
        assert g.double().std().item() == pytest.approx(_expected(spec, step), rel=0.05)


@pytest.mark.parametrize("spec", SCHEDULED, ids=lambda s: f"{s.schedule}-{s.gamma}-{s.std_min}")
def test_public_layer_draws_each_steps_size_of_the_schedule(spec):
    layer = GaussianNoise(
        spec.std,
        schedule=spec.schedule,
        gamma=spec.gamma,
        std_min=spec.std_min,
        total_steps=T,
        generator=torch.Generator().manual_seed(3),
    )
    expected = torch.Generator().manual_seed(3)
    x = torch.zeros(1000)
    for step in STEPS:
        layer.step.fill_(step)
        size = spec.std_at(step, T)
        assert size == pytest.approx(_expected(spec, step), rel=1e-7)
        assert torch.equal(layer(x), torch.zeros(1000).normal_(0.0, size, generator=expected))
        assert int(layer.step) == step + 1


def _fused_gradient_noise(spec, step):
    """The gradient noise the fused C trainer adds at optimizer step ``step``: a member with the noise
    and one without, same data and weights, one SGD step of learning rate 1 from the same point."""
    task = TaskSpec(
        dataset="circles", hidden=(16,), epochs=T, batch_size="full", optimizer=OptimizerSpec(name="sgd", lr=1.0)
    )
    members = [Member((spec,), 0, 0, 1, 7), Member((), 0, 0, 1, 7)]
    data = fused.pack_data(task, members, torch.device("cpu"))
    program = fused._Program(task, members, data)
    program.train(1, step, None, data.x_train.shape[1])
    params = program.params()
    return {name: (p[1] - p[0]).double() for name, p in params.items()}  # θ − g − (θ − g − σε) = σε


@pytest.mark.skipif(fused.task_fits(TaskSpec(), torch.device("cpu")) is False, reason="no C kernels here")
@pytest.mark.parametrize("spec", SCHEDULED, ids=lambda s: f"{s.schedule}-{s.gamma}-{s.std_min}")
def test_fused_engine_adds_each_steps_size_of_the_schedule(spec):
    for step in (0, 10, 1000, 3999):
        noise = _fused_gradient_noise(spec, step)
        # The same draws at size 1, in the canonical parameter order (each weight, then its bias).
        streams = PhiloxStreams([7])
        for name, diff in noise.items():
            unit = streams.normal_(torch.zeros((1, *diff.shape)), [1.0])[0].double()
            size = (diff * unit).sum() / (unit * unit).sum()
            assert size.item() == pytest.approx(_expected(spec, step), rel=1e-4), (name, step)
            torch.testing.assert_close(diff, _expected(spec, step) * unit, rtol=1e-4, atol=1e-6)


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
        assert eps[0].double().std().item() == pytest.approx(sigma / (1 + step) ** (DEFAULT_GAMMA / 2), rel=0.02)
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
    members = [
        Member((spec,), 0, seeding.data_seed(0, 0), seeding.init_seed(0, 0), seeding.noise_seed(0, 0, (spec,))),
        Member((), 0, seeding.data_seed(0, 0), seeding.init_seed(0, 0), 1),
    ]
    population.train_population(task, members, engine="stacked")  # the fused engine: tests/engine/test_fused.py
    assert log == [[pytest.approx(0.4 / (1 + t) ** (DEFAULT_GAMMA / 2), rel=1e-7), 0.0] for t in range(12)]


def test_annealed_layer_shrinks_with_its_training_calls():
    layer = GaussianNoise(1.0, schedule="annealed", generator=torch.Generator().manual_seed(0))
    x = torch.zeros(200_000)
    assert layer(x).std().item() == pytest.approx(1.0, rel=0.02)
    for _ in range(99):
        layer(x[:1])
    assert layer(x).std().item() == pytest.approx(100 ** (-DEFAULT_GAMMA / 2), rel=0.02)
    layer.eval()
    layer(x)
    assert int(layer.step) == 101  # evaluation does not advance the schedule


def test_gradient_noise_helper_anneals_per_call():
    p = torch.nn.Parameter(torch.zeros(100_000))
    helper = GradientNoise([p], GaussianNoise(2.0, schedule="annealed", generator=torch.Generator().manual_seed(1)))
    for step in range(4):
        p.grad = torch.zeros_like(p)
        helper.add_()
        assert p.grad.std().item() == pytest.approx(2.0 / (1 + step) ** (DEFAULT_GAMMA / 2), rel=0.02)


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
    _assert_fraction(noise.noisy_targets(y, 2)[0] != y[0], P / 101 ** (DEFAULT_GAMMA / 2))


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
    code, shape, n_out = family(task).code, input_shape(task), n_outputs(task)
    model = code.Reference(task, shape, n_out, (spec,), torch.Generator().manual_seed(0))
    model.load_params(code.init_params(task, shape, n_out, 1))
    model(torch.zeros(4, *input_shape(task)))  # one training step's forward pass
    assert int(model.pre[0].step) == 1
