"""Noise kinds (one record each, ``kinds.py``), placements and schedules; layers to put in your own PyTorch models.

The layers import torch on first use, so tools that only read configurations (the store, the report,
listing commands) start without it.
"""

from sweeper.noise.kinds import KINDS, NOISE_KINDS, Draw, NoiseKind, noise_kind
from sweeper.noise.spec import BASELINE, PLACEMENTS, SCHEDULES, NoiseConfig, NoiseSpec, config_label, make_config

_LAYERS = (
    "DropConnect",
    "Dropout",
    "GaussianDropout",
    "GaussianNoise",
    "GradientNoise",
    "LabelFlip",
    "UniformNoise",
    "WeightNoise",
    "noise_layer",
)

__all__ = [
    "BASELINE",
    "KINDS",
    "NOISE_KINDS",
    "PLACEMENTS",
    "SCHEDULES",
    "Draw",
    "NoiseConfig",
    "NoiseKind",
    "NoiseSpec",
    "config_label",
    "make_config",
    "noise_kind",
    *_LAYERS,
]


def __getattr__(name: str):
    if name in _LAYERS:
        from sweeper.noise import layers

        return getattr(layers, name)
    raise AttributeError(f"module 'sweeper.noise' has no attribute {name!r}")
