"""Every result says which engine trained it and on what: versions, device, CPU or GPU, host."""

import socket
from importlib import metadata

import pytest
import torch

from sweeper import seeding
from sweeper.engine import fused
from sweeper.engine.machine import Machine, cpu_name, this_machine
from sweeper.engine.population import train_population
from sweeper.engine.reference import train_reference
from sweeper.noise.spec import NoiseSpec, make_config
from sweeper.records import Member, describe
from sweeper.tasks.spec import TaskSpec

MLP = TaskSpec(dataset="circles", hidden=(8,), epochs=4, log_every=2)
CNN = TaskSpec(dataset="digits", model="cnn", channels=(2,), hidden=(4,), epochs=1, log_every=1)


def members(n: int = 2) -> list[Member]:
    config = make_config([NoiseSpec("input", "gaussian", 0.1)])
    return [
        Member(config, r, seeding.data_seed(3, r), seeding.init_seed(3, r), seeding.noise_seed(3, r, config))
        for r in range(n)
    ]


def test_this_machine_names_the_versions_the_cpu_and_the_host():
    machine = this_machine("cpu")

    assert machine.sweeper_version == metadata.version("sweeper")
    assert machine.torch_version == torch.__version__
    assert (machine.device, machine.gpu, machine.host) == ("cpu", None, socket.gethostname())
    assert machine.cpu == cpu_name() and machine.cpu


@pytest.mark.skipif(not fused.task_fits(MLP, torch.device("cpu")), reason="the C kernels could not be built here")
def test_a_dense_mlp_on_the_cpu_is_trained_by_the_fused_engine_and_says_so():
    results = train_population(MLP, members(), "cpu")

    assert [r.engine for r in results] == ["fused", "fused"]
    assert all(r.machine == this_machine("cpu") for r in results)


@pytest.mark.parametrize("task, engine", [(MLP, "stacked"), (CNN, "auto")], ids=["mlp-asked-stacked", "cnn"])
def test_the_stacked_program_says_so(task, engine):
    results = train_population(task, members(), "cpu", engine=engine)

    assert [r.engine for r in results] == ["stacked", "stacked"]
    assert all(r.machine == this_machine("cpu") for r in results)


def test_the_reference_loop_says_so():
    result = train_reference(MLP, members(1)[0], "cpu")

    assert (result.engine, result.machine) == ("reference", this_machine("cpu"))


def test_describe_puts_what_ran_in_words():
    machine = Machine("0.2.0", "2.13.0+cpu", "cpu", "AMD EPYC 7763 64-Core Processor", None, "w1")
    gpu = Machine("0.2.0", "2.13.0", "cuda", "Intel Xeon", "NVIDIA H100 80GB HBM3", "g1")

    assert describe({**machine.as_dict(), "engine": "fused"}) == (
        "fused engine on cpu (AMD EPYC 7763 64-Core Processor), sweeper 0.2.0, torch 2.13.0+cpu, host w1"
    )
    assert describe(gpu.as_dict()) == "cuda (NVIDIA H100 80GB HBM3), sweeper 0.2.0, torch 2.13.0, host g1"
    assert describe({"device": "cpu"}) == "not recorded (stored before sweeper recorded what ran)"
