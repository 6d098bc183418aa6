"""A user's data file is untrusted input: refused in one line, bounded before it is read, never echoed.

Each case is one a real user (or a file a user was handed) can produce: a duplicated target column, a
test file that is the training file, a header only, a zip bomb, a FIFO or ``/dev/zero``, a symlink to
``/proc/self/environ``, a text column of distinct ids, numbers beyond float32.
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from sweeper.tasks import file_reading, files
from sweeper.tasks.spec import TaskSpec


def refusal(tmp_path, dataset: dict, **fields) -> str:
    """The one line a task reading ``dataset`` from ``tmp_path`` is refused with."""
    with pytest.raises(ValidationError) as caught:
        TaskSpec.model_validate({"dataset": dataset, **fields}, context={"base_dir": tmp_path})
    (error,) = caught.value.errors()
    message = error["msg"].removeprefix("Value error, ")
    assert "\n" not in message
    return message


def table(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "outcome": [0, 1] * (n // 2)})


def test_a_duplicated_column_name_is_refused_not_renamed_into_a_feature(tmp_path):
    # pandas would read the second "outcome" as "outcome.1": a feature that is the target.
    (tmp_path / "leak.csv").write_text("a,outcome,outcome\n" + "".join(f"{i},{i % 2},{i % 2}\n" for i in range(40)))
    assert refusal(tmp_path, {"path": "leak.csv", "target": "outcome"}) == (
        "leak.csv: two columns are named 'outcome'; allowed: one column per name (rename one)"
    )


@pytest.mark.parametrize("test_path", ["data.csv", "copy.csv"])
def test_a_test_file_that_is_the_training_file_is_refused(tmp_path, test_path):
    table().to_csv(tmp_path / "data.csv", index=False)
    table().to_csv(tmp_path / "copy.csv", index=False)
    message = refusal(tmp_path, {"path": "data.csv", "target": "outcome", "test_path": test_path})
    same = "is" if test_path == "data.csv" else "holds the same bytes as"
    assert message.startswith(f"test_path: {test_path} {same} path: data.csv (sha256 "), message
    assert message.endswith(
        "so the test part would repeat the training data; allowed: a file of other rows, or no test_path"
    )


@pytest.mark.parametrize("problem", [None, "regression"])
def test_a_header_only_table_is_refused(tmp_path, problem):
    (tmp_path / "empty.csv").write_text("a,b,outcome\n")
    dataset = {"path": "empty.csv", "target": "outcome", **({"problem": problem} if problem else {})}
    assert refusal(tmp_path, dataset) == "empty.csv: holds no rows (a header only); allowed: at least one row"


def test_a_header_only_test_file_is_refused_before_anything_runs(tmp_path):
    table().to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "holdout.csv").write_text("a,b,outcome\n")
    dataset = {"path": "data.csv", "target": "outcome", "test_path": "holdout.csv"}
    assert refusal(tmp_path, dataset) == "holdout.csv: holds no rows (a header only); allowed: at least one row"


def test_an_empty_parquet_file_is_refused(tmp_path):
    table().iloc[:0].to_parquet(tmp_path / "empty.parquet")
    assert refusal(tmp_path, {"path": "empty.parquet", "target": "outcome"}) == (
        "empty.parquet: holds no rows (a header only); allowed: at least one row"
    )


def test_text_in_a_test_files_numeric_column_is_refused_naming_file_and_column(tmp_path):
    table().to_csv(tmp_path / "data.csv", index=False)
    holdout = table(10)
    holdout["b"] = ["oops"] + [1.0] * 9
    holdout.to_csv(tmp_path / "holdout.csv", index=False)
    assert refusal(tmp_path, {"path": "data.csv", "target": "outcome", "test_path": "holdout.csv"}) == (
        "holdout.csv: column 'b' holds text where data.csv holds numbers; the test file's columns must hold "
        "what the data file's do"
    )


def test_a_test_file_of_another_kind_is_refused_naming_both(tmp_path):
    table().to_csv(tmp_path / "data.csv", index=False)
    np.savez(tmp_path / "holdout.npz", X=np.zeros((4, 2)), y=np.zeros(4))
    assert refusal(tmp_path, {"path": "data.csv", "target": "outcome", "test_path": "holdout.npz"}) == (
        "test_path: holdout.npz is NumPy arrays (.npz) but path: data.csv is a table; the test part must be "
        "the same kind of file as the data"
    )


def npz_bomb(path, shape=(1_000_000, 5_000)) -> None:
    """A small .npz whose X declares ``shape`` of float64 (gigabytes) in its header: the data is zeros,
    which compress to almost nothing, and is never reached if the header is checked first."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("X.npy", header.getvalue() + bytes(8 * 1024))  # the rest of the data is missing
        y = io.BytesIO()
        np.save(y, np.zeros(shape[0]))
        archive.writestr("y.npy", y.getvalue())


