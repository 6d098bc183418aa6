"""The C kernels (sweeper/_native.py): the same bits on every CPU variant, accurate, and a plain fallback.

The variant test builds the library twice, without and with AVX2/FMA (``SWEEPER_CPU_VARIANT``), and
runs the same draws and the same trainings in a process per variant: noise of every kind, every
placement (constant and annealed), every activation, loss and optimizer of the fused engine, with
NaN among the inputs. Initial parameters, parameters after training, noise and the logged metrics
(computed in C) must be equal bit for bit. The metrics are also checked against a float64 reference
and torch's, and the initial weights against their distribution.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import special, stats
from sklearn.metrics import r2_score

from sweeper import _native, metrics, seeding
from sweeper.engine import fused, losses
from sweeper.engine._shared import data_parts, member_params, pack_data
from sweeper.errors import ExecutorError
from sweeper.noise import philox
from sweeper.noise.philox import PhiloxStreams, philox_words
from sweeper.records import Member
from sweeper.tasks.data import input_shape, n_outputs
from sweeper.tasks.families import family
from sweeper.tasks.spec import TaskSpec

REPO = Path(__file__).resolve().parents[1]

# Run in a process per variant: draws every kernel entry point, trains every kind of task with noise
# of every kind at every placement, and saves every number (parameters after each logging interval,
# logged metrics, draws) to argv[1].
VARIANT_RUN = r"""
import sys

import numpy as np
import torch

from sweeper import _native, seeding
from sweeper.engine import fused
from sweeper.engine.population import train_population
from sweeper.records import Member
from sweeper.noise.philox import PhiloxStreams
from sweeper.noise.spec import NoiseSpec, make_config
from sweeper.tasks.spec import OptimizerSpec, TaskSpec

torch.set_num_threads(1)
assert _native.library() is not None
out = {"variant": _native.cpu_variant()}

seeds, scales = [0, 1, 99, 2**63 - 1, 2**62 + 12345], [1.0, 0.5, 2.0, 0.1, 1.0]
streams = PhiloxStreams(seeds, threads=1)
for n in (1, 3, 4, 5, 2049, 70_001):
    out[f"normal {n}"] = streams.normal_(torch.zeros(5, n), scales)
    out[f"uniform {n}"] = streams.uniform_(torch.zeros(5, n), scales)
    x = torch.randn(5, n, generator=torch.Generator().manual_seed(n))
    x[:, ::7] = float("nan")
    for relu in (False, True):
        out[f"add_normal {n} relu={relu}"] = streams.add_normal(x, scales, relu)
    out[f"rand {n}"] = streams.rand(2, (n,))

def spec(placement, kind="gaussian", std=0.3, schedule="constant"):
    return NoiseSpec(placement, kind, std, schedule)

configs = [()] + [make_config([spec(p, k)]) for p in ("input", "pre_activation", "post_activation", "weights",
                                                      "gradients") for k in ("gaussian", "multiplicative", "uniform")]
configs += [make_config([spec("input", "uniform", 0.1, "annealed"), spec("pre_activation", "gaussian", 0.3, "annealed"),
                         spec("post_activation", "multiplicative", 0.1), spec("weights", "gaussian", 0.1, "annealed"),
                         spec("gradients", "multiplicative", 0.2, "annealed")])]
