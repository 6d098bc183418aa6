"""A user's own model (task.model: {factory: ...}) keeps the promises of the built-in families.

At zero noise every member of a pack equals the reference loop; with noise on it does too with
``streams="generator"``; evaluation is noise-free and the stored weights stay clean; a member's numbers
depend on its own seeds and configuration only; models vmap cannot take train member by member with the
same numbers. The factories are in ``user_models/toy_models.py``.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import member

from sweeper.engine import functional
from sweeper.engine.population import train_population
from sweeper.engine.reference import train_reference
from sweeper.errors import TaskError
from sweeper.noise.spec import NoiseSpec, make_config
from sweeper.records import Member
from sweeper.tasks import user_models
from sweeper.tasks.data import load_split
from sweeper.tasks.spec import OptimizerSpec, TaskSpec

sys.path.insert(0, str(Path(__file__).with_name("user_models")))  # where a search space's folder would be

TOL = 1e-5  # as test_reference_equivalence


def task(factory="mlp", args=None, sites=(), **fields):
    model = {"factory": f"toy_models:{factory}", "args": args or {}, "sites": list(sites)}
    return TaskSpec.model_validate({"dataset": "circles", "epochs": 20, "log_every": 5, "model": model, **fields})


TASKS = {
    "sequential": task("mlp", {"width": 16}),
    "sequential_tanh_minibatch_sgd": task(
        "mlp",
        {"width": 16, "depth": 2, "activation": "tanh"},
        batch_size=8,
        optimizer=OptimizerSpec(name="sgd", lr=0.05, momentum=0.9),
    ),
    "encoder_multiclass": task("encoder", dataset="iris", batch_size=8),
    "encoder_regression": task("encoder", dataset="friedman1"),
    "cnn_images": task("cnn", dataset="digits", epochs=6, log_every=3),  # digits as (8, 8) images
}


def assert_same_run(a, b, tol=TOL):
    assert a.curve_epochs.tolist() == b.curve_epochs.tolist()
    assert a.curves.keys() == b.curves.keys()
    for name in b.curves:
        np.testing.assert_allclose(a.curves[name], b.curves[name], rtol=tol, atol=tol, err_msg=name)
    assert not a.diverged and not b.diverged


def _spec(placement, kind, std=0.3, schedule="constant", **more):
    return NoiseSpec(placement, kind, std, schedule, **more)


ZERO_NOISE = [
    (),
    make_config([_spec("pre_activation", "gaussian", 0.0)]),
    make_config([_spec("weights", "uniform", 0.0), _spec("gradients", "gaussian", 0.0)]),
]


@pytest.mark.parametrize("task_name", list(TASKS))
def test_every_member_equals_the_reference_loop_at_zero_noise(task_name):
    members = [member(config, repeat) for repeat, config in enumerate(ZERO_NOISE)]
    pack = train_population(TASKS[task_name], members)  # philox streams: nothing drawn at zero noise
    # A plain stack of dense layers trains on the fused engine (test_user_model_fused.py), the rest with torch.func.
    assert {r.engine for r in pack} == {"fused" if task_name.startswith("sequential") else "functional"}
    for m, result in zip(members, pack):
        reference = train_reference(TASKS[task_name], m)
        assert reference.engine == "reference"
        assert_same_run(result, reference)
    assert not np.allclose(pack[0].curves["train_loss"], pack[1].curves["train_loss"])  # not vacuous


NOISY = (
    [
        make_config([_spec(p, k)])
        for p in ("input", "pre_activation", "post_activation", "weights", "gradients")
        for k in ("gaussian", "multiplicative", "uniform")
    ]
    + [make_config([_spec(p, "dropout", 0.2)]) for p in ("input", "pre_activation", "post_activation", "weights")]
    + [
        make_config([_spec("targets", "flip", 0.2)]),
        make_config(
            [_spec("pre_activation", "gaussian", 0.3, "annealed"), _spec("gradients", "gaussian", 0.05, "annealed")]
        ),
        make_config(
            [_spec("input", "uniform"), _spec("post_activation", "gaussian"), _spec("weights", "multiplicative")]
        ),
        make_config(
            [
                _spec("pre_activation", "dropout", 0.3, "cosine"),
                _spec("post_activation", "multiplicative"),
                _spec("weights", "dropout", 0.1, "linear"),
            ]
        ),
    ]
)


@pytest.fixture(scope="module")
def generator_pack():
    """The encoder (named modules, an activation called twice, a LayerNorm) with every noise of NOISY
    and two noise-free members, trained once as one pack with generator streams."""
    t = TASKS["encoder_multiclass"].model_copy(update={"epochs": 10})
    members = [member((), 0), member((), 1)] + [member(c, i % 2) for i, c in enumerate(NOISY)]
    return t, members, train_population(t, members, streams="generator")


@pytest.mark.parametrize("k", range(len(NOISY)), ids=lambda k: "+".join(f"{s.placement}:{s.kind}" for s in NOISY[k]))
def test_noisy_member_with_generator_streams_equals_the_reference_loop(generator_pack, k):
    t, members, results = generator_pack
    m, result = members[2 + k], results[2 + k]
    assert_same_run(result, train_reference(t, m))
    quiet = results[m.repeat]  # the noise is really on
    assert np.abs(result.curves["train_loss"] - quiet.curves["train_loss"]).max() > 5 * TOL


def test_evaluation_is_noise_free_and_the_stored_weights_stay_clean():
    # A learning rate too small to move a float32 weight: every logged metric must be the untrained
    # model's, evaluated without noise, however loud the noise while training.
    t = TASKS["encoder_multiclass"].model_copy(
        update={"optimizer": OptimizerSpec(lr=1e-30), "epochs": 4, "log_every": 2}
    )
    loud = make_config(
        [
            _spec("input", "gaussian", 3.0),
            _spec("pre_activation", "dropout", 0.5),
            _spec("post_activation", "multiplicative", 3.0),
            _spec("weights", "gaussian", 3.0),
            _spec("gradients", "gaussian", 3.0),
        ]
    )
    m = member(loud)
    (pack,) = train_population(t, [m])
    alone = train_reference(t, m)
    split = load_split(t, m.data_seed)
    model = user_models.build(t, m.init_seed).eval()
    with torch.no_grad():
        clean = model(torch.as_tensor(split.x_test)).argmax(-1).numpy()
    expected = (clean == split.y_test).mean()
    assert pack.curves["test_accuracy"].tolist() == [expected, expected]
    assert alone.curves["test_accuracy"].tolist() == [expected, expected]
    # ... while training saw the noise: the same run at a learning rate that moves shows it.
    moving = t.model_copy(update={"optimizer": OptimizerSpec(lr=0.01)})
    quiet, noisy = train_population(moving, [member(), m])
    assert not np.array_equal(quiet.curves["train_loss"], noisy.curves["train_loss"])


PACK = [
    (),
    make_config([_spec("input", "gaussian", 0.2)]),
    make_config([_spec("pre_activation", "gaussian", 0.2)]),
    make_config([_spec("post_activation", "multiplicative", 0.3)]),
    make_config([_spec("weights", "uniform", 0.1)]),
    make_config([_spec("gradients", "gaussian", 0.05, "annealed")]),
    make_config([_spec("targets", "flip", 0.2)]),
    make_config([_spec("post_activation", "dropout", 0.3, "linear"), _spec("weights", "dropout", 0.2)]),
]
CHANGED = 2


def pack_members():
    return [member(config, repeat=k % 3) for k, config in enumerate(PACK)]


@pytest.fixture(scope="module")
def pack():
    return train_population(TASKS["sequential_tanh_minibatch_sgd"], pack_members())


@pytest.mark.parametrize(
    "replacement",
    [
        make_config([_spec("pre_activation", "uniform", 0.5), _spec("weights", "gaussian", 0.2)]),
        (),
        make_config([_spec("post_activation", "gaussian", 1e38)]),
    ],
    ids=["other_noise", "no_noise", "diverging"],
)
def test_changing_one_members_config_leaves_every_other_member_bit_identical(pack, replacement):
    members = pack_members()
    members[CHANGED] = member(replacement, members[CHANGED].repeat)
    after = train_population(TASKS["sequential_tanh_minibatch_sgd"], members)
    for k in range(len(members)):
        if k != CHANGED:
            for name in pack[k].curves:
                assert (after[k].curves[name] == pack[k].curves[name]).all(), (k, name)
    assert not np.array_equal(after[CHANGED].curves["train_loss"], pack[CHANGED].curves["train_loss"])


def test_member_trained_alone_or_elsewhere_in_the_pack_reproduces_its_numbers(pack):
    members = pack_members()
    order = [5, 3, 7, 0, 6, 1, 4, 2]
    shuffled = train_population(TASKS["sequential_tanh_minibatch_sgd"], [members[k] for k in order])
    for position, k in enumerate(order):
        (alone,) = train_population(TASKS["sequential_tanh_minibatch_sgd"], [members[k]])
        for name, curve in pack[k].curves.items():
            np.testing.assert_allclose(alone.curves[name], curve, rtol=1e-6, atol=1e-6, err_msg=f"{k} {name}")
            np.testing.assert_allclose(shuffled[position].curves[name], curve, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "factory, why",
    [
        ("batchnorm", "updates buffers in place (1.running_mean, 1.running_var, 1.num_batches_tracked)"),
        ("with_dropout", "draws random numbers of its own"),
        (
            "branchy",
            "torch.func cannot vectorize it (RuntimeError: vmap: It looks like you're attempting to use a "
            "Tensor in some data-dependent control flow",
        ),
    ],
)
def test_a_model_vmap_cannot_take_trains_member_by_member_with_the_same_numbers(capfd, factory, why):
    functional._SAID.clear()
    t = task(factory, epochs=10)
    configs = [(), make_config([_spec("pre_activation", "gaussian", 0.3)]), make_config([_spec("weights", "uniform")])]
    members = [member(c, k % 2) for k, c in enumerate(configs)]
    pack = train_population(t, members, streams="generator")
    again = train_population(t, members[::-1], streams="generator")
    said = capfd.readouterr().err.splitlines()
    assert len(said) == 1  # once, not once per pack
    assert said[0].startswith(f"sweeper: model toy_models:{factory}(): ") and why in said[0]
    assert said[0].endswith(
        "its members train one after another (the same numbers), so a pack of 3 takes about 3 times as long "
        "as a vectorized pack of 3 would"
    )
    for m, result, other in zip(members, pack, again[::-1]):
        assert result.engine == "looped"
        assert_same_run(result, train_reference(t, m), tol=0)
        assert_same_run(other, result, tol=0)  # the model's own draws (dropout) are the member's own


def test_pre_activation_at_a_named_site_is_exactly_that_modules_input():
    # Site "0" of nn.Sequential(Flatten, Linear, ...) is the Flatten: its input is the model input, so
    # its pre-activation noise is exactly input noise (the member's first draw, of the same shape).
    at_site = task("mlp", sites=["0"])
    as_input = task("mlp")
    seeds = member()
    for kind in ("gaussian", "dropout", "multiplicative"):
        pre, inp = (
            Member(make_config([_spec(p, kind, 0.3)]), 0, seeds.data_seed, seeds.init_seed, 7)
            for p in ("pre_activation", "input")
        )  # one noise seed: the same stream
        # both with torch.func: a dense stack without named sites would train on the fused engine
        (a,), (b,) = (
            train_population(at_site, [pre], engine="stacked"),
            train_population(as_input, [inp], engine="stacked"),
        )
        for name in a.curves:
            assert (a.curves[name] == b.curves[name]).all(), (kind, name)


def test_named_sites_replace_the_activation_modules():
    config = make_config([_spec("post_activation", "gaussian", 0.5)])
    tanh_site = task("mlp", {"activation": "tanh"}, sites=["2"])  # Flatten, Linear, Tanh, Linear
    default = task("mlp", {"activation": "tanh"})
    other = task("mlp", {"activation": "tanh"}, sites=["1"])
    (a,), (b,), (c,) = (train_population(t, [member(config)], engine="stacked") for t in (tanh_site, default, other))
    assert all((a.curves[n] == b.curves[n]).all() for n in a.curves)
    assert not np.array_equal(a.curves["train_loss"], c.curves["train_loss"])


def test_weights_are_the_parameters_of_two_or_more_dimensions_as_the_built_ins_leave_biases_out():
    model = user_models.build(task("encoder"), 0)
    assert user_models.weight_names(model) == ["encoder.0.weight", "mid.weight", "head.0.weight", "head.1.weight"]
    assert [n for n, _ in user_models.site_modules(model, task("encoder").user_model)] == ["encoder.1", "act"]


def test_each_member_gets_the_factorys_weights_drawn_from_its_own_init_seed():
    t = TASKS["sequential"]
    a, b, a_again = (user_models.build(t, s) for s in (1, 2, 1))
    state = torch.get_rng_state()
    user_models.build(t, 3)
    assert torch.equal(state, torch.get_rng_state())  # torch's global generator is left as it was
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), a_again.parameters()))
    assert not torch.equal(a[1].weight, b[1].weight)


@pytest.mark.parametrize("placement", ["pre_activation", "post_activation", "weights"])
def test_a_placement_without_a_site_is_refused_naming_the_model_and_its_modules(placement):
    t = task("no_activation") if placement != "weights" else task("mlp")
    model = user_models.build(t, 0)
    if placement == "weights":
        model = torch.nn.Sequential(torch.nn.ReLU())
    with pytest.raises(TaskError) as info:
        user_models.check_sites(model, t.user_model, [placement])
    line = str(info.value)
    assert f"placement {placement!r} finds no site in model factory" in line and "\n" not in line
    assert ("its modules: 0 (Linear), 1 (Linear)" in line) if placement != "weights" else "0 (ReLU)" in line


def test_sites_naming_no_module_are_refused_with_the_modules_it_has():
    t = task("encoder", sites=["encoder.1", "head.7"])
    with pytest.raises(
        TaskError,
        match=r"sites \['head.7'\] name no module of the model; its modules: "
        r"encoder \(Sequential\), encoder.0 \(Linear\), encoder.1 \(Tanh\)",
    ):
        user_models.site_modules(user_models.build(t, 0), t.user_model)


def test_memory_estimate_counts_the_models_parameters_and_activations():
    n_params, width = user_models.size(task("mlp", {"width": 16}))
    assert n_params == 2 * 16 + 16 + 16 * 1 + 1
    assert width == 2 + 16 + 16 + 1  # Flatten, Linear, ReLU, Linear outputs per sample


@pytest.mark.parametrize("factory", ["mlp", "batchnorm"], ids=["vectorized", "member_by_member"])
def test_a_pack_of_a_users_model_reports_member_epochs_as_it_trains(factory):
    """Vectorized: at every logging interval; member by member (BatchNorm's buffers): as each member ends."""
    members = [member(repeat=r) for r in range(3)]
    own = task(factory, {"width": 8})
    told = []
    results = train_population(own, members, on_epochs=told.append)
    if factory == "mlp":
        assert told == [len(members) * e for e in range(own.log_every, own.epochs + 1, own.log_every)]
    else:
        assert told == [k * own.epochs for k in range(1, len(members) + 1)]
    silent = train_population(own, members)
    assert [r.final for r in results] == [r.final for r in silent]
