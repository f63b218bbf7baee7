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

import math
import os
from typing import Any

import numpy as np

from initlab._core.validation import check_number, unknown_name_error
from initlab.bench.datafiles import from_csv, from_npz
from initlab.bench.dataset import Dataset, _data_seed, _make, _split, _split_rows

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
    seed = _data_seed(seed)
    rs_train, rs_test = np.random.RandomState(seed), np.random.RandomState(seed + 1)
    x_train, y_train = make_circles(n_samples=n_train, noise=noise, random_state=rs_train)
    if n_test:
        x_test, y_test = make_circles(n_samples=n_test, noise=noise, random_state=rs_test)
    else:
        x_test, y_test = np.zeros((0, 2)), np.zeros(0)
    source = {"loader": "circles", "n_train": n_train, "n_test": n_test, "noise": noise,
              "seed": seed}  # fmt: skip
    return _make("circles", x_train, y_train, x_test, y_test, source=source)


def moons(n_train: int = 300, n_test: int = 100, noise: float = 0.2, seed: int = 1) -> Dataset:
    """Two interleaving half circles (``sklearn.datasets.make_moons``); seeds as in circles."""
    from sklearn.datasets import make_moons

    n_train, n_test = _sizes(n_train, n_test)
    check_number("noise", noise, minimum=0.0)
    seed = _data_seed(seed)
    x_train, y_train = make_moons(n_train, noise=noise, random_state=np.random.RandomState(seed))
    if n_test:
        x_test, y_test = make_moons(
            n_test, noise=noise, random_state=np.random.RandomState(seed + 1)
        )
    else:
        x_test, y_test = np.zeros((0, 2)), np.zeros(0)
    source = {"loader": "moons", "n_train": n_train, "n_test": n_test, "noise": noise,
              "seed": seed}  # fmt: skip
    return _make("moons", x_train, y_train, x_test, y_test, source=source)


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
    seed = _data_seed(seed)
    rng = np.random.RandomState(seed)
    total = n_train + n_test
    labels = np.arange(total) % classes
    t = rng.uniform(0.05, 1.0, total)
    angle = 4.0 * t + 2.0 * math.pi * labels / classes + noise * rng.randn(total)
    x = np.stack([t * np.sin(angle), t * np.cos(angle)], axis=1)
    source = {"loader": "spiral", "n_train": n_train, "n_test": n_test, "classes": classes,
              "noise": noise, "seed": seed}  # fmt: skip
    return _split_rows("spiral", x, labels, n_test, seed + 1, source=source)


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
    seed = _data_seed(seed)
    total = n_train + n_test
    x, y = make_blobs(
        n_samples=total, centers=classes, n_features=features, cluster_std=std,
        random_state=np.random.RandomState(seed),
    )  # fmt: skip
    source = {"loader": "blobs", "n_train": n_train, "n_test": n_test, "classes": classes,
              "features": features, "std": std, "seed": seed}  # fmt: skip
    return _split_rows("blobs", x, y, n_test, seed + 1, source=source)


def digits(test_fraction: float = 0.25, seed: int = 1) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, 64 features scaled to [0, 1], 10 classes)."""
    from sklearn.datasets import load_digits

    seed = _data_seed(seed)
    bunch = load_digits()
    source = {"loader": "digits", "test_fraction": test_fraction, "seed": seed}
    return _split("digits", bunch.data / 16.0, bunch.target, test_fraction, seed, source=source)


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
        return _load_file("csv" if path.lower().endswith(".csv") else "npz", path, kwargs)
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string or path; got {type(name).__name__}")
    if name in ("csv", "npz"):
        if "path" not in kwargs:
            raise ValueError(f"load({name!r}) needs path=...")
        return _load_file(name, os.fspath(kwargs.pop("path")), kwargs)
    if name not in _LOADERS:
        raise unknown_name_error("dataset", name, NAMES)
    return _call(_LOADERS[name], f"dataset {name!r}", kwargs)


def _load_file(kind: str, path: str, kwargs: dict[str, Any]) -> Dataset:
    if not path.strip():
        raise ValueError("the data path must not be empty")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such data file: {path}")
    if kind == "npz" and "label" in kwargs:
        label = kwargs.pop("label")
        if not isinstance(label, str) or not label:
            raise ValueError(
                f"for an .npz file, label names the labels array (like 'y'); got {label!r}"
            )
        kwargs["y_key"] = label
    return _call(from_csv if kind == "csv" else from_npz, f"a .{kind} file", kwargs, path)


def _call(loader: Any, what: str, kwargs: dict[str, Any], *args: Any) -> Dataset:
    """``loader(*args, **kwargs)``, with an unknown keyword named against the valid ones."""
    import inspect

    valid = [p for p in inspect.signature(loader).parameters if p != "path"]
    bad = sorted(set(kwargs) - set(valid))
    if bad:
        raise TypeError(f"{what} has no option {bad[0]!r}; its options are: {', '.join(valid)}")
    return loader(*args, **kwargs)
