"""Ctrl-C during a database write takes effect once the write is done.

Python raises KeyboardInterrupt between any two bytecodes, also inside SQLAlchemy's and Optuna's
transaction handling; cut there, a connection can be dropped with its write transaction still open,
and the next write of the same process (recording the sweep as interrupted) then waits for a lock
that is never released. Inside ``writes_finish()`` a SIGINT is only noted, and raised as the usual
KeyboardInterrupt when the block ends; training, between the blocks, stops at once as before.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


@contextlib.contextmanager
def writes_finish() -> Iterator[None]:
    """Defers SIGINT to the end of the block (main thread only; elsewhere signals cannot arrive)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt
