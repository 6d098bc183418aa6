"""Store.query reads one statement, refuses every write, and keeps within its row, byte and time limits."""

from __future__ import annotations

import _thread
import threading

import numpy as np
import pytest

from sweeper.errors import StoreError
from sweeper.noise.spec import NoiseSpec, make_config
from sweeper.records import Member, RunResult
from sweeper.store import _query, _reader, open_store

PRE = make_config([NoiseSpec("pre_activation", "gaussian", 0.1)])
REPEATS = 3
EPOCHS = 4

WRITES = {
    "insert": "insert into sweeper_sweeps (name, spec_yaml, seed, metric, higher_is_better, repeats, problem, status,"
    " study_name, created_at, updated_at) values ('x', '', 1, 'm', true, 1, 'binary', 'running', 'x',"
    " current_timestamp, current_timestamp)",
    "update": "update sweeper_runs set test_accuracy = 1.0",
    "drop": "drop table sweeper_curves",
    "create": "create table sweeper_notes (note text)",
    "delete": "delete from sweeper_runs",
    "commit_then_delete": "select 1; commit; delete from sweeper_runs",
}
# SQLite says why in its own words; PostgreSQL runs one SELECT-like statement only.
REFUSAL = {
    "sqlite": r"^query refused: (attempt to write a readonly database \(queries are read-only\)"
    r"|more than one statement \(a query is one statement\))$",
    "postgresql": r"^query refused: (\w+ is not a query|more than one statement) \(a query is one SELECT, VALUES, "
    r"TABLE or WITH \.\.\. SELECT statement\)$",
}
ENDLESS = "with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c"


def backend(store) -> str:
    return "sqlite" if store.url.startswith("sqlite") else "postgresql"


def count(store, table: str) -> int:
    return store.query(f"select count(*) from {table}").rows[0][0]


@pytest.fixture
def stored(store):
    """The store holding sweep ``demo``: the baseline and one noisy trial, 3 repeats each, test loss 0.38 + 0.01 r."""
    sweep_id = store.start_sweep(
        "demo", "name: demo\n", seed=7, metric="test_accuracy", higher_is_better=True, repeats=REPEATS, problem="binary"
    )
    items = []
    for config in ((), PRE):
        trial = store.ensure_trial(sweep_id, config)
        for r in range(REPEATS):
            curves = {
                name: np.linspace(0.5, 0.38 + 0.01 * r, EPOCHS)
                for name in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")
            }
            result = RunResult(
                final={k: v[-1] for k, v in curves.items()},
                curve_epochs=np.arange(1, EPOCHS + 1),
                curves=curves,
                best_epoch=EPOCHS,
            )
            items.append((trial.id, "circles", Member(config, r, data_seed=r, init_seed=r, noise_seed=r), result))
    store.save_runs(sweep_id, items)
    return store


def test_query_reads_rows(stored):
    result = stored.query(
        "select t.placement, count(*) as n, avg(r.test_loss) as mean_test_loss "
        "from sweeper_runs r join sweeper_trials t on t.id = r.trial_id "
        "where t.label like '%σ=0.1' group by t.placement"
    )

    assert result.columns == ["placement", "n", "mean_test_loss"]
    assert result.rows == [("pre_activation", 3, pytest.approx(0.39))]
    assert result.truncated is False


@pytest.mark.parametrize("name", sorted(WRITES))
def test_query_refuses_writes_and_leaves_the_data_unchanged(stored, name):
    before = stored.runs("demo")

    with pytest.raises(StoreError, match=REFUSAL[backend(stored)]) as refused:
        stored.query(WRITES[name])

    assert "\n" not in str(refused.value)
    assert stored.runs("demo") == before
    assert [s["name"] for s in stored.sweeps()] == ["demo"]
    assert count(stored, "sweeper_curves") == 2 * REPEATS * EPOCHS


def test_query_syntax_error_is_one_line(store):
    with pytest.raises(StoreError, match="^query failed: .*selec") as failed:
        store.query("selec * from sweeper_runs")

    assert "\n" not in str(failed.value)


