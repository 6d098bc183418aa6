"""Philox4x32-10 noise streams: a C kernel on CPU, the same algorithm in torch ops anywhere else.

Value j of member k is a pure function of (key_k, counter_k + j), so members are independent of
their pack, threads and devices. The C kernel (``_c/philox.c``) is compiled on first use with the
system C compiler and cached; where no compiler is found, the torch implementation produces the same
numbers (the words bit for bit, the normals to float rounding), only slower.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Sequence

import numpy as np
import torch

from sweeper._native import library
from sweeper.noise.spec import keep_scale

_M0, _M1, _W0, _W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
_MASK = 0xFFFFFFFF
_SQRT3 = math.sqrt(3.0)
#: Below this many values per call the threads cost more than they save.
_THREADED_MIN = 1 << 16


#: The compiled C kernels (``sweeper._native``), or None where they cannot be built.
kernel = library


def philox_words(keys: torch.Tensor, first_blocks: torch.Tensor, blocks: int) -> torch.Tensor:
    """Philox4x32-10 in torch ops: ``(members, blocks, 4)`` int64 words in [0, 2^32).

    ``keys``, ``first_blocks``: ``(members,)`` int64 (the bit patterns of unsigned 64-bit values).
    Products wrap modulo 2^64 in int64, and masking recovers the exact unsigned halves.
    """
    b = first_blocks[:, None] + torch.arange(blocks, device=keys.device)
    c0, c1 = b & _MASK, (b >> 32) & _MASK
    c2, c3 = torch.zeros_like(c0), torch.zeros_like(c0)
    k0, k1 = (keys & _MASK)[:, None], ((keys >> 32) & _MASK)[:, None]
    for _ in range(10):
        p0, p1 = c0 * _M0, c2 * _M1
        c0, c1, c2, c3 = ((p1 >> 32) & _MASK) ^ c1 ^ k0, p1 & _MASK, ((p0 >> 32) & _MASK) ^ c3 ^ k1, p0 & _MASK
        k0, k1 = (k0 + _W0) & _MASK, (k1 + _W1) & _MASK
    return torch.stack([c0, c1, c2, c3], -1)


def _unit(words: torch.Tensor) -> torch.Tensor:
    return ((words >> 8).to(torch.float32) + 0.5) * (1.0 / 16777216.0)


def normals_from_words(words: torch.Tensor) -> torch.Tensor:
    """Box-Muller over ``(..., 4)`` words: (w0, w1) -> values 0, 1 and (w2, w3) -> values 2, 3."""
    u = _unit(words)
    r = torch.sqrt(-2.0 * torch.log(u[..., 0::2]))  # (..., 2)
    t = (2.0 * math.pi) * u[..., 1::2]
    return torch.stack(
        [
            r[..., 0] * torch.cos(t[..., 0]),
            r[..., 0] * torch.sin(t[..., 0]),
            r[..., 1] * torch.cos(t[..., 1]),
            r[..., 1] * torch.sin(t[..., 1]),
        ],
        -1,
    )


def dropout_factors(u: torch.Tensor, rate: float | Sequence[float]) -> torch.Tensor:
    """Dropout's factors from uniforms ``u`` in [0, 1): 1 / (1 − p) where u >= p (kept), 0 where u < p
    (dropped), compared and scaled in float32 as the fused C engine does. A sequence of rates gives one
    per row of ``u`` (the member dimension first)."""
    rates = [rate] if isinstance(rate, (int, float)) else list(rate)
    shape = () if isinstance(rate, (int, float)) else (len(rates),) + (1,) * (u.dim() - 1)
    p = torch.tensor([float(np.float32(r)) for r in rates], dtype=torch.float32, device=u.device).view(shape)
    scale = torch.tensor([keep_scale(r) for r in rates], dtype=torch.float32, device=u.device).view(shape)
    return torch.where(u.to(torch.float32) >= p, scale, torch.zeros_like(scale))


def units(seed: int, n: int) -> torch.Tensor:
    """The first ``n`` values of the Philox stream keyed by ``seed`` (counter 0 on) as uniforms in (0, 1),
    float32 ``(n,)``: a member's initial weights (``sweeper.tasks.families._layers.init_params``).

    Each is (24 random bits + 1/2) / 2^24, exact in float32, so the C kernel and the torch code give the
    same bits on every CPU.
    """
    lib = kernel()
    if lib is None or n == 0:
        words = philox_words(torch.tensor([_as_i64(_as_u64(seed))]), torch.zeros(1, dtype=torch.int64), (n + 3) // 4)
        return _unit(words).reshape(-1)[:n].contiguous()
    out = torch.empty(1, n)
    fn = lib.sweeper_units_many
    if fn.argtypes is None:  # not among sweeper._native's declarations
        _declare_units(fn)
    fn(_rows(out, [0]), 1, n, (ctypes.c_uint64 * 1)(_as_u64(seed)), (ctypes.c_uint64 * 1)(0), 1)
    return out[0]


def _declare_units(fn) -> None:
    fn.argtypes = [
        ctypes.POINTER(ctypes.POINTER(ctypes.c_float)),
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.POINTER(ctypes.c_uint64),
        ctypes.POINTER(ctypes.c_uint64),
        ctypes.c_int,
    ]


def _as_u64(seed: int) -> int:
    return int(seed) & 0xFFFFFFFFFFFFFFFF


def _as_i64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _rows(t: torch.Tensor, rows: list[int]):
    """C pointers to rows ``rows`` of a contiguous tensor (member dimension first)."""
    f32p = ctypes.POINTER(ctypes.c_float)
    size = t[0].numel() * t.element_size()
    return (f32p * len(rows))(*[ctypes.cast(t.data_ptr() + k * size, f32p) for k in rows])


class PhiloxStreams:
    """Per-member Philox streams; each member's counter advances by the blocks it draws."""

    def __init__(
        self,
        seeds: Sequence[int],
        device: torch.device | str = "cpu",
        *,
        use_kernel: bool = True,
        threads: int | None = None,
    ):
        """``threads``: OpenMP threads for the C kernel (default: torch's intra-op thread count)."""
        self.device = torch.device(device)
        self.keys = [_as_u64(s) for s in seeds]
        self.blocks = [0] * len(self.keys)  # next unused block of each member
        self.lib = kernel() if use_kernel and self.device.type == "cpu" else None
        self.threads = threads

    def _advance(self, members: list[int], n: int) -> list[int]:
        firsts = [self.blocks[k] for k in members]
        for k in members:
            self.blocks[k] += (n + 3) // 4
        return firsts

    def _fill(self, out: torch.Tensor, scale: Sequence[float], normal: bool) -> torch.Tensor:
        members = [k for k, s in enumerate(scale) if s]
        if not members:
            return out
        n = out[0].numel()
        firsts = self._advance(members, n)
        if self._kernel_fits(out):
            fn = self.lib.sweeper_normal_many if normal else self.lib.sweeper_uniform_many
            self._call_kernel(
                members,
                n,
                lambda rows, m, *args: fn(_rows(out, rows), m, n, *args),
                firsts,
                [scale[k] for k in members],
            )
            return out
        keys = torch.tensor([_as_i64(self.keys[k]) for k in members], device=out.device)
        words = philox_words(keys, torch.tensor(firsts, device=out.device), (n + 3) // 4)
        values = normals_from_words(words) if normal else (2.0 * _unit(words) - 1.0) * _SQRT3
        values = (
            values.reshape(len(members), -1)[:, :n]
            * torch.tensor([scale[k] for k in members], device=out.device)[:, None]
        )
        out[torch.tensor(members, device=out.device)] = values.view((len(members),) + out.shape[1:]).to(out.dtype)
        return out

    def _kernel_fits(self, t: torch.Tensor) -> bool:
        return self.lib is not None and t.is_contiguous() and t.dtype == torch.float32 and t.device.type == "cpu"

    def _call_kernel(self, members: list[int], n: int, call, firsts: list[int], scales: list[float]) -> None:
        """Calls ``call(rows, m, keys, firsts, scales, threads)`` once for the members; the kernel splits
        them over OpenMP threads when the work is large enough to pay for them."""
        m = len(members)
        threads = self.threads or torch.get_num_threads()
        call(
            members,
            m,
            (ctypes.c_uint64 * m)(*[self.keys[k] for k in members]),
            (ctypes.c_uint64 * m)(*firsts),
            (ctypes.c_float * m)(*scales),
            threads if m * n >= _THREADED_MIN else 1,
        )

    def can_add_normal(self, x: torch.Tensor) -> bool:
        """Whether ``add_normal`` can run on ``x`` (the C kernel, a contiguous float32 CPU tensor)."""
        return self._kernel_fits(x)

    def add_normal(self, x: torch.Tensor, scale: Sequence[float], relu: bool) -> torch.Tensor:
        """A new tensor ``f(x + scale_k * N(0, 1))`` per member k, f = ReLU or identity, in one pass.

        Draws exactly what ``normal_`` would draw; members with scale 0 draw nothing.
        """
        y = torch.empty_like(x)
        everyone = list(range(len(scale)))
        n = x[0].numel()
        drawing = [k for k in everyone if scale[k]]
        firsts = dict(zip(drawing, self._advance(drawing, n)))
        self._call_kernel(
            everyone,
            n,
            lambda rows, m, keys, firsts, scales, threads: self.lib.sweeper_add_normal_many(
                _rows(x, rows), _rows(y, rows), m, n, keys, firsts, scales, int(relu), threads
            ),
            [firsts.get(k, 0) for k in everyone],
            [float(s) for s in scale],
        )
        return y

    def normal_(self, out: torch.Tensor, scale: Sequence[float]) -> torch.Tensor:
        return self._fill(out, scale, normal=True)

    def uniform_(self, out: torch.Tensor, scale: Sequence[float]) -> torch.Tensor:
        return self._fill(out, scale, normal=False)

    def dropout_(self, out: torch.Tensor, rate: Sequence[float]) -> torch.Tensor:
        """Dropout factors: ``out[k]`` gets 1 / (1 − p_k) where unit k keeps (u >= p_k), else 0, with u the
        member's uniforms in (0, 1); members of rate 0 draw nothing and keep ``out[k]``."""
        members = [k for k, p in enumerate(rate) if p]
        if not members:
            return out
        n = out[0].numel()
        firsts = self._advance(members, n)
        rows = torch.tensor(members, device=out.device)
        if self._kernel_fits(out):
            u = torch.empty((len(members), n), dtype=torch.float32)
            fn = self.lib.sweeper_units_many
            if fn.argtypes is None:  # not among sweeper._native's declarations
                _declare_units(fn)
            m, threads = len(members), self.threads or torch.get_num_threads()
            fn(
                _rows(u, list(range(m))),
                m,
                n,
                (ctypes.c_uint64 * m)(*[self.keys[k] for k in members]),
                (ctypes.c_uint64 * m)(*firsts),
                threads if m * n >= _THREADED_MIN else 1,
            )
        else:
            keys = torch.tensor([_as_i64(self.keys[k]) for k in members], device=out.device)
            words = philox_words(keys, torch.tensor(firsts, device=out.device), (n + 3) // 4)
            u = _unit(words).reshape(len(members), -1)[:, :n]
        factors = dropout_factors(u, [rate[k] for k in members])
        out[rows] = factors.view((len(members),) + out.shape[1:]).to(out.dtype)
        return out

    def rand_many(self, members: Sequence[int], shape: tuple[int, ...]) -> torch.Tensor:
        """``rand(k, shape)`` of every member k of ``members`` in one call: ``(len(members), *shape)``, row
        i exactly what ``rand(members[i], shape)`` would give (the same counters, the same operations)."""
        n = math.prod(shape)
        firsts = self._advance(list(members), n)
        keys = torch.tensor([_as_i64(self.keys[k]) for k in members], device=self.device)
        words = philox_words(keys, torch.tensor(firsts, device=self.device), (n + 3) // 4)
        return _unit(words).reshape(len(members), -1)[:, :n].reshape(len(members), *shape)

    def rand(self, member: int, shape: tuple[int, ...]) -> torch.Tensor:
        """Uniforms in (0, 1) for one member (label flips)."""
        n = math.prod(shape)
        (first,) = self._advance([member], n)
        key = torch.tensor([_as_i64(self.keys[member])], device=self.device)
        words = philox_words(key, torch.tensor([first], device=self.device), (n + 3) // 4)
        return _unit(words).reshape(-1)[:n].view(shape)
