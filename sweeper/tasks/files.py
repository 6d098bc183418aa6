"""A user's own data set from a file: read once, checked, its problem inferred, hashed, encoded per split.

Tables (CSV, TSV, Parquet) are read with pandas: numeric columns are features as they are, text and
categorical columns are one-hot encoded, and missing values are refused unless the task says how to
impute them; every encoder and imputer is fitted on a split's training part only, as the scaling is.
NumPy ``.npz`` files hold arrays ``X`` (N, ...) and ``y`` (N,): images (N, H, W) or (N, C, H, W) and
sequences (N, T, F), flattened for an mlp.

The driver reads the files when it reads the search space and keeps their contents with the task
(:class:`FileData`), so the workers that train get arrays, never a path they might not see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sweeper.errors import TaskError
from sweeper.tasks.file_reading import (
    ARRAY_SUFFIXES,
    FLOAT32_MAX,
    MAX_FEATURES,
    MAX_INFERRED_CLASSES,
    MAX_VALUES,
    TABLE_SUFFIXES,
    column_name,
    listed,
    printable,
    read_arrays,
    read_table,
    shown,
)

if TYPE_CHECKING:
    import pandas as pd

    from sweeper.tasks.spec import FileDataset

#: How many columns with missing values one message names (a wide table may have hundreds).
_NAMED = 10


@dataclass(frozen=True, eq=False)
class Rows:
    """One file's rows: features as read and targets encoded."""

    x: pd.DataFrame | np.ndarray  # a table's feature columns, or an array (n, *shape)
    y: np.ndarray  # (n,) int64 class indices 0..K-1, or float64 regression targets
    sha256: str  # of the file's bytes

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True, eq=False)
class FileData:
    """A task's data read from its file(s): a data source of the registry (``sweeper.tasks.datasets``)
    whose rows ``load_split`` splits as a bundled table's, then encodes per repeat (:func:`encode`)."""

    name: str  # the file's name without folder and suffix
    rows: Rows
    #: test_path's rows: the fixed test part of every repeat; None draws the test part from ``rows``.
    test: Rows | None
    problem: str  # binary, multiclass or regression
    inferred: bool  # the problem was inferred from the target, not given
    #: Class labels as the file wrote them (text), index i encoded as i; () for regression.
    classes: tuple[str, ...]
    #: Tables: the numeric feature columns, and each categorical column with its categories.
    numeric: tuple[str, ...] = ()
    categorical: tuple[tuple[str, tuple[str, ...]], ...] = ()
    impute: str | None = None
    #: Tables: the target column; the file's other columns left out, each with why (``drop:``, ``features:``);
    #: the feature columns with missing values in the main file, with how many; columns that look like no
    #: feature (constant, an id), with why.
    target: str | None = None
    dropped: tuple[tuple[str, str], ...] = ()
    missing: tuple[tuple[str, int], ...] = ()
    suspect: tuple[tuple[str, str], ...] = ()
    generated = False

    # Two reads of the same bytes with the same options are the same data (pydantic compares a task's
    # private attributes, and arrays do not compare to one bool).
    def __eq__(self, other: object) -> bool:
        return isinstance(other, FileData) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    @property
    def _key(self) -> tuple:
        return (
            self.rows.sha256,
            self.test and self.test.sha256,
            self.problem,
            self.numeric,
            self.categorical,
            self.impute,
        )

    @property
    def is_table(self) -> bool:
        return not isinstance(self.rows.x, np.ndarray)

    @property
    def n_classes(self) -> int:
        """2 for binary, k for multiclass, 0 for regression."""
        return len(self.classes)

    @property
    def n_outputs(self) -> int:
        return self.n_classes if self.problem == "multiclass" else 1

    @property
    def shape(self) -> tuple[int, ...]:
        """One sample as the model families see it: (encoded features,) for a table, an array's sample shape."""
        if self.is_table:
            return (len(self.numeric) + sum(len(c) for _, c in self.categorical),)
        return tuple(self.rows.x.shape[1:])

    @property
    def n_features(self) -> int:
        return math.prod(self.shape)

    def arrays(self) -> tuple[pd.DataFrame | np.ndarray, np.ndarray]:
        """The rows to split: features as read (a table's are encoded after the split) and targets."""
        return self.rows.x, self.rows.y


