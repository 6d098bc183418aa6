"""Ctrl-C or SIGTERM during a sweep's database write lands after the write, never inside it; SIGTERM ends a sweep
as Ctrl-C does."""

import os
import signal
import threading
import time

import pytest

from sweeper.driver._interrupts import Terminated, sigterm_interrupts, writes_finish


def test_ctrl_c_inside_a_write_takes_effect_when_the_write_is_done():
    before = signal.getsignal(signal.SIGINT)
    steps = []
    with pytest.raises(KeyboardInterrupt), writes_finish():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # Python runs signal handlers between bytecodes: here, if it were not deferred
        steps.append("the write finished")
    assert steps == ["the write finished"]
    assert signal.getsignal(signal.SIGINT) is before


def test_a_write_without_ctrl_c_ends_normally_and_outside_it_ctrl_c_is_immediate():
    with writes_finish():
        pass
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
        pytest.fail("SIGINT outside a write did not interrupt at once")


def test_outside_the_main_thread_the_block_runs_as_is():
    seen = []

    def worker():
        with writes_finish():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [signal.getsignal(signal.SIGINT)]


def test_sigterm_inside_a_write_ends_the_sweep_as_ctrl_c_does_once_the_write_is_done():
    before = signal.getsignal(signal.SIGTERM)
    steps = []
    with pytest.raises(KeyboardInterrupt) as stopped, sigterm_interrupts():
        with writes_finish():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            steps.append("the write finished")
        steps.append("after the write")
    assert type(stopped.value) is Terminated
    assert steps == ["the write finished"]
    assert signal.getsignal(signal.SIGTERM) is before
