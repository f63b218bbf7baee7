"""Datasets for training benches: generated 2-D problems, scikit-learn's digits, user files.

Every loader returns a :class:`Dataset` with train and test splits as tensors: features
``x`` of shape ``(N, features)`` (float64) and class labels ``y`` of shape ``(N,)`` (int64,
``0 .. n_classes - 1``). Nothing here touches NumPy's or torch's global RNG: draws come from
``numpy.random.RandomState(seed)``, which gives exactly the stream that ``np.random.seed(seed)``
gives the global functions, so the classic course recipe is reproduced bit for bit::

    np.random.seed(1); make_circles(n_samples=300, noise=0.05)   # train
    np.random.seed(2); make_circles(n_samples=100, noise=0.05)   # test

Nothing downloads anything: generated data and scikit-learn's bundled datasets only.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from initlab._core.table import format_table
from initlab._core.validation import check_number, unknown_name_error

NAMES = ("circles", "moons", "spiral", "blobs", "digits", "csv", "npz")


__all__ = [
    "Dataset",
    "blobs",
    "circles",
    "digits",
    "from_csv",
    "from_npz",
    "load",
    "moons",
    "spiral",
]


@dataclass
class Dataset:
    """Train and test splits: ``x_*`` of shape ``(N, features)``, ``y_*`` of shape ``(N,)``."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    classes: tuple[str, ...] = ()

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    def __str__(self) -> str:
        rows = [
            ("train", tuple(self.x_train.shape), _counts(self.y_train, self.n_classes)),
            ("test", tuple(self.x_test.shape), _counts(self.y_test, self.n_classes)),
        ]
        head = f"dataset {self.name}: {self.n_features} features, {self.n_classes} classes"
        return head + "\n" + format_table(["split", "x shape", "examples per class"], rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "n_train": int(self.x_train.shape[0]),
            "n_test": int(self.x_test.shape[0]),
            "classes": list(self.classes),
        }


def _counts(y: torch.Tensor, n_classes: int) -> str:
    return " ".join(str(int(c)) for c in torch.bincount(y, minlength=n_classes))


def _make(
    name: str, x_train: Any, y_train: Any, x_test: Any, y_test: Any, classes: Any = None
) -> Dataset:
    y_all = np.concatenate([np.asarray(y_train), np.asarray(y_test)])
    n_classes = int(y_all.max()) + 1 if y_all.size else 0
    return Dataset(
        name=name,
        x_train=torch.as_tensor(np.asarray(x_train, dtype=np.float64)),
        y_train=torch.as_tensor(np.asarray(y_train, dtype=np.int64)),
        x_test=torch.as_tensor(np.asarray(x_test, dtype=np.float64)),
        y_test=torch.as_tensor(np.asarray(y_test, dtype=np.int64)),
        n_classes=n_classes,
        classes=tuple(str(c) for c in (classes if classes is not None else range(n_classes))),
    )


def _split(
    name: str, x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int, classes: Any = None
) -> Dataset:
    check_number("test_fraction", test_fraction, minimum=0.0, maximum=0.9)
    return _split_rows(name, x, y, round(len(x) * test_fraction), seed, classes)


def _split_rows(
    name: str, x: np.ndarray, y: np.ndarray, n_test: int, seed: int, classes: Any = None
) -> Dataset:
    """``n_test`` rows at random (``RandomState(seed)``'s permutation) for test, the rest train."""
    order = np.random.RandomState(seed).permutation(len(x))
    test, train = order[:n_test], order[n_test:]
    return _make(name, x[train], y[train], x[test], y[test], classes)


def _sizes(n_train: Any, n_test: Any) -> tuple[int, int]:
    return (
        int(check_number("n_train", n_train, minimum=2, integer=True)),
        int(check_number("n_test", n_test, minimum=0, integer=True)),
    )


def circles(n_train: int = 300, n_test: int = 100, noise: float = 0.05, seed: int = 1) -> Dataset:
    """Two concentric circles (``sklearn.datasets.make_circles``, factor 0.8).

    Train draws from ``RandomState(seed)``, test from ``RandomState(seed + 1)``: the defaults
    are the course's ``np.random.seed(1)`` / ``np.random.seed(2)`` recipe, bit for bit.
    """
    from sklearn.datasets import make_circles

    n_train, n_test = _sizes(n_train, n_test)
    check_number("noise", noise, minimum=0.0)
    seed = int(check_number("seed", seed, minimum=0, integer=True))
    rs_train, rs_test = np.random.RandomState(seed), np.random.RandomState(seed + 1)
    x_train, y_train = make_circles(n_samples=n_train, noise=noise, random_state=rs_train)
    if n_test:
        x_test, y_test = make_circles(n_samples=n_test, noise=noise, random_state=rs_test)
    else:
        x_test, y_test = np.zeros((0, 2)), np.zeros(0)
    return _make("circles", x_train, y_train, x_test, y_test)


def moons(n_train: int = 300, n_test: int = 100, noise: float = 0.2, seed: int = 1) -> Dataset:
    """Two interleaving half circles (``sklearn.datasets.make_moons``); seeds as in circles."""
    from sklearn.datasets import make_moons

    n_train, n_test = _sizes(n_train, n_test)
    check_number("noise", noise, minimum=0.0)
    seed = int(check_number("seed", seed, minimum=0, integer=True))
    x_train, y_train = make_moons(n_train, noise=noise, random_state=np.random.RandomState(seed))
    if n_test:
        x_test, y_test = make_moons(
            n_test, noise=noise, random_state=np.random.RandomState(seed + 1)
        )
    else:
        x_test, y_test = np.zeros((0, 2)), np.zeros(0)
    return _make("moons", x_train, y_train, x_test, y_test)


def spiral(
    n_train: int = 300, n_test: int = 100, classes: int = 2, noise: float = 0.2, seed: int = 1
) -> Dataset:
    """``classes`` interleaved spiral arms in 2-D.

    Point ``i`` of arm ``k`` with ``t = i / n`` lies at radius ``t`` and angle
    ``4 t + 2 pi k / classes + noise * N(0, 1)`` (the CS231n spiral). Train and test are
    drawn together from ``RandomState(seed)`` and split at random.
    """
    n_train, n_test = _sizes(n_train, n_test)
    classes = int(check_number("classes", classes, minimum=2, maximum=100, integer=True))
    check_number("noise", noise, minimum=0.0)
    seed = int(check_number("seed", seed, minimum=0, integer=True))
    rng = np.random.RandomState(seed)
    total = n_train + n_test
    labels = np.arange(total) % classes
    t = rng.uniform(0.05, 1.0, total)
    angle = 4.0 * t + 2.0 * math.pi * labels / classes + noise * rng.randn(total)
    x = np.stack([t * np.sin(angle), t * np.cos(angle)], axis=1)
    return _split_rows("spiral", x, labels, n_test, seed + 1)


def blobs(
    n_train: int = 300, n_test: int = 100, classes: int = 3, features: int = 2,
    std: float = 1.0, seed: int = 1,
) -> Dataset:  # fmt: skip
    """Gaussian blobs (``sklearn.datasets.make_blobs``), split at random into train and test."""
    from sklearn.datasets import make_blobs

    n_train, n_test = _sizes(n_train, n_test)
    classes = int(check_number("classes", classes, minimum=2, maximum=1000, integer=True))
    features = int(check_number("features", features, minimum=1, integer=True))
    check_number("std", std, minimum=0.0, strict_minimum=True)
    seed = int(check_number("seed", seed, minimum=0, integer=True))
    total = n_train + n_test
    x, y = make_blobs(
        n_samples=total, centers=classes, n_features=features, cluster_std=std,
        random_state=np.random.RandomState(seed),
    )  # fmt: skip
    return _split_rows("blobs", x, y, n_test, seed + 1)


