"""The model families a task can name, and the data each one takes.

This registry is read when a search space is checked, so it holds only what that check needs: each
family's input rule (which sample shapes it takes and how it sees them) and its rule on ``hidden``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Inputs:
    """Which samples a family takes: ``view`` maps a data set's sample shape to the shape the model
    reads (the same values, reshaped), or None where the family cannot read such samples."""

    #: What it takes, for messages: "images, samples of shape (H, W) or (C, H, W)".
    what: str
    view: Callable[[tuple[int, ...]], tuple[int, ...] | None]


#: Any sample, flattened to its features.
FLAT = Inputs("any samples, read as flat features", lambda shape: (math.prod(shape),))
#: Images: an (H, W) image is one channel.
IMAGES = Inputs("images, samples of shape (H, W) or (C, H, W)",
                lambda shape: (1, *shape) if len(shape) == 2 else shape if len(shape) == 3 else None)
#: Sequences of T steps of F features; an (H, W) image is read row by row.
SEQUENCES = Inputs("sequences, samples of shape (T, F)", lambda shape: shape if len(shape) == 2 else None)


@dataclass(frozen=True)
class Family:
    name: str
    inputs: Inputs
    #: How many sizes ``task.hidden`` must hold and what they are; None: any number (dense layers).
    hidden: tuple[int, str] | None = None


_FAMILIES = (
    Family("mlp", FLAT),
    Family("cnn", IMAGES),
    Family("rnn", SEQUENCES, hidden=(1, "one recurrent hidden size")),
)
#: Name -> family, as ``task.model`` names it.
FAMILIES: dict[str, Family] = {f.name: f for f in _FAMILIES}
