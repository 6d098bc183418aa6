"""A raced sweep's repeats: {min, max, step, min_effect} in the search space, and what validate says of it."""

from __future__ import annotations

import pytest

from sweeper.errors import SpaceError
from sweeper.space import RacingSpec, parse_space

SPACE = """\
name: raced
repeats: {repeats}
task: {{dataset: circles, n_train: 20, hidden: [4], epochs: 5}}
search:
  sampler: {sampler}
  {search}
"""
GRID = "grid: {placement: [input], std: [0.1, 0.3]}"


def space(repeats: str, sampler: str = "grid", search: str = GRID) -> str:
    return SPACE.format(repeats=repeats, sampler=sampler, search=search)


def test_repeats_as_a_mapping_races_with_max_as_the_sweeps_repeats():
    spec = parse_space(space("{min: 5, max: 60, step: 10, min_effect: 0.01}"))
    assert spec.repeats == 60 and spec.racing == RacingSpec(min=5, step=10, min_effect=0.01)
    assert parse_space(space("{min: 5, max: 20}")).racing == RacingSpec(min=5, step=5, min_effect=None)
    assert parse_space(space("20")).racing is None


@pytest.mark.parametrize(
    ("repeats", "said"),
    [
        ("{max: 20}", "repeats.min: required key missing"),
        ("{min: 1, max: 20}", "repeats.min: 1 is not allowed; allowed: a whole number from 2 to 10000"),
        ("{min: 10, max: 5}", "repeats.max: 5 is below repeats.min 10; allowed: max >= min"),
        ("{min: 5, max: 20, step: 0}", "repeats.step: 0 is not allowed; allowed: a whole number from 1 to 10000"),
        ("{min: 5, max: 20, step: 2.5}", "repeats.step: 2.5 is not allowed"),
        ("{min: 5, max: 20, min_effect: 0}", "repeats.min_effect: 0 is not allowed; allowed: a finite number > 0"),
        ("{min: 5, max: 20, min_efect: 0.1}", "repeats.min_efect: unknown key; allowed: min, max, step, min_effect"),
    ],
)
def test_a_bad_race_is_refused_in_one_line(repeats, said):
    with pytest.raises(SpaceError) as info:
        parse_space(space(repeats))
    assert said in str(info.value) and "\n" not in str(info.value)


def test_racing_needs_a_grid():
    with pytest.raises(SpaceError, match="racing .* needs sampler 'grid', not 'random'"):
        parse_space(space("{min: 5, max: 20}", "random", "n_trials: 4\n  space: {placement: [input], std: [0.1]}"))


def test_the_command_lines_repeats_sets_the_maximum_and_not_below_the_minimum():
    spec = parse_space(space("{min: 5, max: 20}"))
    assert spec.with_overrides(repeats=40).repeats == 40
    with pytest.raises(SpaceError, match="--repeats: 3 is below repeats.min 5"):
        spec.with_overrides(repeats=3)


def test_validate_says_a_raced_sweeps_plan_and_warns_of_nothing(sweeper_cli, tmp_path):
    path = tmp_path / "raced.yaml"
    path.write_text(space("{min: 5, max: 60, step: 5, min_effect: 0.02}"))

    result = sweeper_cli("validate", path)

    assert result.exit_code == 0 and result.stderr == ""
    assert (
        "racing: every configuration runs 5 repeats, then rounds of 5 more go to those still open, up to 60 "
        "(at most 180 runs, a fixed sweep's; at least 15); verdicts from the group-sequential signed-rank test "
        "with Holm over 2 comparisons; equivalent within ±0.02"
    ) in " ".join(result.stdout.split())
