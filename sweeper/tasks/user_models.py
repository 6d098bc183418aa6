"""A user's own PyTorch model: its factory imported, each member's copy built, its noise sites found.

``task.model: {factory: my_models:make_net, args: {width: 256}}`` names a callable
``make_net(input_shape, n_outputs, **args) -> nn.Module``. The module is imported from the search-space
file's folder when the driver knows it (``check_model``), else from the Python path or the current
directory; once imported it stays in ``sys.modules``, so the engine finds it by name (on a Ray worker:
shipped with the job, ``sweeper.driver.ray_executor``).

Noise sites of a user model, the built-in families' rules carried over:

* ``weights``: every parameter of two or more dimensions (weight matrices and kernels); biases and
  the one-dimensional scales of normalization layers are not weights, as the built-ins' biases are not.
* ``pre_activation`` / ``post_activation``: the input / output of every activation module (``nn.ReLU``,
  ``nn.Tanh``, ``nn.GELU``, ...), or of the modules ``sites`` names; a module called twice in one
  forward pass is two sites.
* ``input``, ``gradients`` (every parameter) and ``targets`` need no site.

A member's draws happen in one fixed order per step: targets, input, the weights in parameter order,
then the sites in the order the forward pass meets them (each call: pre-, then post-activation), then
the gradients in parameter order.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

from sweeper.errors import TaskError
from sweeper.tasks.data import input_shape, n_outputs
from sweeper.tasks.spec import ModelFactory, TaskSpec

#: Activation modules whose input and output are the pre- and post-activation sites by default.
ACTIVATION_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softplus,
    nn.Softsign,
    nn.Tanhshrink,
    nn.LogSigmoid,
)
#: The placements that need a site in the model.
SITE_PLACEMENTS = ("pre_activation", "post_activation", "weights")


def _name(factory: ModelFactory) -> str:
    return f"model factory {factory.factory!r}"


def import_factory(factory: ModelFactory, folder: Path | None = None) -> Callable[..., nn.Module]:
    """The factory callable; ``folder`` (the search-space file's) is searched first, then the Python path
    and the current directory. TaskError, one line, when it cannot be imported or is not callable."""
    module_name, attr = factory.factory.split(":")
    extra = [str(p) for p in (folder, Path.cwd()) if p is not None]
    # Only while importing: the module then stays in sys.modules, found by name from anywhere.
    before = list(sys.path)
    sys.path[:0] = [p for p in extra if p not in sys.path]
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raises while it is imported
        hint = "" if folder is not None else "; run from the folder of the search-space file, or add it to PYTHONPATH"
        raise TaskError(
            f"{_name(factory)}: cannot import {module_name!r}: {type(exc).__name__}: {_first_line(exc)}"
            f" (searched {', '.join(extra)} and the Python path{hint})"
        ) from exc
    finally:
        sys.path[:] = before
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise TaskError(f"{_name(factory)}: module {module_name!r} ({module.__file__}) has no function {attr!r}")
    return fn


def module_of(factory: ModelFactory) -> object:
    """The imported top-level module or package of the factory (what a Ray job ships)."""
    return sys.modules[factory.factory.split(":")[0].split(".")[0]]


def build(task: TaskSpec, init_seed: int | None = None) -> nn.Module:
    """The task's user model, its parameters drawn by the factory from torch's global generator seeded
    with ``init_seed`` (the member's initial weights); the global generator is left as it was.

    Built on the CPU, so every device starts from the same numbers.
    """
    factory = task.user_model
    fn = import_factory(factory)
    with torch.random.fork_rng(devices=[]):
        if init_seed is not None:
            # The CPU generator only (what fork_rng restores); torch.manual_seed would seed every device's.
            torch.default_generator.manual_seed(init_seed)
        try:
            model = fn(input_shape(task), n_outputs(task), **factory.args)
        except Exception as exc:
            raise TaskError(f"{_name(factory)} raised {type(exc).__name__}: {_first_line(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise TaskError(f"{_name(factory)} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def weight_names(model: nn.Module) -> list[str]:
    """The parameters that weight noise perturbs: two or more dimensions, in parameter order."""
    return [name for name, p in model.named_parameters() if p.dim() >= 2]


def site_modules(model: nn.Module, factory: ModelFactory) -> list[tuple[str, nn.Module]]:
    """The modules whose input and output are the activation sites: ``sites`` by name, else every
    activation module. TaskError, naming the model's modules, for a name it does not have."""
    named = dict(model.named_modules())
    if factory.sites:
        missing = [s for s in factory.sites if s not in named or s == ""]
        if missing:
            raise TaskError(
                f"{_name(factory)}: sites {missing} name no module of the model; its modules: {describe_modules(model)}"
            )
        return [(s, named[s]) for s in factory.sites]
    return [(n, m) for n, m in named.items() if isinstance(m, ACTIVATION_MODULES)]


def describe_modules(model: nn.Module) -> str:
    """``encoder (Sequential), encoder.0 (Linear), ...``: the names ``sites`` may give."""
    return ", ".join(f"{n} ({type(m).__name__})" for n, m in model.named_modules() if n) or (
        f"none but the {type(model).__name__} itself"
    )


def check_sites(model: nn.Module, factory: ModelFactory, placements: Iterable[str]) -> None:
    """TaskError, one line naming the model and its modules, when a placement finds no site in it."""
    for placement in placements:
        if placement == "weights":
            found = bool(weight_names(model))
            what = "no parameter of two or more dimensions (a weight matrix or kernel)"
        elif placement in ("pre_activation", "post_activation"):
            found = bool(site_modules(model, factory))
            what = "no activation module (nn.ReLU, nn.Tanh, nn.GELU, ...); name the modules in task.model.sites"
        else:
            continue
        if not found:
            raise TaskError(
                f"placement {placement!r} finds no site in {_name(factory)}: the model has {what}; "
                f"its modules: {describe_modules(model)}"
            )


def check_model(task: TaskSpec, folder: Path | None, sample: torch.Tensor, placements: Iterable[str]) -> None:
    """Imports the factory (from ``folder`` first), builds the model, runs one forward pass on
    ``sample: (batch, *input_shape)`` and checks its output and the sites ``placements`` need:
    TaskError, one line naming the factory and what went wrong."""
    factory = task.user_model
    import_factory(factory, folder)
    model = build(task, 0)
    model.eval()
    try:
        with torch.no_grad():
            out = model(sample)
    except Exception as exc:
        raise TaskError(
            f"{_name(factory)}: the model's forward pass on a batch of shape {tuple(sample.shape)} "
            f"raised {type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    want = (sample.shape[0], n_outputs(task))
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise TaskError(
            f"{_name(factory)}: the model maps a batch of shape {tuple(sample.shape)} to {got}; "
            f"allowed: {want} (batch, n_outputs: 1 for binary and regression, one per class)"
        )
    check_sites(model, factory, placements)


def size(task: TaskSpec) -> tuple[int, int]:
    """(parameters, activation floats per sample) of the task's user model: what one member's memory
    grows with; the activations are every submodule's outputs on one sample."""
    model = build(task)
    width = [0]

    def count(module, args, out):
        if isinstance(out, torch.Tensor):
            width[0] += out[0].numel()

    hooks = [m.register_forward_hook(count) for n, m in model.named_modules() if n]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(2, *input_shape(task)))
    finally:
        for h in hooks:
            h.remove()
    return sum(p.numel() for p in model.parameters()), width[0]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""