def test_query_keeps_limit_rows_and_says_whether_there_were_more(store):
    sql = "with recursive c(x) as (select 1 union all select x + 1 from c where x < {n}) select x from c"

    exact = store.query(sql.format(n=5), limit=5)
    more = store.query(sql.format(n=6), limit=5)

    assert exact.rows == [(1,), (2,), (3,), (4,), (5,)] and exact.truncated is False
    assert more.rows == exact.rows and more.truncated is True


def test_query_of_a_billion_rows_stops_at_the_limit(store):
    result = store.query(
        "with recursive c(x) as (select 1 union all select x + 1 from c where x < 1000000000) select x from c",
        limit=10_000,
    )

    assert len(result.rows) == 10_000 and result.rows[-1] == (10_000,) and result.truncated


def test_an_endless_query_stops_at_the_timeout(store):
    with pytest.raises(StoreError, match=r"^query stopped: it ran past --timeout 0.5 s$"):
        store.query(ENDLESS, timeout=0.5)


def test_ctrl_c_during_a_query_is_a_keyboard_interrupt_not_a_failed_query(store):
    ctrl_c = threading.Timer(0.5, _thread.interrupt_main)  # as SIGINT does, while the query computes
    ctrl_c.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            store.query(ENDLESS, timeout=60)
    finally:
        ctrl_c.cancel()

    assert store.query("select 1 as one").rows == [(1,)]


def test_a_result_past_the_byte_budget_stops_the_query(store, monkeypatch):
    monkeypatch.setattr(_query, "MAX_RESULT_BYTES", 2**20)
    wide = "'" + "x" * 10_000 + "'"

    fits = store.query(
        f"with recursive c(x) as (select 1 union all select x + 1 from c where x < 100) select x, {wide} as w from c"
    )
    with pytest.raises(StoreError, match=r"^query stopped: its result passed 1 MiB after \d+ rows; select fewer"):
        store.query(
            f"with recursive c(x) as (select 1 union all select x + 1 from c where x < 1000) "
            f"select x, {wide} as w from c"
        )

    assert len(fits.rows) == 100


def test_query_on_sqlite_cannot_attach_another_file(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 'sweeps.db'}") as store:
        with pytest.raises(StoreError, match="query refused"):
            store.query(f"attach database '{tmp_path / 'other.db'}' as other")
        with pytest.raises(StoreError, match="query refused"):
            store.query(f"vacuum into '{tmp_path / 'copy.db'}'")

    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == ["sweeps.db"]


def test_a_value_larger_than_the_byte_budget_is_never_built_on_sqlite(tmp_path, monkeypatch):
    monkeypatch.setattr(_query, "MAX_RESULT_BYTES", 2**20)
    with (
        open_store(f"sqlite:///{tmp_path / 'sweeps.db'}") as store,
        pytest.raises(StoreError, match=r"^query stopped: a value of its result passed 1 MiB$"),
    ):
        store.query("select zeroblob(2000000)")


@pytest.mark.postgres
def test_query_on_postgresql_cannot_write_server_files_as_superuser(pg_url, tmp_path):
    target = tmp_path / "copied.txt"

    with open_store(pg_url) as store:
        with pytest.raises(StoreError, match="^query refused: copy is not a query"):
            store.query(f"copy (select 1) to '{target}'")
        with pytest.raises(StoreError, match="^query refused: copy is not a query"):
            store.query(f"copy (select 1) to program 'touch {target}'")
        with pytest.raises(StoreError, match="^query refused: permission denied for function pg_read_file"):
            store.query("select pg_read_file('/etc/passwd')")

    assert not target.exists()


def test_the_reader_is_granted_exactly_optunas_tables():
    from optuna.storages._rdb.models import BaseModel

    assert set(_reader.OPTUNA_TABLES) == set(BaseModel.metadata.tables) | {"alembic_version"}
