"""Ctrl-C and SIGTERM end a sweep alike, and during a database write take effect once the write is done.

Python raises KeyboardInterrupt between any two bytecodes, also inside SQLAlchemy's and Optuna's
transaction handling; cut there, a connection can be dropped with its write transaction still open,
and the next write of the same process (recording the sweep as interrupted) then waits for a lock
that is never released. Inside ``writes_finish()`` a SIGINT or SIGTERM is only noted, and delivered
when the block ends; training, between the blocks, stops at once as before. Within
``sigterm_interrupts()`` SIGTERM (what ``kill``, systemd, Kubernetes and Slurm send) raises
``Terminated``, a KeyboardInterrupt, so a sweep ends as it does on Ctrl-C instead of dying unrecorded.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: the process was asked to stop, as by Ctrl-C."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block SIGTERM raises Terminated (main thread only; elsewhere signals cannot arrive)."""
    if not _in_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def writes_finish() -> Iterator[None]:
    """Defers SIGINT and SIGTERM to the end of the block (main thread only)."""
    if not _in_main_thread():
        yield
        return
    pending: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: pending.append(signum)) for signum in _SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    for signum in dict.fromkeys(pending):
        signal.raise_signal(signum)  # now to the handler the block had deferred it from
