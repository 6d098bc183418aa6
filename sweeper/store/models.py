"""The tables sweeper keeps next to Optuna's: sweeps, their trials, every run and its learning curve.

Every invariant is a constraint, so a bug elsewhere cannot store a second copy of a run or a trial.
Lists that a later version extends (noise kinds, placements, schedules, problems) are checked in code
instead, so a database stays writable by the next version. All tables are prefixed ``sweeper_``
because Optuna's own tables live in the same database.

A change here needs a revision in ``sweeper/store/migrations/versions`` (docs/database.md, "Schema versions
and migrations").
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    column,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from sweeper import metrics

#: ``mixed``: a sweep whose tasks are of different problems (its rows carry every metric column).
PROBLEMS = (*metrics.PROBLEMS, "mixed")
SWEEP_STATUSES = ("running", "completed", "interrupted", "failed")
TRIAL_STATUSES = ("pending", "complete")

# Runs and curve points can outgrow 32-bit ids on PostgreSQL; SQLite autoincrements only INTEGER.
_BigId = BigInteger().with_variant(Integer, "sqlite")


def utcnow() -> datetime:
    """The current time in UTC, as every timestamp of the store is kept."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A point in time, stored in UTC and read back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    """sweeper's tables, with constraint names that are the same on every backend."""

    metadata = MetaData(
        naming_convention={
            "pk": "pk_%(table_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
        }
    )


class _Machine:
    """What ran: sweeper's and torch's versions, the device type, the CPU and GPU by name, the host
    (NULL where a database written before they were recorded does not know)."""

    sweeper_version: Mapped[str | None] = mapped_column(String(64))
    torch_version: Mapped[str | None] = mapped_column(String(64))
    cpu: Mapped[str | None] = mapped_column(String(255))
    gpu: Mapped[str | None] = mapped_column(String(255))
    host: Mapped[str | None] = mapped_column(String(255))


