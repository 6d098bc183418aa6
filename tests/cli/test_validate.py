"""Every search space shipped in search_spaces/ is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

SPACES = sorted((Path(__file__).resolve().parents[2] / "search_spaces").glob("*.yaml"))


def test_search_spaces_are_shipped():
    assert len(SPACES) >= 8


@pytest.mark.parametrize("space", SPACES, ids=[p.stem for p in SPACES])
def test_validate_accepts_every_shipped_search_space(sweeper_cli, space):
    result = sweeper_cli("validate", space)

    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"{space}: ok: sweep ")
    # only notes on stderr (on what a grid skipped); long notes wrap at the console width
    assert result.stderr == "" or result.stderr.startswith("note: ")
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
