"""`sweeper delete` removes one sweep with everything it stored, after asking, and leaves the others alone."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from sweeper.store import open_store

TABLES = (
    "sweeper_sweeps",
    "sweeper_trials",
    "sweeper_trial_sites",
    "sweeper_runs",
    "sweeper_curves",
    "studies",
    "trials",
)


def counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return {t: connection.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar() for t in TABLES}
    finally:
        engine.dispose()


def stored(url: str, name: str) -> dict:
    with open_store(url, create=False) as store:
        return {
            "sweep": store.sweep(name),
            "trials": store.trials(name),
            "runs": store.runs(name),
            "curves": store.curves(name),
        }


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_sweeps(request, tiny_space, sweeper_cli) -> str:
    """A database holding the completed sweeps ``tiny`` and ``other`` (the same space under another name)."""
    if request.param == "sqlite":
        url = f"sqlite:///{request.getfixturevalue('tiny_sqlite_copy')}"
    else:
        url = request.getfixturevalue("pg_database")()
        assert sweeper_cli("run", tiny_space, "--db", url).exit_code == 0
    result = sweeper_cli("run", tiny_space, "--db", url, "--name", "other")
    assert result.exit_code == 0, result.stderr
    return url


def test_delete_removes_the_sweep_with_its_trials_runs_curves_and_study_and_nothing_else(sweeper_cli, two_sweeps):
    url = two_sweeps
    before, tiny, other = counts(url), stored(url, "tiny"), stored(url, "other")
    assert (len(tiny["trials"]), len(tiny["runs"])) == (3, 6) and len(tiny["curves"]) > 6

    result = sweeper_cli("delete", "tiny", "--db", url, "--yes")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        f"deleted sweep 'tiny': 3 trials, 6 runs, {len(tiny['curves'])} curve points and its Optuna study\n"
    )
    with open_store(url, create=False) as store:
        assert [s["name"] for s in store.sweeps()] == ["other"]
    assert stored(url, "other") == other
    # every table lost exactly tiny's half: both sweeps are the same space, so they stored as many rows
    assert counts(url) == {t: n // 2 for t, n in before.items()}
    assert all(n > 0 for n in counts(url).values())


def test_a_deleted_sweep_runs_again_from_scratch(sweeper_cli, tiny_space, tiny_sqlite_copy):
    url = f"sqlite:///{tiny_sqlite_copy}"
    assert sweeper_cli("delete", "tiny", "--db", url, "-y").exit_code == 0

    again = sweeper_cli("run", tiny_space, "--db", url)

    assert again.exit_code == 0, again.stderr
    assert "6 runs trained" in again.stderr and "6 runs stored in all" in again.stderr


def test_delete_off_a_terminal_without_yes_refuses_and_deletes_nothing(sweeper_cli, tiny_sqlite_copy, db_snapshot):
    url = f"sqlite:///{tiny_sqlite_copy}"
    before = db_snapshot(url)

    result = sweeper_cli("delete", "tiny", "--db", url)

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: not deleting sweep 'tiny' (3 trials, 6 runs) from {url} unconfirmed: "
        "the input is not a terminal to ask on; add --yes\n"
    )
    assert db_snapshot(url) == before


@pytest.mark.parametrize("yes", [[], ["--yes"]], ids=["asked", "yes"])
def test_delete_of_a_missing_sweep_is_one_line_and_deletes_nothing(sweeper_cli, tiny_sqlite_copy, db_snapshot, yes):
    url = f"sqlite:///{tiny_sqlite_copy}"
    before = db_snapshot(url)

    result = sweeper_cli("delete", "nosuch", "--db", url, *yes)

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"error: no sweep 'nosuch' in {url}; sweeps there: tiny\n"
    assert db_snapshot(url) == before


def test_delete_in_a_missing_database_creates_none(sweeper_cli, tmp_path):
    db = tmp_path / "missing.db"

    result = sweeper_cli("delete", "tiny", "--db", f"sqlite:///{db}", "--yes")

    assert result.exit_code == 2 and result.stderr.startswith("error: no database at ")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("answer", ["y", "yes", "Y"])
def test_delete_asks_on_a_terminal_and_deletes_on_yes(terminal, tiny_sqlite_copy, answer):
    url = f"sqlite:///{tiny_sqlite_copy}"

    result = terminal.answer(["delete", "tiny", "--db", url], answer)

    assert result.returncode == 0, result.stderr
    assert result.stderr == f"Delete sweep 'tiny' (3 trials, 6 runs) from {url}? This cannot be undone. [y/N] "
    assert result.stdout.startswith("deleted sweep 'tiny': 3 trials, 6 runs, ")
    with open_store(url, create=False) as store:
        assert store.sweeps() == []


@pytest.mark.parametrize("answer", ["n", "", "maybe"])
def test_delete_asks_on_a_terminal_and_keeps_the_sweep_unless_told_yes(terminal, tiny_sqlite_copy, db_snapshot, answer):
    url = f"sqlite:///{tiny_sqlite_copy}"
    before = db_snapshot(url)

    result = terminal.answer(["delete", "tiny", "--db", url], answer)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.endswith("[y/N] nothing deleted\n")
    assert db_snapshot(url) == before
