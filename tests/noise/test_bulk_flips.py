"""Label flips of a whole pack are drawn in one call with Philox streams, the same numbers as member by member.

``PackNoise.noisy_targets`` draws every flipping member's uniforms at once (``PhiloxStreams.rand_many``);
each member's flips, and where its stream stands afterwards, are exactly those of drawing it alone
(``rand``), as streams without ``rand_many`` (``torch.Generator``) still do.
"""

from types import SimpleNamespace

import pytest
import torch

from sweeper.noise.pack import PackNoise
from sweeper.noise.philox import PhiloxStreams
from sweeper.noise.spec import NoiseSpec

SEEDS = [11, 2**62 + 5, 7, 123456789, 42]


def test_rand_many_gives_each_member_exactly_what_rand_gives_it():
    many, one = PhiloxStreams(SEEDS), PhiloxStreams(SEEDS)
    one.rand(1, (3,))  # members stand at different counters
    many.rand(1, (3,))
    rows = many.rand_many([0, 1, 3], (5, 2))
    assert rows.shape == (3, 5, 2)
    for i, k in enumerate([0, 1, 3]):
        assert torch.equal(rows[i], one.rand(k, (5, 2)))
    assert many.blocks == one.blocks


@pytest.mark.parametrize("n_classes", [2, 3, 10])
def test_a_packs_label_flips_drawn_at_once_are_each_members_own(n_classes):
    configs = [
        (NoiseSpec("targets", "flip", 0.3),),
        (),
        (NoiseSpec("targets", "flip", 0.45, "cosine"),),
        (NoiseSpec("targets", "flip", 0.0),),  # draws nothing
        (NoiseSpec("targets", "flip", 0.2, "annealed"),),
    ]
    bulk = PackNoise(configs, PhiloxStreams(SEEDS), total_steps=6)
    streams = PhiloxStreams(SEEDS)
    alone = PackNoise(configs, SimpleNamespace(rand=streams.rand), total_steps=6)  # no rand_many: member by member
    dtype = torch.float32 if n_classes == 2 else torch.long
    flipped = 0
    for step in range(6):
        bulk.step = alone.step = step
        y = torch.randint(0, n_classes, (len(configs), 40), generator=torch.Generator().manual_seed(step)).to(dtype)
        a, b = bulk.noisy_targets(y, n_classes), alone.noisy_targets(y, n_classes)
        assert a.dtype == y.dtype and torch.equal(a, b)
        assert torch.equal(a[1], y[1]) and torch.equal(a[3], y[3])  # no flip noise: untouched
        flipped += int((a != y).sum())
    assert flipped > 0
    assert bulk.streams.blocks == streams.blocks
