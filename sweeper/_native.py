"""sweeper's C kernels: the Philox noise streams and the fused MLP trainer, compiled on first use.

The wheel and the sdist carry the C sources (``noise/_c``, ``engine/_c``) as package data. The first
process that needs them compiles one shared library with the system C compiler and caches it in
``$SWEEPER_CACHE``, else ``$XDG_CACHE_HOME/sweeper``, else ``~/.cache/sweeper``, under a name that hashes
the sources, the flags and the CPU variant. It is linked against OpenMP and loaded after torch, so it
runs on torch's own OpenMP runtime and thread team and never competes with it for the cores.

The same numbers on every CPU: the library is built for this CPU's variant (``avx2`` where the CPU has
AVX2 and FMA, else ``generic``; ``SWEEPER_CPU_VARIANT`` forces one) with ``-ffp-contract=off``, without
``-ffast-math``, and with elementary functions of its own (``noise/_c/portable_math.h``) instead of
libm's, so every variant gives bit-identical results: a variant changes the speed only.

Where it cannot be built, ``library()`` says why in one line on stderr, once per process, and returns
None; callers then use torch code, which gives the same numbers to float rounding, more slowly. The
``sweeper`` logger at DEBUG level (``sweeper --debug``) adds the compiler's own error.

``python -m sweeper._native [all | VARIANT ...]`` compiles the library now (the Docker images do, so a
container starts without compiling) and prints where it is.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import torch  # noqa: F401  (loaded first: its OpenMP runtime is the one the library links to)

from sweeper.errors import ExecutorError

_ROOT = Path(__file__).parent
SOURCES = (_ROOT / "noise" / "_c" / "philox.c", _ROOT / "engine" / "_c" / "mlp.c")
HEADERS = (_ROOT / "noise" / "_c" / "philox.h", _ROOT / "noise" / "_c" / "portable_math.h")
#: -ffp-contract=off: no multiply-add is fused into one rounding on one CPU and left as two on another.
#: -fno-math-errno and -fno-trapping-math change no value (no errno, no floating-point exception flags
#: to keep), and let the branch-free functions of portable_math.h vectorize. No -ffast-math: NaN must
#: propagate (divergence is an outcome to record) and sums keep their written order.
FLAGS = ("-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off", "-fopenmp", "-fPIC")
#: CPU variant -> its own flags. ``avx2`` exists on x86-64 only.
VARIANTS = {"generic": (), "avx2": ("-mavx2", "-mfma")}
#: What the torch fallback costs: `sweeper bench --members 64` with the kernels and with CC=/nonexistent
#: and an empty SWEEPER_CACHE, on 2 cores (docs/install.md).
SLOWER = "training runs on torch code, about 10 times slower (W1 on 2 cores: 1 instead of 11 runs/s)"
_COMPILE_TIMEOUT_S = 300

_log = logging.getLogger(__name__)


class _Unavailable(Exception):
    """Why the library cannot be built, what fixes it, and (for --debug) the compiler's own output."""

    def __init__(self, problem: str, fix: str, details: str = ""):
        super().__init__(problem)
        self.problem, self.fix, self.details = problem, fix, details


