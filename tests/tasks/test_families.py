import pytest
import torch

from sweeper.tasks.data import input_shape, n_outputs
from sweeper.tasks.families import FAMILIES, family
from sweeper.tasks.spec import TaskSpec

TASKS = {
    "mlp": TaskSpec(dataset="wine", hidden=(7, 5)),
    "cnn": TaskSpec(dataset="digits", model="cnn", channels=(2, 3), hidden=(4,)),
    "rnn": TaskSpec(dataset="digits", model="rnn", cell="gru", hidden=(6,)),
}


def test_every_registered_family_has_a_task_here():
    assert set(TASKS) == set(FAMILIES)


@pytest.mark.parametrize("name", list(TASKS))
def test_shapes_init_and_reference_model_agree_on_the_canonical_parameters(name):
    task = TASKS[name]
    code = family(task).code
    shape, n_out = input_shape(task), n_outputs(task)
    shapes = code.param_shapes(task, shape, n_out)
    params = code.init_params(task, shape, n_out, 0)
    assert list(params) == list(shapes) and all(tuple(params[k].shape) == s for k, s in shapes.items())
    model = code.Reference(task, shape, n_out)
    model.load_params(params)
    assert [tuple(p.shape) for p in model.canonical_parameters()] == list(shapes.values())
    for p, (key, value) in zip(model.canonical_parameters(), params.items()):
        assert torch.equal(p.detach(), value), key


@pytest.mark.parametrize("name", list(TASKS))
def test_the_stacked_program_computes_what_the_reference_model_computes(name):
    task = TASKS[name]
    code = family(task).code
    shape, n_out = input_shape(task), n_outputs(task)
    members = [code.init_params(task, shape, n_out, s) for s in (1, 2)]
    stacked = {k: torch.stack([m[k] for m in members]) for k in members[0]}
    x = torch.randn(2, 5, *shape, generator=torch.Generator().manual_seed(3))
    out = code.forward(task, stacked, x)
    assert out.shape == (2, 5, n_out)
    for k, params in enumerate(members):
        model = code.Reference(task, shape, n_out)
        model.load_params(params)
        torch.testing.assert_close(out[k], model(x[k]), rtol=1e-5, atol=1e-6)
