"""A database written by release 0.1.0 upgrades with nothing lost; readers and newer databases get one line."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata

from sweeper.store import migrations, open_store
from sweeper.store.migrations import VERSION_TABLE
from sweeper.store.models import Base

#: Made by fixtures/make_release_0_1_0.sh with sweeper 0.1.0 (commit 0ca78b5).
FIXTURE = Path(__file__).parent / "fixtures" / "release_0_1_0.db"
OVERRIDES = {
    "seed-case-study": {"epochs": 50, "repeats": 2},
    "combined-random": {},
    "regression-renamed": {"name": "regression-renamed"},
}
RUNS = {"seed-case-study": 8, "combined-random": 8, "regression-renamed": 4}
TABLES = ("sweeper_sweeps", "sweeper_trials", "sweeper_trial_sites", "sweeper_runs", "sweeper_curves")
HEAD = migrations.head()
MARKER = "\n# sweeper overrides: "


@pytest.fixture
def release_db(tmp_path) -> Path:
    """A private copy of the 0.1.0 database."""
    path = tmp_path / "sweeps.db"
    shutil.copyfile(FIXTURE, path)
    return path


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def rows(url: str, table: str, columns: list[str] | None = None) -> list[tuple]:
    """Every row of ``table`` (only ``columns``, if given), in a stable order."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            names = columns or [c["name"] for c in sa.inspect(connection).get_columns(table)]
            quoted = ", ".join(f'"{name}"' for name in names)
            found = connection.exec_driver_sql(f"SELECT {quoted} FROM {table}").all()
    finally:
        engine.dispose()
    return sorted((tuple(r) for r in found), key=repr)


