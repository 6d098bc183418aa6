"""The population trainer reproduces the plain reference loop, member for member.

At zero noise this holds with any streams; with noise on it holds with ``streams="generator"``, where
each member draws from its own ``torch.Generator`` in the reference loop's order.
"""

import numpy as np
import pytest
import torch
from helpers import member

from sweeper import seeding
from sweeper.engine._shared import batch_order, shuffler
from sweeper.engine.population import train_population
from sweeper.engine.reference import train_reference
from sweeper.noise.spec import NoiseSpec, make_config
from sweeper.tasks.spec import OptimizerSpec, TaskSpec

TOL = 1e-5

TASKS = {
    "mlp": TaskSpec(dataset="circles", hidden=(16,), epochs=40, log_every=10),
    "mlp_torch_init": TaskSpec(dataset="moons", hidden=(16,), activation="tanh", init="torch", epochs=40, log_every=10),
    "minibatch_sgd": TaskSpec(
        dataset="circles",
        hidden=(16, 8),
        epochs=20,
        log_every=5,
        batch_size=8,
        optimizer=OptimizerSpec(name="sgd", lr=0.05, momentum=0.9),
    ),
    "minibatch_adam_multiclass": TaskSpec(dataset="iris", hidden=(16,), epochs=20, log_every=5, batch_size=8),
    "friedman1": TaskSpec(dataset="friedman1", hidden=(16,), epochs=40, log_every=10),
    "friedman1_raw": TaskSpec(dataset="friedman1", scaling="none", hidden=(16,), epochs=40, log_every=10),
    "diabetes": TaskSpec(dataset="diabetes", hidden=(16,), epochs=40, log_every=10),
    "cnn": TaskSpec(dataset="digits", model="cnn", channels=(4, 8), hidden=(16,), epochs=20, log_every=5),
    "lstm": TaskSpec(dataset="digits", model="rnn", cell="lstm", hidden=(16,), epochs=20, log_every=5),
    "gru": TaskSpec(dataset="digits", model="rnn", cell="gru", hidden=(16,), epochs=20, log_every=5),
}


def assert_same_run(pop, ref):
    assert pop.curve_epochs.tolist() == ref.curve_epochs.tolist()
    assert pop.curves.keys() == ref.curves.keys()
    for name in ref.curves:
        np.testing.assert_allclose(pop.curves[name], ref.curves[name], rtol=TOL, atol=TOL, err_msg=name)
    assert not pop.diverged and not ref.diverged


# --- zero noise -------------------------------------------------------------------------------------

ZERO_NOISE = [
    (),
    make_config([NoiseSpec("pre_activation", "gaussian", 0.0)]),
    make_config([NoiseSpec("weights", "uniform", 0.0), NoiseSpec("gradients", "gaussian", 0.0)]),
]


# MLPs run on the fused C engine by default (engine "auto"); the stacked torch program must hold too.
ENGINE_CASES = [(t, "auto") for t in TASKS] + [(t, "stacked") for t, task in TASKS.items() if task.model == "mlp"]


@pytest.mark.parametrize("task_name, engine", ENGINE_CASES)
def test_every_member_equals_the_reference_loop_at_zero_noise(task_name, engine):
    task = TASKS[task_name]
    members = [member(config, repeat) for repeat, config in enumerate(ZERO_NOISE)]
    pack = train_population(task, members, engine=engine)  # philox streams: they draw nothing at zero noise
    for m, result in zip(members, pack):
        assert_same_run(result, train_reference(task, m))
    # Different repeats (data, init) really give different runs: the comparison is not vacuous.
    assert not np.allclose(pack[0].curves["train_loss"], pack[1].curves["train_loss"])


# --- noise on, generator streams --------------------------------------------------------------------


def _spec(placement, kind, std=0.3, schedule="constant", **more):
    return NoiseSpec(placement, kind, std, schedule, **more)


def _every_placement_and_kind(targets):
    configs = [
        make_config([_spec(p, k)])
        for p in ("input", "pre_activation", "post_activation", "weights", "gradients")
        for k in ("gaussian", "multiplicative", "uniform")
    ]
    dropout = [
        make_config([_spec(p, "dropout", 0.2)]) for p in ("input", "pre_activation", "post_activation", "weights")
    ]
    return (
        configs
        + dropout
        + targets
        + [
            make_config(
                [_spec("pre_activation", "gaussian", 0.3, "annealed"), _spec("gradients", "gaussian", 0.05, "annealed")]
            ),
            make_config(
                [_spec("input", "uniform"), _spec("post_activation", "gaussian"), _spec("weights", "multiplicative")]
            ),
            make_config(
                [
                    _spec("input", "gaussian", 0.1, "linear"),
                    _spec("pre_activation", "dropout", 0.3, "cosine"),
                    _spec("gradients", "uniform", 0.05, "cosine", std_min=0.01),
                ]
            ),
            make_config(
                [
                    _spec("post_activation", "dropout", 0.4, "linear", std_min=0.1),
                    _spec("weights", "dropout", 0.1, "annealed"),
                ]
            ),
        ]
    )


