"""Ctrl-C or SIGTERM during a sweep's database write lands after the write, never inside it; SIGTERM ends a sweep
as Ctrl-C does."""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from sweeper.driver._interrupts import Terminated, sigterm_interrupts, writes_finish


def test_ctrl_c_inside_a_write_takes_effect_when_the_write_is_done(dispositions):
    dispositions(SIGINT=signal.default_int_handler)  # as in a shell, whatever started the tests
    before = signal.getsignal(signal.SIGINT)
    steps = []
    with pytest.raises(KeyboardInterrupt), writes_finish():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # Python runs signal handlers between bytecodes: here, if it were not deferred
        steps.append("the write finished")
    assert steps == ["the write finished"]
    assert signal.getsignal(signal.SIGINT) is before


def test_a_write_without_ctrl_c_ends_normally_and_outside_it_ctrl_c_is_immediate(dispositions):
    dispositions(SIGINT=signal.default_int_handler)
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


@pytest.fixture
def dispositions():
    """``dispositions(SIGNAL=handler, ...)``: sets them for the test; every one is restored after it."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def set_them(**handlers):
        for name, handler in handlers.items():
            signal.signal(getattr(signal, name), handler)

    yield set_them
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_sighup_ends_a_sweep_as_sigterm_does_with_the_shells_status_129(dispositions):
    dispositions(SIGHUP=signal.SIG_DFL)  # what a terminal's shell leaves it as
    with pytest.raises(Terminated) as stopped, sigterm_interrupts():
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(1)
        pytest.fail("SIGHUP did not end the block")
    assert (stopped.value.name, stopped.value.exit_status) == ("SIGHUP", 129)
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL


def test_signals_the_process_was_started_with_ignored_stay_ignored(dispositions):
    """nohup ignores SIGHUP, a shell's background job SIGINT: neither the sweep nor its writes take them."""
    dispositions(SIGINT=signal.SIG_IGN, SIGHUP=signal.SIG_IGN)
    steps = []
    with sigterm_interrupts():
        with writes_finish():
            os.kill(os.getpid(), signal.SIGHUP)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            steps.append("the write finished")
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        steps.append("training went on")
    assert steps == ["the write finished", "training went on"]
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN and signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_these_tests_pass_when_the_suite_is_started_as_nohup_cmd_and_starts_it():
    """``nohup make test &`` starts pytest with SIGINT and SIGHUP ignored; the tests above set what they rely on."""
    nohup_and_background = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "signal.signal(signal.SIGHUP, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            nohup_and_background,
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            __file__,
            "-k",
            "not nohup",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b6 passed\b", done.stdout), done.stdout
