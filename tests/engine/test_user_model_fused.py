"""A user's model that is a plain stack of dense layers trains on the fused C engine, with the same numbers.

The fused engine takes an ``nn.Sequential`` of an optional ``nn.Flatten``, then ``nn.Linear`` and one
activation it knows (ReLU, Tanh, Sigmoid), from each member's own initial parameters (its factory's,
drawn from its init seed), and gives what the torch.func engine (``engine="stacked"``) gives for it to
float rounding: the two draw the same Philox numbers at the same counters, at zero noise and with every
placement and kind on. A member with weight noise and activation noise together (the two draw those in
another order) and every other model keep the torch.func engine. The factories are in
``user_models/toy_models.py``.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import member

from sweeper.engine import fused
from sweeper.engine.population import train_population
from sweeper.noise.spec import NoiseSpec, make_config
from sweeper.tasks import user_models
from sweeper.tasks.data import load_split
from sweeper.tasks.spec import OptimizerSpec, TaskSpec

sys.path.insert(0, str(Path(__file__).with_name("user_models")))  # where a search space's folder would be

TOL = 1e-5  # float rounding over 20 epochs (sums in another order), as test_user_model's


def task(factory="mlp", args=None, sites=(), **fields):
    model = {"factory": f"toy_models:{factory}", "args": args or {}, "sites": list(sites)}
    return TaskSpec.model_validate({"dataset": "circles", "epochs": 20, "log_every": 5, "model": model, **fields})


TASKS = {
    "binary_relu_full_adam": task("mlp", {"width": 16}),
    "multiclass_tanh_minibatch_sgd": task(
        "mlp",
        {"width": 12, "depth": 2, "activation": "tanh", "flatten": False},
        dataset="iris",
        batch_size=8,
        optimizer=OptimizerSpec(name="sgd", lr=0.05, momentum=0.9),
    ),
    "regression_sigmoid_unscaled": task(
        "mlp", {"width": 16, "activation": "sigmoid"}, dataset="friedman1", scaling="none", batch_size=16
    ),
    "images_flattened": task("mlp", {"width": 16, "depth": 2}, dataset="digits", epochs=6, log_every=3),
}


def _spec(placement, kind, std=0.3, schedule="constant", **more):
    return NoiseSpec(placement, kind, std, schedule, **more)


def configs(task_name: str) -> list:
    """Zero noise, every placement and kind alone, and combinations the fused engine takes."""
    regression = task_name.startswith("regression")
    out = [(), make_config([_spec("pre_activation", "gaussian", 0.0)]), make_config([_spec("weights", "uniform", 0.0)])]
    out += [
        make_config([_spec(p, k)])
        for p in ("input", "pre_activation", "post_activation", "weights", "gradients")
        for k in ("gaussian", "multiplicative", "uniform")
    ]
    out += [make_config([_spec(p, "dropout", 0.2)]) for p in ("input", "pre_activation", "post_activation", "weights")]
    if regression:
        out += [make_config([_spec("targets", k, 0.2)]) for k in ("gaussian", "multiplicative", "uniform")]
        out += [
            make_config([_spec("input", "gaussian", 0.2, relative=True)]),
            make_config([_spec("targets", "uniform", 0.2, relative=True)]),
        ]
    else:
        out += [make_config([_spec("targets", "flip", 0.2)])]
    out += [
        make_config(
            [_spec("pre_activation", "gaussian", 0.3, "annealed"), _spec("gradients", "gaussian", 0.05, "annealed")]
        ),
        make_config([_spec("input", "uniform"), _spec("post_activation", "gaussian", 0.3, "cosine")]),
        make_config([_spec("pre_activation", "dropout", 0.3, "linear"), _spec("post_activation", "multiplicative")]),
        make_config(
            [
                _spec("input", "gaussian"),
                _spec("weights", "dropout", 0.1, "linear"),
                _spec("gradients", "uniform", 0.05),
            ]
        ),
    ]
    return out


def assert_close(a, b, tol=TOL):
    assert a.curve_epochs.tolist() == b.curve_epochs.tolist()
    assert a.curves.keys() == b.curves.keys()
    for name in b.curves:
        np.testing.assert_allclose(a.curves[name], b.curves[name], rtol=tol, atol=tol, err_msg=name)
    assert (a.diverged, a.best_epoch, a.failed_to_learn) == (b.diverged, b.best_epoch, b.failed_to_learn)


@pytest.mark.parametrize("task_name", list(TASKS))
def test_a_dense_stack_trains_on_the_fused_engine_with_the_numbers_of_the_torch_func_engine(task_name):
    t = TASKS[task_name]
    cs = configs(task_name)
    members = [member(c, k % 2) for k, c in enumerate(cs)]
    fast = train_population(t, members)
    slow = train_population(t, members, engine="stacked")
    assert {r.engine for r in fast} == {"fused"} and {r.engine for r in slow} == {"functional"}
    for k, (a, b) in enumerate(zip(fast, slow)):
        assert_close(a, b)
        if k >= 3:  # the noise is really on: not the noise-free member of its repeat
            quiet = fast[members[k].repeat]
            assert np.abs(a.curves["train_loss"] - quiet.curves["train_loss"]).max() > 10 * TOL, cs[k]


def test_weight_and_activation_noise_together_keep_the_torch_func_engine_with_its_numbers_bit_for_bit():
    t = TASKS["binary_relu_full_adam"]
    both = make_config([_spec("weights", "gaussian", 0.1), _spec("pre_activation", "gaussian", 0.3)])
    members = [member((), 0), member(both, 0), member(make_config([_spec("weights", "gaussian", 0.1)]), 1)]
    pack = train_population(t, members)
    assert [r.engine for r in pack] == ["fused", "functional", "fused"]
    functional = train_population(t, members, engine="stacked")  # the same pack with torch.func only
    for name in pack[1].curves:
        assert (pack[1].curves[name] == functional[1].curves[name]).all(), name
    for k in (0, 2):
        assert_close(pack[k], functional[k])


def test_a_mixed_pack_reports_every_member_epoch_once():
    t = TASKS["binary_relu_full_adam"]
    both = make_config([_spec("weights", "uniform", 0.1), _spec("post_activation", "gaussian", 0.3)])
    members = [member((), 0), member(both, 1), member((), 1), member(both, 0)]
    told = []
    train_population(t, members, on_epochs=told.append)
    assert told == sorted(told) and told[-1] == len(members) * t.epochs
    assert told == [2 * e for e in (5, 10, 15, 20)] + [40 + 2 * e for e in (5, 10, 15, 20)]


def test_each_member_starts_from_its_factorys_parameters_and_is_evaluated_without_noise():
    # A learning rate too small to move a float32 weight: every logged accuracy is the member's own
    # untrained model's (its factory's weights from its init seed), evaluated without noise, however loud.
    t = TASKS["images_flattened"].model_copy(update={"optimizer": OptimizerSpec(lr=1e-30), "epochs": 4, "log_every": 2})
    loud = [
        make_config(
            [
                _spec("input", "gaussian", 3.0),
                _spec("pre_activation", "dropout", 0.5),
                _spec("post_activation", "multiplicative", 3.0),
                _spec("gradients", "gaussian", 3.0),
            ]
        ),
        make_config([_spec("weights", "gaussian", 3.0), _spec("targets", "flip", 0.5)]),
    ]
    members = [member(c, k) for k, c in enumerate(loud)]
    pack = train_population(t, members)
    assert {r.engine for r in pack} == {"fused"}
    for m, result in zip(members, pack):
        split = load_split(t, m.data_seed)
        model = user_models.build(t, m.init_seed).eval()
        with torch.no_grad():
            clean = model(torch.as_tensor(split.x_test)).argmax(-1).numpy()
        expected = (clean == split.y_test).mean()
        np.testing.assert_allclose(result.curves["test_accuracy"], [expected, expected], atol=1e-12)
    assert pack[0].curves["test_accuracy"][0] != pack[1].curves["test_accuracy"][0]  # their own weights
    stack = fused.dense_stack(t, torch.device("cpu"), "philox")
    model = user_models.build(t, members[1].init_seed)
    init = stack.init(t, members[1].init_seed)
    assert list(init) == ["dense0.weight", "dense0.bias", "dense1.weight", "dense1.bias", "out.weight", "out.bias"]
    assert torch.equal(init["dense1.weight"], model[3].weight) and torch.equal(init["out.bias"], model[5].bias)


@pytest.mark.parametrize(
    "factory, args, sites",
    [
        ("encoder", {}, ()),
        ("mlp", {"activation": "gelu"}, ()),  # an activation mlp.c does not know
        ("mlp", {}, ["2"]),  # sites named by the user
        ("mlp", {"bias": False}, ()),
        ("mlp", {"frozen": True}, ()),
        ("own_sequential", {}, ()),
        ("hooked", {}, ()),
        ("mixed_activations", {}, ()),
        ("no_activation", {}, ()),
        ("batchnorm", {}, ()),
        ("with_dropout", {}, ()),
    ],
)
def test_every_other_model_keeps_the_torch_func_engine(factory, args, sites):
    t = task(factory, args, sites, epochs=2, log_every=1)
    assert fused.dense_stack(t, torch.device("cpu"), "philox") is None
    (result,) = train_population(t, [member()])
    assert result.engine in ("functional", "looped")


def test_a_dense_stack_is_taken_only_on_the_cpu_with_philox_streams_and_the_auto_engine():
    t = task("mlp", {"width": 8}, epochs=2, log_every=1)
    stack = fused.dense_stack(t, torch.device("cpu"), "philox")
    assert stack == fused.DenseStack(linears=(1, 3), activation="relu")
    assert fused.dense_stack(t, torch.device("cpu"), "generator") is None
    assert fused.dense_stack(t, torch.device("meta"), "philox") is None
    assert train_population(t, [member()], streams="generator")[0].engine == "functional"
    assert train_population(t, [member()], engine="stacked")[0].engine == "functional"
    assert train_population(t, [member()])[0].engine == "fused"


def test_images_without_a_flatten_first_are_not_a_dense_stack():
    # nn.Linear on (batch, 8, 8) maps the last dimension only: not the fused engine's flat network.
    images = task("mlp", {"flatten": False}, dataset="digits")
    assert fused.dense_stack(images, torch.device("cpu"), "philox") is None
    flat = task("mlp", {"flatten": True}, dataset="digits")
    assert fused.dense_stack(flat, torch.device("cpu"), "philox") == fused.DenseStack((1, 3), "relu")
