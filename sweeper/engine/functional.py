"""A user's own PyTorch model trained as one population with ``torch.func``, or member by member.

The members' copies of the model (each built by the factory from its own init seed) are stacked with
``stack_module_state``; one forward pass runs them all with ``vmap(functional_call)``, and one summed
loss is backpropagated: no gradient crosses members, and Adam/SGD are elementwise, so each member gets
exactly its own update (as in the built-in families' stacked programs, ``train_stacked``).

Noise comes from each member's own stream (``sweeper.noise``), so a member's numbers do not depend on its
pack. Draws cannot be made inside ``vmap`` from those streams, so each step draws every site's noise
first, outside it, in the order the forward pass meets the sites (found once per batch shape by a
recording pass), and hooks on the site modules apply it inside; see ``sweeper.tasks.user_models`` for
the sites and the order. Stored weights stay clean: weight noise is applied to a copy handed to the
forward pass.

A flat ``nn.Sequential`` CNN (``sweeper.engine.grouped_sequential.takes``) runs without vmap and without
hooks: its layers are called for the whole pack as grouped convolutions in channels-last memory, and the
drawn site noise is applied between them (``_Sites.pack_site``); the same numbers to float rounding,
about half the CPU time of vmap's layout for a small CNN.

A model that cannot run under ``vmap`` (data-dependent control flow, buffers updated in place such as
BatchNorm's running statistics) or that draws from torch's global generator itself (``nn.Dropout``)
trains member by member instead, with ``train_member``: the reference loop, which gives the numbers of
the vectorized program to float rounding. That is said once per model, with its cost, on stderr (and by
``sweeper validate`` and ``run`` before training: ``member_by_member_note``).

A model that is a plain stack of dense layers (``nn.Sequential`` of ``nn.Linear`` and one activation
the fused C engine knows, ``sweeper.engine.fused.dense_stack``) trains on the fused engine instead, from
the same initial parameters, drawing the same Philox numbers at the same counters: the same numbers to
float rounding (where the draws differ, ``sweeper.engine.fused.stack_takes`` keeps a member here).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from sweeper.engine import fused as fused_engine
from sweeper.engine import grouped_sequential, losses
from sweeper.engine._memory import keep_freed_memory
from sweeper.engine._shared import (
    batch_order,
    logged_metrics,
    minibatches,
    optimizer,
    pack_data,
    results,
    shuffler,
    total_steps,
)
from sweeper.errors import TaskError
from sweeper.noise.pack import PackNoise
from sweeper.noise.streams import make_streams
from sweeper.records import Member, RunResult
from sweeper.tasks import user_models
from sweeper.tasks.spec import TaskSpec

#: Mixed into a member's init seed for the model's own random draws (its ``nn.Dropout``, say): one
#: stream per repeat, common to the configurations of a repeat like the initial weights.
_OWN_RANDOMNESS = 0x0DDBA11


class _Sites:
    """Noise at the activation sites of a user's model, through hooks on its site modules.

    ``mode``: None applies nothing (evaluation); ``live`` draws from ``noise`` at each call (one member,
    ordinary tensors); ``record`` notes each draw's placement and shape (inside ``vmap``: one member's);
    ``apply`` applies ``draws``, made beforehand in the recorded order.
    """

    def __init__(self, model: nn.Module, task: TaskSpec, noise: PackNoise, hooks: bool = True):
        """``hooks``: False where the caller applies the noise itself (``pack_site``)."""
        self.noise = noise
        self.placements = [p for p in ("pre_activation", "post_activation") if p in noise.sites]
        self.mode: str | None = None
        self.recorded: list[tuple[str, tuple[int, ...]]] = []
        self.draws: deque[tuple[torch.Tensor | None, torch.Tensor | None]] = deque()
        self.layout: list[tuple[bool, bool]] = []
        self.pairs: deque[tuple[torch.Tensor | None, torch.Tensor | None]] = deque()
        self.modules = [n for n, _ in user_models.site_modules(model, task.user_model)] if self.placements else []
        for _, module in user_models.site_modules(model, task.user_model) if self.placements and hooks else ():
            if "pre_activation" in self.placements:
                module.register_forward_pre_hook(self._pre)
            if "post_activation" in self.placements:
                module.register_forward_hook(self._post)

    def _site(self, placement: str, x: torch.Tensor) -> torch.Tensor:
        if self.mode is None or not isinstance(x, torch.Tensor):
            return x
        if self.mode == "record":
            self.recorded.append((placement, tuple(x.shape)))
            return x
        if self.mode == "live":
            add, mul = self.noise.factors(placement, (1, *x.shape), x.dtype, x.device)
            add, mul = (None if t is None else t[0] for t in (add, mul))
        else:
            add, mul = self.draws.popleft()
        if add is not None:
            x = x + add
        return x if mul is None else x * mul

    def _pre(self, module, args):
        return (self._site("pre_activation", args[0]), *args[1:]) if args else None

    def _post(self, module, args, out):
        return self._site("post_activation", out)

    def draw(self, members: int, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
        """Every recorded site's noise for the whole pack, ``(members, *shape)``, in the recorded order:
        the tensors only (vmap maps over tensors), their places kept for ``take``."""
        pairs = [self.noise.factors(p, (members, *shape), dtype, device) for p, shape in self.recorded]
        self.layout = [(add is not None, mul is not None) for add, mul in pairs]
        self.pairs = deque(pairs)
        return [t for pair in pairs for t in pair if t is not None]

    def pack_site(self, name: str, placement: str, h: torch.Tensor) -> torch.Tensor:
        """``sweeper.engine.grouped_sequential``'s site: the whole pack's ``h: (rows, members, ...)``,
        the noise ``draw`` made (members first) applied to it in the recorded order."""
        if self.mode is None:
            return h
        if self.mode == "record":
            self.recorded.append((placement, (h.shape[0], *h.shape[2:])))
            return h
        add, mul = self.pairs.popleft()
        if add is not None:
            h = h + add.transpose(0, 1)
        return h if mul is None else h * mul.transpose(0, 1)

    def take(self, drawn: list[torch.Tensor]) -> None:
        """Hands one member's share of ``draw``'s tensors (inside vmap) to the hooks."""
        if self.mode != "apply":
            return
        it = iter(drawn)
        self.draws = deque(
            (next(it) if has_add else None, next(it) if has_mul else None) for has_add, has_mul in self.layout
        )


def train_functional(
    task: TaskSpec,
    members: Sequence[Member],
    device: str | torch.device = "cpu",
    streams: str = "philox",
    on_epochs: Callable[[int], None] | None = None,
    fused: bool = True,
) -> list[RunResult]:
    """Trains a pack of a user's model: on the fused engine where it is a plain stack of dense layers
    (``fused``, ``sweeper.engine.fused.dense_stack``), else vectorized where the model allows, else
    member by member.

    On the fused engine go the members whose noise it draws as this engine does
    (``sweeper.engine.fused.stack_takes``), each from its factory's initial parameters: their numbers
    are this engine's to float rounding. The choice is made member by member on the member's own
    configuration, and a member left to torch.func trains in a pack of the whole pack's shape, so a
    member's numbers never depend on the other members' configurations (bit for bit).

    ``on_epochs`` is told the member-epochs trained so far (``sweeper.engine.population.OnEpochs``): at
    every logging interval, or, member by member, as each member ends."""
    device = torch.device(device)
    stack = fused_engine.dense_stack(task, device, streams) if fused else None
    if stack is not None:
        on_fused = [k for k, m in enumerate(members) if fused_engine.stack_takes(m.config)]
        others = [k for k in range(len(members)) if k not in set(on_fused)]
        trained: dict[int, RunResult] = {}
        if on_fused:
            fast = fused_engine.train_fused(task, [members[k] for k in on_fused], on_epochs, stack)
            trained |= dict(zip(on_fused, fast))
        if others:
            # The whole pack, as without the fused engine: vmap's sums round by the pack's shape, so a
            # pack of only these members would give them other float roundings, set by which of the
            # others the fused engine took (their configurations). The pack's other results are dropped.
            done, share = len(on_fused) * task.epochs, len(others)
            told = None if on_epochs is None else (lambda n: on_epochs(done + n * share // len(members)))
            rest = train_functional(task, members, device, streams, told, fused=False)
            trained |= {k: rest[k] for k in others}
        return [trained[k] for k in range(len(members))]
    why = _not_vectorizable(task, pack_data(task, members[:1], device).x_train[0, :2], device)
    if why is None:
        return _train_vectorized(task, members, device, streams, on_epochs)
    say_member_by_member(str(task.user_model), why, len(members))
    trained = []
    for m in members:
        trained.append(train_member(task, m, device, streams, engine="looped"))
        if on_epochs is not None:
            on_epochs(len(trained) * task.epochs)
    return trained


def _train_vectorized(
    task: TaskSpec, members: Sequence[Member], device: torch.device, streams: str, on_epochs
) -> list[RunResult]:
    if device.type == "cpu":
        keep_freed_memory()
    start = time.perf_counter()
    data = pack_data(task, members, device)
    models = [user_models.build(task, m.init_seed) for m in members]
    skeleton = models[0].to(device)  # functional_call swaps the members' tensors in
    params, buffers = stack_module_state(models)
    params = {k: v.to(device).detach().requires_grad_(v.requires_grad) for k, v in params.items()}
    buffers = {k: v.to(device) for k, v in buffers.items()}
    trained = [k for k, v in params.items() if v.requires_grad]
    weights = user_models.weight_names(skeleton)
    opt = optimizer(task, [params[k] for k in trained])
    n, p = data.x_train.shape[1], len(members)
    noise = PackNoise(
        [m.config for m in members],
        make_streams([m.noise_seed for m in members], device, streams),
        total_steps(task, n),
        data.feature_std(),
    )
    noise.check_targets(data.n_classes)
    grouped = grouped_sequential.takes(skeleton)
    sites = _Sites(skeleton, task, noise, hooks=not grouped)
    events: dict[tuple[int, ...], list] = {}  # one member's input shape -> the sites its forward pass meets

    def one(member_params, member_buffers, x, drawn):
        sites.take(drawn)
        return functional_call(skeleton, (member_params, member_buffers), (x,))

    at = {name: tuple(sites.placements) for name in sites.modules}

    # The member dimension goes in second, (rows, members, ...), so that vmap's convolution (a grouped
    # one over members x channels) reads its input and writes its output in place, where members first
    # costs a transposing copy around every convolution and pooling; the same values either way.
    by_row = vmap(one, in_dims=(0, 0, 1, 0), randomness="different")

    def forward(params, buffers, x, drawn):  # x: (members, rows, ...) -> (members, rows, n_out)
        if grouped:  # no buffers (takes); the drawn noise waits in sites.pairs
            return grouped_sequential.forward(skeleton, params, x, at, sites.pack_site)
        return by_row(params, buffers, x.transpose(0, 1).contiguous(), drawn)

    def clean(x):  # (members, rows, ...) -> (members, rows, n_out), no noise: evaluation
        skeleton.eval()
        return forward(params, buffers, x, [])

    shufflers = [shuffler(m.init_seed) for m in members]
    rows = torch.arange(p, device=device)[:, None]
    diverged_epoch = torch.full((p,), -1, dtype=torch.long, device=device)
    log_epochs, logs = [], []
    with torch.no_grad():
        untrained = logged_metrics(clean, data)
    step = 0
    for epoch in range(1, task.epochs + 1):
        for x, y in minibatches(task, data, shufflers, rows):
            skeleton.train()
            if sites.placements and x.shape[1:] not in events:
                sites.mode, sites.recorded = "record", []
                with torch.no_grad():
                    forward(params, buffers, x, [])
                events[x.shape[1:]] = sites.recorded
            noise.step = step
            y = noise.noisy_targets(y, data.n_classes)
            x = noise.perturb("input", x)
            noisy = dict(params)
            for k in weights:
                noisy[k] = noise.perturb("weights", params[k])
            draws = []
            if sites.placements:
                sites.recorded = events[x.shape[1:]]
                draws = sites.draw(p, x.dtype, device)
            sites.mode = "apply"
            out = forward(noisy, buffers, x, draws)  # (members, batch, n_out)
            sites.mode = None
            loss = losses.loss(out, y, data.n_classes)  # (members,)
            opt.zero_grad()  # backward writes fresh gradients: no zero-filling, no adding to zeros
            loss.sum().backward()
            noise.perturb_grads([params[k].grad for k in trained if params[k].grad is not None])  # unused: None
            opt.step()
            newly = ~torch.isfinite(loss) & (diverged_epoch < 0)
            diverged_epoch = torch.where(newly, epoch, diverged_epoch)
            step += 1
        if epoch % task.log_every == 0 or epoch == task.epochs:
            log_epochs.append(epoch)
            with torch.no_grad():
                logs.append(logged_metrics(clean, data))
            if on_epochs is not None:
                on_epochs(p * epoch)
    wall = (time.perf_counter() - start) / p
    return results(task, log_epochs, logs, diverged_epoch, wall, device, "functional", data, untrained)


def train_member(
    task: TaskSpec,
    member: Member,
    device: str | torch.device = "cpu",
    streams: str = "generator",
    engine: str = "reference",
) -> RunResult:
    """Trains one member of a user's model the ordinary PyTorch way: the reference loop.

    One model (its weights drawn from torch's generator seeded with the member's init seed), one
    optimizer, ``loss.backward()``; the noise from the member's own stream (``generator``: a
    ``torch.Generator``, as the built-in families' reference loop; ``philox``: the population's), drawn
    in the same order as the vectorized program. The model's own random draws, if any, come from torch's
    global generator seeded from the member's init seed (and it is restored afterwards).
    """
    device = torch.device(device)
    if device.type == "cpu":
        keep_freed_memory()
    start = time.perf_counter()
    data = pack_data(task, [member], device)
    x_train, y_train = data.x_train, data.y_train  # (1, n_train, ...): the member as a pack of one
    model = user_models.build(task, member.init_seed).to(device)
    trained = [k for k, v in model.named_parameters() if v.requires_grad]
    weights = user_models.weight_names(model)
    opt = optimizer(task, [p for p in model.parameters() if p.requires_grad])
    noise = PackNoise(
        [member.config],
        make_streams([member.noise_seed], device, streams),
        total_steps(task, x_train.shape[1]),
        data.feature_std(),
    )
    noise.check_targets(data.n_classes)
    sites = _Sites(model, task, noise)
    shuffle = shuffler(member.init_seed)
    diverged_epoch = torch.tensor([-1])
    log_epochs, logs = [], []

    def clean(x):
        model.eval()
        return model(x[0])[None]

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.default_generator.manual_seed(member.init_seed ^ _OWN_RANDOMNESS)
        if device.type == "cuda":
            torch.cuda.manual_seed(member.init_seed ^ _OWN_RANDOMNESS)
        with torch.no_grad():
            untrained = logged_metrics(clean, data)
        step = 0
        for epoch in range(1, task.epochs + 1):
            model.train()
            for idx in batch_order(task, x_train.shape[1], shuffle) or [None]:
                x, y = (x_train, y_train) if idx is None else (x_train[:, idx.to(device)], y_train[:, idx.to(device)])
                noise.step = step
                y = noise.noisy_targets(y, data.n_classes)
                x = noise.perturb("input", x)
                own = dict(model.named_parameters())
                noisy = {k: noise.perturb("weights", own[k][None])[0] for k in weights}
                sites.mode = "live"
                out = functional_call(model, noisy, (x[0],)) if noisy else model(x[0])
                sites.mode = None
                loss = losses.loss(out[None], y, data.n_classes)[0]
                opt.zero_grad()
                loss.backward()
                noise.perturb_grads([own[k].grad[None] for k in trained if own[k].grad is not None])
                opt.step()
                if not torch.isfinite(loss) and diverged_epoch[0] < 0:
                    diverged_epoch[0] = epoch
                step += 1
            if epoch % task.log_every == 0 or epoch == task.epochs:
                with torch.no_grad():
                    logs.append(logged_metrics(clean, data))
                log_epochs.append(epoch)
    return results(
        task, log_epochs, logs, diverged_epoch, time.perf_counter() - start, device, engine, data, untrained
    )[0]


def _not_vectorizable(task: TaskSpec, sample: torch.Tensor, device: torch.device) -> str | None:
    """Why a pack of this model cannot train as one vmapped program, or None when it can.

    One training-mode forward pass of a plain copy on ``sample: (rows, *input_shape)`` shows whether
    the model updates buffers in place or draws from torch's global generator; then one forward and
    backward pass of two copies under vmap shows whether torch.func takes the rest.
    """
    plain = user_models.build(task).to(device).train()
    before = {k: v.clone() for k, v in plain.named_buffers()}

    def states():
        return [torch.get_rng_state()] + ([torch.cuda.get_rng_state(device)] if device.type == "cuda" else [])

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        before_rng = states()
        with torch.no_grad():
            plain(sample)
        drew = not all(torch.equal(a, b) for a, b in zip(before_rng, states()))
    changed = [k for k, v in plain.named_buffers() if not torch.equal(v, before[k])]
    if changed:  # under vmap such updates are refused, or worse, lost
        return f"its forward pass updates buffers in place ({', '.join(changed)})"
    if drew:
        return "it draws random numbers of its own (nn.Dropout, say), which a pack could not keep apart"
    models = [user_models.build(task) for _ in range(2)]
    if type(models[0]) is not type(models[1]):  # stack_module_state refuses them
        return "its factory defines a new class on each call"
    skeleton = models[0].to(device).train()
    params, buffers = stack_module_state(models)
    params = {k: v.to(device).detach().requires_grad_(v.requires_grad) for k, v in params.items()}
    buffers = {k: v.to(device) for k, v in buffers.items()}
    try:
        both = sample.expand(2, *sample.shape)
        out = vmap(lambda p, b, x: functional_call(skeleton, (p, b), (x,)))(params, buffers, both)
        out.sum().backward()
    except (torch.OutOfMemoryError, MemoryError):
        raise  # memory, not vectorizing, is what failed: said as such, not as torch.func's refusal
    except Exception as exc:  # vmap's refusals are RuntimeErrors and ValueErrors of many kinds
        return f"torch.func cannot vectorize it ({type(exc).__name__}: {_first_line(exc)})"
    return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


#: The models whose member-by-member training this process has said (once per model).
_SAID: set[str] = set()


def member_by_member_line(model: str, why: str, members: int) -> str:
    """What is said of a model that trains member by member: why, and what it costs."""
    return (
        f"model {model}: {why}; its members train one after another (the same numbers), so a pack of "
        f"{members} takes about {members} times as long as a vectorized pack of {members} would"
    )


def say_member_by_member(model: str, why: str, members: int) -> None:
    """Says once per model and process, on stderr, that it trains member by member, and the cost."""
    if model in _SAID:
        return
    _SAID.add(model)
    print(f"sweeper: {member_by_member_line(model, why, members)}", file=sys.stderr, flush=True)


def member_by_member_note(task: TaskSpec, sample: torch.Tensor, members: int) -> str | None:
    """For ``sweeper validate`` and ``run``, before training: the line that says that the task's own model
    trains member by member (its pack of ``members``) and at what cost, or None when it trains as one
    vectorized program (or on the fused engine). Said here, it is not said again by the engine in this
    process. ``sample``: two training rows, ``(2, *input_shape)``."""
    if fused_engine.dense_stack(task, torch.device("cpu"), "philox") is not None:
        return None
    try:
        why = _not_vectorizable(task, sample, torch.device("cpu"))
    except (TaskError, torch.OutOfMemoryError, MemoryError):
        raise
    except Exception as exc:  # its forward pass in training mode (the checks ran it in evaluation mode)
        raise TaskError(
            f"model {task.user_model}: its forward pass in training mode on a batch of shape "
            f"{tuple(sample.shape)} raised {type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    if why is None:
        return None
    _SAID.add(str(task.user_model))
    return member_by_member_line(str(task.user_model), why, members)