def _cache_dir() -> Path:
    if os.environ.get("SWEEPER_CACHE"):
        return Path(os.environ["SWEEPER_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sweeper"


def _x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def _cpu_has_avx2() -> bool:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in info.splitlines():
        if line.startswith("flags"):
            return {"avx2", "fma"} <= set(line.partition(":")[2].split())
    return False


def cpu_variant() -> str:
    """The variant this process loads: ``SWEEPER_CPU_VARIANT`` if set, else the fastest this CPU runs."""
    runnable = ["generic"] + (["avx2"] if _x86() and _cpu_has_avx2() else [])
    asked = os.environ.get("SWEEPER_CPU_VARIANT", "").strip() or "auto"
    if asked == "auto":
        return runnable[-1]
    if asked not in VARIANTS:
        raise ExecutorError(f"SWEEPER_CPU_VARIANT={asked!r} is not a variant; allowed: auto, {', '.join(VARIANTS)}")
    if asked not in runnable:
        raise ExecutorError(
            f"SWEEPER_CPU_VARIANT={asked}: this CPU has no AVX2 and FMA; allowed here: auto, {', '.join(runnable)}"
        )
    return asked


def library_path(variant: str) -> Path:
    """Where the library of ``variant`` is cached: its name hashes everything that went into it."""
    key = hashlib.sha256()
    try:
        for file in SOURCES + HEADERS:
            key.update(file.name.encode() + file.read_bytes())
    except OSError as exc:
        raise _Unavailable(
            f"the package holds no C sources ({exc.filename} is missing)",
            "reinstall sweeper from a wheel or sdist that holds sweeper/noise/_c and sweeper/engine/_c",
        ) from exc
    key.update(" ".join(FLAGS + VARIANTS[variant]).encode() + sys.platform.encode() + platform.machine().encode())
    return _cache_dir() / f"sweeper-{variant}-{key.hexdigest()[:16]}.so"


def _compiler() -> list[str]:
    install = "install a C compiler (apt-get install build-essential) or set CC=/path/to/gcc"
    if os.environ.get("CC"):
        cc = shlex.split(os.environ["CC"])  # CC may carry a wrapper or flags: "ccache gcc"
        if not cc or shutil.which(cc[0]) is None:
            raise _Unavailable(f"CC={os.environ['CC']} is not an installed program", install)
        return cc
    for name in ("cc", "gcc"):
        if shutil.which(name):
            return [name]
    raise _Unavailable("no C compiler was found (CC is unset, and neither cc nor gcc is on PATH)", install)


def _run(argv: list[str]) -> None:
    fix = "set CC to a C compiler with OpenMP support, e.g. CC=gcc"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_COMPILE_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise _Unavailable(f"the C compiler ran past {_COMPILE_TIMEOUT_S} s", fix) from exc
    except OSError as exc:
        raise _Unavailable(f"the C compiler could not be started ({exc.strerror})", fix) from exc
    if done.returncode != 0:
        raise _Unavailable(
            f"the C compiler failed ({Path(argv[0]).name} exited with {done.returncode})",
            fix,
            f"$ {shlex.join(argv)}\n{done.stdout}{done.stderr}".rstrip(),
        )


def build(variant: str) -> Path:
    """The library of ``variant``: compiled now unless it is already cached. Compiling needs no CPU
    support for the variant (an image builder may prepare ``avx2`` for the machines it ships to)."""
    path = library_path(variant)
    if path.exists():
        return path
    cc = _compiler()
    with tempfile.TemporaryDirectory() as tmp:
        objects = []
        for source in SOURCES:
            obj = str(Path(tmp) / f"{source.stem}.o")
            _run([*cc, *FLAGS, *VARIANTS[variant], "-c", str(source), "-o", obj])
            objects.append(obj)
        # Written next to its final name, then renamed: concurrent workers never load a half-written
        # library, and the rename never crosses file systems.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as exc:
            raise _Unavailable(
                f"its cache folder {path.parent} is not writable ({exc.strerror})",
                "set SWEEPER_CACHE to a writable folder",
            ) from exc
        os.close(fd)
        try:
            _run([*cc, "-shared", "-fopenmp", *objects, "-o", partial, "-lm"])
            os.chmod(partial, 0o755)  # mkstemp made it private; a shared cache serves every user
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    return path


def _declare(lib: ctypes.CDLL) -> None:
    f32p, u64p = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_uint64)
    i64, c_int = ctypes.c_int64, ctypes.c_int
    lib.sweeper_normal_many.argtypes = [ctypes.POINTER(f32p), i64, i64, u64p, u64p, f32p, c_int]
    lib.sweeper_uniform_many.argtypes = lib.sweeper_normal_many.argtypes
    lib.sweeper_add_normal_many.argtypes = [
        ctypes.POINTER(f32p),
        ctypes.POINTER(f32p),
        i64,
        i64,
        u64p,
        u64p,
        f32p,
        c_int,
        c_int,
    ]
    lib.sweeper_mlp_train.restype = c_int
    lib.sweeper_mlp_forward.restype = c_int
    lib.sweeper_mlp_metrics.restype = c_int


def _say_unavailable(exc: Exception) -> None:
    """The one line a user reads when the kernels cannot be built; the details only at DEBUG level."""
    if isinstance(exc, _Unavailable):
        problem, fix, details = exc.problem, exc.fix, exc.details
    else:
        problem, fix = f"{type(exc).__name__}: {exc}", "--debug shows where"
        details = "".join(traceback.format_exception(exc)).rstrip()
    debug = _log.isEnabledFor(logging.DEBUG)
    more = " (--debug shows why)" if details and not debug else ""
    print(f"sweeper: cannot build the C kernels: {problem}; {SLOWER}; {fix}{more}.", file=sys.stderr, flush=True)
    if details and debug:
        print(details, file=sys.stderr, flush=True)


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on first use; None, said once on stderr, where they cannot be."""
    try:
        path = build(cpu_variant())
        try:
            lib = ctypes.CDLL(str(path))
            _declare(lib)
        except (OSError, AttributeError) as exc:
            raise _Unavailable(
                f"the compiled library {path} could not be loaded ({exc})", "delete it, and it is compiled again"
            ) from exc
    except ExecutorError:
        raise  # SWEEPER_CPU_VARIANT asks for what this CPU cannot run: the user's to fix, not to hide
    except Exception as exc:  # whatever went wrong, torch code can still train
        _say_unavailable(exc)
        return None
    return lib


def main(argv: list[str]) -> int:
    """``python -m sweeper._native [all | VARIANT ...]``: compiles the library for each variant now
    (default: this CPU's; ``all``: every variant of this architecture) and prints its path."""
    every = list(VARIANTS) if _x86() else ["generic"]
    try:
        asked = [cpu_variant()] if not argv else every if argv == ["all"] else argv
        for variant in asked:
            if variant not in every:
                raise ExecutorError(f"{variant!r} is not a variant here; allowed: all, {', '.join(every)}")
            print(f"{variant}: {build(variant)}")
    except ExecutorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except _Unavailable as exc:
        print(f"error: {exc.problem}; {exc.fix}\n{exc.details}".rstrip(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
