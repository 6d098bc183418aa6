"""Every random stream of a sweep, keyed so that comparisons are paired (common random numbers).

Repeat r uses the same data, the same initial weights and the same minibatch order for every
configuration; only the noise stream depends on the configuration. Seeds are pure functions of their
keys, never of pack layout. The seeds of Optuna's samplers derive here too: every random stream of a
sweep starts in this module.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from sweeper.noise.spec import NoiseConfig

_DATA, _INIT, _NOISE = 1, 2, 3
#: Mixed into the init seed for the minibatch order (java.util.Random's multiplier, a fixed odd constant).
_SHUFFLE = 0x5DEECE66D


def _derive(*key: int) -> int:
    # SeedSequence mixes the key well; 63 bits so the seed fits a signed BIGINT column and torch.
    return int(np.random.SeedSequence(list(key)).generate_state(2, np.uint64)[0] >> np.uint64(1))


def config_json(config: NoiseConfig) -> str:
    """The canonical text of a configuration, as the store keeps it (``config_json``): equal
    configurations give equal text. Read it back with ``sweeper.records.stored_config``."""
    return json.dumps([s.as_dict() for s in config], sort_keys=True, separators=(",", ":"))


def config_key(config: NoiseConfig) -> int:
    """A stable 32-bit integer naming a noise configuration (independent of Python's hash seed)."""
    # The hash reads the canonical text with json's default separators, as it has since 0.1.0: every
    # noise seed derives from it, so it must not change even where config_json's spacing did.
    text = json.dumps(json.loads(config_json(config)), sort_keys=True)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def data_seed(sweep_seed: int, repeat: int, dataset_seed: int | None = None) -> int:
    """The seed of repeat ``repeat``'s data sample and split; fixed to ``dataset_seed`` when one is given."""
    return dataset_seed if dataset_seed is not None else _derive(sweep_seed, repeat, _DATA)


def init_seed(sweep_seed: int, repeat: int) -> int:
    """The seed of repeat ``repeat``'s initial weights and minibatch order."""
    return _derive(sweep_seed, repeat, _INIT)


def noise_seed(sweep_seed: int, repeat: int, config: NoiseConfig) -> int:
    """The seed of the noise stream of one configuration at one repeat."""
    return noise_seed_of_key(sweep_seed, repeat, config_key(config))


def noise_seed_of_key(sweep_seed: int, repeat: int, key: int) -> int:
    """:func:`noise_seed` of the configuration whose :func:`config_key` is ``key``."""
    return _derive(sweep_seed, repeat, _NOISE, key)


def shuffle_seed(init_seed: int) -> int:
    """The seed of one member's minibatch order: its init seed mixed with a constant, so the order is
    common to all configurations of a repeat yet not the stream of its initial weights.

    (Kept as it was when it lived in the engine, ``init_seed ^ 0x5DEECE66D``: stored runs reproduce.)
    """
    return init_seed ^ _SHUFFLE


def sampler_seed(sweep_seed: int, trial_number: int) -> int:
    """The seed of the Optuna sampler (random, tpe) that proposes trial ``trial_number``.

    (Kept as it was when the driver derived it, the first 32-bit word of SeedSequence([sweep seed, trial
    number]): sampled sweeps resume with the configurations they had.)
    """
    return int(np.random.SeedSequence([sweep_seed, trial_number]).generate_state(1)[0])