def load(spec: FileDataset, base_dir: Path) -> FileData:
    """Reads the task's file(s), relative to ``base_dir``; TaskError (one line naming the file) if they
    cannot serve as its data."""
    path = base_dir / spec.path
    if spec.test_path and _kind(spec.test_path) != _kind(spec.path):
        raise TaskError(
            f"test_path: {spec.test_path} is {_kind(spec.test_path)} but path: {spec.path} is {_kind(spec.path)}; "
            "the test part must be the same kind of file as the data"
        )
    if path.suffix.lower() in ARRAY_SUFFIXES:
        for key in ("target", "features", "drop", "impute"):
            if getattr(spec, key):
                raise TaskError(f"{key}: applies to tables (CSV, Parquet), not to the arrays X and y of {spec.path}")
        x, y, sha = read_arrays(path, spec.path)
        test = read_arrays(base_dir / spec.test_path, spec.test_path) if spec.test_path else None
        _refuse_same_file(spec, sha, test and test[2])
        if test is not None and test[0].shape[1:] != x.shape[1:]:
            raise TaskError(
                f"{spec.test_path}: X holds samples of shape {test[0].shape[1:]}, {spec.path} of "
                f"{x.shape[1:]}; the test part must be shaped as the data"
            )
        problem, inferred, classes = _problem(y, spec.problem, f"{spec.path}: y")
        main = Rows(x, _encoded(y, classes, f"{spec.path}: y"), sha)
        held = Rows(test[0], _encoded(test[1], classes, f"{spec.test_path}: y"), test[2]) if test else None
        return FileData(Path(spec.path).stem, main, held, problem, inferred, classes)

    if spec.target is None:
        raise TaskError(f"target: required for a table; name the column of {spec.path} to predict")
    table, sha = read_table(path, spec.path)
    columns = _feature_columns(table, spec)
    numeric, categorical = _column_kinds(table, columns, spec.path)
    _refuse_too_wide(table, numeric, categorical, spec.path)
    frames = [(spec.path, table, sha)]
    if spec.test_path:
        test_table, test_sha = read_table(base_dir / spec.test_path, spec.test_path)
        _refuse_same_file(spec, sha, test_sha)
        missing = [c for c in (*columns, spec.target) if c not in test_table.columns]
        if missing:
            raise TaskError(
                f"{spec.test_path}: no column {column_name(missing[0])}, which {spec.path} has; columns: "
                f"{listed(test_table.columns)}"
            )
        test_numeric, _ = _column_kinds(test_table, columns, spec.test_path)
        for c in columns:
            if (c in numeric) != (c in test_numeric):
                kinds = ("numbers", "text") if c in numeric else ("text", "numbers")
                raise TaskError(
                    f"{spec.test_path}: column {column_name(c)} holds {kinds[1]} where {spec.path} holds {kinds[0]}; "
                    "the test file's columns must hold what the data file's do"
                )
        frames.append((spec.test_path, test_table, test_sha))
    for label, frame, _ in frames:
        _check_values(frame, columns, numeric, spec.target, label, spec.impute)
    problem, inferred, classes = _problem(
        table[spec.target].to_numpy(), spec.problem, f"{spec.path}: column {spec.target!r}"
    )
    rows = [
        Rows(
            _as_features(frame[columns], numeric, categorical),
            _encoded(frame[spec.target].to_numpy(), classes, f"{label}: column {spec.target!r}"),
            sha,
        )
        for label, frame, sha in frames
    ]
    features = rows[0].x
    # The categories are the main file's, so every repeat's encoding has the same width (packs stack
    # repeats); which rows train the encoder is still each repeat's training part.
    categories = tuple((c, tuple(sorted(features[c].dropna().unique()))) for c in categorical)
    return FileData(
        Path(spec.path).stem,
        rows[0],
        rows[1] if len(rows) > 1 else None,
        problem,
        inferred,
        classes,
        tuple(numeric),
        categories,
        spec.impute,
        target=spec.target,
        dropped=tuple(
            (str(c), "drop:" if c in spec.drop else "not in features:")
            for c in table.columns
            if c != spec.target and c not in columns
        ),
        missing=tuple((str(c), int(n)) for c, n in table[columns].isna().sum().items() if n),
        suspect=_suspect(table, columns, numeric),
    )


