"""The fused CPU engine for dense MLPs (``_c/mlp.c``): a member's whole training step in one C pass.

The stacked torch program spends most of a small MLP's step moving ``(members, batch, hidden)``
tensors through memory some twenty times (linear map, noise, activation, loss, each backward
product, the optimizer). The fused engine instead trains one member at a time per thread, every step
of a logging interval back to back, with its parameters, optimizer state and activations resident in
the core's cache; members are spread over torch's OpenMP threads.

It computes the same training as the mlp family's stacked program (``sweeper.tasks.families.mlp``),
autograd and torch's fused Adam/SGD: the same initial parameters, batches, noise draws (the same Philox
kernels at the same counters, in the same order) and update rule, so the two agree to float tolerance
(sums run in a different order), and a member's numbers do not depend on its pack or thread.
Evaluation runs the same C forward pass without noise, and computes the logged metrics of every part
there too (``sweeper_mlp_metrics``: sums in double in row order), so the whole fused path, initial
weights included (``sweeper.tasks.families._layers.init_params``: Philox), gives the same bits on every
CPU and any thread count.

It takes MLPs with ReLU, tanh or sigmoid, Adam or SGD, full or minibatches, and every noise the
stacked program takes: Gaussian, multiplicative and uniform noise at the input, pre- and
post-activations, weights and gradients, dropout and DropConnect, label flips or target noise, on
every schedule, relative or not. CNNs,
RNNs, other activations, GPUs and ``generator`` streams go to the stacked torch program.

A user's own model that is a plain stack of dense layers (``dense_stack``) trains here too, from the
parameters its factory draws for each member, with the numbers ``sweeper.engine.functional`` gives it
to float rounding (``stack_takes`` says which members: where the two draw noise in the same order).
"""

from __future__ import annotations

import ctypes
import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sweeper import _native, metrics
from sweeper.engine._shared import (
    PackData,
    batch_order,
    data_parts,
    member_inits,
    pack_data,
    results,
    shuffler,
    total_steps,
)
from sweeper.noise.kinds import noise_kind
from sweeper.noise.philox import _as_u64
from sweeper.noise.spec import NoiseConfig, NoiseSpec, check_target_kind, sizes
from sweeper.records import Member, RunResult
from sweeper.tasks import user_models
from sweeper.tasks.data import input_shape, n_outputs
from sweeper.tasks.families import family
from sweeper.tasks.spec import TaskSpec

MAX_LAYERS = 16  # as in mlp.c
#: The most optimizer steps one C call trains when a schedule changes the noise size (its table of
#: sizes is members x sites x steps); a call spans whole epochs, so at least one.
_SCHEDULED_STEPS = 4096
_F32P, _I32P, _U64P = (ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_uint64))


class _Net(ctypes.Structure):
    _fields_ = [
        ("members", ctypes.c_int64),
        ("layers", ctypes.c_int64),
        ("dims", ctypes.c_int64 * (MAX_LAYERS + 1)),
        ("n_params", ctypes.c_int64),
        ("act", ctypes.c_int32),
        ("loss", ctypes.c_int32),
        ("opt", ctypes.c_int32),
        ("threads", ctypes.c_int32),
        ("lr", ctypes.c_double),
        ("beta1", ctypes.c_double),
        ("beta2", ctypes.c_double),
        ("eps", ctypes.c_double),
        ("weight_decay", ctypes.c_double),
        ("momentum", ctypes.c_double),
    ]


class _Noise(ctypes.Structure):
    _fields_ = [
        ("kinds", _I32P),
        ("sizes", _F32P),
        ("steps", ctypes.c_int64),
        ("first_step", ctypes.c_int64),
        ("relative", _I32P),
        ("input_std", _F32P),
        ("target_std", _F32P),
        ("keys", _U64P),
        ("blocks", _U64P),
    ]


