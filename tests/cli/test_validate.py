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
