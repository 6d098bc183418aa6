"""What a task is: a data set, how it is split and scaled, a model, and how it is trained."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sweeper.errors import TaskError
from sweeper.tasks.datasets import DATASETS, DataSource
from sweeper.tasks.families import FAMILIES, family

MODELS = tuple(FAMILIES)
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu")

# Upper limits of a task's sizes, so that a mistyped number is refused with its range instead of
# running for days or exhausting memory.
#: Seeds are stored as signed 64-bit integers.
MAX_SEED = 2**63 - 1
#: Generators draw every sample at once, in memory; small data is what sweeper is for.
MAX_SAMPLES = 1_000_000
MAX_EPOCHS = 10_000_000
#: A layer's width or channels: a 32-bit integer. Much narrower layers are already refused by the memory
#: check before a run (sweeper.engine.sizing), with the engine's estimate.
MAX_WIDTH = 2**31 - 1

_Width = Annotated[int, Field(ge=1, le=MAX_WIDTH)]
#: A part's size: a number of samples, or a fraction (0 < f < 1) of the data set (generators: of n_samples).
_Fraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
_Part = Annotated[int, Field(ge=0, le=MAX_SAMPLES)] | _Fraction
_Train = Annotated[int, Field(ge=2, le=MAX_SAMPLES)] | _Fraction
#: The fewest samples a part may hold when given as a count.
_FEWEST = {"n_train": 2, "n_val": 0, "n_test": 1}
_Beta = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OptimizerSpec(_Frozen):
    """Adam or SGD with momentum. ``eps`` defaults to Keras's 1e-7 under ``init: keras``, else (``init:
    torch``, a user's own model) PyTorch's 1e-8."""

    name: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0, allow_inf_nan=False)
    momentum: float = Field(0.0, ge=0, lt=1, allow_inf_nan=False)
    betas: tuple[_Beta, _Beta] = (0.9, 0.999)
    eps: float | None = Field(None, gt=0, allow_inf_nan=False)
    weight_decay: float = Field(0.0, ge=0, allow_inf_nan=False)


class FileDataset(_Frozen):
    """A user's data file as a task's data set: a table (CSV, TSV, Parquet) or NumPy arrays (.npz).

    Read when the search space is (relative to its folder): the task then carries the file's contents,
    not its path (``data``).
    """

    #: The file, relative to the search-space file's folder.
    path: str = Field(min_length=1)
    #: Tables: the column to predict (the other columns are the features).
    target: str | None = None
    #: Inferred from the target when not given (text or a few whole numbers: classes; else regression).
    problem: Literal["binary", "multiclass", "regression"] | None = None
    #: Tables: the feature columns to use (default: every column but the target and ``drop``).
    features: tuple[str, ...] | None = None
    drop: tuple[str, ...] = ()
    #: Tables: how missing feature values are filled in (fitted on the training part); None refuses them.
    impute: Literal["median", "mean", "most_frequent"] | None = None
    #: A fixed held-out test part (same columns or array shapes), relative as ``path`` is.
    test_path: str | None = Field(None, min_length=1)
    _data: object = PrivateAttr(None)

    @model_validator(mode="after")
    def _check(self) -> FileDataset:
        if self.features is not None and self.drop:
            raise ValueError("give features: (the columns to use) or drop: (the columns to leave out), not both")
        return self

    @property
    def data(self):
        """The file's contents (``sweeper.tasks.files.FileData``), read when the task was validated."""
        return self._data

    @property
    def name(self) -> str:
        """The file's name without folder and suffix: the task's name unless it is given one."""
        return Path(self.path).stem

    def __str__(self) -> str:
        return self.path


#: ``module:function`` (the module may be dotted: ``pkg.models:make_net``).
FACTORY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class ModelFactory(_Frozen):
    """A user's own PyTorch model: ``factory(input_shape, n_outputs, **args) -> nn.Module``.

    The module is imported from the Python path, then the search-space file's folder
    (``sweeper.tasks.user_models``). ``sites``: the modules (as ``named_modules`` names them, e.g.
    ``encoder.1``) whose input and output are the pre- and post-activation noise sites; empty, every
    activation module (``nn.ReLU``, ``nn.Tanh``, ...).
    """

    factory: str = Field(pattern=FACTORY_PATTERN)
    args: dict[str, Any] = {}
    sites: tuple[str, ...] = ()

    def __hash__(self) -> int:  # args is a dict: hashed by its JSON text, so tasks stay hashable
        return hash((self.factory, json.dumps(self.args, sort_keys=True, default=repr), self.sites))

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{self.factory}({args})"


