"""The fused CPU engine trains exactly what the stacked torch program trains, only faster.

Same data, initial weights, batches, noise draws and update rule: the two agree to float tolerance
(sums run in another order), with noise on. Its own guarantees are exact: a member's numbers do not
depend on its pack, its position or the thread count, evaluation is noise-free, and a diverging member
is recorded without touching the others.
"""

import math

import numpy as np
import pytest
import torch
from helpers import member

from sweeper.engine import fused, population
from sweeper.engine.population import train_population
from sweeper.engine.reference import train_reference
from sweeper.noise.spec import NoiseSpec, make_config
from sweeper.tasks.data import input_shape, n_outputs
from sweeper.tasks.families import family
from sweeper.tasks.spec import OptimizerSpec, TaskSpec

pytestmark = pytest.mark.skipif(
    fused.task_fits(TaskSpec(), torch.device("cpu")) is False, reason="the C kernels could not be built here"
)

TASKS = {
    "w1_like": TaskSpec(
        dataset="circles", dataset_seed=1, scaling="none", hidden=(64,), init="keras", epochs=60, log_every=10
    ),
    "tanh_two_layers": TaskSpec(
        dataset="moons", hidden=(16, 8), activation="tanh", init="torch", epochs=40, log_every=10
    ),
    "sigmoid": TaskSpec(dataset="moons", hidden=(16,), activation="sigmoid", epochs=40, log_every=10),
    "minibatch_sgd_decay": TaskSpec(
        dataset="circles",
        hidden=(16, 8),
        epochs=12,
        log_every=4,
        batch_size=8,
        optimizer=OptimizerSpec(name="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3),
    ),
    "minibatch_multiclass": TaskSpec(
        dataset="iris", hidden=(16,), epochs=12, log_every=4, batch_size=8, optimizer=OptimizerSpec(weight_decay=1e-2)
    ),
    "regression": TaskSpec(dataset="friedman1", hidden=(32,), epochs=40, log_every=10),
    "regression_raw": TaskSpec(dataset="friedman1", scaling="none", hidden=(16,), epochs=30, log_every=10),
    "digits": TaskSpec(dataset="digits", hidden=(32,), epochs=10, log_every=5),
}


def _spec(placement, kind="gaussian", std=0.3, schedule="constant", **more):
    return NoiseSpec(placement, kind, std, schedule, **more)


# Every kind at every placement a step meets, alone and together, on every schedule; dropout and
# DropConnect; relative input noise (relative to the data where the task's scaling leaves it raw).
CONFIGS = (
    [()]
    + [
        make_config([_spec(p, k)])
        for p in ("input", "pre_activation", "post_activation", "weights", "gradients")
        for k in ("gaussian", "multiplicative", "uniform")
    ]
    + [make_config([_spec(p, "dropout", 0.2)]) for p in ("input", "pre_activation", "post_activation", "weights")]
    + [
        make_config([_spec("input", "gaussian", 0.05), _spec("pre_activation", "gaussian", 0.3, "annealed")]),
        make_config(
            [
                _spec("input", "uniform", 0.1, "annealed"),
                _spec("post_activation", "multiplicative", 0.1),
                _spec("weights", "gaussian", 0.1, "annealed"),
                _spec("gradients", "multiplicative", 0.2),
            ]
        ),
        make_config(
            [
                _spec("input", "gaussian", 0.1, "linear"),
                _spec("pre_activation", "dropout", 0.3, "cosine"),
                _spec("weights", "dropout", 0.1, "annealed"),
            ]
        ),
        make_config(
            [
                _spec("input", "gaussian", 0.2, relative=True),
                _spec("post_activation", "dropout", 0.4, "linear", std_min=0.1),
                _spec("gradients", "uniform", 0.1, "cosine", std_min=0.02),
            ]
        ),
        make_config([_spec("input", "uniform", 0.2, "cosine", relative=True)]),
    ]
)
TARGETS = {  # what each kind of task takes at the targets placement
    "classification": [
        make_config([_spec("targets", "flip", 0.2)]),
        make_config([_spec("targets", "flip", 0.3, "annealed"), _spec("pre_activation", "uniform")]),
        make_config([_spec("targets", "flip", 0.3, "linear", std_min=0.1)]),
    ],
    "regression": [make_config([_spec("targets", k)]) for k in ("gaussian", "multiplicative", "uniform")]
    + [
        make_config([_spec("targets", "gaussian", 0.3, "annealed"), _spec("weights", "uniform", 0.1)]),
        make_config([_spec("targets", "gaussian", 0.2, "cosine", relative=True)]),
    ],
    # Targets in their own units (std ~5): noise relative to their spread.
    "regression_raw": [
        make_config([_spec("targets", "gaussian", 0.3, "cosine", relative=True)]),
        make_config([_spec("targets", "uniform", 0.3, relative=True)]),
    ],
}
TOL = 2e-4


def pack(task_name="w1_like"):
    """The noise-free run of repeats 0 and 1, then each noisy configuration (targets noise as the task takes it)."""
    task = TASKS[task_name]
    targets = TARGETS[
        ("regression_raw" if task.scaling == "none" else "regression")
        if task.problem == "regression"
        else "classification"
    ]
    return [member((), 0), member((), 1)] + [member(c, r % 2) for r, c in enumerate(CONFIGS[1:] + targets)]


def same_numbers(a, b):
    return all(np.array_equal(a.curves[n], b.curves[n], equal_nan=True) for n in a.curves) and a.diverged == b.diverged


@pytest.fixture(scope="module")
def trained():
    cache = {}

    def get(task_name, engine):
        if (task_name, engine) not in cache:
            cache[task_name, engine] = train_population(TASKS[task_name], pack(task_name), engine=engine)
        return cache[task_name, engine]

    return get


@pytest.mark.parametrize("task_name", list(TASKS))
def test_fused_engine_equals_the_stacked_program_with_noise_on(trained, task_name):
    fast, slow = trained(task_name, "auto"), trained(task_name, "stacked")
    for k, (a, b) in enumerate(zip(fast, slow)):
        assert a.curve_epochs.tolist() == b.curve_epochs.tolist()
        for name in b.curves:
            np.testing.assert_allclose(a.curves[name], b.curves[name], rtol=TOL, atol=TOL, err_msg=f"{k} {name}")
        assert not a.diverged and not b.diverged
    # The noise is really drawn, and the agreement is far tighter than its effect: each noisy member
    # moves away from the noise-free run of its repeat by 10x more than the two engines differ.
    for k, m in enumerate(pack(task_name)[2:], 2):
        effect = np.abs(fast[k].curves["train_loss"] - fast[m.repeat].curves["train_loss"]).max()
        disagreement = np.abs(fast[k].curves["train_loss"] - slow[k].curves["train_loss"]).max()
        assert effect > max(10 * disagreement, 1e-6), (k, effect, disagreement)


@pytest.mark.parametrize("task_name", ["w1_like", "minibatch_sgd_decay", "minibatch_multiclass", "regression"])
def test_fused_engine_equals_the_reference_loop_at_zero_noise(trained, task_name):
    result = trained(task_name, "auto")[0]
    reference = train_reference(TASKS[task_name], pack()[0])
    # Sums in another order drift apart as training goes on: W1's test loss by 2.7e-5 (relative) at epoch 60.
    for name in reference.curves:
        np.testing.assert_allclose(result.curves[name], reference.curves[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_auto_uses_the_fused_engine_for_dense_mlps_on_the_cpu_only(monkeypatch):
    calls = []
    train_fused = fused.train_fused
    monkeypatch.setattr(fused, "train_fused", lambda t, ms, *told: calls.append(t.model) or train_fused(t, ms, *told))
    tiny = {"epochs": 2, "log_every": 1}
    train_population(TASKS["w1_like"].model_copy(update=tiny), pack())
    assert calls == ["mlp"]
    train_population(TASKS["w1_like"].model_copy(update=tiny), pack(), streams="generator")
    train_population(TaskSpec(dataset="digits", model="cnn", channels=(2,), hidden=(4,), **tiny), pack()[:2])
    train_population(TASKS["w1_like"].model_copy(update={"activation": "gelu", **tiny}), pack()[:2])
    train_population(TASKS["w1_like"].model_copy(update=tiny), pack(), engine="stacked")
    assert calls == ["mlp"]


def test_member_numbers_do_not_depend_on_pack_position_or_threads(trained):
    task, members = TASKS["minibatch_multiclass"], pack("minibatch_multiclass")
    packed = trained("minibatch_multiclass", "auto")
    order = [3, 0, 5, 4, 2, 1] + list(range(6, len(members)))[::-1]
    shuffled = train_population(task, [members[k] for k in order])
    for position, k in enumerate(order):
        assert same_numbers(shuffled[position], packed[k])
    for k, m in enumerate(members):
        assert same_numbers(train_population(task, [m])[0], packed[k])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = train_population(task, members)
    finally:
        torch.set_num_threads(threads)
    assert all(same_numbers(a, b) for a, b in zip(two, packed))


def test_fused_evaluation_is_noise_free(monkeypatch):
    task = TASKS["tanh_two_layers"].model_copy(update={"epochs": 6, "log_every": 3})
    calls, evaluate = [], fused._evaluate

    def spy(program, data):
        logged = evaluate(program, data)
        calls.append((program.params(), data, logged))
        return logged

    monkeypatch.setattr(fused, "_evaluate", spy)
    members = pack()
    results = train_population(task, members)
    assert len(calls) == 2
    for i, (params, data, logged) in enumerate(calls):
        with torch.no_grad():
            out = family(task).code.forward(task, params, data.x_test)  # the torch program, no noise
        for k, m in enumerate(members):
            model = family(task).code.Reference(task, input_shape(task), n_outputs(task), m.config, torch.Generator())
            model.load_params({name: p[k] for name, p in params.items()})
            with torch.no_grad():
                torch.testing.assert_close(model.eval()(data.x_test[k]), out[k], rtol=1e-5, atol=1e-5)
        test_loss = population.losses.metrics(out, data.y_test, data.n_classes, data.y_std)["loss"]
        torch.testing.assert_close(logged["test_loss"], test_loss.double(), rtol=1e-5, atol=1e-6)
        assert [r.curves["test_loss"][i] for r in results] == logged["test_loss"].double().tolist()


@pytest.mark.parametrize("task_name", ["w1_like", "regression", "minibatch_multiclass"])
def test_diverging_fused_member_is_recorded_and_the_others_are_untouched(trained, task_name):
    task, members = TASKS[task_name], pack(task_name)
    calm = trained(task_name, "auto")
    members[2] = member(make_config([NoiseSpec("post_activation", "gaussian", 1e38)]), members[2].repeat)
    wild = train_population(task, members)
    assert wild[2].diverged and wild[2].diverged_epoch == 1
    assert all(math.isnan(v) for v in wild[2].final.values()) and wild[2].best_epoch is None
    for k in set(range(len(members))) - {2}:
        assert same_numbers(wild[k], calm[k]), k


def test_fused_and_stacked_engines_mark_a_late_divergence_at_the_same_epoch():
    # Plain SGD at a huge learning rate: finite for a few epochs, then the weights overflow.
    task = TaskSpec(
        dataset="friedman1", hidden=(16,), epochs=30, log_every=1, optimizer=OptimizerSpec(name="sgd", lr=40.0)
    )
    members = [member(make_config([NoiseSpec("pre_activation", "gaussian", 0.1)]))]
    (fast,) = train_population(task, members)
    (slow,) = train_population(task, members, engine="stacked")
    assert fast.diverged and slow.diverged
    assert fast.diverged_epoch == slow.diverged_epoch > 1


def test_scheduled_noise_gives_the_same_numbers_however_the_steps_are_split_into_calls(monkeypatch, trained):
    # A scheduled size table covers at most _SCHEDULED_STEPS steps per C call; cut it to one minibatch
    # epoch (4 steps) and the calls split every logging interval, yet every number stays the same.
    task_name = "minibatch_sgd_decay"
    monkeypatch.setattr(fused, "_SCHEDULED_STEPS", 3)
    again = train_population(TASKS[task_name], pack(task_name))
    assert all(same_numbers(a, b) for a, b in zip(again, trained(task_name, "auto")))


def test_c_forward_pass_equals_the_torch_program():
    task = TASKS["tanh_two_layers"]
    members = pack()
    data = population.pack_data(task, members, torch.device("cpu"))
    program = fused._Program(task, members, data)
    stacked = family(task).code.forward(task, program.params(), data.x_test)
    torch.testing.assert_close(program.forward(data.x_test), stacked, rtol=1e-5, atol=1e-6)


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="unknown engine 'fast'; allowed: auto, stacked"):
        train_population(TASKS["w1_like"], pack(), engine="fast")
