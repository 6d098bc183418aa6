"""Noise kinds, placements and schedules; layers to put in your own PyTorch models."""

from sweeper.noise.layers import (
    GaussianDropout,
    GaussianNoise,
    GradientNoise,
    LabelFlip,
    UniformNoise,
    WeightNoise,
    noise_layer,
)
from sweeper.noise.spec import BASELINE, KINDS, PLACEMENTS, SCHEDULES, NoiseConfig, NoiseSpec, config_label, make_config

__all__ = [
    "BASELINE", "KINDS", "PLACEMENTS", "SCHEDULES",
    "GaussianDropout", "GaussianNoise", "GradientNoise", "LabelFlip", "NoiseConfig", "NoiseSpec",
    "UniformNoise", "WeightNoise", "config_label", "make_config", "noise_layer",
]
