"""A user's own PyTorch model: its factory imported, each member's copy built, its noise sites found.

``task.model: {factory: my_models:make_net, args: {width: 256}}`` names a callable
``make_net(input_shape, n_outputs, **args) -> nn.Module``. The module is imported from the Python path,
then the search-space file's folder when the driver knows it (``check_model``) and the current directory,
so that a user's file never replaces an installed module (one named so is refused); once imported it
stays in ``sys.modules``, so the engine finds it by name (on a Ray worker: shipped with the job,
``sweeper.driver.ray_executor``). A user's code is untrusted: importing it and building the model are
bounded in time (:data:`TIME_LIMIT_S`), its parameters are counted on the meta device before it is built,
and what defines it (:func:`source_sha256`) is stored with the sweep.

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

import hashlib
import importlib
import importlib.machinery
import sys
import threading
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
#: Seconds that importing a user's module, or building its model and running it on one batch, may take.
TIME_LIMIT_S = 120.0
#: What may define one model (:func:`source_files`): files, and bytes of Python source in all.
MAX_SOURCE_FILES = 1000
MAX_SOURCE_BYTES = 64 << 20
#: The placements that need a site in the model.
SITE_PLACEMENTS = ("pre_activation", "post_activation", "weights")


def _name(factory: ModelFactory) -> str:
    return f"model factory {factory.factory!r}"


def import_factory(
    factory: ModelFactory, folder: Path | None = None, stored_dir: str | None = None
) -> Callable[..., nn.Module]:
    """The factory callable; ``stored_dir`` (the folder a stored sweep found the module in, :func:`found_in`),
    ``folder`` (the search-space file's) and the current directory are searched, in this order, after the
    installed packages, so a user's file never replaces one of them. TaskError, one line, when it cannot be
    imported, would shadow an installed module, takes longer than :data:`TIME_LIMIT_S` to import, or is not
    callable."""
    module_name, attr = factory.factory.split(":")
    extra = list(dict.fromkeys(str(p) for p in (stored_dir, folder, Path.cwd()) if p is not None))
    _refuse_shadowing(factory, module_name, extra)
    if module_name not in sys.modules:
        # Only while importing: the module then stays in sys.modules, found by name from anywhere. At the
        # end of the path: what the user's module imports is the installed package, never a file of its folder.
        before = list(sys.path)
        sys.path[:] = before + [p for p in extra if p not in before]
        try:
            _limited(f"importing {module_name!r}", factory, importlib.import_module, module_name)
        except TaskError:
            raise
        except (Exception, SystemExit) as exc:  # ImportError, or whatever the module raises while imported
            hint = (
                f"; the sweep found it in {stored_dir} when it was stored: restore it there"
                if stored_dir is not None
                else ""
                if folder is not None
                else "; run from the folder of the search-space file, or add it to PYTHONPATH"
            )
            raise TaskError(
                f"{_name(factory)}: cannot import {module_name!r}: "
                f"{_raised(exc) if isinstance(exc, SystemExit) else f'{type(exc).__name__}: {_first_line(exc)}'}"
                f" (searched the Python path, then {', '.join(extra)}{hint})"
            ) from exc
        finally:
            sys.path[:] = before
    module = sys.modules[module_name]
    if getattr(getattr(module, "__spec__", None), "_initializing", False):
        # An import that timed out goes on in its thread: the module is there, half made.
        raise TaskError(_too_long(factory, f"importing {module_name!r}"))
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise TaskError(f"{_name(factory)}: module {module_name!r} ({module.__file__}) has no function {attr!r}")
    return fn


#: The modules of sweeper that hold model factories of its own (``sweeper bench`` trains W1's network as a
#: user's model); every other module of sweeper is refused as a factory's (importing it can have effects).
SHIPPED_FACTORY_MODULES = frozenset({"sweeper.engine.bench"})


def _refuse_shadowing(factory: ModelFactory, module_name: str, folders: list[str]) -> None:
    """A factory inside sweeper itself, or a module of the user's folders named as a module of the
    standard library or an installed package (``psycopg.py``), is refused: importing it would replace
    the real one for the rest of the process, or be the real one and not the user's file."""
    top = module_name.split(".")[0]
    if top == "sweeper" and module_name not in SHIPPED_FACTORY_MODULES:
        raise TaskError(
            f"{_name(factory)}: is inside sweeper itself; allowed: a module of your own"
            f" (or sweeper's own factories: {', '.join(sorted(SHIPPED_FACTORY_MODULES))})"
        )
    mine = [f for f in folders if (Path(f) / f"{top}.py").is_file() or (Path(f) / top / "__init__.py").is_file()]
    if not mine:
        return
    installed = top in sys.builtin_module_names or top in getattr(sys, "stdlib_module_names", ())
    if not installed:
        installed = importlib.machinery.PathFinder.find_spec(top, _installed_paths(stdlib=True)) is not None
    if installed:
        raise TaskError(
            f"{_name(factory)}: {top!r} in {mine[0]} has the name of an installed module, which it would "
            "replace; allowed: a module name of your own (rename the file)"
        )


def module_of(factory: ModelFactory) -> object:
    """The imported top-level module or package of the factory (what a Ray job ships)."""
    return sys.modules[factory.factory.split(":")[0].split(".")[0]]


def found_in(factory: ModelFactory) -> str | None:
    """The folder the factory's imported module was found in (the one on the Python path that holds its
    top-level module or package), absolute, so a later process finds it from any folder; None for an
    installed package or a module with no file."""
    top = module_of(factory)
    origin = getattr(top, "__file__", None)
    if origin is None or _installed_version(factory) is not None:
        return None
    where = Path(origin).resolve().parent
    return str(where.parent if hasattr(top, "__path__") else where)


def _installed_paths(stdlib: bool = False) -> list[str]:
    """The folders installed packages live in (site-packages; with ``stdlib``, the standard library's)."""
    import site
    import sysconfig

    keys = ("stdlib", "platstdlib", "purelib", "platlib") if stdlib else ("purelib", "platlib")
    paths = {sysconfig.get_paths()[k] for k in keys} | {*site.getsitepackages(), site.getusersitepackages()}
    return sorted(p for p in paths if p and Path(p).is_dir())


def _root(factory: ModelFactory) -> Path | None:
    """The folder whose Python files define the factory's model: its top-level package's, or the folder of
    its top-level module; None for a namespace package or a built-in module (nothing of the user's)."""
    top = module_of(factory)
    origin = getattr(top, "__file__", None)
    return None if origin is None else Path(origin).parent


def source_files(factory: ModelFactory, folder: Path | None = None, stored_dir: str | None = None) -> list[Path]:
    """The Python files that define the factory's model (imported first if it is not, as
    :func:`import_factory` with ``folder`` and ``stored_dir``): every ``.py`` file of its top-level package, or
    of the folder of its top-level module. What a sweep hashes: a change in any of them (the module or a
    helper it imports from its folder) is a change of model."""
    import_factory(factory, folder, stored_dir)
    where = _root(factory)
    if where is None:
        return []
    found = where.rglob("*.py") if hasattr(module_of(factory), "__path__") else where.glob("*.py")
    found = sorted(f for f in found if f.is_file())
    if len(found) > MAX_SOURCE_FILES:
        raise TaskError(
            f"{_name(factory)}: {where} holds {len(found):,} Python files, which would define the model; "
            f"allowed: at most {MAX_SOURCE_FILES:,} (keep the model's modules in a folder of their own)"
        )
    return found


def source_sha256(factory: ModelFactory, folder: Path | None = None, stored_dir: str | None = None) -> str:
    """The sha256 of what defines the factory's model: for a package installed in site-packages, its
    distributions' names and versions; else :func:`source_files`, their names and contents."""
    from sweeper.regular_files import read_regular

    digest = hashlib.sha256(factory.factory.encode())
    import_factory(factory, folder, stored_dir)
    installed = _installed_version(factory)
    if installed is not None:
        digest.update(f"\0installed\0{installed}".encode())
        return digest.hexdigest()
    files, base = source_files(factory, folder, stored_dir), _root(factory)
    total = 0
    for f in files:
        data = read_regular(f, MAX_SOURCE_BYTES - total, f"{_name(factory)}: {f}", TaskError, "Python file")
        total += len(data)
        digest.update(f"\0{f.relative_to(base)}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def _installed_version(factory: ModelFactory) -> str | None:
    """``name==version`` of the installed distributions that hold the factory's top-level module, when it
    lives in site-packages (an installed version's files do not change); None otherwise."""
    from importlib import metadata

    where = _root(factory)
    if where is None or not any(where.resolve().is_relative_to(Path(p).resolve()) for p in _installed_paths()):
        return None
    names = metadata.packages_distributions().get(module_of(factory).__name__)
    if not names:
        return None
    return ",".join(f"{n}=={metadata.version(n)}" for n in sorted(set(names)))


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
        except (Exception, SystemExit) as exc:  # sys.exit in a factory must not end sweeper quietly
            raise TaskError(f"{_name(factory)} {_raised(exc)}") from exc
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


def check_model(
    task: TaskSpec,
    folder: Path | None,
    sample: torch.Tensor,
    placements: Iterable[str],
    free_bytes: int | None = None,
    stored_dir: str | None = None,
) -> None:
    """Imports the factory (from ``folder`` after the installed packages), counts the model's parameters
    on the meta device (refused if they need more than ``free_bytes``, the memory free where it is
    built), builds it, runs one forward pass on ``sample: (batch, *input_shape)`` and checks its output
    and the sites ``placements`` need: TaskError, one line naming the factory and what went wrong.
    Building and the forward pass together get :data:`TIME_LIMIT_S`. ``stored_dir``: the folder a stored
    sweep found the module in, searched first (:func:`import_factory`)."""
    factory = task.user_model
    import_factory(factory, folder, stored_dir)
    if free_bytes is not None:
        _refuse_too_large(task, free_bytes)
    model, out = _limited("building the model and its forward pass on one batch", factory, _built_and_run, task, sample)
    want = (sample.shape[0], n_outputs(task))
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise TaskError(
            f"{_name(factory)}: the model maps a batch of shape {tuple(sample.shape)} to {got}; "
            f"allowed: {want} (batch, n_outputs: 1 for binary and regression, one per class)"
        )
    if not out.dtype.is_floating_point:
        raise TaskError(
            f"{_name(factory)}: the model's output is {str(out.dtype).removeprefix('torch.')}; "
            "allowed: floating-point numbers (float32), which a loss can differentiate"
        )
    check_sites(model, factory, placements)


def _built_and_run(task: TaskSpec, sample: torch.Tensor) -> tuple[nn.Module, object]:
    factory = task.user_model
    model = build(task, 0)
    if type(build(task, 0)) is not type(model):
        raise TaskError(
            f"{_name(factory)}: each call makes a new class ({type(model).__qualname__}, defined inside the "
            "function), so the members of a pack cannot be stacked; allowed: a class defined at module level"
        )
    model.eval()
    try:
        with torch.no_grad():
            return model, model(sample)
    except Exception as exc:
        raise TaskError(
            f"{_name(factory)}: the model's forward pass on a batch of shape {tuple(sample.shape)} "
            f"raised {type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def _refuse_too_large(task: TaskSpec, free: int) -> None:
    """TaskError when the model's parameters alone (counted on the meta device, where nothing is
    allocated) would not fit in ``free`` bytes, the memory free on the CPU it is built on. A factory
    that cannot build on the meta device is left to the real build."""
    factory = task.user_model
    fn = import_factory(factory)

    def count() -> int:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            model = fn(input_shape(task), n_outputs(task), **factory.args)
        return sum(p.numel() * p.element_size() for p in model.parameters()) if isinstance(model, nn.Module) else 0

    try:
        need = _limited("building the model on the meta device", factory, count)
    except TaskError:
        raise
    except (Exception, SystemExit):
        return
    if need > free:
        raise TaskError(
            f"{_name(factory)}: the model's parameters alone need {need / 1e9:.1f} GB but {free / 1e9:.1f} GB are free "
            "on the CPU it is built on; allowed: a model that fits (fewer or narrower layers)"
        )


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


def _limited(what: str, factory: ModelFactory, fn: Callable, *args):
    """``fn(*args)`` in a thread of its own, given :data:`TIME_LIMIT_S`: TaskError naming ``what`` if it
    takes longer (the thread is left to itself: a daemon, it does not keep the process alive)."""
    outcome: list = []

    def target():
        try:
            outcome.append((True, fn(*args)))
        except BaseException as exc:  # SystemExit too: it is the caller's to turn into one line
            outcome.append((False, exc))

    thread = threading.Thread(target=target, name=f"sweeper: {what}", daemon=True)
    thread.start()
    thread.join(TIME_LIMIT_S)
    if not outcome:
        raise TaskError(_too_long(factory, what))
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _too_long(factory: ModelFactory, what: str) -> str:
    return (
        f"{_name(factory)}: {what} took longer than {TIME_LIMIT_S:g} s; allowed: a module and model "
        "that import, build and run one batch within that time"
    )


def _raised(exc: BaseException) -> str:
    """``raised ValueError: its first line``, or ``called sys.exit(0)``: what a user's code did."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r}); a factory returns a model, it does not end the process"
    return f"raised {type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else ""