def encode(data: FileData, x_train, *others) -> tuple[np.ndarray, ...]:
    """Every part's features as float64 arrays (n, features), the encoders fitted on ``x_train`` only.

    Tables: imputers (if asked) and one-hot encoders in a ColumnTransformer; arrays are flattened.
    """
    if not data.is_table:
        return tuple(np.asarray(x, dtype=np.float64).reshape(len(x), -1) for x in (x_train, *others))
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    parts = []
    if data.numeric:
        # keep_empty_features: a column with no value in the training part stays (as 0), so every repeat's
        # encoding has the same width.
        numeric = SimpleImputer(strategy=data.impute, keep_empty_features=True) if data.impute else "passthrough"
        parts.append(("numeric", numeric, list(data.numeric)))
    if data.categorical:
        names = [c for c, _ in data.categorical]
        onehot = OneHotEncoder(
            categories=[list(c) for _, c in data.categorical], handle_unknown="ignore", sparse_output=False
        )
        # A mean or median of text does not exist: text columns take their most frequent value.
        steps = ([SimpleImputer(strategy="most_frequent", keep_empty_features=True)] if data.impute else []) + [onehot]
        parts.append(("categorical", make_pipeline(*steps), names))
    encoder = ColumnTransformer(parts, sparse_threshold=0).fit(x_train)
    width = data.shape[0]
    return tuple(
        encoder.transform(x).astype(np.float64) if len(x) else np.empty((0, width)) for x in (x_train, *others)
    )


def described(tasks: dict, data_dir: str, stored_dirs: dict[str, str | None] | None = None) -> dict | None:
    """What a sweep stores of what defines its tasks' data and own models (task name -> TaskSpec; None if
    no task reads a data file or builds its own model): the folder files were read from and, per task,
    each data file's path as written and the sha256 of its contents, the problem and the class labels
    (index i is class i), and the factory of an own model with the folder its module was found in and the
    sha256 of its Python files (``user_models.source_sha256``). ``stored_dirs``: task name -> the folder a
    stored sweep found its model's module in (:func:`model_folders`), searched first."""
    per_task = {}
    for name, task in tasks.items():
        spec = task.dataset
        data = getattr(spec, "data", None)
        entry = {}
        if data is not None:
            entry = {
                "path": spec.path,
                "sha256": data.rows.sha256,
                "rows": len(data.rows),
                "test_path": spec.test_path,
                "test_sha256": data.test.sha256 if data.test else None,
                "problem": data.problem,
                "classes": list(data.classes),
            }
        if task.user_model is not None:
            from sweeper.tasks.user_models import found_in, source_sha256

            entry["model"] = task.user_model.factory
            entry["model_sha256"] = source_sha256(task.user_model, Path(data_dir), (stored_dirs or {}).get(name))
            entry["model_dir"] = found_in(task.user_model)
        if entry:
            per_task[name] = entry
    return {"data_dir": data_dir, "tasks": per_task} if per_task else None


def model_folders(stored: dict | None) -> dict[str, str | None]:
    """Task name -> the folder a stored sweep found its own model's module in (``stored``: what
    :func:`described` gave when the sweep was stored; a sweep stored before sweeper kept it has none)."""
    return {name: entry.get("model_dir") for name, entry in (stored or {}).get("tasks", {}).items()}


def changed(stored: dict | None, now: dict | None) -> str | None:
    """The first data file or model whose contents differ between two :func:`described`, said as a
    phrase; None if every file holds what it held. A model stored before sweeper hashed models is not
    compared (nothing says what it was)."""
    stored_tasks, now_tasks = (stored or {}).get("tasks", {}), (now or {}).get("tasks", {})
    for name in sorted(stored_tasks.keys() | now_tasks.keys()):
        before, after = stored_tasks.get(name, {}), now_tasks.get(name, {})
        for path_key, sha_key in (("path", "sha256"), ("test_path", "test_sha256")):
            if before.get(sha_key) != after.get(sha_key):
                return (
                    f"data file {after.get(path_key) or before.get(path_key)} of task {name!r} (sha256 "
                    f"{_short(before.get(sha_key))} when stored, {_short(after.get(sha_key))} now)"
                )
        if "model_sha256" in before and before["model_sha256"] != after.get("model_sha256"):
            return (
                f"the model {before.get('model')} of task {name!r} (sha256 of its Python files "
                f"{_short(before['model_sha256'])} when stored, {_short(after.get('model_sha256'))} now)"
            )
    return None


def notes(tasks: dict) -> list[str]:
    """One line per task whose problem was inferred from its data file's target (task name -> TaskSpec)."""
    lines = []
    for name, task in tasks.items():
        spec = task.dataset
        data = getattr(spec, "data", None)
        if data is None or not data.inferred:
            continue
        what = (
            f"{len(data.classes)} classes: {listed(data.classes)}"
            if data.classes
            else "numbers, not a few whole values"
        )
        target = f"column {spec.target!r}" if spec.target else "y"
        lines.append(
            f"task {name!r}: problem {data.problem} inferred from {target} of {spec.path} ({what}); "
            "give problem: binary, multiclass or regression to choose"
        )
    return lines


# --- checking ----------------------------------------------------------------------------------------