classification = [make_config([spec("targets", "flip", 0.2)]), make_config([spec("targets", "flip", 0.3, "annealed")])]
regression = [make_config([spec("targets", k)]) for k in ("gaussian", "multiplicative", "uniform")]
regression += [make_config([spec("targets", "gaussian", 0.3, "annealed")])]
tasks = {
    "relu_adam_binary": TaskSpec(dataset="circles", dataset_seed=1, scaling="none", hidden=(64,), init="keras",
                                 epochs=30, log_every=10),
    "tanh_two_layers": TaskSpec(dataset="moons", hidden=(16, 12), activation="tanh", epochs=20, log_every=10),
    "sigmoid": TaskSpec(dataset="moons", hidden=(16,), activation="sigmoid", epochs=20, log_every=10),
    "minibatch_sgd_decay": TaskSpec(dataset="circles", hidden=(16, 8), epochs=6, log_every=3, batch_size=8,
                                    optimizer=OptimizerSpec(name="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3)),
    "minibatch_multiclass": TaskSpec(dataset="iris", hidden=(16,), epochs=6, log_every=3, batch_size=8,
                                     optimizer=OptimizerSpec(weight_decay=1e-2)),
    "regression": TaskSpec(dataset="friedman1", hidden=(32,), epochs=20, log_every=10),
}
thetas = []
evaluate = fused._evaluate
fused._evaluate = lambda program, data: (thetas.append(program.theta.clone()), evaluate(program, data))[1]
for name, task in tasks.items():
    targets = regression if task.problem == "regression" else classification
    members = [Member(c, r % 2, seeding.data_seed(0, r % 2), seeding.init_seed(0, r % 2),
                      seeding.noise_seed(0, r % 2, c)) for r, c in enumerate(configs + targets)]
    assert fused.task_fits(task, torch.device("cpu"))
    thetas.clear()
    data = fused.pack_data(task, members, torch.device("cpu"))
    out[f"{name} initial parameters"] = fused._Program(task, members, data).theta
    results = train_population(task, members)
    out[f"{name} parameters"] = torch.stack(thetas)
    for metric in results[0].curves:
        out[f"{name} {metric}"] = torch.from_numpy(np.stack([r.curves[metric] for r in results]))
torch.save(out, sys.argv[1])
"""


def _run_variant(variant: str, tmp_path: Path) -> dict:
    saved = tmp_path / f"{variant}.pt"
    env = {
        **os.environ,
        "SWEEPER_CPU_VARIANT": variant,
        "SWEEPER_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", VARIANT_RUN, str(saved)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == "", done.stderr  # the library was built and loaded: no fallback notice
    return torch.load(saved)


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The bit patterns (NaN equals NaN of the same bits; -0.0 differs from 0.0)."""
    return t.contiguous().view(torch.int32 if t.element_size() == 4 else torch.int64)


@pytest.mark.slow
@pytest.mark.skipif(
    not (_native._x86() and _native._cpu_has_avx2()),
    reason="this CPU has no AVX2 and FMA: only the generic variant runs here",
)
def test_generic_and_avx2_builds_give_bit_identical_noise_and_training(tmp_path):
    generic, avx2 = _run_variant("generic", tmp_path), _run_variant("avx2", tmp_path)
    assert (generic.pop("variant"), avx2.pop("variant")) == ("generic", "avx2")
    assert sorted(p.name.split("-")[1] for p in (tmp_path / "cache").glob("sweeper-*.so")) == ["avx2", "generic"]
    assert generic.keys() == avx2.keys()
    for name in generic:
        assert torch.equal(_bits(generic[name]), _bits(avx2[name])), f"{name} differs between the variants"
    # Real numbers were compared: noise drawn, NaN carried, and training moved the parameters.
    assert generic["normal 70001"].std().item() == pytest.approx(1.0, rel=0.5)
    assert generic["add_normal 2049 relu=True"].isnan().any()
    params = generic["tanh_two_layers parameters"]
    assert not torch.equal(params[0], params[-1])
    assert not torch.equal(generic["tanh_two_layers initial parameters"], params[0])
    assert generic["regression test_r2"].isfinite().all() and generic["sigmoid test_ece"].gt(0).all()


def test_kernel_normals_are_the_box_muller_transform_of_their_uniforms_to_4_ulp():
    """portable_math.h is accurate, not only reproducible: the kernel's normals against Box-Muller in
    float64 from the same Philox words (taken from the torch implementation, exact in integers)."""
    if _native.library() is None:
        pytest.skip("the C kernels cannot be built here")
    seeds, n = [0, 1, 99, 2**63 - 1], 1 << 18
    z = PhiloxStreams(seeds, threads=1).normal_(torch.zeros(len(seeds), n), [1.0] * len(seeds)).double()
    keys = torch.tensor([s - (1 << 64) if s >= 1 << 63 else s for s in seeds])
    words = philox_words(keys, torch.zeros(len(seeds), dtype=torch.int64), n // 4)
    u = ((words >> 8).float() + 0.5).mul(1.0 / 16777216.0).double()  # the kernel's uniforms, float32 as it makes them
    r, t = torch.sqrt(-2.0 * torch.log(u[..., 0::2])), 2.0 * math.pi * u[..., 1::2]
    exact = torch.stack(
        [
            r[..., 0] * torch.cos(t[..., 0]),
            r[..., 0] * torch.sin(t[..., 0]),
            r[..., 1] * torch.cos(t[..., 1]),
            r[..., 1] * torch.sin(t[..., 1]),
        ],
        -1,
    ).reshape(len(seeds), n)
    ulps = (z - exact).abs() / torch.from_numpy(np.spacing(exact.abs().float().numpy())).double()
    assert ulps.max().item() <= 4.0
    assert ulps.mean().item() < 1.0


def test_a_variant_this_cpu_cannot_run_is_refused_in_one_line(monkeypatch):
    monkeypatch.setenv("SWEEPER_CPU_VARIANT", "avx512")
    with pytest.raises(
        ExecutorError,
        match=r"^SWEEPER_CPU_VARIANT='avx512' is not a variant; allowed: auto, "
        r"generic, avx2$",
    ):
        _native.cpu_variant()
    monkeypatch.setenv("SWEEPER_CPU_VARIANT", "generic")
    assert _native.cpu_variant() == "generic"
    monkeypatch.setattr(_native, "_cpu_has_avx2", lambda: False)
    monkeypatch.setenv("SWEEPER_CPU_VARIANT", "avx2")
    with pytest.raises(ExecutorError, match="this CPU has no AVX2 and FMA; allowed here: auto, generic$"):
        _native.cpu_variant()
    monkeypatch.setenv("SWEEPER_CPU_VARIANT", "")
    assert _native.cpu_variant() == "generic"


def test_a_bad_cpu_variant_stops_a_command_with_one_line_and_status_2(tmp_path):
    env = {
        **os.environ,
        "SWEEPER_CPU_VARIANT": "avx512",
        "SWEEPER_CACHE": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "sweeper.cli", "bench", "--epochs", "2", "--members", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "error: SWEEPER_CPU_VARIANT='avx512' is not a variant; allowed: auto, generic, avx2\n"


def test_each_variant_has_its_own_cached_library(monkeypatch, tmp_path):
    monkeypatch.setenv("SWEEPER_CACHE", str(tmp_path))
    generic, avx2 = _native.library_path("generic"), _native.library_path("avx2")
    assert generic.parent == avx2.parent == tmp_path
    assert generic.name.startswith("sweeper-generic-") and avx2.name.startswith("sweeper-avx2-")


def test_missing_sources_fall_back_to_torch_with_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SWEEPER_CACHE", str(tmp_path))
    monkeypatch.setattr(_native, "SOURCES", (tmp_path / "philox.c",) + _native.SOURCES[1:])
    assert _native.library.__wrapped__() is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(
        f"sweeper: cannot build the C kernels: the package holds no C sources "
        f"({tmp_path / 'philox.c'} is missing); training runs on torch code, about "
    )
    assert "reinstall sweeper from a wheel or sdist that holds sweeper/noise/_c" in err
    assert list(tmp_path.iterdir()) == []


#: What the library may import: OpenMP, memory, and the C runtime's bookkeeping. No libm function:
#: glibc picks an FMA or a plain variant of expf, logf, sinf, pow, ... by the CPU it runs on.
RUNTIME_IMPORTS = (
    "GOMP_",
    "omp_",
    "malloc",
    "free",
    "memcpy",
    "memmove",
    "memset",
    "__cxa_finalize",
    "__gmon_start__",
    "_ITM_",
    "__stack_chk_fail",
)


def test_the_library_imports_no_math_function_whose_bits_depend_on_the_cpu():
    if _native.library() is None:
        pytest.skip("the C kernels cannot be built here")
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed")
    listing = subprocess.run(
        [nm, "-D", "--undefined-only", str(_native.library_path(_native.cpu_variant()))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    imported = {line.split()[-1].split("@")[0] for line in listing.splitlines() if line.strip()}
    assert "GOMP_parallel" in imported  # the listing is real: the library runs on (torch's) OpenMP
    assert {name for name in imported if not name.startswith(RUNTIME_IMPORTS)} == set()


# --- the logged metrics, computed in C ----------------------------------------------------------------

METRIC_TASKS = {
    "binary": TaskSpec(dataset="moons", hidden=(16,), activation="tanh", n_val=20),
    "multiclass": TaskSpec(dataset="digits", hidden=(12, 8), n_val=0.2),
    "regression": TaskSpec(dataset="friedman1", scaling="none", hidden=(16,), n_val=20),
}


def _program(task: TaskSpec, members: int = 3):
    """A fused program of ``members`` members of repeats 0, 1, ..., each with its own data and weights,
    its parameters spread wide (so the outputs fill every confidence bin), and its data."""
    pack = [Member((), r, seeding.data_seed(5, r), seeding.init_seed(5, r), 0) for r in range(members)]
    data = pack_data(task, pack, torch.device("cpu"))
    program = fused._Program(task, pack, data)
    program.theta.mul_(3.0)
    return program, data


def _reference(out: np.ndarray, y: np.ndarray, n_classes: int, y_std: float) -> dict[str, float]:
    """The metrics of one member's outputs ``(rows, n_out)`` in float64 numpy, written from their definitions."""
    if n_classes == 0:
        o, sse = out[:, 0], ((out[:, 0] - y) ** 2).sum()
        return {"loss": sse / len(y), "mse": sse / len(y) * y_std**2, "r2": r2_score(y, o)}
    if n_classes == 2:
        x = out[:, 0]
        loss = np.logaddexp(0.0, x) - x * y
        p = 1.0 / (1.0 + np.exp(-x))
        confidence, predicted = np.maximum(p, 1.0 - p), (x > 0).astype(float)
    else:
        lse = special.logsumexp(out, axis=1)
        loss = lse - out[np.arange(len(y)), y.astype(int)]
        confidence, predicted = np.exp(out.max(1) - lse), out.argmax(1)
    correct = (predicted == y).astype(float)
    bins = np.clip(np.ceil(confidence * 15) - 1, 0, 14).astype(int)
    gaps = np.bincount(bins, weights=correct - confidence, minlength=15)
    return {"loss": loss.mean(), "accuracy": correct.mean(), "ece": np.abs(gaps).sum() / len(y)}


def _skip_without_kernels():
    if _native.library() is None:
        pytest.skip("the C kernels cannot be built here")


@pytest.mark.parametrize("problem", list(METRIC_TASKS))
def test_c_metrics_equal_a_float64_reference_and_torchs_metrics(problem):
    _skip_without_kernels()
    program, data = _program(METRIC_TASKS[problem])
    logged = program.metrics()
    parts = data_parts(data)
    assert [p for p, _, _ in parts] == ["train", "val", "test"]
    assert sorted(logged) == sorted(f"{p}_{n}" for p, _, _ in parts for n in metrics.logged(problem, p))
    for part, x, y in parts:
        out = program.forward(x)  # the same C forward pass the metrics run
        ours = losses.metrics(out, y, data.n_classes, data.y_std, part)  # torch code, in float64 too
        for k in range(out.shape[0]):
            exact = _reference(out[k].double().numpy(), y[k].double().numpy(), data.n_classes, float(data.y_std[k]))
            for name in metrics.logged(problem, part):
                got = logged[f"{part}_{name}"][k].item()
                assert got == pytest.approx(exact[name], rel=1e-12, abs=1e-14), (part, name, k)
                assert got == pytest.approx(ours[name][k].item(), rel=1e-12, abs=1e-14), (part, name, k)
    if problem != "regression":  # real numbers: wrong and calibrated-off predictions among them
        assert logged["test_accuracy"].min() > 0 and logged["test_accuracy"].max() < 1
        assert logged["test_ece"].min() > 0.01


def test_c_metrics_do_not_depend_on_the_thread_count():
    _skip_without_kernels()
    program, _ = _program(METRIC_TASKS["multiclass"], members=5)
    threads = torch.get_num_threads()
    try:
        runs = []
        for n in (1, 2, 3):
            program.net.threads = n
            runs.append(program.metrics())
    finally:
        torch.set_num_threads(threads)
    for other in runs[1:]:
        assert all(torch.equal(_bits(runs[0][name]), _bits(other[name])) for name in runs[0])


def test_a_non_finite_output_gives_a_non_finite_loss():
    _skip_without_kernels()
    for problem in METRIC_TASKS:
        program, _ = _program(METRIC_TASKS[problem], members=2)
        program.theta[1, -1] = float("nan")  # the output bias of member 1
        logged = program.metrics()
        assert math.isnan(logged["test_loss"][1]) and math.isfinite(logged["test_loss"][0])


# --- initial weights from the Philox stream --------------------------------------------------------------


def test_initial_weights_follow_pytorchs_default_and_glorots_distribution():
    task = TaskSpec(dataset="digits", hidden=(200,), init="torch")
    shape, n_out = input_shape(task), n_outputs(task)
    params = family(task).code.init_params(task, shape, n_out, 11)
    w, b = params["dense0.weight"].double().numpy().ravel(), params["dense0.bias"].double().numpy()
    bound = 1.0 / math.sqrt(64)  # PyTorch's nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the bias alike
    assert stats.kstest(w, stats.uniform(-bound, 2 * bound).cdf).pvalue > 0.01
    assert stats.kstest(b, stats.uniform(-bound, 2 * bound).cdf).pvalue > 0.01
    assert np.abs(w).max() < bound and np.abs(w).max() > 0.999 * bound
    keras = family(task).code.init_params(task.model_copy(update={"init": "keras"}), shape, n_out, 11)
    glorot = math.sqrt(6.0 / (64 + 200))
    assert (
        stats.kstest(keras["dense0.weight"].double().numpy().ravel(), stats.uniform(-glorot, 2 * glorot).cdf).pvalue
        > 0.01
    )
    assert torch.count_nonzero(keras["dense0.bias"]) == 0
    # A family's weights of a convolution: fan_in is channels x kernel area.
    cnn = TaskSpec(dataset="digits", model="cnn", channels=(16,), hidden=(4,), init="torch")
    conv = family(cnn).code.init_params(cnn, input_shape(cnn), n_outputs(cnn), 3)["conv0.weight"]
    assert conv.abs().max() < 1.0 / 3.0 and conv.abs().max() > 0.99 / 3.0


def test_initial_weights_are_the_same_bits_from_the_c_kernel_and_torch_code_and_in_every_member(monkeypatch):
    _skip_without_kernels()
    task = TaskSpec(dataset="moons", hidden=(16, 8), init="torch")
    seeds = [seeding.init_seed(0, r) for r in range(3)]
    kernel = [member_params(task, s) for s in seeds]
    monkeypatch.setattr(philox, "kernel", lambda: None)
    torch_code = [member_params(task, s) for s in seeds]
    for a, b in zip(kernel, torch_code):
        assert all(torch.equal(_bits(a[n]), _bits(b[n])) for n in a)
    assert not torch.equal(kernel[0]["dense0.weight"], kernel[1]["dense0.weight"])
    # The first weight is value 0 of the stream keyed by the init seed: (2u - 1) / sqrt(fan_in).
    u = PhiloxStreams([seeds[0]]).rand(0, (1,))
    bound = np.float32(1 / math.sqrt(input_shape(task)[0]))
    assert kernel[0]["dense0.weight"][0, 0].item() == np.float32(np.float32(2 * u.item() - 1) * bound)
