"""The W1 benchmark runs every trainer it names on the workload it names and reports their ratios."""

import json
from pathlib import Path

import pytest

from sweeper.engine.bench import W1, bench_own_space, bench_w1
from sweeper.noise.spec import NoiseSpec


@pytest.mark.parametrize(
    "noise, label",
    [(None, "pre_activation gaussian σ=0.1"), (NoiseSpec("weights", "uniform", 0.05), "weights uniform σ=0.05")],
)
def test_bench_times_the_reference_loop_and_both_engines_on_w1(noise, label):
    logged = []
    result = bench_w1("cpu", members=4, epochs=3, reference_runs=1, noise=noise, log=logged.append)
    assert (result["workload"], result["noise"], result["epochs"], result["members"]) == ("W1", label, 3, 4)
    assert result["engine"] == "fused"
    for name in ("reference", "population", "stacked"):
        assert result[f"{name}_runs_per_s"] > 0
    for name in ("population", "stacked"):
        ratio = result[f"{name}_runs_per_s"] / result["reference_runs_per_s"]
        assert result[f"{name}_speedup"] == pytest.approx(ratio, rel=0.01, abs=0.01)
    assert len(logged) == 3 and "fused engine" in logged[1] and "stacked engine" in logged[2]
    assert W1.hidden == (500,) and W1.epochs == 4000  # the workload itself is docs/design.md's W1


@pytest.mark.parametrize("own_engine, engine", [("auto", "fused"), ("stacked", "functional")])
def test_bench_times_w1s_network_as_a_users_own_model_population_against_its_reference_loop(own_engine, engine):
    logged = []
    result = bench_w1(
        "cpu",
        members=4,
        epochs=3,
        reference_runs=1,
        stacked=False,
        own_model=True,
        own_engine=own_engine,
        log=logged.append,
    )
    assert result["own_model_engine"] == engine  # a plain dense stack: the fused engine unless told torch.func
    assert result["own_model_reference_runs_per_s"] > 0 and result["own_model_population_runs_per_s"] > 0
    ratio = result["own_model_population_runs_per_s"] / result["own_model_reference_runs_per_s"]
    assert result["own_model_speedup"] == pytest.approx(ratio, rel=0.01, abs=0.01)
    share = result["own_model_population_runs_per_s"] / result["population_runs_per_s"]  # of the built-in's
    assert result["own_model_vs_population"] == pytest.approx(share, rel=0.01, abs=0.001)
    assert "own model (nn.Sequential factory): reference loop" in logged[-2] and f"{engine} engine" in logged[-1]


def test_bench_times_the_own_model_of_a_search_space_file():
    logged = []
    space = Path(__file__).parents[2] / "examples" / "digits_own_cnn.yaml"
    result = bench_own_space(str(space), members=3, epochs=2, reference_runs=1, log=logged.append)
    assert result["workload"] == f"{space} (models:cnn(channels=[4, 8]))"
    assert (result["noise"], result["epochs"], result["members"]) == ("input gaussian σ=0.05", 2, 3)
    assert result["engine"] == "functional" and result["population_runs_per_s"] > 0
    assert result["speedup"] == pytest.approx(
        result["population_runs_per_s"] / result["reference_runs_per_s"], rel=0.01, abs=0.01
    )
    assert "own model (models:cnn(channels=[4, 8])): reference loop, 1 run(s) of 2 epochs" in logged[0]


def test_bench_rounds_alternate_the_contenders_and_give_medians(sweeper_cli):
    space = Path(__file__).parents[2] / "examples" / "digits_own_cnn.yaml"
    args = ("bench", "--own-space", space, "--members", "2", "--epochs", "1", "--reference-runs", "1")
    result = sweeper_cli(*args, "--rounds", "3", "-f", "json")
    assert result.exit_code == 0, result.stderr
    figures = json.loads(result.stdout)
    low, high = figures["speedup_range"]
    assert figures["rounds"] == 3 and 0 < low <= figures["speedup"] <= high
    said = [line for line in result.stderr.splitlines() if line.startswith("own model")]
    assert [("reference loop" in line, f"round {k // 2 + 1} of 3" in line) for k, line in enumerate(said)] == [
        (k % 2 == 0, True) for k in range(6)
    ]


def test_bench_of_a_search_space_without_an_own_model_is_one_line_exit_2(sweeper_cli):
    space = Path(__file__).parents[2] / "search_spaces" / "seed_case_study.yaml"
    result = sweeper_cli("bench", "--own-space", space)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: --own-space: {space}: task 'circles' has no model factory (task.model: {{factory: ...}})\n"
    )
