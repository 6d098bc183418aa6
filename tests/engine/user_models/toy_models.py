"""Small model factories for the user-model tests: (input_shape, n_outputs, **args) -> nn.Module."""

import torch
from torch import nn


def mlp(input_shape, n_outputs, width=16, depth=1, activation="relu", flatten=True, bias=True, frozen=False):
    """An nn.Sequential MLP: the built-in mlp family written as a user would (``flatten``: an nn.Flatten
    first; ``bias``: the linear layers' biases; ``frozen``: the first layer's bias not trained)."""
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}[activation]
    layers, width_in = [nn.Flatten()] if flatten else [], int(torch.tensor(input_shape).prod())
    for _ in range(depth):
        layers += [nn.Linear(width_in, width, bias=bias), act()]
        width_in = width
    model = nn.Sequential(*layers, nn.Linear(width_in, n_outputs, bias=bias))
    if frozen:
        model[1 if flatten else 0].bias.requires_grad_(False)
    return model


class OwnSequential(nn.Sequential):
    """An nn.Sequential subclass: its forward may do anything, so it is not taken for a plain stack."""

    def forward(self, x):
        return super().forward(x) * 2.0


def own_sequential(input_shape, n_outputs, width=16):
    return OwnSequential(nn.Linear(input_shape[0], width), nn.ReLU(), nn.Linear(width, n_outputs))


def hooked(input_shape, n_outputs, width=16):
    """A plain stack with a forward hook of the user's on its activation (which changes what it computes)."""
    model = mlp(input_shape, n_outputs, width)
    model[2].register_forward_hook(lambda module, args, out: out * 0.5)
    return model


def mixed_activations(input_shape, n_outputs, width=8):
    return nn.Sequential(
        nn.Linear(input_shape[0], width), nn.ReLU(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, n_outputs)
    )


class Encoder(nn.Module):
    """Named submodules, a shared activation called twice, and a LayerNorm (1-D weight: not a weight site)."""

    def __init__(self, n_in, n_out, width):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(n_in, width), nn.Tanh(), nn.LayerNorm(width))
        self.mid = nn.Linear(width, width)
        self.act = nn.SiLU()
        self.head = nn.Sequential(nn.Linear(width, width), nn.Linear(width, n_out))

    def forward(self, x):
        h = self.act(self.mid(self.encoder(x)))
        return self.head(self.act(h))


def encoder(input_shape, n_outputs, width=12):
    return Encoder(input_shape[0], n_outputs, width)


def batchnorm(input_shape, n_outputs, width=16):
    """BatchNorm updates its running statistics in place: not vectorizable, trained member by member."""
    return nn.Sequential(
        nn.Linear(input_shape[0], width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, n_outputs)
    )


def with_dropout(input_shape, n_outputs, width=16):
    """Draws from torch's global generator itself: trained member by member, each with its own stream."""
    return nn.Sequential(nn.Linear(input_shape[0], width), nn.ReLU(), nn.Dropout(0.2), nn.Linear(width, n_outputs))


def no_activation(input_shape, n_outputs):
    return nn.Sequential(nn.Linear(input_shape[0], 8), nn.Linear(8, n_outputs))


def wrong_output(input_shape, n_outputs):
    return nn.Linear(input_shape[0], n_outputs + 1)


def raises(input_shape, n_outputs):
    raise ValueError("width must be even")


class Branchy(nn.Module):
    """Data-dependent control flow: vmap refuses it."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.a, self.b = nn.Linear(n_in, n_out), nn.Linear(n_in, n_out)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.a(self.act(x)) if x.sum() > 0 else self.b(x)


def branchy(input_shape, n_outputs):
    return Branchy(input_shape[0], n_outputs)


def cnn(input_shape, n_outputs, channels=4):
    """A small CNN for (H, W) images (digits: 8 x 8): one channel added, a convolution, pooling, a head."""
    h, w = input_shape
    return nn.Sequential(
        nn.Unflatten(1, (1, h)),
        nn.Conv2d(1, channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(channels * (h // 2) * (w // 2), n_outputs),
    )


class FailsTraining(nn.Module):
    """Runs in evaluation mode only: what the checks run passes, training would not."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.a, self.act = nn.Linear(n_in, n_out), nn.ReLU()

    def forward(self, x):
        if self.training:
            raise RuntimeError("no training here")
        return self.act(self.a(x))


def fails_training(input_shape, n_outputs):
    return FailsTraining(input_shape[0], n_outputs)
