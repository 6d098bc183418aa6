"""Members of a pack never mix: a member's numbers depend on its own seeds and configuration only.

This is what lets one trial of a sweep be rerun alone and reproduce its stored numbers.
"""

import numpy as np
import pytest
import torch
from helpers import member

from sweeper.engine.population import train_population
from sweeper.noise.spec import NoiseSpec, make_config
from sweeper.records import Member
from sweeper.tasks.spec import TaskSpec

TASKS = {
    "mlp": TaskSpec(dataset="circles", hidden=(16,), epochs=30, log_every=10),
    "mlp_minibatch": TaskSpec(dataset="circles", hidden=(16,), epochs=10, log_every=5, batch_size=8),
    "cnn": TaskSpec(dataset="digits", model="cnn", channels=(4, 8), hidden=(16,), epochs=8, log_every=4),
    "lstm": TaskSpec(dataset="digits", model="rnn", cell="lstm", hidden=(16,), epochs=8, log_every=4),
}

# Ten members, each with noise somewhere else. Members 2 and 7 share the pre-activation site: while
# both are Gaussian it runs through the fused C kernel, once member 2 turns uniform it no longer does.
# Members 8 and 9 drop units and weights (dropout, DropConnect) on a schedule.
PACK = [
    (),
    make_config([NoiseSpec("input", "gaussian", 0.2)]),
    make_config([NoiseSpec("pre_activation", "gaussian", 0.2)]),
    make_config([NoiseSpec("post_activation", "multiplicative", 0.3)]),
    make_config([NoiseSpec("weights", "uniform", 0.1)]),
    make_config([NoiseSpec("gradients", "gaussian", 0.05, "annealed")]),
    make_config([NoiseSpec("targets", "flip", 0.2)]),
    make_config([NoiseSpec("pre_activation", "gaussian", 0.1)]),
    make_config([NoiseSpec("post_activation", "dropout", 0.3, "linear")]),
    make_config([NoiseSpec("input", "dropout", 0.1), NoiseSpec("weights", "dropout", 0.2, "cosine", std_min=0.05)]),
]
REPLACEMENTS = {
    "other_noise": make_config([NoiseSpec("pre_activation", "uniform", 0.5), NoiseSpec("weights", "gaussian", 0.2)]),
    "no_noise": (),
    "diverging": make_config([NoiseSpec("post_activation", "gaussian", 1e38)]),
    "dropout": make_config([NoiseSpec("pre_activation", "dropout", 0.5), NoiseSpec("weights", "dropout", 0.1)]),
}
CHANGED = 2


def pack_members():
    return [member(config, repeat=k % 3) for k, config in enumerate(PACK)]


@pytest.fixture(scope="module")
def packs():
    """The pack of ten per task, trained once with the default (philox) streams."""
    cache = {}

    def get(task_name):
        if task_name not in cache:
            cache[task_name] = train_population(TASKS[task_name], pack_members())
        return cache[task_name]

    return get


@pytest.mark.parametrize("replacement", list(REPLACEMENTS))
@pytest.mark.parametrize("task_name", ["mlp", "cnn", "lstm"])
def test_changing_one_members_config_leaves_every_other_member_bit_identical(packs, task_name, replacement):
    members = pack_members()
    members[CHANGED] = member(REPLACEMENTS[replacement], members[CHANGED].repeat)
    before, after = packs(task_name), train_population(TASKS[task_name], members)
    for k in range(len(members)):
        if k == CHANGED:
            continue
        assert after[k].final.keys() == before[k].final.keys()
        for name in before[k].curves:
            assert (after[k].curves[name] == before[k].curves[name]).all(), (k, name)
        assert after[k].final == before[k].final
        assert not after[k].diverged
    changed = after[CHANGED].curves["train_loss"]
    if replacement == "diverging":
        assert after[CHANGED].diverged and np.isnan(changed).all()
    else:  # the changed member itself did change
        assert not np.array_equal(changed, before[CHANGED].curves["train_loss"])


@pytest.mark.parametrize("task_name", list(TASKS))
def test_member_trained_alone_reproduces_its_numbers_from_a_pack_of_ten(packs, task_name):
    pack = packs(task_name)
    for k, m in enumerate(pack_members()):
        (alone,) = train_population(TASKS[task_name], [m])
        assert alone.diverged == pack[k].diverged
        for name, curve in pack[k].curves.items():
            np.testing.assert_allclose(alone.curves[name], curve, rtol=1e-6, atol=1e-6, err_msg=f"member {k} {name}")


def test_member_numbers_do_not_depend_on_its_position_in_the_pack(packs):
    pack = packs("mlp")
    order = [5, 9, 3, 7, 0, 6, 8, 1, 4, 2]
    members = pack_members()
    shuffled = train_population(TASKS["mlp"], [members[k] for k in order])
    for position, k in enumerate(order):
        for name, curve in pack[k].curves.items():
            np.testing.assert_allclose(shuffled[position].curves[name], curve, rtol=1e-6, atol=1e-6)


def test_members_with_different_noise_seeds_draw_different_noise():
    # The same configuration at the same repeat but another noise seed: same data and init, other noise.
    config = make_config([NoiseSpec("pre_activation", "gaussian", 0.3)])
    a = member(config)
    b = Member(config, 0, a.data_seed, a.init_seed, a.noise_seed + 1)
    ra, rb = train_population(TASKS["mlp"], [a, b])
    assert not np.array_equal(ra.curves["train_loss"], rb.curves["train_loss"])


def test_training_the_same_pack_twice_gives_the_same_numbers(packs):
    again = train_population(TASKS["mlp"], pack_members())
    for first, second in zip(packs("mlp"), again):
        for name, curve in first.curves.items():
            assert (second.curves[name] == curve).all(), name


def test_configurations_of_one_repeat_share_data_and_initial_weights():
    # Common random numbers: at zero noise every configuration of a repeat is the same run.
    silent = [
        (),
        make_config([NoiseSpec("pre_activation", "gaussian", 0.0)]),
        make_config([NoiseSpec("weights", "uniform", 0.0), NoiseSpec("targets", "flip", 0.0)]),
    ]
    members = [member(config, repeat=1) for config in silent]
    assert len({m.noise_seed for m in members}) == 3
    first, *others = train_population(TASKS["mlp"], members)
    for other in others:
        for name, curve in first.curves.items():
            assert (other.curves[name] == curve).all(), name


@pytest.mark.parametrize("task_name", ["cnn", "lstm"])
def test_a_stacked_pack_gives_the_same_bits_at_one_and_at_two_torch_threads(task_name):
    # torch's CPU kernels split some sums by the thread count; the stacked program pins its own count.
    task = TASKS[task_name].model_copy(update={"epochs": 4, "log_every": 2})
    members = [member(PACK[k], k % 2) for k in (0, 2, 8)]
    threads = torch.get_num_threads()
    try:
        runs = []
        for n in (1, 2):
            torch.set_num_threads(n)
            runs.append(train_population(task, members))
            assert torch.get_num_threads() == n  # and the process's count is given back
    finally:
        torch.set_num_threads(threads)
    assert runs[0][0].engine == "stacked"
    for one, two in zip(*runs):
        for name, curve in one.curves.items():
            assert np.array_equal(curve.view(np.int64), two.curves[name].view(np.int64)), name
