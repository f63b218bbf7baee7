"""User data files for the bench: CSV and ``.npz``, read strictly.

Every problem is a one-line ``ValueError`` naming the file and, where there is one, the row
and column: text that is not UTF-8, malformed CSV (a field over the csv module's limit), an
empty, truncated or foreign ``.npz``, a ``.npy`` renamed ``.npz``, object (pickled) arrays,
complex or non-finite features, NaN labels. Nothing is ever unpickled.
"""

from __future__ import annotations

import csv
import io
import math
import os
import zipfile
from typing import Any

import numpy as np

from initlab._core.fingerprint import file_digest
from initlab._core.validation import check_number, closest, unknown_name_error
from initlab.bench.dataset import Dataset, _data_seed, _make, _split


def _labels_to_classes(raw: list[str] | np.ndarray, where: str) -> tuple[np.ndarray, list[str]]:
    """Labels (numbers or strings) as classes ``0 .. k-1`` in sorted order. NaN, Inf and
    complex labels are errors naming the first bad row (counted from 0)."""
    array = np.asarray(raw)
    if np.iscomplexobj(array):
        raise ValueError(f"{where}: labels are complex numbers; expected class labels")
    if array.dtype.kind in "fiub":
        numeric = array.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(numeric))
        if bad.size:
            raise ValueError(
                f"{where}: missing or non-finite label {array[bad[0]].item()!r} at row {bad[0]}"
            )
        values: list[Any] = [str(v) for v in array.tolist()]
    else:
        values = [str(v) for v in array.tolist()]
    try:
        numeric_keys = [float(v) for v in values]
        bad = [i for i, v in enumerate(numeric_keys) if not math.isfinite(v)]
        if bad:
            raise ValueError(
                f"{where}: missing or non-finite label {values[bad[0]]!r} at row {bad[0]}"
            )
        keys: list[Any] = sorted(set(numeric_keys))
        as_key: list[Any] = numeric_keys
        names = [format(k, "g") for k in keys]
    except ValueError as error:
        if "non-finite label" in str(error):
            raise
        keys = sorted(set(values))
        as_key = values
        names = keys
    if len(keys) < 2:
        raise ValueError(
            f"{where}: the labels hold a single class ({names[0] if names else 'none'}); "
            f"a classifier needs at least 2"
        )
    index = {k: i for i, k in enumerate(keys)}
    return np.array([index[k] for k in as_key], dtype=np.int64), names


def _read_text(path: str) -> str:
    """The file as UTF-8 text (a BOM is dropped); other encodings are an error naming the line."""
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{raw[error.start]:02x} at line {line}); save the "
            f"CSV as UTF-8"
        ) from None


def _csv_rows(path: str) -> list[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    rows = []
    try:
        for row in reader:
            if any(c.strip() for c in row):
                rows.append((reader.line_num, row))
    except csv.Error as error:
        raise ValueError(
            f"{path}: line {reader.line_num} is not valid CSV ({error}); is this a CSV file?"
        ) from None
    return rows


def from_csv(
    path: str | os.PathLike[str], label: str | int = -1, test_fraction: float = 0.25,
    seed: int = 1,
) -> Dataset:  # fmt: skip
    """Load a CSV file: one row per example, numeric feature columns, one label column.

    A first row that is not all numbers is read as the header. ``label`` names the label
    column (header name or index; default the last). Labels may be numbers or strings; they
    are mapped to classes ``0 .. k-1`` in sorted order. Missing values, non-numeric
    features, rows of the wrong length, a single class, text that is not UTF-8 and malformed
    CSV are errors naming row and column (rows counted from 1 as lines of the file).
    """
    path = os.fspath(path)
    seed = _data_seed(seed)
    rows = _csv_rows(path)
    if not rows:
        raise ValueError(f"{path}: the file holds no rows")

    def is_number(text: str) -> bool:
        try:
            float(text)
        except ValueError:
            return False
        return True

    _, first = rows[0]
    if all(is_number(c) for c in first):
        header = [f"column {j}" for j in range(len(first))]
    else:
        header = [c.strip() for c in first]
        rows = rows[1:]
    width = len(header)
    if width < 2:
        raise ValueError(f"{path}: need at least one feature column and a label column")
    if isinstance(label, str) and not isinstance(label, bool):
        if label not in header:
            raise unknown_name_error("label column", label, header)
        label_index = header.index(label)
    else:
        label_index = int(check_number("label", label, minimum=-width, maximum=width - 1,
                                       integer=True))  # fmt: skip
        label_index %= width
    features, labels = _csv_values(path, rows, header, label_index)
    if len(features) < 2:
        raise ValueError(f"{path}: need at least 2 data rows; got {len(features)}")
    y, names = _labels_to_classes(labels, f"{path}, column {header[label_index]!r}")
    name = os.path.splitext(os.path.basename(path))[0]
    source = {"loader": "csv", "path": os.path.abspath(path), "file_sha256": file_digest(path),
              "label": header[label_index], "test_fraction": test_fraction,
              "seed": seed}  # fmt: skip
    return _split(name, np.array(features, dtype=np.float64), y, test_fraction, seed, names,
                  source)  # fmt: skip


def _csv_values(
    path: str, rows: list[tuple[int, list[str]]], header: list[str], label_index: int
) -> tuple[list[list[float]], list[str]]:
    width = len(header)
    features, labels = [], []
    for line, row in rows:
        if len(row) != width:
            raise ValueError(
                f"{path}: row {line} has {len(row)} columns; expected {width} ({', '.join(header)})"
            )
        values = []
        for j, cell in enumerate(row):
            text = cell.strip()
            if text == "" or text.lower() in ("nan", "na", "null", "none", "?"):
                raise ValueError(f"{path}: missing value at row {line}, column {header[j]!r}")
            if j == label_index:
                labels.append(text)
                continue
            try:
                value = float(text)
            except ValueError:
                raise ValueError(
                    f"{path}: non-numeric value {text[:40]!r} at row {line}, column {header[j]!r}"
                ) from None
            if not math.isfinite(value):
                raise ValueError(
                    f"{path}: non-finite value {text!r} at row {line}, column {header[j]!r}"
                )
            values.append(value)
        features.append(values)
    return features, labels


def _read_npz(path: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive, never unpickling; anything else is a clear error."""
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic.startswith(b"\x93NUMPY"):
        raise ValueError(
            f"{path}: holds a single .npy array, not an .npz archive; save the data with "
            f"np.savez({os.path.basename(path)!r}, X=features, y=labels)"
        )
    if not magic.startswith(b"PK"):
        what = "the file is empty" if not magic else "its first bytes are not a zip header"
        raise ValueError(
            f"{path}: not an .npz archive ({what}); save the data with "
            f"np.savez(path, X=features, y=labels)"
        )
    arrays = {}
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            foreign = [n for n in archive.zip.namelist() if not n.endswith(".npy")]
            if foreign:
                raise ValueError(
                    f"{path}: not an .npz of NumPy arrays (member {foreign[0]!r} is not a .npy "
                    f"file); save the data with np.savez(path, X=features, y=labels)"
                )
            for key in archive.files:
                try:
                    arrays[key] = archive[key]
                except ValueError as error:
                    if "pickle" in str(error):
                        raise ValueError(
                            f"{path}: array {key!r} holds Python objects (pickled data), which "
                            f"initlab never loads; store numeric arrays"
                        ) from None
                    raise ValueError(f"{path}: array {key!r} cannot be read ({error})") from None
    except (EOFError, zipfile.BadZipFile, OSError, AttributeError, KeyError) as error:
        raise ValueError(
            f"{path}: damaged or truncated .npz archive ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no detail'})"
        ) from None
    return arrays


def from_npz(
    path: str | os.PathLike[str], x_key: str = "X", y_key: str = "y",
    test_fraction: float = 0.25, seed: int = 1,
) -> Dataset:  # fmt: skip
    """Load an ``.npz`` with features ``X`` (N, features) and labels ``y`` (N,).

    If the file also holds ``X_test``/``y_test`` they are the test split; otherwise
    ``test_fraction`` of the rows are held out at random. Never unpickles (object arrays are
    refused). Complex, NaN or Inf features and NaN labels are errors naming the row.
    """
    path = os.fspath(path)
    seed = _data_seed(seed)
    arrays = _read_npz(path)
    for key in (x_key, y_key):
        if key not in arrays:
            hint = closest_name(key, arrays)
            raise ValueError(
                f"{path} has no array {key!r}"
                + (f" (did you mean {hint!r}?)" if hint else "")
                + f"; its arrays: {', '.join(sorted(arrays)) or '(none)'}"
            )

    def check(x: np.ndarray, y: np.ndarray, xk: str, yk: str) -> tuple[np.ndarray, np.ndarray]:
        if x.ndim != 2:
            raise ValueError(f"{path}: {xk} must have shape (N, features); got {x.shape}")
        y = y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(
                f"{path}: {yk} must have shape ({x.shape[0]},) to match {xk} {x.shape}; "
                f"got {y.shape}"
            )
        if np.iscomplexobj(x):
            raise ValueError(f"{path}: {xk} holds complex numbers; features must be real")
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise ValueError(f"{path}: {xk} must be numeric; got dtype {x.dtype}")
        bad = np.argwhere(~np.isfinite(x.astype(np.float64)))
        if len(bad):
            r, c = bad[0]
            raise ValueError(f"{path}: missing or non-finite value in {xk} at row {r}, column {c}")
        return x.astype(np.float64), y

    x, y = check(arrays[x_key], arrays[y_key], x_key, y_key)
    name = os.path.splitext(os.path.basename(path))[0]
    source = {"loader": "npz", "path": os.path.abspath(path), "file_sha256": file_digest(path),
              "x_key": x_key, "y_key": y_key, "test_fraction": test_fraction,
              "seed": seed}  # fmt: skip
    if f"{x_key}_test" in arrays and f"{y_key}_test" in arrays:
        xt, yt = check(arrays[f"{x_key}_test"], arrays[f"{y_key}_test"], f"{x_key}_test",
                       f"{y_key}_test")  # fmt: skip
        if xt.shape[1] != x.shape[1]:
            raise ValueError(
                f"{path}: {x_key}_test has {xt.shape[1]} features; {x_key} has {x.shape[1]}"
            )
        labels, names = _labels_to_classes(np.concatenate([y, yt]), f"{path}, {y_key}")
        return _make(name, x, labels[: len(y)], xt, labels[len(y) :], names, source)
    labels, names = _labels_to_classes(y, f"{path}, {y_key}")
    return _split(name, x, labels, test_fraction, seed, names, source)


def closest_name(name: str, choices: Any) -> str | None:
    """The valid name closest to ``name``, or ``None``."""
    hits = closest(name, list(choices), n=1)
    return hits[0] if hits else None


__all__ = ["from_csv", "from_npz"]
