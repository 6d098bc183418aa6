"""A user's model in the engine: memory that runs out while a pack is checked for vmap is said as memory,
never as a model torch.func cannot vectorize (which would train member by member, slower, and hide it)."""

import sys
from pathlib import Path

import pytest
import torch

from sweeper import seeding
from sweeper.engine import functional
from sweeper.engine.population import train_population
from sweeper.records import Member
from sweeper.tasks.spec import TaskSpec

sys.path.insert(0, str(Path(__file__).with_name("user_models")))  # where a search space's folder would be


def test_out_of_memory_while_checking_a_pack_is_raised_as_out_of_memory(monkeypatch, capfd):
    functional._SAID.clear()
    t = TaskSpec.model_validate({"dataset": "circles", "epochs": 2, "model": {"factory": "toy_models:mlp"}})

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(functional, "vmap", no_memory)
    members = [Member((), 0, seeding.data_seed(0, 0), seeding.init_seed(0, 0), seeding.noise_seed(0, 0, ()))]
    with pytest.raises(torch.OutOfMemoryError):
        train_population(t, members, engine="stacked")  # torch.func, not the fused engine
    assert "cannot vectorize" not in capfd.readouterr().err
