"""Writes the example data files of this folder from scikit-learn's bundled data sets.

    python examples/make_data.py

- ``patients.csv`` and ``patients_holdout.csv``: scikit-learn's diabetes data (442 patients; Efron et
  al. 2004, "Least angle regression") unscaled, with a text column and a class to predict: ``sex`` is
  the source's code 1 or 2 written as ``A`` or ``B`` (the source does not say which is which), and
  ``outcome`` says whether the disease progressed more than the median one year on (``progressed``) or
  not (``stable``). A few values of ``bmi`` and ``bp`` are blanked, as real records miss some. The last
  80 patients (after a seeded shuffle) are the holdout.
- ``digits.npz``: scikit-learn's 8x8 handwritten digits, ``X`` (1797, 8, 8) images of 0..16 and ``y``
  (1797,) their digits.

The same scikit-learn writes the same bytes every time (the search spaces' runs keep the files'
sha256, and refuse to resume on other contents).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets

HERE = Path(__file__).resolve().parent
#: How many values of each column are left blank.
BLANKS = {"bmi": 6, "bp": 4}
HOLDOUT = 80


def patients() -> tuple[pd.DataFrame, pd.DataFrame]:
    bunch = datasets.load_diabetes(scaled=False, as_frame=True)
    # The blood serum measurements' names as scikit-learn's description of the data gives them.
    table = bunch.frame.rename(columns={"s1": "tc", "s2": "ldl", "s3": "hdl", "s4": "tch", "s5": "ltg", "s6": "glu"})
    table["sex"] = table["sex"].map({1.0: "A", 2.0: "B"})
    progression = table.pop("target")
    table["outcome"] = np.where(progression > progression.median(), "progressed", "stable")
    rng = np.random.RandomState(0)
    table = table.iloc[rng.permutation(len(table))].reset_index(drop=True)
    for column, n in BLANKS.items():
        table.loc[rng.choice(len(table), n, replace=False), column] = np.nan
    return table.iloc[:-HOLDOUT], table.iloc[-HOLDOUT:]


def digits() -> tuple[np.ndarray, np.ndarray]:
    bunch = datasets.load_digits()
    return bunch.images.astype(np.uint8), bunch.target.astype(np.int64)


def main() -> None:
    train, holdout = patients()
    train.to_csv(HERE / "patients.csv", index=False)
    holdout.to_csv(HERE / "patients_holdout.csv", index=False)
    x, y = digits()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, X=x, y=y)
    (HERE / "digits.npz").write_bytes(buffer.getvalue())
    print(f"wrote patients.csv ({len(train)} rows), patients_holdout.csv ({len(holdout)}), digits.npz {x.shape}")


if __name__ == "__main__":
    main()