def _feature_columns(table: pd.DataFrame, spec: FileDataset) -> list[str]:
    """The feature columns the task asks for, in the file's order unless ``features:`` gives one."""
    available = list(table.columns)
    for key, names in (("target", [spec.target]), ("features", spec.features or ()), ("drop", spec.drop)):
        for name in names:
            if name not in available:
                raise TaskError(f"{key}: {spec.path} has no column {column_name(name)}; columns: {listed(available)}")
    if spec.features is not None:
        twice = next((f for i, f in enumerate(spec.features) if f in spec.features[:i]), None)
        if twice is not None:
            raise TaskError(f"features: {column_name(twice)} is listed twice; allowed: each column once")
        if spec.target in spec.features:
            raise TaskError(f"features: {spec.target!r} is the target; a target cannot also be a feature")
        columns = list(spec.features)
    else:
        columns = [c for c in available if c != spec.target and c not in spec.drop]
    if not columns:
        raise TaskError(f"{spec.path}: no feature column is left besides the target {spec.target!r}")
    return columns


def _column_kinds(table: pd.DataFrame, columns: list[str], label: str) -> tuple[list[str], list[str]]:
    """The columns that are numbers (booleans too) and those that are categories (text or categorical)."""
    import pandas as pd
    from pandas.api import types

    numeric, categorical = [], []
    for c in columns:
        kind = table[c].dtype
        if types.is_bool_dtype(kind) or (types.is_numeric_dtype(kind) and not types.is_complex_dtype(kind)):
            numeric.append(c)
        elif types.is_object_dtype(kind) or types.is_string_dtype(kind) or isinstance(kind, pd.CategoricalDtype):
            categorical.append(c)
        else:
            raise TaskError(
                f"{label}: column {column_name(c)} holds {kind} values; allowed: numbers or text categories "
                f"(convert it, or leave it out with drop: [{c}])"
            )
    return numeric, categorical


def _refuse_too_wide(table: pd.DataFrame, numeric: list[str], categorical: list[str], label: str) -> None:
    """Refuses a table whose one-hot encoding would be wider than MAX_FEATURES, or larger than MAX_VALUES
    in all, before anything is encoded: a text column of distinct values (an id, free text) is one
    feature per value."""
    counts = {c: int(table[c].nunique(dropna=True)) for c in categorical}
    width = len(numeric) + sum(counts.values())
    if width <= MAX_FEATURES and width * len(table) <= MAX_VALUES:
        return
    widest = max(counts, key=counts.get) if counts else None
    said = (
        f"; column {column_name(widest)} alone has {counts[widest]:,} distinct values: leave it out with "
        f"drop: [{printable(widest)}] (an id or free text is no category)"
        if widest is not None
        else ""
    )
    raise TaskError(
        f"{label}: its features one-hot encoded are {width:,} per row, {width * len(table):,} values in all; "
        f"allowed: at most {MAX_FEATURES:,} per row and {MAX_VALUES:,} in all{said}"
    )


def _check_values(
    table: pd.DataFrame, columns: list[str], numeric: list[str], target: str, label: str, impute: str | None
) -> None:
    """Refuse missing values (unless imputed), infinite numbers, and rows without a target."""
    missing = int(table[target].isna().sum())
    if missing:
        raise TaskError(
            f"{label}: column {target!r} (the target) is missing in {missing} rows; "
            "remove those rows (a target is never imputed)"
        )
    if impute is None:
        gaps = {c: int(n) for c, n in table[columns].isna().sum().items() if n}
        if gaps:
            named = list(gaps.items())[:_NAMED]
            counts = ", ".join(f"{printable(c)} ({n} row{'s' if n != 1 else ''})" for c, n in named)
            counts += f" and {len(gaps) - _NAMED} more" if len(gaps) > _NAMED else ""
            raise TaskError(
                f"{label}: missing values in {len(gaps)} column{'s' if len(gaps) != 1 else ''}: {counts}; allowed: "
                f"impute: median, mean or most_frequent (text columns take their most frequent value), or leave "
                f"{'them' if len(gaps) != 1 else 'it'} out with drop: [{', '.join(printable(c) for c, _ in named)}]"
            )
    for c in columns:
        if c in numeric:
            values = table[c].to_numpy(dtype=np.float64, na_value=np.nan)
            infinite = int(np.isinf(values).sum())
            if infinite:
                raise TaskError(
                    f"{label}: column {column_name(c)} has infinite values in {infinite} rows; allowed: finite numbers"
                )
            big = int((np.abs(values) > FLOAT32_MAX).sum())
            if big:
                raise TaskError(
                    f"{label}: column {column_name(c)} has values beyond float32's range in {big} rows; allowed: "
                    f"numbers of magnitude at most {FLOAT32_MAX:.3g} (sweeper trains in float32)"
                )


