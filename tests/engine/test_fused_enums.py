"""The fused engine looks mlp.c's enumerations up by name, read from the compiled library: every noise
placement and kind (``noise.kinds``' records, by their ``kernel`` name), loss and optimizer the Python side
has is there, and a name mlp.c lacks is refused."""

import pytest
import torch

from sweeper import metrics
from sweeper.engine import fused
from sweeper.noise.kinds import NOISE_KINDS
from sweeper.noise.spec import PLACEMENTS
from sweeper.tasks.spec import TaskSpec

pytestmark = pytest.mark.skipif(
    fused.task_fits(TaskSpec(), torch.device("cpu")) is False, reason="the C kernels could not be built here"
)


def test_mlp_c_names_every_placement_kind_loss_and_optimizer_the_python_side_has():
    enums = fused._enums()

    assert sorted(enums["site"]) == sorted(PLACEMENTS)
    # every kind of the registry under the name its record gives mlp.c, and no other
    assert set(enums["kind"]) == {"none"} | {kind.kernel for kind in NOISE_KINDS.values()}
    assert len(set(enums["kind"])) == len(enums["kind"])
    assert enums["kind"][0] == "none"  # a site without noise
    assert sorted(enums["loss"]) == ["binary", "multiclass", "regression"]
    assert sorted(enums["optimizer"]) == ["adam", "sgd"]
    assert sorted(enums["activation"]) == ["relu", "sigmoid", "tanh"]
    assert enums["metric"] == tuple(m.name for m in metrics.TABLE)  # sweeper_mlp_metrics computes every one


def test_a_name_mlp_c_lacks_is_refused_not_given_another_number():
    with pytest.raises(ValueError, match="the fused engine \\(mlp.c\\) has no kind 'salt_and_pepper'"):
        fused._number("kind", "salt_and_pepper")


@pytest.mark.parametrize("activation", ["gelu", "elu", "leaky_relu"])
def test_an_activation_mlp_c_lacks_goes_to_the_stacked_program(activation):
    assert fused.task_fits(TaskSpec(activation=activation), torch.device("cpu")) is False
