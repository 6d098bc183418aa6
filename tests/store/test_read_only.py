"""The commands that only read never write: a SQLite file is opened read-only (``mode=ro``; ``immutable``
where it cannot change), so a copy of an old database, or one on a read-only disk, keeps every byte."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest
from helpers import tiny_space

from sweeper.store import _connection

FIXTURE = Path(__file__).parent / "fixtures" / "release_0_1_0.db"

TINY = tiny_space("tiny", seed=3, stds=(0.05,))

READS = [
    ("sweeps",),
    ("runs", "tiny"),
    ("trials", "tiny"),
    ("report", "tiny", "-f", "json"),
    ("query", "select count(*) from sweeper_runs"),
    ("rerun", "tiny", "1"),
]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def beside(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


@pytest.fixture(scope="module")
def stored(tmp_path_factory, sweeper_cli) -> Path:
    """A database file holding the completed sweep ``tiny``, whole in one file (in WAL mode, as sweeper
    leaves it, and checkpointed: nothing in a -wal beside it)."""
    folder = tmp_path_factory.mktemp("stored")
    (folder / "tiny.yaml").write_text(TINY)
    result = sweeper_cli("run", folder / "tiny.yaml", "--db", f"sqlite:///{folder / 'run.db'}")
    assert result.exit_code == 0, result.stderr
    with sqlite3.connect(folder / "run.db") as source, sqlite3.connect(folder / "tiny.db") as copy:
        source.backup(copy)
    assert sqlite3.connect(folder / "tiny.db").execute("PRAGMA journal_mode").fetchone() == ("wal",)
    return folder / "tiny.db"


def test_a_release_0_1_0_copy_keeps_its_bytes_after_sweeps_and_query(sweeper_cli, tmp_path):
    copy = tmp_path / "old.db"
    shutil.copy(FIXTURE, copy)
    before = md5(copy)
    url = f"sqlite:///{copy}"
    refused = sweeper_cli("sweeps", "--db", url)
    assert refused.exit_code == 2 and "has the schema of an older sweeper" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    answered = sweeper_cli("query", "select 1 as one", "--db", url, "-f", "json")
    assert answered.exit_code == 0, answered.stderr
    assert md5(copy) == before and beside(copy) == ["old.db"]


@pytest.mark.parametrize("command", READS, ids=lambda c: c[0])
def test_a_read_command_leaves_the_database_byte_for_byte(sweeper_cli, stored, tmp_path, command):
    copy = tmp_path / "tiny.db"
    shutil.copy(stored, copy)
    before = md5(copy)
    result = sweeper_cli(*command, "--db", f"sqlite:///{copy}")
    assert result.exit_code == 0, result.stderr
    assert md5(copy) == before


@pytest.mark.parametrize("command", READS, ids=lambda c: c[0])
def test_a_database_that_cannot_change_is_read_as_immutable(sweeper_cli, stored, tmp_path, monkeypatch, command):
    # What a read-only filesystem (or a folder this process may not write) looks like to sweeper; root
    # writes anywhere, so the check is what is simulated, and what SQLite is asked is checked.
    copy = tmp_path / "tiny.db"
    shutil.copy(stored, copy)
    before = md5(copy)
    monkeypatch.setattr(_connection, "cannot_change", lambda path: True)
    opened = []
    real_connect = _connection.sqlite3.connect
    monkeypatch.setattr(
        _connection.sqlite3,
        "connect",
        lambda database, *a, **k: opened.append(database) or real_connect(database, *a, **k),
    )
    result = sweeper_cli(*command, "--db", f"sqlite:///{copy}")
    assert result.exit_code == 0, result.stderr
    assert opened and all(u == f"{copy.resolve().as_uri()}?mode=ro&immutable=1" for u in opened), opened
    assert md5(copy) == before and beside(copy) == ["tiny.db"]


def test_a_read_only_filesystem_or_unwritable_folder_is_seen_as_unchanging(tmp_path, monkeypatch):
    db = tmp_path / "x.db"
    db.write_bytes(b"")
    assert not _connection.cannot_change(str(db))

    class ReadOnly:
        f_flag = _connection.os.ST_RDONLY

    monkeypatch.setattr(_connection.os, "statvfs", lambda path: ReadOnly())
    assert _connection.cannot_change(str(db))


def test_a_read_command_refuses_to_write_even_if_asked(stored, tmp_path):
    from sweeper.errors import StoreError
    from sweeper.store import open_store

    copy = tmp_path / "tiny.db"
    shutil.copy(stored, copy)
    before = md5(copy)
    with open_store(f"sqlite:///{copy}", read_only=True) as store, pytest.raises(StoreError, match="readonly"):
        store.delete_sweep("tiny")
    assert md5(copy) == before


def test_a_sweep_deleted_while_a_report_reads_it_is_one_line(sweeper_cli, stored, tmp_path, monkeypatch):
    from sweeper.store import open_store
    from sweeper.store._store import Store

    copy = tmp_path / "tiny.db"
    shutil.copy(stored, copy)
    url = f"sqlite:///{copy}"
    real_runs = Store.runs

    def deleted_first(self, sweep, *args, **kwargs):
        with open_store(url, create=False) as other:  # another process's `sweeper delete`
            other.delete_sweep(sweep)
        return real_runs(self, sweep, *args, **kwargs)

    monkeypatch.setattr(Store, "runs", deleted_first)
    result = sweeper_cli("report", "tiny", "--db", url, "-f", "json")
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: no sweep 'tiny' in {url}"), line
