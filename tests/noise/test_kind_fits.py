"""Which noise kind fits which placement and problem is said once (``noise.spec.fits``): the search space,
``NoiseSpec`` and the engines' target check answer alike for every placement, kind and problem."""

from __future__ import annotations

import pytest

from sweeper.noise.spec import KINDS, PLACEMENTS, NoiseSpec, check_target_kind, fits, unfit_site
from sweeper.tasks.spec import TaskSpec

TASKS = {"classification": TaskSpec(dataset="circles"), "regression": TaskSpec(dataset="diabetes")}


@pytest.mark.parametrize("problem", sorted(TASKS))
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_the_space_the_spec_and_the_engines_agree_on_where_a_kind_fits(placement, kind, problem):
    task = TASKS[problem]
    fit = fits(placement, kind, task.problem != "regression")

    assert (unfit_site(placement, kind, {problem: task}) is None) == fit
    if fit:
        NoiseSpec(placement, kind, 0.1)  # a kind that fits some task makes a spec
    if placement == "targets":
        n_classes = 0 if problem == "regression" else 2
        if fit:
            check_target_kind(kind, n_classes)
        else:
            with pytest.raises(ValueError, match="does not fit this task"):
                check_target_kind(kind, n_classes)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_a_spec_is_refused_exactly_where_its_kind_fits_no_task(placement, kind):
    somewhere = fits(placement, kind, True) or fits(placement, kind, False)
    if somewhere:
        assert NoiseSpec(placement, kind, 0.1).kind == kind
    else:
        with pytest.raises(ValueError, match=f"kind '{kind}' applies (only )?to .*, not '{placement}'$"):
            NoiseSpec(placement, kind, 0.1)


def test_the_rule_itself():
    assert [k for k in KINDS if fits("targets", k, True)] == ["flip"]
    assert [k for k in KINDS if fits("targets", k, False)] == ["gaussian", "multiplicative", "uniform"]
    assert [p for p in PLACEMENTS if fits(p, "dropout", True)] == [
        "input",
        "pre_activation",
        "post_activation",
        "weights",
    ]
    assert [p for p in PLACEMENTS if fits(p, "gaussian", True)] == list(PLACEMENTS[:-1])