class Sweep(_Machine, Base):
    """One sweep: a search space (the YAML text it came from, and the command line's overrides) explored
    under one seed; the machine columns say what last drove it (``sweeper run``)."""

    __tablename__ = "sweeper_sweeps"
    __table_args__ = (
        CheckConstraint(column("status").in_(SWEEP_STATUSES), name="status"),
        CheckConstraint("repeats >= 1", name="repeats"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    spec_yaml: Mapped[str] = mapped_column(Text)
    overrides: Mapped[str | None] = mapped_column(Text)  # JSON object of --repeats/--epochs/--name; NULL: none
    seed: Mapped[int] = mapped_column(BigInteger)
    metric: Mapped[str] = mapped_column(String(64))
    higher_is_better: Mapped[bool] = mapped_column(Boolean)
    repeats: Mapped[int] = mapped_column(Integer)
    problem: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="running")
    study_name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    device: Mapped[str | None] = mapped_column(String(64))  # the device type its packs train on
    # JSON: the folder the tasks' data files were read from and, per task with a data file, its path as
    # written, its contents' sha256, problem and class labels (``sweeper.tasks.files.description``).
    # NULL: the sweep's tasks use bundled data only.
    data_files: Mapped[str | None] = mapped_column(Text)
    # JSON: what the report shows of the sweep as it was last started (``sweeper.driver.context``): the
    # configurations it plans and, per task, data set, split sizes, model and training. NULL: stored
    # before schema 0006; the report then says what it cannot know.
    context: Mapped[str | None] = mapped_column(Text)
    # The lease: which `sweeper run` owns the sweep now (all NULL: none). Its times are the database's
    # clock, so hosts whose clocks disagree judge a heartbeat's age alike.
    lease_token: Mapped[str | None] = mapped_column(String(64))
    lease_host: Mapped[str | None] = mapped_column(String(255))
    lease_pid: Mapped[int | None] = mapped_column(BigInteger)
    lease_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Trial(Base):
    """One noise configuration of a sweep; number 0 is the no-noise baseline.

    ``placement``, ``kind``, ``std``, ``schedule`` and ``gamma`` summarize the configuration for
    querying; ``sweeper_trial_sites`` holds every site of a combined configuration in full.
    """

    __tablename__ = "sweeper_trials"
    __table_args__ = (
        UniqueConstraint("sweep_id", "number"),
        UniqueConstraint("sweep_id", "config_json"),
        CheckConstraint(column("status").in_(TRIAL_STATUSES), name="status"),
        CheckConstraint("number >= 0", name="number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeper_sweeps.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    optuna_trial_id: Mapped[int | None] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(Text)
    config_json: Mapped[str] = mapped_column(Text)
    config_key: Mapped[int] = mapped_column(BigInteger)  # 32-bit unsigned: too big for INTEGER
    placement: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str | None] = mapped_column(String(255))
    std: Mapped[float | None] = mapped_column(Float)
    schedule: Mapped[str | None] = mapped_column(String(32))
    gamma: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    objective: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TrialSite(Base):
    """The noise at one placement of a trial (a baseline trial has none)."""

    __tablename__ = "sweeper_trial_sites"
    __table_args__ = (CheckConstraint("std >= 0", name="std"),)

    trial_id: Mapped[int] = mapped_column(ForeignKey("sweeper_trials.id", ondelete="CASCADE"), primary_key=True)
    placement: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    std: Mapped[float] = mapped_column(Float)
    schedule: Mapped[str] = mapped_column(String(32))
    gamma: Mapped[float | None] = mapped_column(Float)  # only for the annealed schedule
    std_min: Mapped[float | None] = mapped_column(Float)  # only for the decaying schedules (linear, cosine)
    relative: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # std in features' sd units


class _Metrics:
    """The loss and metric columns a run and its curve points share, ``sweeper.metrics.COLUMNS`` (NULL:
    not this problem's, or not finite). Written out, in the order revisions added them, so that a new
    database and a migrated one have the same columns in the same order."""

    train_loss: Mapped[float | None] = mapped_column(Float)
    test_loss: Mapped[float | None] = mapped_column(Float)
    train_accuracy: Mapped[float | None] = mapped_column(Float)
    test_accuracy: Mapped[float | None] = mapped_column(Float)
    train_mse: Mapped[float | None] = mapped_column(Float)
    test_mse: Mapped[float | None] = mapped_column(Float)
    train_r2: Mapped[float | None] = mapped_column(Float)
    test_r2: Mapped[float | None] = mapped_column(Float)
    # Added by revision 0003 (NULL in runs stored before it, and without a validation part).
    val_loss: Mapped[float | None] = mapped_column(Float)
    val_accuracy: Mapped[float | None] = mapped_column(Float)
    val_mse: Mapped[float | None] = mapped_column(Float)
    val_r2: Mapped[float | None] = mapped_column(Float)
    test_ece: Mapped[float | None] = mapped_column(Float)


class Run(_Metrics, _Machine, Base):
    """One member trained once: a trial on one task at one repeat, with its seeds and final metrics.

    Metrics that were NaN or infinite (a diverged member) are stored as NULL. ``engine`` and the
    machine columns say what trained it, as measured where it trained.
    """

    __tablename__ = "sweeper_runs"
    __table_args__ = (
        UniqueConstraint("trial_id", "task", "repeat"),
        CheckConstraint(column("repeat") >= 0, name="repeat"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("sweeper_trials.id", ondelete="CASCADE"))
    task: Mapped[str] = mapped_column(String(255))
    repeat: Mapped[int] = mapped_column(Integer)
    data_seed: Mapped[int] = mapped_column(BigInteger)
    init_seed: Mapped[int] = mapped_column(BigInteger)
    noise_seed: Mapped[int] = mapped_column(BigInteger)
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    diverged: Mapped[bool] = mapped_column(Boolean, default=False)
    diverged_epoch: Mapped[int | None] = mapped_column(Integer)
    wall_time: Mapped[float] = mapped_column(Float)
    device: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    engine: Mapped[str | None] = mapped_column(String(16))  # fused, stacked or reference
    # sweeper.metrics.EARLY_COLUMNS, added by revision 0003.
    early_val_loss: Mapped[float | None] = mapped_column(Float)
    early_test_loss: Mapped[float | None] = mapped_column(Float)
    early_val_accuracy: Mapped[float | None] = mapped_column(Float)
    early_test_accuracy: Mapped[float | None] = mapped_column(Float)
    early_test_ece: Mapped[float | None] = mapped_column(Float)
    early_val_mse: Mapped[float | None] = mapped_column(Float)
    early_test_mse: Mapped[float | None] = mapped_column(Float)
    early_val_r2: Mapped[float | None] = mapped_column(Float)
    early_test_r2: Mapped[float | None] = mapped_column(Float)
    # Finished, yet its training metric no better than chance (see RunResult.failed_to_learn); NULL
    # for a diverged run and for runs stored before it was judged.
    failed_to_learn: Mapped[bool | None] = mapped_column(Boolean)


class Curve(_Metrics, Base):
    """The metrics of one run after one logged epoch (1-based)."""

    __tablename__ = "sweeper_curves"

    run_id: Mapped[int] = mapped_column(_BigId, ForeignKey("sweeper_runs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
