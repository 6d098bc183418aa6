"""What every family's reference model shares: noise sites, canonical parameters, weight noise.

A family's reference model is ordinary ``nn.Module`` code a user would write, with sweeper's public
noise layers at the sites a configuration names. Its layers are held under their canonical names
(``dense0``, ``out``, as ``param_shapes`` names their parameters), so loading a member's parameters
and listing them in canonical order (the order gradient noise draws in) is the same for every family.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from sweeper.noise.layers import WeightNoise, noise_layer
from sweeper.noise.spec import NoiseConfig
from sweeper.tasks.families._layers import ACTIVATIONS
from sweeper.tasks.spec import TaskSpec


def _site(
    config: NoiseConfig,
    placement: str,
    generator: torch.Generator | None,
    total_steps: int | None,
    feature_std: torch.Tensor | None = None,
) -> nn.Module:
    spec = next((s for s in config if s.placement == placement and s.std > 0), None)
    if spec is None:
        return nn.Identity()
    return noise_layer(spec, generator, total_steps=total_steps, feature_std=feature_std)


class ReferenceModel(nn.Module):
    """One member's model with the noise of ``config`` at its sites; a family's model subclasses it.

    ``layers``: the model's layers, each with a ``weight`` and a ``bias``, by canonical name in
    canonical order; ``n_hidden``: how many hidden layers have pre- and post-activation sites.
    ``total_steps``: the run's optimizer steps (for the linear and cosine schedules); ``input_std``: the
    per-feature standard deviations of the training inputs that ``relative`` input noise is scaled by.
    """

    def __init__(
        self,
        task: TaskSpec,
        layers: dict[str, nn.Module],
        n_hidden: int,
        config: NoiseConfig = (),
        generator: torch.Generator | None = None,
        total_steps: int | None = None,
        input_std: torch.Tensor | None = None,
    ):
        super().__init__()
        self.task = task
        self.act = ACTIVATIONS[task.activation]
        self.input_noise = _site(config, "input", generator, total_steps, input_std)
        self.layers = nn.ModuleDict(layers)
        self.pre = nn.ModuleList(_site(config, "pre_activation", generator, total_steps) for _ in range(n_hidden))
        self.post = nn.ModuleList(_site(config, "post_activation", generator, total_steps) for _ in range(n_hidden))
        self.weight_noise = next((s for s in config if s.placement == "weights" and s.std > 0), None)
        self.generator = generator
        self.total_steps = total_steps

    def load_params(self, params: dict[str, torch.Tensor]) -> None:
        """Loads canonical parameters, then wraps the weights in weight noise if the config asks for it."""
        self.layers.load_state_dict(params)
        if self.weight_noise is not None:
            for module in self.layers.values():
                layer = noise_layer(self.weight_noise, self.generator, total_steps=self.total_steps)
                parametrize.register_parametrization(module, "weight", WeightNoise(layer), unsafe=True)

    def canonical_parameters(self) -> list[nn.Parameter]:
        """Parameters in canonical order (gradient noise draws in this order)."""
        return [
            p
            for m in self.layers.values()
            for p in (
                m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight,
                m.bias,
            )
        ]

    def hidden(self, i: int, z: torch.Tensor) -> torch.Tensor:
        """Hidden layer ``i``'s output from its pre-activation ``z``."""
        return self.post[i](self.act(self.pre[i](z)))
