"""sweeper's C kernels: the Philox noise streams and the fused MLP trainer, built on first use.

One shared library is compiled from ``noise/_c/philox.c`` and ``engine/_c/mlp.c`` with the system C
compiler and cached (``$SWEEPER_CACHE``, else ``$XDG_CACHE_HOME/sweeper``, else ``~/.cache/sweeper``),
keyed by the sources and the CPU flags. It is linked against OpenMP: loaded after torch, it runs on the
same OpenMP runtime and thread team as torch's own CPU operators, so the two never compete for cores.
Where it cannot be built, ``library()`` warns once and returns None and callers use torch code instead.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch  # noqa: F401  (loaded first: its OpenMP runtime is the one the library links to)

_ROOT = Path(__file__).parent
#: Source -> its floating-point flags. The noise kernel may use -ffast-math (libmvec's vector
#: logf/sinf/cosf need it); the trainer may not (NaN must propagate, sums keep their written order),
#: only -fno-math-errno, which changes no value: sqrtf then needs no errno branch and vectorizes.
SOURCES = {_ROOT / "noise" / "_c" / "philox.c": ["-ffast-math"],
           _ROOT / "engine" / "_c" / "mlp.c": ["-fno-math-errno"]}


def _cache_dir() -> Path:
    base = os.environ.get("SWEEPER_CACHE") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sweeper"


def _cpu_flags() -> list[str]:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    return ["-mavx2", "-mfma"] if " avx2 " in info and " fma " in info else []


def _compile(out: Path) -> None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise OSError("no C compiler found (set CC)")
    with tempfile.TemporaryDirectory() as tmp:
        objects = []
        for source, float_flags in SOURCES.items():
            obj = Path(tmp) / f"{source.stem}.o"
            subprocess.run([cc, "-O3", *float_flags, "-fopenmp", "-fPIC", *_cpu_flags(),
                            "-c", str(source), "-o", str(obj)], check=True, capture_output=True)
            objects.append(str(obj))
        lib = Path(tmp) / "sweeper.so"
        # Linked without -ffast-math: that would pull in crtfastmath, which flushes denormals process-wide.
        for libs in (["-lmvec", "-lm"], ["-lm"]):
            if subprocess.run([cc, "-shared", "-fopenmp", *objects, "-o", str(lib), *libs],
                              capture_output=True).returncode == 0:
                break
        else:
            raise OSError("linking the C kernels failed")
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(lib, out)  # atomic: concurrent workers never load a half-written library


def _declare(lib: ctypes.CDLL) -> None:
    f32p, u64p = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_uint64)
    i64, c_int = ctypes.c_int64, ctypes.c_int
    lib.sweeper_normal_many.argtypes = [ctypes.POINTER(f32p), i64, i64, u64p, u64p, f32p, c_int]
    lib.sweeper_uniform_many.argtypes = lib.sweeper_normal_many.argtypes
    lib.sweeper_add_normal_many.argtypes = [ctypes.POINTER(f32p), ctypes.POINTER(f32p), i64, i64, u64p, u64p, f32p,
                                            c_int, c_int]
    lib.sweeper_mlp_train.restype = c_int
    lib.sweeper_mlp_forward.restype = c_int


@functools.lru_cache(maxsize=None)
def library() -> ctypes.CDLL | None:
    """The compiled kernels, building them on first use; None (with a warning) where they cannot be built."""
    key = hashlib.sha256(b"".join(s.read_bytes() + " ".join(f).encode() for s, f in SOURCES.items())
                         + " ".join(_cpu_flags()).encode()
                         + sys.platform.encode())
    path = _cache_dir() / f"sweeper-{key.hexdigest()[:16]}.so"
    try:
        if not path.exists():
            _compile(path)
        lib = ctypes.CDLL(str(path))
    except (OSError, subprocess.CalledProcessError) as exc:
        warnings.warn(f"sweeper: the C kernels are unavailable ({exc}); using slower torch code", stacklevel=2)
        return None
    _declare(lib)
    return lib
