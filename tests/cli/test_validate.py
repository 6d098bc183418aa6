"""Every search space shipped in search_spaces/ is valid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import wilcoxon

from sweeper.stats import statistics as st

SPACES = sorted((Path(__file__).resolve().parents[2] / "search_spaces").glob("*.yaml"))


def test_search_spaces_are_shipped():
    assert len(SPACES) >= 8


@pytest.mark.parametrize("space", SPACES, ids=[p.stem for p in SPACES])
def test_validate_accepts_every_shipped_search_space(sweeper_cli, space):
    result = sweeper_cli("validate", space)

    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"{space}: ok: sweep ")
    # only notes on stderr (on what a grid skipped; long notes wrap at the console width), and the
    # warning of a space whose repeats are too few for a verdict (issue 22: the shipped ones are to grow)
    assert result.stderr == "" or result.stderr.startswith(("note: ", "warning: "))
    assert "error" not in result.stderr


NOISY = """\
name: noisy
task: {dataset: diabetes, scaling: standard, hidden: [8], epochs: 5}
search:
  configs:
    - {placement: pre_activation, kind: dropout, std: PRE}
    - {placement: input, std: 0.1, relative: true}
"""


def test_validate_says_a_dropout_rate_out_of_range_is_a_probability(sweeper_cli, tmp_path):
    path = tmp_path / "noisy.yaml"
    path.write_text(NOISY.replace("PRE", "1.2"))
    result = sweeper_cli("validate", path)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {path}: search.configs[0]: kind 'dropout' with std 1.2: std is the "
        "dropout rate, a probability that must be in [0, 1)"
    )
    assert result.stdout == ""


def test_validate_notes_that_relative_noise_changes_nothing_under_standard_scaling(sweeper_cli, tmp_path):
    path = tmp_path / "noisy.yaml"
    path.write_text(NOISY.replace("PRE", "0.5"))
    result = sweeper_cli("validate", path)
    assert result.exit_code == 0, result.stderr
    assert " ".join(result.stderr.split()) == (
        "note: relative input noise changes nothing on task 'diabetes': its scaling is standard, so every input "
        "feature already has standard deviation 1 on the training part"
    )
    assert result.stdout.startswith(f"{path}: ok: sweep 'noisy', 3 configurations")


FEW_REPEATS = """\
name: few
repeats: REPEATS
metric: accuracy
task: {dataset: circles, n_train: 20, hidden: [4], epochs: 5}
search:
  configs:
    - {placement: input, std: 0.1}
"""


@pytest.mark.parametrize("n", range(1, 13))
def test_the_smallest_signed_rank_p_is_scipys_exact_p_on_all_positive_differences(n):
    exact = wilcoxon(np.arange(1.0, n + 1), method="exact").pvalue

    assert st.smallest_signed_rank_p(n) == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize("comparisons", [1, 4, 35, 224])
def test_the_repeats_for_a_verdict_are_the_fewest_whose_exact_p_after_holm_reaches_alpha(comparisons):
    n = st.repeats_for_a_verdict(comparisons, 0.05)

    def holm_smallest(repeats):  # Holm multiplies the smallest of the family's p-values by its size
        return comparisons * wilcoxon(np.arange(1.0, repeats + 1), method="exact").pvalue

    assert holm_smallest(n) <= 0.05 < holm_smallest(n - 1)
    assert n == {1: 6, 4: 8, 35: 11, 224: 14}[comparisons]


def test_validate_and_run_warn_in_one_line_when_no_verdict_is_possible(sweeper_cli, tmp_path):
    path = tmp_path / "few.yaml"
    path.write_text(FEW_REPEATS.replace("REPEATS", "5"))
    warning = (
        f"warning: {path}: with 5 repeats the signed-rank test cannot go below p = 0.0625, so after Holm over 1 "
        "comparison no configuration can be called better or worse than the baseline at alpha 0.05; use repeats: "
        "6 or more\n"
    )

    validated = sweeper_cli("validate", path)
    ran = sweeper_cli("run", path, "--db", f"sqlite:///{tmp_path / 'few.db'}")

    assert validated.exit_code == 0 and validated.stderr == warning
    assert ran.exit_code == 0 and ran.stderr.startswith(warning)

    path.write_text(FEW_REPEATS.replace("REPEATS", "6"))
    assert sweeper_cli("validate", path).stderr == ""
