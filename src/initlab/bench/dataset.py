"""The :class:`Dataset` type of the bench (train and test splits as tensors) and the helpers
every loader uses to build one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from initlab._core.fingerprint import array_digest
from initlab._core.table import format_table
from initlab._core.validation import check_number


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
    source: dict[str, Any] = field(default_factory=dict, compare=False)
    """How the data was made: the loader and the options that shaped it (for a file: its
    path and SHA-256), part of :meth:`fingerprint`."""

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

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this data: a SHA-256 of both splits' contents, their shapes, and
        :attr:`source` (the options that shaped it). ``compare(..., resume=True)`` refuses
        to mix results of data with another fingerprint."""
        return {
            "sha256": array_digest(self.x_train, self.y_train, self.x_test, self.y_test),
            "n_train": int(self.x_train.shape[0]),
            "n_test": int(self.x_test.shape[0]),
            "n_features": self.n_features,
            "classes": list(self.classes),
            "source": dict(self.source),
        }


def _counts(y: torch.Tensor, n_classes: int) -> str:
    return " ".join(str(int(c)) for c in torch.bincount(y, minlength=n_classes))


def _make(
    name: str, x_train: Any, y_train: Any, x_test: Any, y_test: Any, classes: Any = None,
    source: dict[str, Any] | None = None,
) -> Dataset:  # fmt: skip
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
        source=dict(source or {"loader": name}),
    )


def _split(
    name: str, x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int, classes: Any = None,
    source: dict[str, Any] | None = None,
) -> Dataset:  # fmt: skip
    check_number("test_fraction", test_fraction, minimum=0.0, maximum=0.9)
    return _split_rows(name, x, y, round(len(x) * test_fraction), seed, classes, source)


def _split_rows(
    name: str, x: np.ndarray, y: np.ndarray, n_test: int, seed: int, classes: Any = None,
    source: dict[str, Any] | None = None,
) -> Dataset:  # fmt: skip
    """``n_test`` rows at random (``RandomState(seed)``'s permutation) for test, the rest train."""
    order = np.random.RandomState(seed).permutation(len(x))
    test, train = order[:n_test], order[n_test:]
    return _make(name, x[train], y[train], x[test], y[test], classes, source)


def _data_seed(seed: Any) -> int:
    """Data seeds feed ``numpy.random.RandomState``, which takes ``[0, 2**32)``; the test split
    uses ``seed + 1``."""
    return int(check_number("seed", seed, minimum=0, maximum=2**32 - 2, integer=True))


__all__ = ["Dataset"]
