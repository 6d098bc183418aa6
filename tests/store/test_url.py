"""Database URLs: the default, the PostgreSQL driver, and passwords that never get printed."""

from __future__ import annotations

import pytest

from sweeper.errors import StoreError
from sweeper.store import default_url, open_store, redact


def test_default_url_is_sweeps_db_unless_sweeper_db_is_set(monkeypatch):
    monkeypatch.delenv("SWEEPER_DB", raising=False)
    assert default_url() == "sqlite:///sweeps.db"

    monkeypatch.setenv("SWEEPER_DB", "postgresql://u@db:5432/sweeps")
    assert default_url() == "postgresql://u@db:5432/sweeps"


def test_redact_hides_passwords():
    assert redact("postgresql+psycopg://alice:s3cret@db.example:5432/sweeps") == (
        "postgresql+psycopg://alice:***@db.example:5432/sweeps"
    )
    assert redact("sqlite:///sweeps.db") == "sqlite:///sweeps.db"
    assert "s3cret" not in redact("not a url://alice:s3cret@host")


def test_unreachable_url_gives_one_line_naming_the_redacted_url():
    with pytest.raises(StoreError) as refused:
        open_store("postgresql://alice:s3cret@127.0.0.1:1/nowhere")

    message = str(refused.value)
    assert message.startswith("cannot open database postgresql+psycopg://alice:***@127.0.0.1:1/nowhere: ")
    assert "s3cret" not in message and "\n" not in message


def test_sqlite_file_in_a_missing_folder_gives_store_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'missing' / 'sweeps.db'}"

    with pytest.raises(StoreError, match=f"^cannot open database {url}: unable to open database file$"):
        open_store(url)


def test_garbage_url_gives_store_error():
    with pytest.raises(StoreError, match="is not a database URL"):
        open_store("sweeps.db")


@pytest.mark.postgres
def test_plain_postgresql_url_uses_psycopg_3(pg_url):
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")

    with open_store(plain, create=False) as store:
        assert store.url == pg_url
        assert store.display_url == pg_url
        assert store.query("select 1 as one").rows == [(1,)]


@pytest.mark.parametrize(
    "url, shown",
    [
        ("u:s3cret@h/x", "u:***@h/x"),
        ("postgresql://u:s3cret@[::1:5432/x", "postgresql://u:***@[::1:5432/x"),
        ("postgresql://u:s3cret@h:port/x", "postgresql://u:***@h:port/x"),
        ("postgresql://u:p@s3cret@h/x", "postgresql://u:***@h/x"),
        ("postgresql://u@h/x?password=s3cret&sslmode=require", "postgresql://u@h/x?password=***&sslmode=require"),
    ],
)
def test_redact_hides_a_password_whatever_the_shape_of_the_string(url, shown):
    assert redact(url) == shown


@pytest.mark.parametrize("url", ["u:s3cret@h/x", "postgresql://u:s3cret@[::1:5432/x", "postgresql://u:p@s3cret@h/x"])
def test_a_string_that_is_no_url_is_refused_in_one_line_without_its_password(url):
    with pytest.raises(StoreError) as refused:
        open_store(url)
    assert "s3cret" not in str(refused.value) and " is not a database URL" in str(refused.value)