def columns_of(url: str, table: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        return [c["name"] for c in sa.inspect(engine).get_columns(table)]
    finally:
        engine.dispose()


def studies(url: str) -> dict[str, list[tuple]]:
    """Each Optuna study's trials as (number, state, params, values, user attributes)."""
    storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
    try:
        return {
            s.study_name: [
                (t.number, t.state.name, t.params, t.values, t.user_attrs)
                for t in optuna.load_study(study_name=s.study_name, storage=storage).trials
            ]
            for s in storage.get_all_studies()
        }
    finally:
        storage.engine.dispose()


def schema(url: str) -> dict:
    """sweeper's tables as the database describes them: columns, keys, unique and CHECK constraints."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        tables = sorted(t for t in inspector.get_table_names() if t.startswith("sweeper_") and t != VERSION_TABLE)
        return {
            table: {
                "columns": sorted((c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)),
                "primary_key": inspector.get_pk_constraint(table),
                "foreign_keys": sorted(
                    (
                        fk["name"],
                        tuple(fk["constrained_columns"]),
                        fk["referred_table"],
                        tuple(fk["referred_columns"]),
                        fk["options"].get("ondelete"),
                    )
                    for fk in inspector.get_foreign_keys(table)
                ),
                "unique": sorted(
                    (u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)
                ),
                "checks": sorted((c["name"], c["sqltext"]) for c in inspector.get_check_constraints(table)),
            }
            for table in tables
        }
    finally:
        engine.dispose()


def migrate_to(url: str, target: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            migrations.upgrade(connection, target)
    finally:
        engine.dispose()


def version_rows(url: str) -> list[tuple]:
    return rows(url, VERSION_TABLE)


# -- the revisions --------------------------------------------------------------------------------


def test_revision_0001_creates_exactly_the_tables_of_release_0_1_0(tmp_path):
    url = url_of(tmp_path / "new.db")

    migrate_to(url, "0001")

    def ddl(path):
        connection = sqlite3.connect(path)
        try:
            return dict(
                connection.execute(
                    "SELECT name, sql FROM sqlite_master WHERE name LIKE 'sweeper%' AND name != ?", (VERSION_TABLE,)
                )
            )
        finally:
            connection.close()

    assert ddl(tmp_path / "new.db") == ddl(FIXTURE)
    assert set(ddl(FIXTURE)) == set(TABLES)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_empty_databases(request, tmp_path):
    if request.param == "sqlite":
        return url_of(tmp_path / "a.db"), url_of(tmp_path / "b.db")
    make = request.getfixturevalue("pg_database")
    return make(), make()


def test_the_revisions_add_up_to_the_models(two_empty_databases):
    migrated, created = two_empty_databases
    migrate_to(migrated, "0001")

    open_store(migrated).close()  # upgrades 0001 -> head through the revisions
    open_store(created).close()  # a new database: the models' tables, stamped head

    assert schema(migrated) == schema(created)
    assert version_rows(migrated) == version_rows(created) == [(HEAD,)]
    engine = sa.create_engine(migrated)
    with engine.connect() as connection:
        assert compare_metadata(migrations.context(connection, target_metadata=Base.metadata), Base.metadata) == []
    engine.dispose()


def test_a_later_version_can_store_a_noise_kind_and_problem_this_one_does_not_know(two_empty_databases):
    url, _ = two_empty_databases
    open_store(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        sweep_id = connection.execute(
            sa.text(
                "INSERT INTO sweeper_sweeps (name, spec_yaml, seed, metric, higher_is_better, repeats, problem, "
                "status, study_name, created_at, updated_at) VALUES ('later', '', 1, 'test_f1', true, 1, 'multilabel', "
                "'running', 'later', current_timestamp, current_timestamp) RETURNING id"
            )
        ).scalar_one()
        trial_id = connection.execute(
            sa.text(
                "INSERT INTO sweeper_trials (sweep_id, number, label, config_json, config_key, placement, status, "
                "created_at) VALUES (:s, 1, 'x', '[]', 1, 'attention', 'pending', current_timestamp) RETURNING id"
            ),
            {"s": sweep_id},
        ).scalar_one()
        connection.execute(
            sa.text(
                "INSERT INTO sweeper_trial_sites (trial_id, placement, kind, std, schedule) "
                "VALUES (:t, 'attention', 'laplace', 0.1, 'cyclic')"
            ),
            {"t": trial_id},
        )
    engine.dispose()

    assert rows(url, "sweeper_trial_sites", ["placement", "kind", "schedule"]) == [("attention", "laplace", "cyclic")]


@pytest.mark.parametrize(
    "stored, yaml, overrides",
    [
        ("name: a\nseed: 1\n", "name: a\nseed: 1\n", None),
        (
            'name: a\nseed: 1\n# sweeper overrides: {"epochs": 50, "repeats": 2}\n',
            "name: a\nseed: 1\n",
            '{"epochs": 50, "repeats": 2}',
        ),
        (
            'name: a  # sweeper overrides: x\n# sweeper overrides: {"name": "b"}\n',
            "name: a  # sweeper overrides: x\n",
            '{"name": "b"}',
        ),
        ("name: a\n# sweeper overrides: not json\n", "name: a\n# sweeper overrides: not json\n", None),
    ],
    ids=["none", "repeats-and-epochs", "marker-in-the-yaml", "unreadable-left-alone"],
)
def test_0002_moves_the_overrides_comment_into_its_own_value(stored, yaml, overrides):
    split_overrides = migrations.scripts().get_revision("0002").module.split_overrides

    assert split_overrides(stored) == (yaml, overrides)


# -- a database of release 0.1.0 ------------------------------------------------------------------


def test_0003_keeps_for_old_runs_the_test_metrics_of_their_best_epoch(release_db):
    url = url_of(release_db)
    open_store(url).close()

    curves = {
        (run, epoch): (loss, accuracy, mse)
        for run, epoch, loss, accuracy, mse in rows(
            url, "sweeper_curves", ["run_id", "epoch", "test_loss", "test_accuracy", "test_mse"]
        )
    }
    runs = rows(
        url,
        "sweeper_runs",
        [
            "id",
            "best_epoch",
            "early_test_loss",
            "early_test_accuracy",
            "early_test_mse",
            "early_val_accuracy",
            "val_accuracy",
            "test_ece",
        ],
    )
    assert len(runs) == 20 and all(r[1] is not None for r in runs)
    for run, best, *early, val_early, val, ece in runs:
        # 0.1.0's best epoch was the best test epoch: what a run without a validation part keeps now.
        assert tuple(early) == curves[run, best]
        assert (val_early, val, ece) == (None, None, None)  # never measured


def test_a_release_0_1_0_database_upgrades_with_nothing_lost(release_db):
    url = url_of(release_db)
    old_columns = {table: columns_of(url, table) for table in TABLES}
    before = {table: rows(url, table) for table in TABLES}
    studies_before = studies(url)

    open_store(url).close()

    for table in ("sweeper_trials", "sweeper_trial_sites", "sweeper_runs", "sweeper_curves"):
        assert rows(url, table, old_columns[table]) == before[table], table
    assert len(before["sweeper_curves"]) == 80 and len(before["sweeper_trial_sites"]) == 10
    kept = [i for i, c in enumerate(old_columns["sweeper_sweeps"]) if c != "spec_yaml"]
    assert rows(url, "sweeper_sweeps", [old_columns["sweeper_sweeps"][i] for i in kept]) == sorted(
        (tuple(r[i] for i in kept) for r in before["sweeper_sweeps"]), key=repr
    )
    old_yaml = dict(rows(url_of(FIXTURE), "sweeper_sweeps", ["name", "spec_yaml"]))
    for name, spec_yaml, overrides in rows(url, "sweeper_sweeps", ["name", "spec_yaml", "overrides"]):
        assert "# sweeper overrides" not in spec_yaml
        assert json.loads(overrides or "{}") == OVERRIDES[name]
        if overrides:  # 0.1.0 stored exactly this (the files ended in one newline)
            assert old_yaml[name] == spec_yaml + MARKER.lstrip("\n") + overrides + "\n"
        else:
            assert old_yaml[name] == spec_yaml
    assert rows(url, "sweeper_runs", ["engine", "sweeper_version", "host"]) == [(None, None, None)] * 20
    assert rows(url, "sweeper_runs", ["failed_to_learn"]) == [(None,)] * 20  # not judged then: not guessed now
    lease = ["lease_token", "lease_host", "lease_pid", "lease_since", "lease_heartbeat_at"]
    assert rows(url, "sweeper_sweeps", lease) == [(None,) * 5] * 3  # no run holds them: the next one may
    assert studies(url) == studies_before
    assert {name: len(trials) for name, trials in studies_before.items()} == {
        "seed-case-study": 4,
        "combined-random": 4,
        "regression-renamed": 2,
    }
    assert version_rows(url) == [(HEAD,)]
    assert rows(url, "alembic_version") == rows(url_of(FIXTURE), "alembic_version")  # Optuna's own, untouched


def test_an_upgraded_database_lists_reports_and_resumes(release_db, sweeper_cli, tmp_path):
    url = url_of(release_db)
    upgraded = sweeper_cli("db", "upgrade", "--db", url)
    assert upgraded.exit_code == 0, upgraded.stderr
    assert upgraded.stdout.strip() == f"{url}: schema 0001 -> {HEAD}"

    listed = json.loads(sweeper_cli("sweeps", "--db", url, "--format", "json").stdout)
    assert {s["name"]: (s["n_runs"], s["overrides"], s["engine"]) for s in listed} == {
        "seed-case-study": (8, "--epochs 50 --repeats 2", None),
        "combined-random": (8, None, None),
        "regression-renamed": (4, "--name regression-renamed", None),
    }
    report = sweeper_cli("report", "seed-case-study", "--db", url, "--format", "json")
    assert report.exit_code == 0, report.stderr
    configs = json.loads(report.stdout)["configs"]
    assert sorted((c["trial"], c["n"]) for c in configs) == [(0, 2), (1, 2), (2, 2), (3, 2)]
    assert json.loads(report.stdout)["ran"]["runs"] == [
        {
            "engine": None,
            "device": "cpu",
            "cpu": None,
            "gpu": None,
            "sweeper_version": None,
            "torch_version": None,
            "host": None,
            "n_runs": 8,
        }
    ]
    table = sweeper_cli("report", "regression-renamed", "--db", url)
    assert table.exit_code == 0, table.stderr
    assert "4 runs: not recorded (stored before sweeper recorded what ran)" in " ".join(table.stdout.split())

    # The same command as 0.1.0 was given resumes the sweep: its YAML and overrides still match.
    (spec_yaml,) = [y for n, y in rows(url, "sweeper_sweeps", ["name", "spec_yaml"]) if n == "seed-case-study"]
    space = tmp_path / "seed_case_study.yaml"
    space.write_text(spec_yaml)
    resumed = sweeper_cli("run", space, "--db", url, "--repeats", 2, "--epochs", 50)
    assert resumed.exit_code == 0, resumed.stderr
    assert "0 runs trained" in resumed.stderr and "8 runs stored in all" in resumed.stderr
    changed = sweeper_cli("run", space, "--db", url, "--repeats", 1, "--epochs", 50)  # more would extend it
    assert changed.exit_code == 2 and "with a different search space" in changed.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["sweeps"],
        ["trials", "seed-case-study"],
        ["runs", "seed-case-study"],
        ["report", "seed-case-study"],
        ["rerun", "seed-case-study", "1"],
    ],
)
def test_reading_an_older_database_is_refused_with_what_to_do_and_writes_nothing(release_db, sweeper_cli, command):
    url = url_of(release_db)
    before = {table: rows(url, table) for table in TABLES}

    result = sweeper_cli(*command, "--db", url)

    assert result.exit_code == 2
    assert result.stderr == (
        f"error: database {url} has the schema of an older sweeper (0001; this one reads "
        f"{HEAD}): run 'sweeper db upgrade' with the same --db first (any 'sweeper run' on "
        "it also upgrades it)\n"
    )
    assert {table: rows(url, table) for table in TABLES} == before
    assert "sweeper_alembic_version" not in {name for (name,) in rows(url, "sqlite_master", ["name"])}


def test_sql_queries_read_an_older_database_as_it_is(release_db, sweeper_cli):
    result = sweeper_cli(
        "query", "select count(*) as n from sweeper_runs", "--db", url_of(release_db), "--format", "json"
    )

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [{"n": 20}]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def newer_db(request, tmp_path) -> str:
    """A database at this version's schema, then stamped with a revision this sweeper does not know."""
    url = url_of(tmp_path / "newer.db") if request.param == "sqlite" else request.getfixturevalue("pg_database")()
    open_store(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"UPDATE {VERSION_TABLE} SET version_num = '0107'")
    engine.dispose()
    return url


@pytest.mark.parametrize("command", [["db", "upgrade"], ["sweeps"], ["runs", "x"], ["run", "SPACE"]])
def test_a_database_of_a_newer_sweeper_is_refused_in_one_line(newer_db, sweeper_cli, tmp_path, command):
    space = tmp_path / "space.yaml"
    space.write_text(
        "name: x\nseed: 1\nrepeats: 1\nmetric: accuracy\ntask: {dataset: circles, hidden: [4], "
        "epochs: 2}\nsearch: {sampler: grid, configs: [{placement: input, std: 0.1}]}\n"
    )
    args = [space if a == "SPACE" else a for a in command]

    result = sweeper_cli(*args, "--db", newer_db)

    shown = sa.make_url(newer_db).render_as_string(hide_password=True)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: database {shown} was written by a newer sweeper (schema 0107); this sweeper "
        f"knows up to {HEAD}: upgrade sweeper\n"
    )
    assert rows(newer_db, "sweeper_sweeps") == []


