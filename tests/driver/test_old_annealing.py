"""Sweeps annealed with sweeper <= 0.1.0's formula, std / (1 + t)^γ, are not resumed with the new one."""

import pytest

from sweeper.driver.prepare import refuse_old_annealing
from sweeper.errors import StoreError
from sweeper.noise.spec import old_annealing
from sweeper.space import parse_space

GRID = """\
name: annealing
task: {dataset: circles, epochs: 5}
search:
  configs:
    - {placement: gradients, std: 0.1, schedule: SCHEDULE}
"""
SAMPLED = """\
name: sampled
task: {dataset: circles, epochs: 5}
search:
  sampler: tpe
  n_trials: 4
  space: {placement: input, std: [0.1, 0.2], schedule: [constant, annealed]}
"""


@pytest.mark.parametrize(
    "version, old",
    [
        (None, True),
        ("0.1.0", True),
        ("0.0.9", True),
        ("0.1", True),
        ("0.1.0rc1", True),
        ("0.1.1", False),
        ("0.2.0", False),
        ("0.2.0.dev3", False),
        ("1.0", False),
        ("v0.1.0", True),
    ],
)
def test_old_annealing_is_every_version_up_to_0_1_0_and_an_unrecorded_one(version, old):
    assert old_annealing(version) is old


@pytest.mark.parametrize("version", [None, "0.1.0"])
@pytest.mark.parametrize("text", [GRID.replace("SCHEDULE", "annealed"), SAMPLED], ids=["grid", "sampled"])
def test_resuming_an_old_annealed_sweep_is_refused_in_one_line(text, version):
    spec = parse_space(text)
    with pytest.raises(StoreError) as info:
        refuse_old_annealing(spec, version)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"sweep {spec.name!r} was stored ")
    assert "std / (1 + t)^gamma" in message and "another --name" in message


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
def test_old_sweeps_without_annealing_resume(schedule):
    refuse_old_annealing(parse_space(GRID.replace("SCHEDULE", schedule)), None)


def test_annealed_sweeps_of_this_formula_resume():
    refuse_old_annealing(parse_space(GRID.replace("SCHEDULE", "annealed")), "0.2.0")
