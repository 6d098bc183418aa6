"""A user's flat nn.Sequential CNN runs as grouped channels-last convolutions, with the reference loop's numbers.

The pack's path (``sweeper.engine.grouped_sequential``) replaces vmap for such models: with noise at
every placement each member still equals the member-by-member reference loop to float rounding, and a
member's numbers do not depend on the other members of its pack.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import member
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from sweeper.engine import grouped_sequential
from sweeper.engine.population import train_population
from sweeper.engine.reference import train_reference
from sweeper.noise.spec import NoiseSpec, make_config
from sweeper.tasks.spec import TaskSpec

sys.path.insert(0, str(Path(__file__).with_name("user_models")))

TOL = 1e-5  # as test_user_model.py


def _cnn_task(epochs=3, **model_args):
    model = {"factory": "toy_models:cnn", "args": model_args}
    return TaskSpec.model_validate(
        {"dataset": "digits", "epochs": epochs, "log_every": 1, "batch_size": 64, "model": model}
    )


def _spec(placement, kind, std=0.3):
    return NoiseSpec(placement, kind, std, "constant")


def test_takes_a_flat_cnn_and_leaves_every_other_model_to_vmap():
    cnn = nn.Sequential(nn.Unflatten(1, (1, 8)), nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    assert grouped_sequential.takes(nn.Sequential(*cnn, nn.Flatten(), nn.Linear(64, 10)))
    assert not grouped_sequential.takes(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)))  # no convolution
    assert not grouped_sequential.takes(nn.Sequential(*cnn, nn.BatchNorm2d(4)))  # buffers
    assert not grouped_sequential.takes(nn.Sequential(nn.Conv2d(2, 4, 3, groups=2)))  # its own groups
    assert not grouped_sequential.takes(nn.Sequential(nn.Sequential(*cnn)))  # nested
    assert not grouped_sequential.takes(nn.Sequential(nn.ReLU(inplace=True), *cnn))  # writes into its input
    hooked = nn.Sequential(nn.Conv2d(1, 4, 3))
    hooked[0].register_forward_hook(lambda m, a, out: out)
    assert not grouped_sequential.takes(hooked)


def test_forward_equals_vmap_of_the_model():
    torch.manual_seed(0)
    models = [
        nn.Sequential(
            nn.Unflatten(1, (1, 8)),
            nn.Conv2d(1, 3, 3, padding=1),
            nn.Tanh(),
            nn.MaxPool2d(2),
            nn.Conv2d(3, 5, 3, stride=2, padding=1, bias=False),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(20, 7),
        )
        for _ in range(4)
    ]
    params, _ = stack_module_state(models)
    x = torch.randn(4, 6, 8, 8)  # (members, rows, H, W)
    expected = vmap(lambda p, xx: functional_call(models[0], p, (xx,)))(params, x)
    got = grouped_sequential.forward(models[0], params, x, {}, None)
    assert got.shape == (4, 6, 7)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


NOISY = [
    make_config([_spec("input", "uniform")]),
    make_config([_spec("pre_activation", "gaussian")]),
    make_config([_spec("post_activation", "multiplicative")]),
    make_config([_spec("post_activation", "dropout", 0.2), _spec("weights", "gaussian", 0.1)]),
    make_config([_spec("targets", "flip", 0.2), _spec("gradients", "gaussian", 0.05)]),
]


@pytest.fixture(scope="module")
def cnn_pack():
    """The toy CNN with each noise of NOISY and one noise-free member, trained once as one pack with
    generator streams, counting the calls of the grouped path."""
    t = _cnn_task()
    members = [member((), 0)] + [member(c, 1 + i % 2) for i, c in enumerate(NOISY)]
    calls = []
    forward = grouped_sequential.forward

    def counted(*args):
        calls.append(1)
        return forward(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(grouped_sequential, "forward", counted)
        results = train_population(t, members, streams="generator")
    return t, members, results, len(calls)


@pytest.mark.parametrize("k", range(len(NOISY)), ids=lambda k: "+".join(f"{s.placement}:{s.kind}" for s in NOISY[k]))
def test_noisy_cnn_member_equals_the_reference_loop(cnn_pack, k):
    t, members, results, calls = cnn_pack
    assert calls > 0 and {r.engine for r in results} == {"functional"}  # the grouped path trained it
    m, result = members[1 + k], results[1 + k]
    reference = train_reference(t, m)
    assert result.curve_epochs.tolist() == reference.curve_epochs.tolist()
    for name in reference.curves:
        np.testing.assert_allclose(result.curves[name], reference.curves[name], rtol=TOL, atol=TOL, err_msg=name)
    quiet = train_reference(t, member((), m.repeat))  # the noise is really on
    assert np.abs(result.curves["train_loss"] - quiet.curves["train_loss"]).max() > 5 * TOL


def test_a_cnn_member_does_not_depend_on_its_pack():
    t = _cnn_task(epochs=2)
    alone = member(NOISY[2], 0)
    pack = [member(NOISY[1], 1), alone, member((), 2)]
    in_pack = train_population(t, pack)[1]
    by_itself = train_population(t, [alone])[0]
    for name in by_itself.curves:
        np.testing.assert_allclose(in_pack.curves[name], by_itself.curves[name], rtol=1e-6, atol=1e-7, err_msg=name)
