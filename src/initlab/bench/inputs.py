"""Training data in any accepted form, checked once at the boundary.

:func:`as_dataset` turns a :class:`~initlab.bench.datasets.Dataset`, a dataset name or path,
or arrays ``(x, y[, x_test, y_test])`` into a checked ``Dataset``: features of shape
``(N, features)``, real and finite in both splits; labels of shape ``(N,)``, whole numbers
``>= 0`` (``0.9`` is not class 0, NaN is not a class); at least one training row. The
trainers trust what it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from initlab.bench.dataset import Dataset, _make
from initlab.bench.datasets import load as load_dataset

DataLike = Dataset | str | Sequence[Any]


def as_dataset(data: DataLike) -> Dataset:
    """A checked :class:`Dataset` from a dataset, a name/path, or ``(x, y[, x_test, y_test])``."""
    if isinstance(data, Dataset):
        return check_dataset(data)
    if isinstance(data, str):
        return check_dataset(load_dataset(data))
    if isinstance(data, tuple | list) and len(data) in (2, 4):
        names = ("x", "y", "x_test", "y_test")[: len(data)]
        arrays = [_array(a, name) for a, name in zip(data, names, strict=True)]
        x, y = arrays[0], arrays[1]
        xt, yt = (arrays[2], arrays[3]) if len(arrays) == 4 else (x[:0], y[:0])
        for xa, ya, xname, yname in ((x, y, "x", "y"), (xt, yt, "x_test", "y_test")):
            if xa.ndim != 2 or ya.reshape(-1).shape[0] != xa.shape[0]:
                raise ValueError(
                    f"data: {xname} must have shape (N, features) and {yname} (N,); "
                    f"got {xa.shape} and {ya.shape}"
                )
            _check_features(xa, xname)
            _check_labels(ya.reshape(-1), yname)
        return check_dataset(_make("data", x, y.reshape(-1), xt, yt.reshape(-1)))
    raise TypeError(
        f"data must be a Dataset, a dataset name or path, or (x, y[, x_test, y_test]); "
        f"got {type(data).__name__}"
    )


def _array(value: Any, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
    array = np.asarray(value)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise TypeError(f"data: {name} must be numeric; got dtype {array.dtype}")
    return array


def _check_features(x: np.ndarray, name: str) -> None:
    if np.iscomplexobj(x):
        raise ValueError(f"data: {name} holds complex numbers; features must be real")
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        r, c = bad[0]
        raise ValueError(f"data: {name} holds NaN or Inf values (first at row {r}, column {c})")


def _check_labels(y: np.ndarray, name: str) -> None:
    if np.iscomplexobj(y):
        raise ValueError(f"data: {name} holds complex numbers; labels must be class numbers")
    if not y.size:
        return
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            raise ValueError(f"data: {name} holds NaN or Inf labels (first at row {bad[0]})")
        bad = np.flatnonzero(y != np.round(y))
        if bad.size:
            raise ValueError(
                f"data: {name} must hold whole class numbers 0, 1, ...; got {y[bad[0]].item()!r} "
                f"at row {bad[0]}"
            )
    bad = np.flatnonzero(y < 0)
    if bad.size:
        raise ValueError(
            f"data: {name} must hold class numbers 0, 1, ...; got {y[bad[0]].item()!r} at row "
            f"{bad[0]}"
        )


def check_dataset(data: Dataset) -> Dataset:
    """Check a :class:`Dataset`'s two splits (shapes, real finite features, labels ``>= 0``,
    at least one training row); returns it unchanged."""
    n = int(data.x_train.shape[0]) if data.x_train.dim() else 0
    if n == 0:
        raise ValueError(f"dataset {data.name!r} has no training rows")
    for x, y, split in ((data.x_train, data.y_train, "train"), (data.x_test, data.y_test, "test")):
        if x.dim() != 2 or y.dim() != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(
                f"dataset {data.name!r}: {split} features must be (N, features) and labels "
                f"(N,); got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if x.is_complex() or not x.is_floating_point():
            raise ValueError(f"dataset {data.name!r}: {split} features must be real floats")
        if x.numel() and not bool(torch.isfinite(x).all()):
            raise ValueError(f"dataset {data.name!r}: {split} features hold NaN or Inf values")
        if y.is_floating_point() or y.is_complex():
            raise ValueError(f"dataset {data.name!r}: {split} labels must be integer classes")
        if y.numel() and int(y.min()) < 0:
            raise ValueError(
                f"dataset {data.name!r}: {split} labels must be class numbers 0, 1, ...; got "
                f"{int(y.min())}"
            )
    if data.x_test.shape[0] and data.x_test.shape[1] != data.x_train.shape[1]:
        raise ValueError(
            f"dataset {data.name!r}: test features have {data.x_test.shape[1]} columns; train "
            f"has {data.x_train.shape[1]}"
        )
    return data


__all__ = ["DataLike", "as_dataset", "check_dataset"]
