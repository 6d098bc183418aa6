"""The PostgreSQL role ``sweeper query`` runs users' SQL as: it logs in as itself and may only read.

A superuser or a table owner cannot run untrusted SQL safely by lowering its rights inside the session:
``SET ROLE`` is undone by ``set_config('role', ...)`` within the very statement it should guard. So the
query logs in as ``sweeper_reader``, a role that is no superuser, belongs to no other role, and is granted
SELECT on sweeper's and Optuna's tables only. Its password is derived one-way from the owner's (the
password in ``--db``), so whoever may open the database as its owner can also log in as its reader, and
no second secret needs keeping.
"""

from __future__ import annotations

import hashlib

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from sweeper.errors import StoreError
from sweeper.store._connection import PG_CONNECT_TIMEOUT_S, connect, reason
from sweeper.store._url import default_url, parse_url, redact
from sweeper.store.models import Sweep

READER = "sweeper_reader"
ROLE_OPTIONS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
DEFAULT_TEMP_FILE_LIMIT = "1GB"
# Defaults for every session of the role (psql's too); `sweeper query` sets its own timeouts.
ROLE_SETTINGS = {
    "default_transaction_read_only": "on",
    "statement_timeout": "5min",
    "idle_in_transaction_session_timeout": "5min",
}
#: Optuna's RDB storage tables (a test compares them with Optuna's models), and its Alembic version table.
OPTUNA_TABLES = (
    "studies",
    "study_directions",
    "study_system_attributes",
    "study_user_attributes",
    "trial_heartbeats",
    "trial_intermediate_values",
    "trial_params",
    "trial_system_attributes",
    "trial_user_attributes",
    "trial_values",
    "trials",
    "version_info",
    "alembic_version",
)

_INSUFFICIENT_PRIVILEGE = "42501"
# Duplicate role, duplicate key, "tuple concurrently updated", serialization failure, deadlock.
_CONCURRENT = ("42710", "23505", "XX000", "40001", "40P01")

# What makes a role more than a reader: any of these attributes, or membership in any role (SET ROLE).
POWERS_SQL = """
SELECT concat_ws(', ',
         CASE WHEN r.rolsuper THEN 'is a superuser' END,
         CASE WHEN r.rolcreaterole THEN 'may create roles' END,
         CASE WHEN r.rolcreatedb THEN 'may create databases' END,
         CASE WHEN r.rolreplication THEN 'may replicate' END,
         CASE WHEN r.rolbypassrls THEN 'bypasses row security' END,
         (SELECT 'is a member of ' || string_agg(m.roleid::regrole::text, ', ' ORDER BY 1)
            FROM pg_auth_members m WHERE m.member = r.oid))
FROM pg_roles r WHERE r.rolname = %(role)s
"""

# The tables the reader is for: sweeper's and Optuna's, in the schema of sweeper's own and with the same
# owner, so that a same-named table someone else made is never handed out.
_UNGRANTED = """
SELECT c.oid::regclass::text
FROM pg_class c
JOIN pg_class anchor ON anchor.oid = to_regclass(%(anchor)s::text)
WHERE c.relnamespace = anchor.relnamespace AND c.relowner = anchor.relowner
  AND c.relkind IN ('r', 'p', 'v', 'm')
  AND (starts_with(c.relname, 'sweeper_') OR c.relname = ANY(%(optuna)s::text[]))
  AND NOT has_table_privilege(%(role)s::text, c.oid, 'SELECT')
ORDER BY 1
"""
_SCHEMA_AND_DATABASE = """
SELECT n.nspname,
       has_schema_privilege(%(role)s::text, n.oid, 'USAGE'),
       has_database_privilege(%(role)s::text, current_database(), 'CONNECT'),
       current_database()
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(%(anchor)s::text)
"""


def reader_password(owner_password: str | None) -> str | None:
    """The reader's password for an owner's password (None without one): hex SHA-256 of a labelled copy.

    docker/postgres-init/sweeper-reader.sql computes the same in SQL; keep the two alike.
    """
    if not owner_password:
        return None
    return hashlib.sha256(f"{READER}:{owner_password}".encode()).hexdigest()


def reader_connect_args(db: Engine) -> dict:
    """psycopg's ``connect()`` arguments that log in to the store's database as the reader."""
    url = db.url
    _, kwargs = db.dialect.create_connect_args(url)
    kwargs.pop("context", None)  # SQLAlchemy's type adapters: the query wants psycopg's plain ones
    kwargs.pop("password", None)
    password = url.password if url.username == READER else reader_password(url.password)
    if password:
        kwargs["password"] = password
    kwargs["user"] = READER
    kwargs.setdefault("connect_timeout", PG_CONNECT_TIMEOUT_S)
    kwargs["application_name"] = "sweeper query"
    return kwargs


def prepare_reader(db: Engine) -> str:
    """Grant the reader what it may read, as the store's user; that user's search path, to read alike.

    StoreError, saying how to create it, when the server has no reader role.
    """
    for attempt in range(2):
        try:
            with db.begin() as connection:
                if db.url.username != READER:
                    if not _exists(connection):
                        host = f"{db.url.host or 'localhost'}:{db.url.port or 5432}"
                        raise StoreError(
                            f"query runs SQL as the role {READER}, which {host} does not have; "
                            "create it once with: sweeper db reader --db URL (as a user who may "
                            "create roles)"
                        )
                    _grant(connection)
                return (
                    connection.exec_driver_sql(
                        "SELECT string_agg(quote_ident(s), ', ' ORDER BY i) "
                        "FROM unnest(current_schemas(false)) WITH ORDINALITY AS t(s, i)"
                    ).scalar()
                    or ""
                )
        except DBAPIError as exc:
            if attempt == 0:
                continue  # two queries granting the same table at once: "tuple concurrently updated"
            raise StoreError(f"query cannot prepare {READER} in {db.url.render_as_string()}: {reason(exc)}") from exc
    raise AssertionError("unreachable")


