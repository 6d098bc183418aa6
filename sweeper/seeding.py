"""Every random stream of a sweep, keyed so that comparisons are paired (common random numbers).

Repeat r uses the same data and the same initial weights for every configuration; only the noise
stream depends on the configuration. Seeds are pure functions of their keys, never of pack layout.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from sweeper.noise.spec import NoiseConfig

_DATA, _INIT, _NOISE = 1, 2, 3


def _derive(*key: int) -> int:
    # SeedSequence mixes the key well; 63 bits so the seed fits a signed BIGINT column and torch.
    return int(np.random.SeedSequence(list(key)).generate_state(2, np.uint64)[0] >> np.uint64(1))


def config_key(config: NoiseConfig) -> int:
    """A stable 32-bit integer naming a noise configuration (independent of Python's hash seed)."""
    text = json.dumps([s.as_dict() for s in config], sort_keys=True)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def data_seed(sweep_seed: int, repeat: int, dataset_seed: int | None = None) -> int:
    """The seed of repeat ``repeat``'s data sample and split; fixed to ``dataset_seed`` when one is given."""
    return dataset_seed if dataset_seed is not None else _derive(sweep_seed, repeat, _DATA)


def init_seed(sweep_seed: int, repeat: int) -> int:
    """The seed of repeat ``repeat``'s initial weights and minibatch order."""
    return _derive(sweep_seed, repeat, _INIT)


def noise_seed(sweep_seed: int, repeat: int, config: NoiseConfig) -> int:
    """The seed of the noise stream of one configuration at one repeat."""
    return _derive(sweep_seed, repeat, _NOISE, config_key(config))