@functools.cache
def _enums() -> dict[str, tuple[str, ...]]:
    """mlp.c's enumerations by name, each value's name in its enum's order: ``{"site": ("input", ...), ...}``.

    Read from the compiled library (``sweeper_mlp_enums``), where mlp.c names each value once: values are
    looked up here by name, never mirrored by position, so a kind or site added on one side only fails
    at once instead of training the wrong noise. Call it only where ``_native.library()`` is not None.
    """
    text = ctypes.c_char_p.in_dll(_native.library(), "sweeper_mlp_enums").value.decode()
    enums = {}
    for part in text.split(";"):
        name, _, values = part.partition(":")
        enums[name] = tuple(v for v in values.split(",") if v)
    return enums


def _number(enum: str, name: str) -> int:
    """The value mlp.c gives ``name`` in its enumeration ``enum``."""
    names = _enums()[enum]
    if name not in names:
        raise ValueError(f"the fused engine (mlp.c) has no {enum} {name!r}; it has {', '.join(names)}")
    return names.index(name)


def task_fits(task: TaskSpec, device: torch.device) -> bool:
    """Whether the fused engine can train this task on this device (a dense MLP on the CPU)."""
    return (
        device.type == "cpu"
        and family(task).code.PLAIN_DENSE
        and len(task.hidden) < MAX_LAYERS
        and _native.library() is not None
        and task.activation in _enums()["activation"]
    )


#: A user's activation module -> the name mlp.c gives it.
_ACTIVATION_MODULES = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}


@dataclass(frozen=True)
class DenseStack:
    """A user's model that is a plain stack of dense layers the fused engine can train: an
    ``nn.Sequential`` of an optional ``nn.Flatten``, then ``nn.Linear``, activation, ..., ``nn.Linear``
    (one activation module type throughout, one mlp.c knows)."""

    #: The positions of the ``nn.Linear`` layers in the ``nn.Sequential``.
    linears: tuple[int, ...]
    activation: str

    def init(self, task: TaskSpec, init_seed: int) -> dict[str, torch.Tensor]:
        """A member's initial parameters, as its factory draws them (``user_models.build``), by the mlp
        family's names: ``dense{i}.weight``, ``dense{i}.bias``, ..., ``out.weight``, ``out.bias``."""
        model = user_models.build(task, init_seed)
        names = [f"dense{i}" for i in range(len(self.linears) - 1)] + ["out"]
        out = {}
        for name, at in zip(names, self.linears):
            out[f"{name}.weight"] = model[at].weight.detach().clone()
            out[f"{name}.bias"] = model[at].bias.detach().clone()
        return out


def dense_stack(task: TaskSpec, device: torch.device, streams: str) -> DenseStack | None:
    """The user's model of ``task`` as a ``DenseStack`` when the fused engine can train it on ``device``
    with ``streams`` (the CPU, Philox streams, the engine built), else None.

    Taken only where the fused engine computes what ``sweeper.engine.functional`` computes for the model:
    exactly ``nn.Sequential``, ``nn.Flatten``, ``nn.Linear`` (with biases) and the activation classes
    themselves (no subclass, whose forward may differ), every parameter float32 and trained, no buffer,
    no hook, no ``sites`` named (the activations' inputs and outputs are the sites, as in the mlp
    family), and an output layer of the task's outputs.
    """
    if device.type != "cpu" or streams != "philox" or _native.library() is None or task.user_model.sites:
        return None
    model = user_models.build(task)
    if type(model) is not nn.Sequential or list(model.buffers()):
        return None
    layers = list(model)
    start = 0
    if layers and type(layers[0]) is nn.Flatten and (layers[0].start_dim, layers[0].end_dim) == (1, -1):
        start = 1
    elif len(input_shape(task)) != 1:
        return None
    body = layers[start:]
    linears, acts = body[0::2], body[1::2]
    width = math.prod(input_shape(task))
    if not acts or len(linears) != len(acts) + 1 or len(linears) > MAX_LAYERS:
        return None
    for layer in linears:
        if type(layer) is not nn.Linear or layer.bias is None or layer.in_features != width:
            return None
        width = layer.out_features
    kinds = {type(a) for a in acts}
    name = _ACTIVATION_MODULES.get(next(iter(kinds))) if len(kinds) == 1 else None
    if name is None or name not in _enums()["activation"] or width != n_outputs(task):
        return None
    for module in model.modules():
        if module._forward_hooks or module._forward_pre_hooks or module._backward_hooks:
            return None
        if getattr(module, "_backward_pre_hooks", None):
            return None
    if any(p.dtype != torch.float32 or not p.requires_grad for p in model.parameters()):
        return None
    return DenseStack(tuple(start + 2 * i for i in range(len(linears))), name)


