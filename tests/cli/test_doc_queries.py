"""The README's and docs/commands.md's `sweeper query` examples run, and count one sweep's runs only."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "search_spaces" / "seed_case_study.yaml"


def _examples() -> list[tuple[str, str]]:
    """(page, SQL) of every ``sweeper query "..."`` example in the README and docs/commands.md, its lines
    joined."""
    found = []
    for page in ("README.md", "docs/commands.md"):
        for sql in re.findall(r'sweeper query "(.*?)"', (ROOT / page).read_text(), re.S):
            if sql != "SQL":  # the command tables' placeholder
                found.append((page, " ".join(sql.split())))
    return found


EXAMPLES = _examples()


def test_the_pages_have_query_examples():
    assert {page for page, _ in EXAMPLES} == {"README.md", "docs/commands.md"}


@pytest.fixture(scope="module")
def two_sweeps(tmp_path_factory, sweeper_cli) -> str:
    """A database holding the seed's sweep (a few epochs, 2 repeats) and another of 3 repeats beside it."""
    url = f"sqlite:///{tmp_path_factory.mktemp('queries') / 's.db'}"
    for args in (("--repeats", "2"), ("--repeats", "3", "--name", "another")):
        ran = sweeper_cli("run", SEED, "--db", url, "--epochs", "3", *args)
        assert ran.exit_code == 0, ran.stderr
    return url


@pytest.mark.parametrize("page, sql", EXAMPLES, ids=[page for page, _ in EXAMPLES])
def test_a_query_example_reads_the_one_sweep_it_names(sweeper_cli, two_sweeps, page, sql):
    result = sweeper_cli("query", sql, "--db", two_sweeps, "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    runs = json.loads(sweeper_cli("runs", "seed-case-study", "--db", two_sweeps, "--format", "json").stdout)
    by_label = {}
    for run in runs:
        by_label.setdefault(run["label"], []).append(run["test_accuracy"])
    assert {row["label"] for row in rows} == set(by_label)
    for row in rows:
        mean = next(v for k, v in row.items() if k.startswith("avg("))
        assert mean == pytest.approx(sum(by_label[row["label"]]) / 2)  # 2 repeats: the other sweep has 3
        assert row.get("runs", 2) == 2
