"""What a task's model sees: each column used and how it was encoded, what was left out, the label mapping.

``described`` turns a task into a JSON-ready dict, stored with the sweep (``sweeper.driver.context``);
``lines`` and ``line`` word that dict for ``sweeper validate``, ``sweeper run`` and the report, which reads
only the store. Nothing here imports more than the standard library until a task is described.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sweeper.tasks.spec import TaskSpec

#: The report's line for a sweep stored before sweeper kept what its features were.
NOT_STORED = "features: not stored (sweep from an earlier version)"
#: How many of a one-hot column's categories the words name (an id-like column may have thousands).
_SHOWN_CATEGORIES = 8


def described(task: TaskSpec) -> dict:
    """What the model of ``task`` sees, as plain JSON values.

    Keys: ``data`` (the data set or file), ``kind`` (table, arrays, bundled, generated), ``inputs`` (values per
    sample after encoding), ``shape`` (a sample as the data gives it), ``scaling``; tables also ``columns``
    (name, ``encoding`` numeric or one-hot, ``categories``, ``missing`` rows, ``imputed`` with what),
    ``dropped`` (name, why) and ``suspect`` (name, why); and the target: ``target`` (a column, ``y``, or
    None), ``problem``, ``classes`` (label i is class index i), ``target_scaling`` (regression).
    """
    from sweeper.tasks.spec import FileDataset

    data = task.data
    out = {
        "data": str(task.dataset),
        "kind": "generated" if data.generated else "bundled",
        "inputs": data.n_features,
        "shape": list(data.shape),
        "scaling": task.scaling,
        "target": None,
        "problem": data.problem,
        "classes": [str(i) for i in range(data.n_classes)] if data.problem != "regression" else [],
    }
    if isinstance(task.dataset, FileDataset):
        out["classes"] = list(data.classes)
        if data.is_table:
            missing = dict(data.missing)
            numeric_fill = data.impute
            columns = [
                {"name": c, "encoding": "numeric", "missing": missing.get(c, 0), "imputed": numeric_fill}
                for c in data.numeric
            ]
            columns += [
                {
                    "name": c,
                    "encoding": "one-hot",
                    "categories": list(categories),
                    "missing": missing.get(c, 0),
                    # A mean or median of text does not exist (sweeper.tasks.files.encode).
                    "imputed": "most_frequent" if data.impute else None,
                }
                for c, categories in data.categorical
            ]
            out.update(
                kind="table",
                target=data.target,
                columns=columns,
                dropped=[{"name": c, "why": why} for c, why in data.dropped],
                suspect=[{"name": c, "why": why} for c, why in data.suspect],
            )
        else:
            out.update(kind="arrays", target="y")
    if data.problem == "regression":
        out["target_scaling"] = (
            "standardized for training with the training part's mean and standard deviation; errors reported in "
            "its own units"
            if task.scaling != "none"
            else "as it is"
        )
    return out


def lines(features: dict | None) -> list[str]:
    """``features`` (:func:`described`) in words, one line per part: the inputs, the numeric columns, the
    one-hot columns, what was left out, what looks like no feature, the target. ``sweeper validate``
    indents all but the first; the report lists them under its task."""
    if not isinstance(features, dict):
        return [NOT_STORED]
    scaled = (
        "not scaled" if features["scaling"] == "none" else f"scaling {features['scaling']} fitted on the training part"
    )
    kind = features["kind"]
    if kind != "table":
        shape = "x".join(map(str, features["shape"]))
        what = {"generated": "drawn by its generator", "bundled": "bundled", "arrays": "arrays X and y"}[kind]
        head = f"features of {features['data']} ({what}): {features['inputs']} numeric inputs"
        head += f" (samples {shape})" if len(features["shape"]) > 1 else ""
        return [f"{head}, {scaled}", _target(features)]
    columns = features["columns"]
    numeric = [c for c in columns if c["encoding"] == "numeric"]
    onehot = [c for c in columns if c["encoding"] == "one-hot"]
    out = [f"features of {features['data']}: {features['inputs']} inputs from {_n(len(columns), 'column')}, {scaled}"]
    if numeric:
        out.append(f"numeric ({len(numeric)}): " + ", ".join(_column(c) for c in numeric))
    if onehot:
        out.append(f"one-hot ({len(onehot)}): " + ", ".join(_column(c) for c in onehot))
    if features["dropped"]:
        out.append("left out: " + ", ".join(f"{d['name']} ({d['why']})" for d in features["dropped"]))
    for s in features["suspect"]:
        out.append(f"look at {s['name']}: it {s['why']} (kept: leave it out with drop: [{s['name']}])")
    out.append(_target(features))
    return out


def line(features: dict) -> str:
    """``features`` (:func:`described`) in one line, as ``sweeper run`` says it before training."""
    if features["kind"] != "table":
        return f"{features['data']}: {features['inputs']} numeric inputs; {_target(features)}"
    columns = features["columns"]
    numeric = [c["name"] for c in columns if c["encoding"] == "numeric"]
    onehot = [f"{c['name']} ({len(c['categories'])})" for c in columns if c["encoding"] == "one-hot"]
    parts = [f"{features['data']}: {features['inputs']} inputs"]
    parts += [f"numeric {', '.join(numeric)}"] if numeric else []
    parts += [f"one-hot {', '.join(onehot)}"] if onehot else []
    imputed = [f"{c['name']} ({c['imputed'].replace('_', ' ')})" for c in columns if c["missing"] and c["imputed"]]
    parts += [f"imputed {', '.join(imputed)}"] if imputed else []
    parts += [f"left out {', '.join(d['name'] for d in features['dropped'])}"] if features["dropped"] else []
    return "; ".join(parts) + f"; {_target(features)}"


def _column(c: dict) -> str:
    """One column in words: its name, a one-hot column's categories, how its missing values are filled."""
    text = c["name"]
    notes = []
    if c["encoding"] == "one-hot":
        shown = c["categories"][:_SHOWN_CATEGORIES]
        more = len(c["categories"]) - len(shown)
        notes.append(" | ".join(shown) + (f" | {more} more" if more > 0 else ""))
    if c["missing"]:
        fill = {"most_frequent": "most frequent value", "median": "median", "mean": "mean"}
        notes.append(f"{_n(c['missing'], 'row')} missing, filled with the training part's {fill[c['imputed']]}")
    return text + (f" [{'; '.join(notes)}]" if notes else "")


def _target(features: dict) -> str:
    """The target and how it becomes what the model predicts."""
    target = f"target {features['target']}" if features["target"] else "target"
    if features["problem"] == "regression":
        return f"{target}: regression, {features['target_scaling']}"
    classes = _n(len(features["classes"]), "class", "classes")
    if features["kind"] in ("bundled", "generated"):  # labelled 0..K-1 by the data set itself
        return f"{target}: {features['problem']}, {classes}"
    mapping = ", ".join(f"{name} -> {i}" for i, name in enumerate(features["classes"]))
    return f"{target}: {features['problem']}, {classes}: {mapping}"


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"