def create_reader(url: str | None = None, temp_file_limit: str = DEFAULT_TEMP_FILE_LIMIT) -> list[str]:
    """Create the role ``sweeper query`` runs SQL as, or reset it to a plain reader; notes on what was left out.

    The role is made on the PostgreSQL server of ``url`` and granted that database's sweeper and Optuna
    tables (``query`` grants those made later). Needs a user who may create roles. Idempotent; one
    transaction, so a failure leaves the role as it was.
    ``temp_file_limit`` (a PostgreSQL size, ``-1`` for none) bounds the temporary files of its queries.
    """
    parsed = parse_url(url or default_url())
    if parsed.get_backend_name() != "postgresql":
        raise StoreError(
            f"{redact(str(url or default_url()))} is not PostgreSQL: a reader role is for PostgreSQL "
            "(on SQLite, query opens the file read-only)"
        )
    db = connect(parsed)
    try:
        return _create_reader(db, temp_file_limit)
    finally:
        db.dispose()


def _create_reader(db: Engine, temp_file_limit: str) -> list[str]:
    for attempt in range(2):
        try:
            with db.begin() as connection:
                notes = _create(connection, reader_password(db.url.password), temp_file_limit)
                powers = connection.exec_driver_sql(POWERS_SQL, {"role": READER}).scalar()
                if powers:
                    raise StoreError(f"role {READER} {powers} and could not be reset; revoke that as its grantor")
                return notes
        except DBAPIError as exc:
            state = getattr(exc.orig, "sqlstate", None)
            if state in _CONCURRENT and attempt == 0:
                continue  # another process created or changed the role meanwhile: reset it again
            if state == _INSUFFICIENT_PRIVILEGE:
                raise StoreError(
                    f"{db.url.username} may not create or change the role {READER}: "
                    f"{reason(exc)}; use a superuser or a role with CREATEROLE"
                ) from exc
            raise StoreError(f"cannot create the role {READER} in {db.url.render_as_string()}: {reason(exc)}") from exc
    raise AssertionError("unreachable")


def _exists(connection: Connection) -> bool:
    return (
        connection.exec_driver_sql("SELECT 1 FROM pg_roles WHERE rolname = %(role)s", {"role": READER}).first()
        is not None
    )


def _execute_format(connection: Connection, template: str, *args: str) -> None:
    """Run ``format(template, *args)``: PostgreSQL quotes the literals (%L) and names (%I) itself."""
    statement = connection.exec_driver_sql(
        "SELECT format(%(template)s::text, VARIADIC %(args)s::text[])", {"template": template, "args": list(args)}
    ).scalar()
    connection.exec_driver_sql(statement)


def _create(connection: Connection, password: str | None, temp_file_limit: str) -> list[str]:
    verb = "ALTER" if _exists(connection) else "CREATE"
    if password is None:
        connection.exec_driver_sql(f"{verb} ROLE {READER} {ROLE_OPTIONS}")
    else:
        _execute_format(connection, f"{verb} ROLE {READER} {ROLE_OPTIONS} PASSWORD %L", password)
    for name, value in ROLE_SETTINGS.items():
        _execute_format(connection, f"ALTER ROLE {READER} SET %I = %L", name, value)
    for (statement,) in connection.exec_driver_sql(
        "SELECT format('REVOKE %%s FROM %%I', m.roleid::regrole, %(role)s::text) "
        "FROM pg_auth_members m WHERE m.member = to_regrole(%(role)s::text)",
        {"role": READER},
    ).all():
        connection.exec_driver_sql(statement)
    notes = []
    # Only a superuser may bound temporary files; a role with CREATEROLE gets the rest.
    savepoint = connection.begin_nested()
    try:
        _execute_format(connection, f"ALTER ROLE {READER} SET temp_file_limit = %L", temp_file_limit)
        savepoint.commit()
    except DBAPIError as exc:
        savepoint.rollback()
        if getattr(exc.orig, "sqlstate", None) != _INSUFFICIENT_PRIVILEGE:
            raise StoreError(
                f"temp_file_limit {temp_file_limit!r}: {reason(exc)} "
                "(allowed: a size such as 512MB or 2GB, or -1 for none)"
            ) from exc
        notes.append(
            f"temp_file_limit not set ({connection.engine.url.username} is no superuser): "
            f"a query's temporary files are bounded by the server's own setting only"
        )
    granted = _grant(connection)
    if granted is None:
        notes.append("this database has no sweeper tables yet: query grants them to the reader once they exist")
    return notes


def _grant(connection: Connection) -> int | None:
    """Grant the reader SELECT on sweeper's and Optuna's tables it cannot read yet; None without sweeper's."""
    anchor = Sweep.__tablename__
    place = connection.exec_driver_sql(_SCHEMA_AND_DATABASE, {"role": READER, "anchor": anchor}).first()
    if place is None:
        return None
    schema, has_usage, has_connect, database = place
    if not has_connect:
        _execute_format(connection, f"GRANT CONNECT ON DATABASE %I TO {READER}", database)
    if not has_usage:
        _execute_format(connection, f"GRANT USAGE ON SCHEMA %I TO {READER}", schema)
    tables = (
        connection.exec_driver_sql(_UNGRANTED, {"role": READER, "anchor": anchor, "optuna": list(OPTUNA_TABLES)})
        .scalars()
        .all()
    )
    for table in tables:  # regclass text: already quoted and qualified as needed
        connection.exec_driver_sql(f"GRANT SELECT ON {table} TO {READER}")
    return len(tables)
