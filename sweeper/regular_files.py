"""A user's file read as untrusted input: only a regular file, its size checked before a byte is read.

What a user names (a search-space file, a data file) may be a FIFO that never ends, ``/dev/zero``, a
symlink to ``/proc/self/environ`` (a "regular" file that says it is empty and holds the environment) or
simply too large: each is refused in one line before it is read, and a file is never read past its
limit, so neither memory nor time is spent on what cannot be used.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sweeper.errors import SweeperError

#: Folders whose files are the kernel's, not data: their sizes are not their contents.
_SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_regular(path: str | Path, limit: int, label: str, error: type[SweeperError], what: str) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes; ``error`` (one line
    starting with ``label``) if not. ``what`` names the kind of file expected ("data file")."""
    real = os.path.realpath(path)
    if any(real == d or real.startswith(d + "/") for d in _SYSTEM_FOLDERS):
        raise error(f"{label}: is a system file ({real}), not a {what}; allowed: a regular file")
    try:
        # O_NONBLOCK: opening a FIFO with no writer would otherwise wait for one for ever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{label}: no such {what} (looked for {path})") from None
    except IsADirectoryError:
        raise error(f"{label}: is a directory, not a {what}") from None
    except OSError as exc:
        raise error(f"{label}: cannot be read: {exc.strerror or type(exc).__name__}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise error(f"{label}: is a directory, not a {what}")
        for test, kind in _KINDS:
            if test(info.st_mode):
                raise error(f"{label}: is {kind}, not a {what}; allowed: a regular file")
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{label}: is not a regular file; allowed: a regular file")
        if info.st_size > limit:
            raise error(f"{label}: the file is {_size(info.st_size)}; allowed: at most {_size(limit)}")
        os.set_blocking(fd, True)
        chunks, got = [], 0
        while got <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as exc:
        raise error(f"{label}: cannot be read: {exc.strerror or type(exc).__name__}") from None
    finally:
        os.close(fd)
    if got > limit:
        raise error(
            f"{label}: the file is larger than {_size(limit)} (it grew while read); allowed: at most {_size(limit)}"
        )
    if got != info.st_size:
        raise error(f"{label}: changed while it was read ({info.st_size:,} bytes, then {got:,}); read it again")
    return b"".join(chunks)


def _size(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n:,} bytes"