class TaskSpec(_Frozen):
    """One task: every member of a pack shares it (data set, model family, training schedule)."""

    #: A bundled data set by name, or a file of the user's (a mapping: see FileDataset).
    dataset: Annotated[
        Annotated[Literal[tuple(DATASETS)], Tag("name")] | Annotated[FileDataset, Tag("file")],  # type: ignore[valid-type]
        Discriminator(lambda v: "file" if isinstance(v, (dict, FileDataset)) else "name"),
    ] = "circles"
    #: Fixed data sample/split for every repeat; None draws a new sample or split per repeat.
    dataset_seed: int | None = Field(None, ge=0, le=MAX_SEED)
    #: Generators only: how many samples to draw (circles/moons: 100 as in the seed).
    n_samples: int | None = Field(None, ge=2, le=MAX_SAMPLES)
    #: Generators only: the generator's own noise (circles 0.1, moons 0.1, friedman1 1.0).
    data_noise: float | None = Field(None, ge=0, allow_inf_nan=False)
    #: Training part: a count, or a fraction of the data set (resolved by ``sweeper.tasks.data.part_sizes``).
    n_train: _Train = 30
    #: Validation part, what a sweep selects on: None makes it as large as the test part (bundled data:
    #: the samples that are not training data, split evenly); 0 has none, as in the seed tutorial,
    #: where the test part is also what is selected on.
    n_val: _Part | None = None
    #: Test part, read only to report; None uses everything that is neither training nor validation data.
    n_test: _Part | None = None
    scaling: Literal["standard", "minmax", "none"] = "standard"

    #: A built-in family, or a user's own model: ``{factory: my_models:make_net, args: {width: 256}}``.
    model: Literal[MODELS] | ModelFactory = "mlp"  # type: ignore[valid-type]
    #: mlp: hidden layer sizes; cnn: dense layers after the convolutions; rnn: [recurrent hidden size].
    hidden: tuple[_Width, ...] = (500,)
    activation: Literal[ACTIVATIONS] = "relu"  # type: ignore[valid-type]
    #: cnn only: channels of each 3x3 convolution (each followed by the activation and 2x2 max-pooling).
    channels: tuple[_Width, ...] = (8, 16)
    #: rnn only: the recurrent cell.
    cell: Literal["lstm", "gru"] = "lstm"
    #: ``keras``: Glorot-uniform weights, zero biases (recurrent: orthogonal); ``torch``: PyTorch defaults.
    init: Literal["keras", "torch"] = "keras"

    optimizer: OptimizerSpec = OptimizerSpec()
    epochs: int = Field(4000, ge=1, le=MAX_EPOCHS)
    batch_size: Annotated[int, Field(ge=1, le=MAX_SAMPLES)] | Literal["full"] = "full"
    log_every: int = Field(10, ge=1, le=MAX_EPOCHS)

    @field_validator("dataset", mode="before")
    @classmethod
    def _read_file(cls, value, info: ValidationInfo):
        """A mapping of ``dataset:`` is a data file: validated, then read relative to the context's
        ``base_dir`` (the search space's folder; the current one without), one line if either fails."""
        if not isinstance(value, dict):
            return value
        from sweeper.tasks import files

        try:
            spec = FileDataset.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            if first["type"] == "extra_forbidden":
                message = f"unknown key; allowed: {', '.join(FileDataset.model_fields)}"
            elif first["type"] == "literal_error":
                message = f"{first['input']!r} is not allowed; allowed: {first['ctx']['expected']}"
            elif first["type"] == "missing":
                message = "required key missing; give the data file: {path: data.csv, target: column}"
            raise ValueError(f"{where}: {message}" if where else message) from None
        base_dir = Path((info.context or {}).get("base_dir") or ".")
        try:
            spec._data = files.load(spec, base_dir)
        except TaskError as exc:
            raise ValueError(str(exc)) from None
        return spec

    @field_validator("n_train", "n_val", "n_test", mode="before")
    @classmethod
    def _part(cls, value: Any, info: ValidationInfo) -> Any:
        """A count or a fraction, said in one line (pydantic would list each member of the union)."""
        fewest = _FEWEST[info.field_name]
        if value is None and info.field_name != "n_train":
            return value
        if isinstance(value, int) and not isinstance(value, bool) and fewest <= value <= MAX_SAMPLES:
            return value
        if isinstance(value, float) and 0 < value < 1:
            return value
        shown = repr(value) if isinstance(value, (int, float, str)) else type(value).__name__
        raise ValueError(
            f"{shown} is not allowed; allowed: a count, an integer from {fewest} to "
            f"{MAX_SAMPLES:,}, or a fraction of the data set, 0 < f < 1"
        )

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: Any) -> Any:
        # One plain message for either form, not one per member of the union.
        if isinstance(value, dict):
            try:
                return ModelFactory.model_validate(value)
            except ValidationError as exc:
                first = exc.errors()[0]
                key = ".".join(str(k) for k in first["loc"])
                if first["type"] == "string_pattern_mismatch":
                    raise ValueError(
                        f"factory {first['input']!r} is not module:function, e.g. my_models:make_net"
                    ) from None
                if first["type"] == "extra_forbidden":
                    raise ValueError(f"unknown key {key!r}; allowed: factory, args, sites") from None
                raise ValueError(f"{key}: {first['msg']}") from None
        if isinstance(value, str) and value not in MODELS:
            raise ValueError(
                f"{value!r} is not allowed; allowed: {', '.join(MODELS)}, or your own "
                "{factory: module:function, args: {...}}"
            )
        return value

    @property
    def user_model(self) -> ModelFactory | None:
        """The user's model factory, or None for a built-in family."""
        return self.model if isinstance(self.model, ModelFactory) else None

    @model_validator(mode="after")
    def _check(self) -> TaskSpec:
        built_in = sorted({"hidden", "activation", "channels", "cell", "init"} & self.model_fields_set)
        if self.user_model is not None and built_in:
            raise ValueError(
                f"{', '.join(built_in)}: only the built-in families ({', '.join(MODELS)}) take it; "
                "your own model takes its settings as args: {factory: ..., args: {...}}"
            )
        model = family(self) if self.user_model is None else None  # a user's model reads any samples
        if model is not None and model.hidden is not None and len(self.hidden) != model.hidden[0]:
            n, what = model.hidden
            raise ValueError(f"model {self.model!r} takes {what}: hidden: {[64] * n}")
        shape = self.data.shape
        if model is not None and model.inputs.view(shape) is None:
            if isinstance(self.dataset, FileDataset):
                raise ValueError(
                    f"model {self.model!r} needs {model.inputs.what}; {self.dataset.path} holds samples "
                    f"of shape {shape}"
                )
            fits = [repr(name) for name, d in DATASETS.items() if model.inputs.view(d.shape) is not None]
            raise ValueError(
                f"model {self.model!r} needs {model.inputs.what}; dataset {self.dataset!r} has samples "
                f"of shape {shape}; allowed: dataset {' or '.join(fits)}"
            )
        if self.model == "cnn" and min(shape[-2:]) < 2 ** len(self.channels):
            # Each convolution is followed by 2x2 max-pooling, which halves the image (rounding down).
            h, w = shape[-2:]
            raise ValueError(
                f"{self.dataset}: images of {h}x{w} are too small for {len(self.channels)} convolutions "
                f"that each halve them; allowed: at most {min(h, w).bit_length() - 1} channels entries, "
                "or larger images"
            )
        return self

    @property
    def dataset_name(self) -> str:
        """The bundled data set's name, or the data file's name without folder and suffix."""
        return self.dataset.name if isinstance(self.dataset, FileDataset) else self.dataset

    @property
    def has_validation(self) -> bool:
        """Whether the task has a validation part (``n_val: 0`` selects on the test part instead)."""
        return self.n_val != 0

    @property
    def data(self) -> DataSource:
        """The record of the task's data set: a bundled one's, or a data file's contents (read when the task
        was validated)."""
        return self.dataset.data if isinstance(self.dataset, FileDataset) else DATASETS[self.dataset]

    @property
    def problem(self) -> str:
        """``binary``, ``multiclass`` or ``regression``."""
        return self.data.problem

    @property
    def adam_eps(self) -> float:
        if self.optimizer.eps is not None:
            return self.optimizer.eps
        return 1e-7 if self.init == "keras" and self.user_model is None else 1e-8  # a user's model: PyTorch's