def test_db_upgrade_needs_an_existing_database(tmp_path, sweeper_cli):
    result = sweeper_cli("db", "upgrade", "--db", url_of(tmp_path / "missing.db"))

    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: no database at {url_of(tmp_path / 'missing.db')}")
    assert list(tmp_path.iterdir()) == []


def test_db_upgrade_of_a_current_database_changes_nothing(tmp_path, sweeper_cli):
    url = url_of(tmp_path / "sweeps.db")
    open_store(url).close()

    result = sweeper_cli("db", "upgrade", "--db", url)

    assert (result.exit_code, result.stdout.strip()) == (0, f"{url}: already at schema {HEAD}")
    assert version_rows(url) == [(HEAD,)]


# -- the same on PostgreSQL -----------------------------------------------------------------------


def copy_tables(source_url: str, target_url: str) -> None:
    """sweeper's rows of one database into another of the same schema (ids included), sequences moved on."""
    source, target = sa.create_engine(source_url), sa.create_engine(target_url)
    try:
        with source.connect() as reading, target.begin() as writing:
            for name in TABLES:
                read_table = sa.Table(name, sa.MetaData(), autoload_with=reading)
                write_table = sa.Table(name, sa.MetaData(), autoload_with=writing)
                found = [dict(r._mapping) for r in reading.execute(sa.select(read_table))]
                writing.execute(sa.insert(write_table), found)
                if "id" in write_table.c:
                    writing.exec_driver_sql(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), max(id)) FROM {name}"
                    )
    finally:
        source.dispose()
        target.dispose()