def test_an_npz_declaring_more_values_than_allowed_is_refused_from_its_headers(tmp_path, monkeypatch):
    npz_bomb(tmp_path / "bomb.npz")
    loaded = []
    monkeypatch.setattr(np, "load", lambda *a, **k: loaded.append(a))
    assert refusal(tmp_path, {"path": "bomb.npz"}) == (
        "bomb.npz: X is (1000000, 5000), 5,000 values per sample and 5,000,000,000 in all; allowed: at most "
        "100,000 per sample and 250,000,000 in all"
    )
    assert loaded == []  # nothing was decompressed


def test_an_npz_of_too_many_samples_is_refused_from_its_headers(tmp_path):
    npz_bomb(tmp_path / "rows.npz", shape=(2_000_000, 1))
    assert refusal(tmp_path, {"path": "rows.npz"}) == "rows.npz: 2,000,000 samples; allowed: at most 1,000,000"


def test_an_empty_npz_is_refused_naming_it(tmp_path):
    np.savez(tmp_path / "empty.npz", X=np.zeros((0, 3)), y=np.zeros(0))
    assert refusal(tmp_path, {"path": "empty.npz"}) == "empty.npz: X and y hold no samples; allowed: at least one"


def test_a_pickled_object_array_is_refused_and_never_unpickled(tmp_path):
    ran = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(ran), "w"))

    x = np.empty((4, 1), dtype=object)
    x[:] = Payload()
    with zipfile.ZipFile(tmp_path / "evil.npz", "w") as archive:
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, x, allow_pickle=True)
        archive.writestr("X.npy", buffer.getvalue())
        buffer = io.BytesIO()
        np.save(buffer, np.zeros(4))
        archive.writestr("y.npy", buffer.getvalue())
    assert refusal(tmp_path, {"path": "evil.npz"}) == "evil.npz: X holds object values; allowed: numbers"
    assert not ran.exists()


def test_an_npz_whose_other_members_are_huge_loads_only_x_and_y(tmp_path):
    x, y = np.arange(40.0).reshape(20, 2), np.array([0, 1] * 10)
    npz_bomb(tmp_path / "bomb.npz")
    with zipfile.ZipFile(tmp_path / "bomb.npz") as src, zipfile.ZipFile(tmp_path / "extra.npz", "w") as dst:
        dst.writestr("junk.npy", src.read("X.npy"))
        for name, value in (("X.npy", x), ("y.npy", y)):
            buffer = io.BytesIO()
            np.save(buffer, value)
            dst.writestr(name, buffer.getvalue())
    t = TaskSpec.model_validate({"dataset": {"path": "extra.npz"}}, context={"base_dir": tmp_path})
    assert t.dataset.data.rows.x.shape == (20, 2)


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "/proc/self/environ"])
def test_a_symlink_to_a_system_file_is_refused_unread(tmp_path, target):
    (tmp_path / "data.csv").symlink_to(target)
    message = refusal(tmp_path, {"path": "data.csv", "target": "y"})
    real = os.path.realpath(target)
    assert message == f"data.csv: is a system file ({real}), not a data file; allowed: a regular file"
    assert "PATH=" not in message and "HOME=" not in message


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "data.csv")
    assert refusal(tmp_path, {"path": "data.csv", "target": "y"}) == (
        "data.csv: is a FIFO (named pipe), not a data file; allowed: a regular file"
    )


