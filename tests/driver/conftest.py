"""What the driver tests share: what a sweep left in a database, read back with plain SQL (no sweeper code), on
SQLite and PostgreSQL alike. (`sweeper run` as a process of its own, ``launch``: tests/conftest.py.)"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from helpers import RUN_NUMBERS as NUMBERS


class Stored:
    """A sweep as a database holds it: its runs, its Optuna study, its status and its lease."""

    def __init__(self, url: str, name: str):
        self.url, self.name = url, name

    def _read(self, sql: str, **params) -> list[tuple]:
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                return [tuple(row) for row in connection.execute(sa.text(sql), {"name": self.name, **params})]
        finally:
            engine.dispose()

    def runs(self) -> dict[tuple, tuple]:
        """(trial, task, repeat) -> the run's seeds and numbers; fails if a run is stored twice."""
        columns = ", ".join(f"r.{c}" for c in NUMBERS)
        rows = self._read(
            f'SELECT t.number, r.task, r."repeat", {columns} FROM sweeper_runs r '
            "JOIN sweeper_trials t ON t.id = r.trial_id JOIN sweeper_sweeps s ON s.id = t.sweep_id "
            "WHERE s.name = :name"
        )
        by_key = {
            row[:3]: tuple(
                bool(v) if c in ("diverged", "failed_to_learn") and v is not None else v
                for c, v in zip(NUMBERS, row[3:])
            )
            for row in rows
        }
        assert len(by_key) == len(rows), "a (trial, task, repeat) is stored twice"
        return by_key

    def run_count(self) -> int:
        try:
            ((count,),) = self._read("SELECT count(*) FROM sweeper_runs")
        except sa.exc.SQLAlchemyError:  # no tables yet
            return 0
        return count

    def objectives(self) -> dict[int, float]:
        return dict(
            self._read(
                "SELECT t.number, t.objective FROM sweeper_trials t JOIN sweeper_sweeps s "
                "ON s.id = t.sweep_id WHERE s.name = :name"
            )
        )

    def study_states(self) -> list[str]:
        """The state of every trial of the sweep's Optuna study, sorted."""
        return sorted(
            state
            for (state,) in self._read(
                "SELECT t.state FROM trials t JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = :name"
            )
        )

    def study_params(self, param: str) -> list[float]:
        """The values of one parameter over the study's trials, sorted."""
        return sorted(
            value
            for (value,) in self._read(
                "SELECT p.param_value FROM trial_params p JOIN trials t ON t.trial_id = p.trial_id "
                "JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = :name AND p.param_name = :param",
                param=param,
            )
        )

    def study_configs(self) -> list[tuple]:
        """Each trial of the study as its sorted (parameter, value) pairs, sorted."""
        trials: dict[int, list] = {}
        for number, param, value in self._read(
            "SELECT t.number, p.param_name, p.param_value FROM trial_params p JOIN trials t ON t.trial_id = "
            "p.trial_id JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = :name"
        ):
            trials.setdefault(number, []).append((param, value))
        return sorted(tuple(sorted(pairs)) for pairs in trials.values())

    def status(self) -> str:
        ((status,),) = self._read("SELECT status FROM sweeper_sweeps WHERE name = :name")
        return status

    def lease(self) -> tuple:
        """(token, host, pid) of the sweep's lease; all None when no run holds it."""
        ((token, host, pid),) = self._read(
            "SELECT lease_token, lease_host, lease_pid FROM sweeper_sweeps WHERE name = :name"
        )
        return token, host, pid

    def exists(self) -> bool:
        try:
            return bool(self._read("SELECT 1 FROM sweeper_sweeps WHERE name = :name"))
        except sa.exc.SQLAlchemyError:  # no tables yet
            return False


@pytest.fixture
def stored():
    """``stored(url, name)``: what the database at ``url`` holds of sweep ``name``."""
    return Stored