def stack_takes(config: NoiseConfig) -> bool:
    """Whether the fused engine draws a member's noise in the order ``sweeper.engine.functional`` does,
    so that the two give its numbers to float rounding.

    They differ only for a member with weight noise and noise at the activations together: the
    functional engine perturbs every weight matrix before the forward pass and meets the activation
    sites during it (weights 0, 1, ..., then the sites), where the fused engine, as the mlp family's
    stacked program, goes layer by layer (weights 0, the sites of layer 0, weights 1, ...). Such a
    member keeps the functional engine. Every other combination draws the same Philox numbers at the
    same counters: targets, input, weights in layer order, the sites in layer order (pre-, then
    post-activation), gradients in parameter order.
    """
    active = {s.placement for s in config if s.std > 0}
    return not ("weights" in active and active & {"pre_activation", "post_activation"})


def _ptr(t: torch.Tensor | np.ndarray, kind=ctypes.c_float):
    address = t.data_ptr() if isinstance(t, torch.Tensor) else t.ctypes.data
    return ctypes.cast(address, ctypes.POINTER(kind))


class _Program:
    """One pack's network, parameters, optimizer state and noise, laid out as ``mlp.c`` reads them."""

    def __init__(
        self,
        task: TaskSpec,
        members: Sequence[Member],
        data: PackData,
        inits: Sequence[dict[str, torch.Tensor]] | None = None,
        activation: str | None = None,
    ):
        """``inits``: each member's initial parameters by the mlp family's names (``dense{i}.weight``, ...,
        ``out.bias``), and ``activation`` the hidden layers' (a user's dense stack, ``DenseStack``);
        None: the mlp family's, drawn from the members' init seeds, and ``task.activation``."""
        if inits is None:
            inits = member_inits(task, members)
        self.names = names = [n.removesuffix(".weight") for n in inits[0] if n.endswith(".weight")]
        dims = [inits[0][f"{names[0]}.weight"].shape[1]] + [inits[0][f"{n}.weight"].shape[0] for n in names]
        # A member's parameters: per layer W^T (in x out, row-major), then b; laid out once per distinct
        # initial parameters (the members of a repeat share them).
        flat = {
            id(p): torch.cat([t for n in names for t in (p[f"{n}.weight"].T.reshape(-1), p[f"{n}.bias"])])
            for p in {id(p): p for p in inits}.values()
        }
        self.theta = torch.stack([flat[id(p)] for p in inits]).contiguous()
        self.m, self.v = torch.zeros_like(self.theta), torch.zeros_like(self.theta)
        o = task.optimizer
        self.net = _Net(
            members=len(members),
            layers=len(names),
            dims=(ctypes.c_int64 * (MAX_LAYERS + 1))(*dims),
            n_params=self.theta.shape[1],
            act=_number("activation", activation or task.activation),
            loss=_number("loss", task.problem),
            opt=_number("optimizer", o.name),
            threads=torch.get_num_threads(),
            lr=o.lr,
            beta1=o.betas[0],
            beta2=o.betas[1],
            eps=task.adam_eps,
            weight_decay=o.weight_decay,
            momentum=o.momentum,
        )
        self.kinds = np.full((len(members), len(_enums()["site"])), _number("kind", "none"), dtype=np.int32)
        self.relative = np.zeros_like(self.kinds)
        self.specs: dict[tuple[int, int], NoiseSpec] = {}  # (member, site) -> its noise
        stds = {"input": data.input_std, "targets": data.target_std}
        for k, m in enumerate(members):
            for spec in m.config:
                if spec.placement == "targets":
                    check_target_kind(spec.kind, data.n_classes)
                if spec.std > 0:
                    site = _number("site", spec.placement)
                    self.kinds[k, site] = _number("kind", noise_kind(spec.kind).kernel)
                    self.relative[k, site] = spec.relative and stds.get(spec.placement) is not None
                    self.specs[k, site] = spec
        self.scheduled = any(spec.schedule != "constant" for spec in self.specs.values())
        self.total_steps = total_steps(task, data.x_train.shape[1])
        self.input_std = None if data.input_std is None else data.input_std.reshape(len(members), -1).contiguous()
        self.target_std = None if data.target_std is None else data.target_std.contiguous()
        self.keys = np.array([_as_u64(m.noise_seed) for m in members], dtype=np.uint64)
        self.blocks = np.zeros(len(members), dtype=np.uint64)
        self.sizes = np.zeros(0, dtype=np.float32)
        self.noise = _Noise(
            kinds=_ptr(self.kinds, ctypes.c_int32),
            relative=_ptr(self.relative, ctypes.c_int32),
            input_std=None if self.input_std is None else _ptr(self.input_std),
            target_std=None if self.target_std is None else _ptr(self.target_std),
            keys=_ptr(self.keys, ctypes.c_uint64),
            blocks=_ptr(self.blocks, ctypes.c_uint64),
        )
        self.x_train = data.x_train.reshape(len(members), data.x_train.shape[1], -1).contiguous()
        self.y_train = data.y_train.to(torch.float32).contiguous()
        self.bad_step = np.full(len(members), -1, dtype=np.int64)
        problem = task.problem
        # Each part of the data as mlp.c reads it, with the metrics sweeper.metrics logs there.
        self.parts = [
            (part, x.reshape(len(members), x.shape[1], -1).contiguous(), y.to(torch.float32).contiguous(), names)
            for part, x, y in data_parts(data)
            if (names := metrics.logged(problem, part))
        ]
        self.y_std = data.y_std.to(torch.float64).contiguous()

    def params(self) -> dict[str, torch.Tensor]:
        """The members' current parameters in ``nn.Module`` layout: name -> ``(members, *shape)``."""
        out, offset, p = {}, 0, self.theta
        for layer, name in enumerate(self.names):
            k, n = self.net.dims[layer], self.net.dims[layer + 1]
            out[f"{name}.weight"] = p[:, offset : offset + k * n].reshape(-1, k, n).transpose(1, 2).contiguous()
            out[f"{name}.bias"] = p[:, offset + k * n : offset + k * n + n].clone()
            offset += k * n + n
        return out

    def _size_table(self, first_step: int, steps: int) -> None:
        """Every member's noise size at every site for steps ``first_step`` .. ``+ steps - 1`` (one step's
        worth when no schedule changes a size): ``NoiseSpec.std_at``'s float32 numbers, for mlp.c."""
        if not self.scheduled and self.sizes.size:
            return  # constant sizes: the one-step table already holds them
        steps = steps if self.scheduled else 1
        self.sizes = np.zeros(self.kinds.shape + (steps,), dtype=np.float32)
        for (k, site), spec in self.specs.items():
            self.sizes[k, site] = sizes(spec, first_step, steps, self.total_steps)
        self.noise.sizes, self.noise.steps, self.noise.first_step = _ptr(self.sizes), steps, first_step

    def train(self, epochs: int, first_step: int, perms: torch.Tensor | None, batch: int) -> None:
        n = self.x_train.shape[1]
        per_epoch = 1 if perms is None else -(-n // batch)
        self._size_table(first_step, epochs * per_epoch)
        code = _native.library().sweeper_mlp_train(
            ctypes.byref(self.net),
            ctypes.byref(self.noise),
            _ptr(self.theta),
            _ptr(self.m),
            _ptr(self.v),
            _ptr(self.x_train),
            _ptr(self.y_train),
            ctypes.c_int64(n),
            None if perms is None else _ptr(perms, ctypes.c_int64),
            ctypes.c_int64(batch),
            ctypes.c_int64(epochs),
            ctypes.c_int64(first_step),
            _ptr(self.bad_step, ctypes.c_int64),
        )
        if code != 0:
            raise MemoryError("the fused MLP engine could not allocate its working memory")

    def metrics(self) -> dict[str, torch.Tensor]:
        """The noise-free logged metrics of every member on every part of its data, computed in C:
        ``<part>_<name>`` -> ``(members,)`` float64, as ``sweeper.engine._shared.logged_metrics`` names them."""
        lib, column = _native.library(), {name: _number("metric", name) for name in _enums()["metric"]}
        logged = {}
        for part, x, y, names in self.parts:
            out = torch.empty(x.shape[0], len(column), dtype=torch.float64)
            code = lib.sweeper_mlp_metrics(
                ctypes.byref(self.net),
                _ptr(self.theta),
                _ptr(x),
                _ptr(y),
                ctypes.c_int64(x.shape[1]),
                _ptr(self.y_std, ctypes.c_double),
                _ptr(out, ctypes.c_double),
            )
            if code != 0:
                raise MemoryError("the fused MLP engine could not allocate its working memory")
            logged |= {f"{part}_{name}": out[:, column[name]] for name in names}
        return logged

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Noise-free outputs ``(members, rows, n_out)`` for inputs ``(members, rows, ...)``."""
        x = x.reshape(x.shape[0], x.shape[1], -1).contiguous()
        out = torch.empty(x.shape[0], x.shape[1], self.net.dims[self.net.layers])
        if (
            _native.library().sweeper_mlp_forward(
                ctypes.byref(self.net), _ptr(self.theta), _ptr(x), ctypes.c_int64(x.shape[1]), _ptr(out)
            )
            != 0
        ):
            raise MemoryError("the fused MLP engine could not allocate its working memory")
        return out


def train_fused(
    task: TaskSpec,
    members: Sequence[Member],
    on_epochs: Callable[[int], None] | None = None,
    stack: DenseStack | None = None,
) -> list[RunResult]:
    """Trains every member on the CPU with the fused engine; results and ``on_epochs`` as
    ``train_population`` gives and calls them. ``stack``: a user's model (``dense_stack``), each member
    starting from the parameters its factory draws from the member's init seed."""
    start = time.perf_counter()
    device = torch.device("cpu")
    data = pack_data(task, members, device)
    if stack is None:
        program = _Program(task, members, data)
    else:
        program = _Program(task, members, data, [stack.init(task, m.init_seed) for m in members], stack.activation)
    n = data.x_train.shape[1]
    minibatch = task.batch_size != "full" and task.batch_size < n
    batch = task.batch_size if minibatch else n
    per_epoch = -(-n // batch)
    shufflers = [shuffler(m.init_seed) for m in members]
    log_epochs, logs = [], []
    untrained = program.metrics()  # what training is judged against (failed to learn)
    epoch = 0
    # With scheduled noise, a call covers at most _SCHEDULED_STEPS steps (whole epochs): its size table
    # stays small however long the logging interval.
    most = max(1, _SCHEDULED_STEPS // per_epoch) if program.scheduled else task.epochs
    while epoch < task.epochs:
        span = min(task.log_every - epoch % task.log_every, task.epochs - epoch, most)
        perms = None
        if minibatch:  # each member's row order for each epoch of the span, its batches in a row
            perms = torch.stack(
                [torch.stack([torch.cat(batch_order(task, n, g)) for _ in range(span)]) for g in shufflers]
            )
        program.train(span, epoch * per_epoch, perms, batch)
        epoch += span
        if epoch % task.log_every == 0 or epoch == task.epochs:
            log_epochs.append(epoch)
            logs.append(_evaluate(program, data))
            if on_epochs is not None:
                on_epochs(len(members) * epoch)
    bad = torch.as_tensor(program.bad_step)
    diverged_epoch = torch.where(bad >= 0, bad // per_epoch + 1, -1)
    return results(
        task,
        log_epochs,
        logs,
        diverged_epoch,
        (time.perf_counter() - start) / len(members),
        device,
        "fused",
        data,
        untrained,
    )


def _evaluate(program: _Program, data: PackData) -> dict[str, torch.Tensor]:
    return program.metrics()
