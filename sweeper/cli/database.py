"""``sweeper db``: the database itself (its schema, the role that users' SQL runs as)."""

from __future__ import annotations

import typer

from sweeper.cli.app import Command, Group, one_line_errors, open_store, say, show
from sweeper.cli.options import DbOption

db_app = typer.Typer(
    cls=Group,
    no_args_is_help=True,
    help="The database itself: the version of sweeper's tables, the role queries run as.",
)


@db_app.command(cls=Command, name="upgrade")
@one_line_errors
def db_upgrade(db: str | None = DbOption) -> None:
    """Upgrade sweeper's tables to this version's schema (any `sweeper run` also does it)."""
    with open_store(db, create=False) as store:
        before, after = store.upgrade_schema()
        said = f"already at schema {after}" if before == after else f"schema {before or 'none'} -> {after}"
        show(f"{store.display_url}: {said}")


@db_app.command(cls=Command, name="reader")
@one_line_errors
def db_reader(
    db: str | None = DbOption,
    temp_file_limit: str = typer.Option(
        "1GB",
        "--temp-file-limit",
        help="Temporary files one query may write (a PostgreSQL size such as 512MB; -1: no limit).",
    ),
) -> None:
    """Create (or reset) the PostgreSQL role sweeper_reader that `query` runs SQL as (needs CREATEROLE)."""
    from sweeper.store import READER, create_reader, default_url, redact

    for note in create_reader(db, temp_file_limit):
        say(f"note: {note}")
    show(f"role {READER} ready: it may read the sweeper and Optuna tables of {redact(db or default_url())}")
