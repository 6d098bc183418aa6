"""A pack holds as many members as the device's free memory allows: at least one, at most a cap;
a member larger than all the free memory is refused."""

import re

import pytest

from sweeper.engine.sizing import CPU_MAX_MEMBERS, GPU_MAX_MEMBERS, MEMORY_SHARE, member_bytes, pack_size
from sweeper.errors import TaskError
from sweeper.space import MAX_PACK_SIZE
from sweeper.tasks.spec import TaskSpec

SMALL = TaskSpec(hidden=(16,))
LARGE = TaskSpec(hidden=(2000,))
GiB = 1 << 30


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_pack_size_grows_with_free_memory(device):
    sizes = [pack_size(LARGE, device, 30, 70, free_bytes=f) for f in (10**7, 10**8, 10**9, 10**10, 10**11)]
    assert sizes == sorted(sizes)
    assert sizes[0] < sizes[-1]


def test_pack_size_is_what_fits_in_the_devices_share_of_free_memory():
    per_member = member_bytes(LARGE, 30, 70)
    free = 10 * per_member
    assert pack_size(LARGE, "cpu", 30, 70, free_bytes=free) == int(free * MEMORY_SHARE["cpu"]) // per_member
    assert pack_size(LARGE, "cuda", 30, 70, free_bytes=free) == int(free * MEMORY_SHARE["cuda"]) // per_member


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_pack_size_shrinks_with_model_size(device):
    free = 4 * GiB if device == "cpu" else GiB // 16
    sizes = [pack_size(TaskSpec(hidden=(h,)), device, 30, 70, free_bytes=free) for h in (64, 512, 4096, 32768)]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] > sizes[-1]
    assert member_bytes(SMALL, 30, 70) < member_bytes(LARGE, 30, 70)


def test_pack_size_shrinks_with_more_data_and_bigger_architectures():
    free = 10**8
    assert pack_size(LARGE, "cpu", 300, 700, free_bytes=free) < pack_size(LARGE, "cpu", 30, 70, free_bytes=free)
    cnn = TaskSpec(dataset="digits", model="cnn", channels=(4, 8), hidden=(16,))
    wide_cnn = TaskSpec(dataset="digits", model="cnn", channels=(32, 64), hidden=(16,))
    assert member_bytes(cnn, 30, 100) < member_bytes(wide_cnn, 30, 100)
    rnn = TaskSpec(dataset="digits", model="rnn", hidden=(16,))
    assert member_bytes(rnn, 30, 100) < member_bytes(rnn.model_copy(update={"hidden": (128,)}), 30, 100)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("share_of_member", [1.0, 1.5])
def test_a_member_that_fits_in_free_memory_but_not_in_a_packs_share_trains_alone(device, share_of_member):
    task = TaskSpec(hidden=(4096,))
    free = int(member_bytes(task, 30, 70) * share_of_member)
    assert free * MEMORY_SHARE[device] < member_bytes(task, 30, 70) <= free
    assert pack_size(task, device, 30, 70, free_bytes=free) == 1


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_a_member_larger_than_all_free_memory_is_refused_with_the_estimate_and_what_is_free(device):
    task = TaskSpec(hidden=(100_000_000,))  # the case: 185.6 GB per member
    assert member_bytes(task, 30, 70) == 185_600_006_104

    with pytest.raises(TaskError) as info:
        pack_size(task, device, 30, 70, free_bytes=23_900_000_000)

    message = str(info.value)
    assert re.search(r"one member needs about 185\.6 GB .* but 23\.9 GB are free on " + device, message), message
    assert "allowed: a member that fits" in message


def test_a_member_one_byte_too_large_is_refused():
    need = member_bytes(SMALL, 30, 70)
    assert pack_size(SMALL, "cpu", 30, 70, free_bytes=need) == 1
    with pytest.raises(TaskError, match="are free on cpu"):
        pack_size(SMALL, "cpu", 30, 70, free_bytes=need - 1)


def test_pack_size_is_capped_per_device_type():
    huge = 1 << 50
    assert pack_size(SMALL, "cpu", 30, 70, free_bytes=huge) == CPU_MAX_MEMBERS
    assert pack_size(SMALL, "cuda", 30, 70, free_bytes=huge) == GPU_MAX_MEMBERS
    assert CPU_MAX_MEMBERS < GPU_MAX_MEMBERS


def test_a_search_spaces_pack_size_may_reach_the_largest_pack_of_any_device():
    assert MAX_PACK_SIZE == GPU_MAX_MEMBERS


def test_pack_size_measures_free_memory_when_not_told():
    assert 1 <= pack_size(SMALL, "cpu", 30, 70) <= CPU_MAX_MEMBERS
