"""What a task is: a data set, how it is split and scaled, a model, and how it is trained."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Data set name -> problem type. Generators draw a sample; the others are scikit-learn's bundled data.
DATASETS: dict[str, str] = {
    "circles": "binary",
    "moons": "binary",
    "blobs": "multiclass",
    "friedman1": "regression",
    "breast_cancer": "binary",
    "wine": "multiclass",
    "iris": "multiclass",
    "digits": "multiclass",
    "diabetes": "regression",
}
GENERATED = ("circles", "moons", "blobs", "friedman1")
MODELS = ("mlp", "cnn", "rnn")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OptimizerSpec(_Frozen):
    """Adam or SGD with momentum. ``eps`` defaults to Keras's 1e-7 under ``init: keras``, else PyTorch's 1e-8."""

    name: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float | None = Field(None, gt=0)
    weight_decay: float = Field(0.0, ge=0)


class TaskSpec(_Frozen):
    """One task: every member of a pack shares it (data set, model family, training schedule)."""

    dataset: Literal[tuple(DATASETS)] = "circles"  # type: ignore[valid-type]
    #: Fixed data sample/split for every repeat; None draws a new sample or split per repeat.
    dataset_seed: int | None = None
    #: Generators only: how many samples to draw (circles/moons: 100 as in the seed).
    n_samples: int | None = Field(None, gt=1)
    #: Generators only: the generator's own noise (circles 0.1, moons 0.1, friedman1 1.0).
    data_noise: float | None = Field(None, ge=0)
    n_train: int = Field(30, gt=1)
    #: Test set size; None uses everything that is not training data.
    n_test: int | None = Field(None, gt=0)
    scaling: Literal["standard", "minmax", "none"] = "standard"

    model: Literal[MODELS] = "mlp"  # type: ignore[valid-type]
    #: mlp: hidden layer sizes; cnn: dense layers after the convolutions; rnn: [recurrent hidden size].
    hidden: tuple[int, ...] = (500,)
    activation: Literal[ACTIVATIONS] = "relu"  # type: ignore[valid-type]
    #: cnn only: channels of each 3x3 convolution (each followed by the activation and 2x2 max-pooling).
    channels: tuple[int, ...] = (8, 16)
    #: rnn only: the recurrent cell.
    cell: Literal["lstm", "gru"] = "lstm"
    #: ``keras``: Glorot-uniform weights, zero biases (recurrent: orthogonal); ``torch``: PyTorch defaults.
    init: Literal["keras", "torch"] = "keras"

    optimizer: OptimizerSpec = OptimizerSpec()
    epochs: int = Field(4000, gt=0)
    batch_size: int | Literal["full"] = "full"
    log_every: int = Field(10, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "TaskSpec":
        if any(h <= 0 for h in self.hidden) or any(c <= 0 for c in self.channels):
            raise ValueError("hidden and channels sizes must be positive")
        if self.model == "rnn" and len(self.hidden) != 1:
            raise ValueError("an rnn takes one recurrent hidden size: hidden: [64]")
        if self.model in ("cnn", "rnn") and self.dataset != "digits":
            raise ValueError(f"model {self.model!r} needs image/sequence data: dataset 'digits'")
        if isinstance(self.batch_size, int) and self.batch_size <= 0:
            raise ValueError("batch_size must be a positive integer or 'full'")
        return self

    @property
    def problem(self) -> str:
        """``binary``, ``multiclass`` or ``regression``."""
        return DATASETS[self.dataset]

    @property
    def adam_eps(self) -> float:
        if self.optimizer.eps is not None:
            return self.optimizer.eps
        return 1e-7 if self.init == "keras" else 1e-8

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The per-split metrics besides the loss: accuracy, or mse and r2 for regression."""
        return ("mse", "r2") if self.problem == "regression" else ("accuracy",)