def digits(test_fraction: float = 0.25, seed: int = 1) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, 64 features scaled to [0, 1], 10 classes)."""
    from sklearn.datasets import load_digits

    seed = int(check_number("seed", seed, minimum=0, integer=True))
    bunch = load_digits()
    return _split("digits", bunch.data / 16.0, bunch.target, test_fraction, seed)


# ---------------------------------------------------------------------------- user files
def _labels_to_classes(raw: list[str] | np.ndarray, where: str) -> tuple[np.ndarray, list[str]]:
    values = [str(v) for v in np.asarray(raw).tolist()]
    try:
        numeric = [float(v) for v in values]
        keys: list[Any] = sorted(set(numeric))
        as_key = numeric
        names = [format(k, "g") for k in keys]
    except ValueError:
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


def from_csv(
    path: str | os.PathLike[str], label: str | int = -1, test_fraction: float = 0.25,
    seed: int = 1,
) -> Dataset:  # fmt: skip
    """Load a CSV file: one row per example, numeric feature columns, one label column.

    A first row that is not all numbers is read as the header. ``label`` names the label
    column (header name or index; default the last). Labels may be numbers or strings; they
    are mapped to classes ``0 .. k-1`` in sorted order. Missing values, non-numeric
    features, rows of the wrong length and a single class are errors naming row and column
    (rows counted from 1 as lines of the file).
    """
    path = os.fspath(path)
    with open(path, newline="") as handle:
        rows = [
            (i, r) for i, r in enumerate(csv.reader(handle), start=1) if any(c.strip() for c in r)
        ]
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
                    f"{path}: non-numeric value {text!r} at row {line}, column {header[j]!r}"
                ) from None
            if not math.isfinite(value):
                raise ValueError(
                    f"{path}: non-finite value {text!r} at row {line}, column {header[j]!r}"
                )
            values.append(value)
        features.append(values)
    if len(features) < 2:
        raise ValueError(f"{path}: need at least 2 data rows; got {len(features)}")
    y, names = _labels_to_classes(labels, f"{path}, column {header[label_index]!r}")
    name = os.path.splitext(os.path.basename(path))[0]
    return _split(name, np.array(features, dtype=np.float64), y, test_fraction, seed, names)


def from_npz(
    path: str | os.PathLike[str], x_key: str = "X", y_key: str = "y",
    test_fraction: float = 0.25, seed: int = 1,
) -> Dataset:  # fmt: skip
    """Load an ``.npz`` with features ``X`` (N, features) and labels ``y`` (N,).

    If the file also holds ``X_test``/``y_test`` they are the test split; otherwise
    ``test_fraction`` of the rows are held out at random. Never unpickles (object arrays are
    refused).
    """
    path = os.fspath(path)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    for key in (x_key, y_key):
        if key not in arrays:
            raise unknown_name_error(f"array in {path} (for {key!r})", key, arrays)

    def check(x: np.ndarray, y: np.ndarray, xk: str, yk: str) -> tuple[np.ndarray, np.ndarray]:
        if x.ndim != 2:
            raise ValueError(f"{path}: {xk} must have shape (N, features); got {x.shape}")
        y = y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(
                f"{path}: {yk} must have shape ({x.shape[0]},) to match {xk} {x.shape}; "
                f"got {y.shape}"
            )
        if not np.issubdtype(x.dtype, np.number):
            raise ValueError(f"{path}: {xk} must be numeric; got dtype {x.dtype}")
        bad = np.argwhere(~np.isfinite(x.astype(np.float64)))
        if len(bad):
            r, c = bad[0]
            raise ValueError(f"{path}: missing or non-finite value in {xk} at row {r}, column {c}")
        return x.astype(np.float64), y

    x, y = check(arrays[x_key], arrays[y_key], x_key, y_key)
    name = os.path.splitext(os.path.basename(path))[0]
    if f"{x_key}_test" in arrays and f"{y_key}_test" in arrays:
        xt, yt = check(arrays[f"{x_key}_test"], arrays[f"{y_key}_test"], f"{x_key}_test",
                       f"{y_key}_test")  # fmt: skip
        if xt.shape[1] != x.shape[1]:
            raise ValueError(
                f"{path}: {x_key}_test has {xt.shape[1]} features; {x_key} has {x.shape[1]}"
            )
        labels, names = _labels_to_classes(np.concatenate([y, yt]), f"{path}, {y_key}")
        return _make(name, x, labels[: len(y)], xt, labels[len(y) :], names)
    labels, names = _labels_to_classes(y, f"{path}, {y_key}")
    return _split(name, x, labels, test_fraction, seed, names)


_LOADERS = {"circles": circles, "moons": moons, "spiral": spiral, "blobs": blobs, "digits": digits}


def load(name: str | os.PathLike[str], **kwargs: Any) -> Dataset:
    """A dataset by name (``circles``, ``moons``, ``spiral``, ``blobs``, ``digits``) or path.

    A path ending in ``.csv`` or ``.npz`` (or ``load("csv", path=...)``) loads a user file;
    ``kwargs`` go to the loader (sizes, noise, seed, label column, ...).

    >>> data = load("circles")
    >>> tuple(data.x_train.shape), tuple(data.x_test.shape)
    ((300, 2), (100, 2))
    """
    if isinstance(name, os.PathLike) or (
        isinstance(name, str) and name.lower().endswith((".csv", ".npz"))
    ):
        path = os.fspath(name)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such data file: {path}")
        loader = from_csv if path.lower().endswith(".csv") else from_npz
        return loader(path, **kwargs)
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string or path; got {type(name).__name__}")
    if name in ("csv", "npz"):
        if "path" not in kwargs:
            raise ValueError(f"load({name!r}) needs path=...")
        path = os.fspath(kwargs.pop("path"))
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such data file: {path}")
        return (from_csv if name == "csv" else from_npz)(path, **kwargs)
    if name not in _LOADERS:
        raise unknown_name_error("dataset", name, NAMES)
    try:
        return _LOADERS[name](**kwargs)
    except TypeError as error:
        if "unexpected keyword" in str(error):
            import inspect

            valid = list(inspect.signature(_LOADERS[name]).parameters)
            bad = sorted(set(kwargs) - set(valid))
            raise TypeError(
                f"dataset {name!r} has no option {bad[0]!r}; its options are: {', '.join(valid)}"
            ) from None
        raise
