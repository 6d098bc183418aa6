"""Noise only while training: evaluation never samples noise, at any placement (docs/design.md, "The pack")."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

import sweeper.engine.population as population
from sweeper import seeding
from sweeper.engine import losses
from sweeper.noise.layers import Dropout, GaussianDropout, GaussianNoise, UniformNoise, WeightNoise
from sweeper.noise.pack import PackNoise
from sweeper.noise.spec import NoiseSpec, make_config
from sweeper.noise.streams import make_streams
from sweeper.records import Member
from sweeper.tasks.data import input_shape, n_outputs
from sweeper.tasks.families import family
from sweeper.tasks.spec import TaskSpec

LAYERS = [GaussianNoise, UniformNoise, GaussianDropout, Dropout]
FORWARD_PLACEMENTS = ("input", "pre_activation", "post_activation", "weights")
TASKS = {
    "mlp": TaskSpec(dataset="circles", hidden=(16, 8)),
    "cnn": TaskSpec(dataset="digits", model="cnn", channels=(4, 8), hidden=(16,)),
    "lstm": TaskSpec(dataset="digits", model="rnn", cell="lstm", hidden=(16,)),
    "gru": TaskSpec(dataset="digits", model="rnn", cell="gru", hidden=(16,)),
}


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- the public layers ------------------------------------------------------------------------------


@pytest.mark.parametrize("layer_type", LAYERS)
def test_noise_layer_is_the_identity_in_eval_mode(layer_type):
    layer = layer_type(0.5, generator=gen()).eval()
    x = torch.randn(64, 10, generator=gen(1))
    assert torch.equal(layer(x), x)
    assert torch.equal(layer(x), layer(x))


@pytest.mark.parametrize("layer_type", LAYERS)
def test_noise_layer_is_active_in_train_mode(layer_type):
    layer = layer_type(0.5, generator=gen())
    assert layer.training
    x = torch.randn(64, 10, generator=gen(1))
    first, second = layer(x), layer(x)
    assert (first != x).all() and (second != x).all()
    if layer_type is Dropout:  # a unit kept twice is x / (1 − p) twice: the masks are what is fresh
        assert not torch.equal(first == 0, second == 0)
    else:
        assert (first != second).all()  # fresh noise at every call


@pytest.mark.parametrize("layer_type", LAYERS)
def test_weight_noise_is_active_in_train_mode_and_leaves_the_stored_weights_clean(layer_type):
    linear = nn.Linear(10, 6)
    clean_w, clean_b = linear.weight.detach().clone(), linear.bias.detach().clone()
    parametrize.register_parametrization(linear, "weight", WeightNoise(layer_type(0.3, generator=gen())))
    x = torch.randn(32, 10, generator=gen(1))

    noisy = linear(x)
    assert not torch.allclose(noisy, F.linear(x, clean_w, clean_b), atol=1e-3)
    assert not torch.equal(linear(x), noisy)
    assert torch.equal(linear.parametrizations.weight.original, clean_w)
    assert torch.equal(linear.state_dict()["parametrizations.weight.original"], clean_w)

    linear.eval()
    assert torch.equal(linear(x), F.linear(x, clean_w, clean_b))
    assert torch.equal(linear.weight, clean_w)
    assert torch.equal(linear.parametrizations.weight.original, clean_w)


def test_weight_noise_gradient_reaches_the_clean_weights_which_only_the_optimizer_changes():
    linear = nn.Linear(4, 3)
    clean = linear.weight.detach().clone()
    parametrize.register_parametrization(linear, "weight", WeightNoise(GaussianNoise(0.3, generator=gen())))
    linear(torch.ones(2, 4)).sum().backward()
    original = linear.parametrizations.weight.original
    assert original.grad is not None and torch.equal(original, clean)


# --- the reference model ----------------------------------------------------------------------------


def reference_models(task, config, seed=0):
    """The task's reference model with ``config``'s noise and the same model without noise, same weights."""
    shape, n_out = input_shape(task), n_outputs(task)
    params = family(task).code.init_params(task, shape, n_out, seed)
    noisy = family(task).code.Reference(task, shape, n_out, config, gen(seed + 1), total_steps=100)
    noisy.load_params(params)
    clean = family(task).code.Reference(task, shape, n_out)
    clean.load_params(params)
    return noisy, clean, params


def inputs(task, batch=12, members=None):
    shape = (batch, *input_shape(task)) if members is None else (members, batch, *input_shape(task))
    return torch.randn(shape, generator=gen(7))


def _configs():
    cases = {
        f"{p}-{k}": make_config([NoiseSpec(p, k, 0.5)])
        for p in FORWARD_PLACEMENTS
        for k in ("gaussian", "multiplicative", "uniform", "dropout")
    }
    cases["every-placement-annealed"] = make_config(
        [NoiseSpec(p, "gaussian", 0.5, "annealed") for p in FORWARD_PLACEMENTS]
    )
    cases["every-placement-dropout-linear"] = make_config(
        [NoiseSpec(p, "dropout", 0.5, "linear") for p in FORWARD_PLACEMENTS]
    )
    return cases


CONFIGS = _configs()


@pytest.mark.parametrize("case", list(CONFIGS))
@pytest.mark.parametrize("task_name", list(TASKS))
def test_reference_model_in_eval_mode_equals_the_same_weights_without_noise(task_name, case):
    task = TASKS[task_name]
    noisy, clean, _ = reference_models(task, CONFIGS[case])
    x = inputs(task)
    with torch.no_grad():
        trained = noisy(x)  # a training-mode call: noise on
        assert not torch.allclose(trained, clean(x), atol=1e-4)
        noisy.eval()
        first, second = noisy(x), noisy(x)
        assert torch.equal(first, second)
        assert torch.equal(first, clean(x))


# --- the stacked population -------------------------------------------------------------------------


@pytest.mark.parametrize("task_name", list(TASKS))
def test_stacked_forward_without_noise_is_every_members_noise_free_model(task_name):
    task = TASKS[task_name]
    configs = list(CONFIGS.values())[::4][:4]  # a member per forward placement
    models = [reference_models(task, c, seed=k) for k, c in enumerate(configs)]
    params = {name: torch.stack([p[name] for _, _, p in models]) for name in models[0][2]}
    x = inputs(task, members=len(configs))

    evaluated = family(task).code.forward(task, params, x)  # noise=None, as in evaluation
    assert torch.equal(evaluated, family(task).code.forward(task, params, x))
    for k, (noisy, _, _) in enumerate(models):
        with torch.no_grad():
            torch.testing.assert_close(evaluated[k], noisy.eval()(x[k]), rtol=1e-5, atol=1e-5)

    noise = PackNoise(configs, make_streams([1, 2, 3, 4], "cpu"))
    trained = family(task).code.forward(task, params, x, noise)
    for k in range(len(configs)):
        assert not torch.allclose(trained[k], evaluated[k], atol=1e-4), configs[k]


EVERY_PLACEMENT = [
    make_config([NoiseSpec("input", "gaussian", 0.3)]),
    make_config([NoiseSpec("pre_activation", "multiplicative", 0.3)]),
    make_config([NoiseSpec("post_activation", "uniform", 0.3)]),
    make_config([NoiseSpec("weights", "gaussian", 0.2, "annealed")]),
    make_config([NoiseSpec("gradients", "gaussian", 0.1)]),
    make_config([NoiseSpec("targets", "flip", 0.2)]),
    make_config([NoiseSpec("pre_activation", "dropout", 0.3, "cosine"), NoiseSpec("weights", "dropout", 0.2)]),
]


@pytest.mark.parametrize("streams", ["philox", "generator"])
@pytest.mark.parametrize("task_name", ["mlp", "cnn", "gru"])
def test_trained_population_logs_noise_free_metrics_at_every_placement(monkeypatch, task_name, streams):
    task = TASKS[task_name].model_copy(update={"epochs": 4, "log_every": 2})
    calls, evaluate = [], population.evaluate

    def spy(task, params, data):
        logged = evaluate(task, params, data)
        calls.append(({k: v.detach().clone() for k, v in params.items()}, data, logged))
        return logged

    monkeypatch.setattr(population, "evaluate", spy)
    members = [
        Member(c, 0, seeding.data_seed(0, 0), seeding.init_seed(0, 0), seeding.noise_seed(0, 0, c))
        for c in EVERY_PLACEMENT
    ]
    results = population.train_population(task, members, streams=streams, engine="stacked")

    assert len(calls) == 2
    for i, (params, data, logged) in enumerate(calls):
        with torch.no_grad():
            out = family(task).code.forward(task, params, data.x_test)
            again = losses.metrics(out, data.y_test, data.n_classes, data.y_std)
        for name, value in again.items():
            assert torch.equal(value, logged[f"test_{name}"])
            for k, result in enumerate(results):
                assert result.curves[f"test_{name}"][i] == np.float64(value[k].item())
        # What each member's own noisy reference model computes in eval mode with the trained weights.
        for k, m in enumerate(members):
            model = family(task).code.Reference(task, input_shape(task), n_outputs(task), m.config, gen())
            model.load_params({name: p[k] for name, p in params.items()})
            with torch.no_grad():
                torch.testing.assert_close(model.eval()(data.x_test[k]), out[k], rtol=1e-5, atol=1e-5)
