"""A disk that fills while a sweep stores its runs stops it in one line, and the next run resumes it with
nothing lost: the runs stored then are those a run on an ample disk stores, number for number."""

from __future__ import annotations

import json
import sqlite3

from helpers import tiny_space

from sweeper.store import _connection


def stored_runs(sweeper_cli, url: str) -> list[tuple]:
    result = sweeper_cli("runs", "tiny", "--db", url, "-f", "json")
    assert result.exit_code == 0, result.stderr
    return sorted((r["trial"], r["repeat"], r["test_accuracy"], r["train_loss"]) for r in json.loads(result.stdout))


def test_a_full_disk_stops_the_sweep_in_one_line_and_a_resume_loses_nothing(sweeper_cli, tmp_path, monkeypatch):
    # Sweeper's and Optuna's tables each start on a page of their own with room to spare: a sweep of 8 runs
    # can fit in that room, one of 48 cannot.
    for name in ("tiny", "warm"):
        space = tiny_space(name, seed=3, stds=(0.05, 0.1, 0.2))
        (tmp_path / f"{name}.yaml").write_text(space.replace("repeats: 2", "repeats: 12") if name == "tiny" else space)
    ample, full = f"sqlite:///{tmp_path / 'ample.db'}", f"sqlite:///{tmp_path / 'full.db'}"
    assert sweeper_cli("run", tmp_path / "tiny.yaml", "--db", ample).exit_code == 0
    # Every table made (sweeper's and Optuna's), packed tight (VACUUM), then no room for a page more: SQLite's
    # own "disk full". Without the VACUUM the warm sweep's half-empty pages could hold the whole tiny sweep.
    assert sweeper_cli("run", tmp_path / "warm.yaml", "--db", full).exit_code == 0
    with sqlite3.connect(tmp_path / "full.db") as packing:
        packing.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    packing = sqlite3.connect(tmp_path / "full.db", isolation_level=None)
    packing.execute("VACUUM")
    pages = packing.execute("PRAGMA page_count").fetchone()[0]
    packing.close()
    real = _connection._sqlite_pragmas

    def little_room(connection, record):
        real(connection, record)
        connection.execute(f"PRAGMA max_page_count={pages}")

    monkeypatch.setattr(_connection, "_sqlite_pragmas", little_room)
    stopped = sweeper_cli("run", tmp_path / "tiny.yaml", "--db", full)
    assert stopped.exit_code == 2, stopped.stderr
    assert stopped.stderr.splitlines()[-1] == f"error: database error in {full}: database or disk is full"
    assert "Traceback" not in stopped.stderr
    monkeypatch.undo()
    resumed = sweeper_cli("run", tmp_path / "tiny.yaml", "--db", full)
    assert resumed.exit_code == 0, resumed.stderr
    assert stored_runs(sweeper_cli, full) == stored_runs(sweeper_cli, ample)
    assert len(stored_runs(sweeper_cli, full)) == 48