def test_a_file_over_the_byte_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    table().to_csv(tmp_path / "data.csv", index=False)
    size = (tmp_path / "data.csv").stat().st_size
    monkeypatch.setattr(file_reading, "MAX_FILE_BYTES", size - 1)
    monkeypatch.setattr(os, "read", lambda *a: pytest.fail("read past the limit"))
    message = refusal(tmp_path, {"path": "data.csv", "target": "outcome"})
    assert message.startswith(f"data.csv: the file is {size / 1024:.1f} KiB; allowed: at most "), message


def test_a_column_name_from_the_file_is_bounded_and_printable(tmp_path):
    secret = "TOKEN=" + "s3cr3t" * 100
    (tmp_path / "data.csv").write_text(f"{secret}\x1b[2J,y\n1,0\n2,1\n")
    message = refusal(tmp_path, {"path": "data.csv", "target": "outcome"})
    assert message.startswith("target: data.csv has no column 'outcome'; columns: TOKEN=s3cr3ts3cr3t"), message
    assert "s3cr3t" * 7 not in message and "\x1b" not in message


def test_a_text_column_of_distinct_values_is_refused_before_it_is_one_hot_encoded(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "MAX_FEATURES", 1_000)
    ids = pd.DataFrame({"user": [f"u{i}" for i in range(2_000)], "x": np.arange(2_000.0), "y": [0, 1] * 1_000})
    ids.to_csv(tmp_path / "ids.csv", index=False)
    assert refusal(tmp_path, {"path": "ids.csv", "target": "y"}) == (
        "ids.csv: its features one-hot encoded are 2,001 per row, 4,002,000 values in all; allowed: at most "
        "1,000 per row and 250,000,000 in all; column 'user' alone has 2,000 distinct values: leave it out "
        "with drop: [user] (an id or free text is no category)"
    )
    TaskSpec.model_validate(
        {"dataset": {"path": "ids.csv", "target": "y", "drop": ["user"]}}, context={"base_dir": tmp_path}
    )


@pytest.mark.parametrize("where", ["feature", "target", "array"])
def test_numbers_beyond_float32_are_refused(tmp_path, where):
    data = table()
    if where == "array":
        np.savez(tmp_path / "big.npz", X=np.where(np.eye(40, 3) > 0, 1e308, 0.0), y=np.array([0, 1] * 20))
        message = refusal(tmp_path, {"path": "big.npz"})
        assert message.startswith("big.npz: X has values beyond float32's range in 3 samples (first: sample 0)")
        return
    data["outcome"] = data["outcome"].astype(float)
    data.loc[5, "a" if where == "feature" else "outcome"] = 1e308
    data.to_csv(tmp_path / "big.csv", index=False)
    dataset = {"path": "big.csv", "target": "outcome", **({"problem": "regression"} if where == "target" else {})}
    message = refusal(tmp_path, dataset)
    said = "column 'a' has values beyond float32's range in 1 rows" if where == "feature" else "targets beyond float32"
    assert message.startswith("big.csv: ") and said in message, message


def test_blank_header_cells_are_not_taken_for_a_duplicated_name(tmp_path):
    (tmp_path / "blank.csv").write_text(",,outcome\n" + "".join(f"{i},{-i},{i % 2}\n" for i in range(40)))
    t = TaskSpec.model_validate({"dataset": {"path": "blank.csv", "target": "outcome"}}, context={"base_dir": tmp_path})
    assert t.dataset.data.numeric == ("Unnamed: 0", "Unnamed: 1")


def test_a_parquet_file_declaring_too_many_rows_is_refused_from_its_footer(tmp_path, monkeypatch):
    table().to_parquet(tmp_path / "many.parquet")
    monkeypatch.setattr(file_reading, "MAX_ROWS", 39)
    read = []
    monkeypatch.setattr(pd, "read_parquet", lambda *a, **k: read.append(a))
    assert refusal(tmp_path, {"path": "many.parquet", "target": "outcome"}) == (
        "many.parquet: 40 rows; allowed: at most 39"
    )
    assert read == []