FLIPS = [
    make_config([_spec("targets", "flip", 0.2)]),
    make_config([_spec("targets", "flip", 0.3, "annealed")]),
    make_config([_spec("targets", "flip", 0.3, "cosine", std_min=0.05)]),
]
TARGET_NOISE = [make_config([_spec("targets", k)]) for k in ("gaussian", "multiplicative", "uniform")]

NOISY = {
    "mlp": _every_placement_and_kind(FLIPS),
    "minibatch_sgd": [
        make_config([s])
        for s in (
            _spec("input", "gaussian"),
            _spec("pre_activation", "multiplicative"),
            _spec("post_activation", "uniform"),
            _spec("weights", "gaussian"),
            _spec("gradients", "gaussian", 0.05, "annealed"),
            _spec("targets", "flip", 0.2),
            _spec("pre_activation", "gaussian", 0.3, "annealed"),
            _spec("weights", "uniform", 0.2, "annealed"),
            _spec("pre_activation", "dropout", 0.3, "linear"),
            _spec("weights", "dropout", 0.2),
        )
    ],
    "friedman1": TARGET_NOISE
    + [
        make_config([s])
        for s in (
            _spec("targets", "gaussian", 0.3, "annealed"),
            _spec("pre_activation", "gaussian", 0.3, "annealed"),
            _spec("weights", "uniform"),
        )
    ],
    # Inputs and targets in their own units: relative noise is sized by their spread.
    "friedman1_raw": [
        make_config([s])
        for s in (
            _spec("input", "gaussian", 0.3, relative=True),
            _spec("input", "uniform", 0.3, "annealed", relative=True),
            _spec("targets", "gaussian", 0.3, relative=True),
            _spec("targets", "uniform", 0.3, "linear", relative=True),
        )
    ],
    "cnn": [
        make_config([_spec(p, k)])
        for p, k in (
            ("input", "gaussian"),
            ("pre_activation", "gaussian"),
            ("pre_activation", "multiplicative"),
            ("pre_activation", "uniform"),
            ("post_activation", "gaussian"),
            ("post_activation", "multiplicative"),
            ("post_activation", "uniform"),
            ("weights", "gaussian"),
            ("weights", "multiplicative"),
            ("gradients", "gaussian"),
            ("targets", "flip"),
            ("input", "dropout"),
            ("pre_activation", "dropout"),
            ("post_activation", "dropout"),
            ("weights", "dropout"),
        )
    ]
    + [make_config([_spec("weights", "uniform", 0.1, "annealed")])],
    **{
        cell: [
            make_config([_spec(p, k)])
            for p, k in (
                ("input", "gaussian"),
                ("pre_activation", "gaussian"),
                ("pre_activation", "multiplicative"),
                ("post_activation", "uniform"),
                ("weights", "gaussian"),
                ("gradients", "uniform"),
                ("targets", "flip"),
                ("pre_activation", "dropout"),
                ("post_activation", "dropout"),
                ("weights", "dropout"),
            )
        ]
        + [
            make_config([_spec("weights", "gaussian", 0.1, "annealed")]),
            make_config([_spec("pre_activation", "gaussian", 0.3, "annealed")]),
            make_config([_spec("pre_activation", "dropout", 0.3, "cosine")]),
        ]
        for cell in ("lstm", "gru")
    },
}


def _case_id(task_name, config):
    return (
        task_name
        + "-"
        + "+".join(
            f"{s.placement}:{s.kind}"
            + (f":{s.schedule}" if s.schedule != "constant" else "")
            + (":relative" if s.relative else "")
            for s in config
        )
    )


@pytest.fixture(scope="module")
def generator_pack():
    """Per task, one pack of its noisy configurations and the noise-free baselines, trained once:
    ``(config -> (member, result), repeat -> baseline result)``."""
    cache = {}

    def get(task_name):
        if task_name not in cache:
            members = [member((), 0), member((), 1)] + [member(c, i % 2) for i, c in enumerate(NOISY[task_name])]
            results = train_population(TASKS[task_name], members, streams="generator")
            cache[task_name] = ({m.config: (m, r) for m, r in zip(members[2:], results[2:])}, results[:2])
        return cache[task_name]

    return get


@pytest.mark.parametrize(
    "task_name, config", [pytest.param(t, c, id=_case_id(t, c)) for t, configs in NOISY.items() for c in configs]
)
def test_noisy_member_with_generator_streams_equals_the_reference_loop(generator_pack, task_name, config):
    noisy, baselines = generator_pack(task_name)
    m, result = noisy[config]
    assert_same_run(result, train_reference(TASKS[task_name], m))
    # The noise is really on: the member differs from the noise-free run of its repeat.
    quiet = baselines[m.repeat]
    assert np.abs(result.curves["train_loss"] - quiet.curves["train_loss"]).max() > 5 * TOL


def test_minibatches_are_reshuffled_every_epoch_and_cover_the_training_set():
    task = TASKS["minibatch_sgd"]
    g = shuffler(seeding.init_seed(0, 0))
    first, second = batch_order(task, 30, g), batch_order(task, 30, g)
    for epoch in (first, second):
        assert [len(b) for b in epoch] == [8, 8, 8, 6]
        assert sorted(torch.cat(epoch).tolist()) == list(range(30))
    assert not torch.equal(torch.cat(first), torch.cat(second))
    assert batch_order(TASKS["mlp"], 30, g) is None  # full batch