def _suspect(table: pd.DataFrame, columns: list[str], numeric: list[str]) -> tuple[tuple[str, str], ...]:
    """Feature columns that carry nothing (one value) or look like a row id (a distinct value in every row:
    text, or whole numbers), with why; sweeper keeps them, and says so, since only the user knows."""
    out = []
    for c in columns:
        values = table[c].dropna()
        distinct = values.nunique()
        if distinct <= 1:
            out.append((str(c), "holds one value in every row"))
        elif distinct == len(table) >= 20 and (
            c not in numeric or bool(np.all(values.to_numpy(dtype=np.float64) % 1 == 0))
        ):
            out.append((str(c), "holds a distinct value in every row, as an id does"))
    return tuple(out)


def _as_features(table: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """The feature columns with numbers as float64 and categories as text (NaN where missing)."""
    table = table.copy()
    for c in numeric:
        table[c] = table[c].to_numpy(dtype=np.float64, na_value=np.nan)
    for c in categorical:
        values = table[c].astype(object)
        table[c] = values.where(values.isna(), values.map(str)).astype(object)
    return table


def _problem(y: np.ndarray, given: str | None, label: str) -> tuple[str, bool, tuple[str, ...]]:
    """(problem, whether inferred, class labels as text) of targets ``y``."""
    import pandas as pd

    values = pd.Series(y)
    is_number = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if is_number:
        numbers = values.to_numpy(dtype=np.float64)
        if not np.isfinite(numbers).all():
            raise TaskError(f"{label}: missing or infinite targets in {int((~np.isfinite(numbers)).sum())} rows")
        if (np.abs(numbers) > FLOAT32_MAX).any():
            raise TaskError(
                f"{label}: targets beyond float32's range in {int((np.abs(numbers) > FLOAT32_MAX).sum())} rows; "
                f"allowed: numbers of magnitude at most {FLOAT32_MAX:.3g} (sweeper trains in float32)"
            )
    distinct = pd.unique(values)
    problem = given
    if problem is None:
        whole = is_number and bool(np.all(numbers == np.round(numbers)))
        if is_number and not (whole and len(distinct) <= MAX_INFERRED_CLASSES):
            problem = "regression"
        else:
            problem = "binary" if len(distinct) <= 2 else "multiclass"
    if problem == "regression":
        if not is_number:
            raise TaskError(
                f"{label}: holds {values.dtype} values such as {shown(distinct[0])}; problem regression needs numbers"
            )
        return problem, given is None, ()
    classes = tuple(str(v) for v in (sorted(distinct) if is_number else sorted(distinct, key=str)))
    if len(set(classes)) != len(classes):
        raise TaskError(f"{label}: two class labels read the same as text ({listed(classes)})")
    if len(classes) < 2:
        raise TaskError(f"{label}: every row is class {classes[0]}; a classifier needs at least 2 classes")
    if problem == "binary" and len(classes) != 2:
        raise TaskError(
            f"{label}: {len(classes)} classes ({listed(classes)}); problem binary needs 2 (multiclass takes more)"
        )
    if problem == "multiclass" and len(classes) == 2:
        raise TaskError(f"{label}: 2 classes ({listed(classes)}); that is problem binary")
    return problem, given is None, classes


def _encoded(y: np.ndarray, classes: tuple[str, ...], label: str) -> np.ndarray:
    """Targets as class indices (int64) into ``classes``, or as float64 numbers for regression."""
    if not classes:
        return np.asarray(y, dtype=np.float64)
    import pandas as pd

    text = pd.Series(y).map(str)  # as _problem names the classes
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(text) - set(index))
    if unknown:
        raise TaskError(
            f"{label}: class {column_name(unknown[0])} is not among the classes of the data ({listed(classes)})"
        )
    return text.map(index).to_numpy(dtype=np.int64)


def _kind(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return "NumPy arrays (.npz)" if suffix in ARRAY_SUFFIXES else "a table" if suffix in TABLE_SUFFIXES else suffix


def _refuse_same_file(spec: FileDataset, sha: str, test_sha: str | None) -> None:
    """A test file holding the training file's bytes would make the test part repeat the training data."""
    if test_sha is not None and test_sha == sha:
        same = "is" if Path(spec.test_path) == Path(spec.path) else "holds the same bytes as"
        raise TaskError(
            f"test_path: {spec.test_path} {same} path: {spec.path} (sha256 {_short(sha)}), so the test part "
            "would repeat the training data; allowed: a file of other rows, or no test_path"
        )


def _short(sha: str | None) -> str:
    return f"{sha[:12]}..." if sha else "none"
