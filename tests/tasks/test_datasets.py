import numpy as np
import pytest
from pydantic import ValidationError

from sweeper.tasks.datasets import DATASETS
from sweeper.tasks.families import FAMILIES, FLAT, IMAGES, SEQUENCES
from sweeper.tasks.spec import TaskSpec


@pytest.mark.parametrize("name", list(DATASETS))
def test_each_record_describes_the_data_its_loader_gives(name):
    data = DATASETS[name]
    x, y = data.draw(data.n_samples, data.noise, 0) if data.generated else data.arrays()
    assert x.reshape(len(x), -1).shape[1] == data.n_features and len(y) == len(x)
    if data.problem == "regression":
        assert data.n_classes == 0 and data.n_outputs == 1
    else:
        np.testing.assert_array_equal(np.unique(y), np.arange(data.n_classes))
        assert data.n_outputs == (1 if data.problem == "binary" else data.n_classes)


def test_input_rules_reshape_what_they_take_and_refuse_the_rest():
    assert FLAT.view((8, 8)) == (64,) and FLAT.view((13,)) == (13,)
    assert IMAGES.view((8, 8)) == (1, 8, 8) and IMAGES.view((3, 5, 6)) == (3, 5, 6)
    assert IMAGES.view((13,)) is None and IMAGES.view((2, 3, 4, 5)) is None
    assert SEQUENCES.view((8, 8)) == (8, 8) and SEQUENCES.view((13,)) is None


@pytest.mark.parametrize("model", ["cnn", "rnn"])
def test_cnn_and_rnn_take_every_data_set_whose_samples_fit_and_say_what_they_need(model):
    family = FAMILIES[model]
    for name, data in DATASETS.items():
        if family.inputs.view(data.shape) is not None:
            assert TaskSpec(dataset=name, model=model, hidden=(8,)).data is data
            continue
        with pytest.raises(ValidationError) as caught:
            TaskSpec(dataset=name, model=model, hidden=(8,))
        message = str(caught.value)
        assert f"model '{model}' needs {family.inputs.what}" in message
        assert f"dataset '{name}' has samples of shape {data.shape}" in message
        assert "allowed: dataset 'digits'" in message
