"""Ctrl-C, SIGTERM and SIGHUP end a sweep alike, and during a database write take effect once the write is done.

Python raises KeyboardInterrupt between any two bytecodes, also inside SQLAlchemy's and Optuna's
transaction handling; cut there, a connection can be dropped with its write transaction still open,
and the next write of the same process (recording the sweep as interrupted) then waits for a lock
that is never released. Inside ``writes_finish()`` a SIGINT, SIGTERM or SIGHUP is only noted, and
delivered when the block ends; training, between the blocks, stops at once as before. Within
``sigterm_interrupts()`` SIGTERM (what ``kill``, systemd, Docker, Kubernetes and Slurm send) and SIGHUP
(a closed terminal, a dropped ssh connection) raise ``Terminated``, a KeyboardInterrupt, so a sweep ends
as it does on Ctrl-C instead of dying unrecorded.

A signal the process was started with ignored stays ignored: ``nohup`` ignores SIGHUP, and a shell
starts a background job (``cmd &``) with SIGINT ignored; those users chose to outlive the terminal.
Nothing here relies on SIGINT to stop training (a lost lease stops it through the engine's progress
callback, ``sweeper.driver.sweep``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: The signals that end a sweep as Ctrl-C does, once ``sigterm_interrupts`` is entered.
_TERMINATING = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: the process was asked to stop, as by Ctrl-C."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        """``SIGTERM`` or ``SIGHUP``."""
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        """The shell's status for a process the signal ended: 128 + its number (143, 129)."""
        return 128 + self.signum


def _raise_terminated(signum, frame) -> None:
    raise Terminated(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block SIGTERM and SIGHUP raise Terminated (main thread only; elsewhere signals cannot
    arrive), unless the process was started with them ignored."""
    if not _in_main_thread():
        yield
        return
    previous = {
        signum: signal.signal(signum, _raise_terminated)
        for signum in _TERMINATING
        if signal.getsignal(signum) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def writes_finish() -> Iterator[None]:
    """Defers SIGINT, SIGTERM and SIGHUP to the end of the block (main thread only); one ignored stays so."""
    if not _in_main_thread():
        yield
        return
    pending: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda signum, frame: pending.append(signum))
        for signum in _SIGNALS
        if signal.getsignal(signum) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    for signum in dict.fromkeys(pending):
        signal.raise_signal(signum)  # now to the handler the block had deferred it from