@pytest.mark.postgres
def test_a_postgresql_database_of_release_0_1_0_upgrades_with_nothing_lost(pg_database, tmp_path, sweeper_cli):
    url = pg_database()
    migrate_to(url, "0001")
    engine = sa.create_engine(url)
    with engine.begin() as connection:  # as 0.1.0 left it: its tables and no version table
        connection.exec_driver_sql(f"DROP TABLE {VERSION_TABLE}")
    engine.dispose()
    copy_tables(url_of(FIXTURE), url)
    old_columns = {table: columns_of(url, table) for table in TABLES}
    before = {table: rows(url, table) for table in TABLES}

    upgraded = sweeper_cli("db", "upgrade", "--db", url)

    assert upgraded.exit_code == 0, upgraded.stderr
    assert upgraded.stdout.strip().endswith(f"schema 0001 -> {HEAD}")
    for table in ("sweeper_trials", "sweeper_trial_sites", "sweeper_runs", "sweeper_curves"):
        assert rows(url, table, old_columns[table]) == before[table], table
    assert len(before["sweeper_runs"]) == 20 and len(before["sweeper_curves"]) == 80
    overrides = {name: json.loads(o or "{}") for name, o in rows(url, "sweeper_sweeps", ["name", "overrides"])}
    assert overrides == OVERRIDES
    assert all("# sweeper overrides" not in y for (y,) in rows(url, "sweeper_sweeps", ["spec_yaml"]))
    report = sweeper_cli("report", "combined-random", "--db", url, "--format", "json")
    assert report.exit_code == 0, report.stderr
    assert sum(c["n"] for c in json.loads(report.stdout)["configs"]) == RUNS["combined-random"]
    space = tmp_path / "new.yaml"  # new rows get ids after the copied ones
    space.write_text(
        "name: after-upgrade\nseed: 1\nrepeats: 1\nmetric: accuracy\ntask: {dataset: circles, "
        "hidden: [4], epochs: 2}\nsearch: {sampler: grid, configs: [{placement: input, std: 0.1}]}\n"
    )
    ran = sweeper_cli("run", space, "--db", url)
    assert ran.exit_code == 0, ran.stderr
    assert len(rows(url, "sweeper_runs")) == 22


def test_alembic_check_finds_the_revisions_add_up_to_the_models():
    """What a developer runs after adding a revision (docs/database.md): the ``alembic`` command finds it all."""
    root = Path(__file__).resolve().parents[2]

    result = subprocess.run(
        [sys.executable, "-m", "alembic", "check"], cwd=root, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


def test_optuna_tables_of_another_optuna_are_refused_in_one_line(tmp_path, sweeper_cli):
    url = url_of(tmp_path / "sweeps.db")
    with open_store(url) as store:
        store.optuna_storage().engine.dispose()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'v9.0.0'")
    engine.dispose()
    space = tmp_path / "space.yaml"
    space.write_text(
        "name: x\nseed: 1\nrepeats: 1\nmetric: accuracy\ntask: {dataset: circles, hidden: [4], "
        "epochs: 2}\nsearch: {sampler: grid, configs: [{placement: input, std: 0.1}]}\n"
    )

    result = sweeper_cli("run", space, "--db", url)

    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: Optuna's tables in {url}: The runtime optuna version ")
    assert "pip install -U optuna" in result.stderr and len(result.stderr.splitlines()) == 1
    assert rows(url, "sweeper_sweeps") == []


def test_0006_fills_in_each_site_from_its_trials_configuration(two_empty_databases):
    url, _ = two_empty_databases
    migrate_to(url, "0005")
    sites = [
        {"placement": "input", "kind": "gaussian", "std": 0.1, "schedule": "linear", "std_min": 0.01, "relative": True},
        {"placement": "weights", "kind": "gaussian", "std": 0.2, "schedule": "constant"},
    ]
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        sweep_id = connection.execute(
            sa.text(
                "INSERT INTO sweeper_sweeps (name, spec_yaml, seed, metric, higher_is_better, repeats, problem, "
                "status, study_name, created_at, updated_at) VALUES ('old', '', 1, 'test_accuracy', true, 1, "
                "'binary', 'completed', 'old', current_timestamp, current_timestamp) RETURNING id"
            )
        ).scalar_one()
        trial_id = connection.execute(
            sa.text(
                "INSERT INTO sweeper_trials (sweep_id, number, label, config_json, config_key, placement, status, "
                "created_at) VALUES (:s, 1, 'x', :c, 1, 'input+weights', 'complete', current_timestamp) RETURNING id"
            ),
            {"s": sweep_id, "c": json.dumps(sites, sort_keys=True, separators=(",", ":"))},
        ).scalar_one()
        for site in sites:
            connection.execute(
                sa.text(
                    "INSERT INTO sweeper_trial_sites (trial_id, placement, kind, std, schedule) "
                    "VALUES (:t, :placement, :kind, :std, :schedule)"
                ),
                {"t": trial_id, **{k: site[k] for k in ("placement", "kind", "std", "schedule")}},
            )
    engine.dispose()

    migrate_to(url, "0006")

    found = rows(url, "sweeper_trial_sites", ["placement", "std_min", "relative"])
    assert [(p, m, bool(r)) for p, m, r in found] == [("input", 0.01, True), ("weights", None, False)]
    assert rows(url, "sweeper_sweeps", ["name", "context"]) == [("old", None)]  # unknown: the report says so
