"""Data shared by the reproductions: scikit-learn's digits, standardized per feature."""

from __future__ import annotations

from functools import cache

from initlab.bench.datasets import Dataset, digits


@cache
def standardized_digits(seed: int = 0) -> Dataset:
    """The 8x8 digits (64 features, 10 classes), each feature scaled to mean 0 and std 1 on the
    training split (constant pixels keep std 1), 25% held out for test."""
    data = digits(seed=seed)
    mean = data.x_train.mean(0)
    std = data.x_train.std(0).clamp_min(1e-6)
    return Dataset(
        "digits (standardized)",
        (data.x_train - mean) / std,
        data.y_train,
        (data.x_test - mean) / std,
        data.y_test,
        data.n_classes,
        data.classes,
    )


@cache
def digits_subset(n_train: int, seed: int = 0) -> Dataset:
    """The first ``n_train`` training rows of :func:`standardized_digits` (same test split):
    for deep nets whose every full-data evaluation of the training loss is costly."""
    data = standardized_digits(seed)
    return Dataset(
        f"digits (standardized, {n_train} training rows)",
        data.x_train[:n_train],
        data.y_train[:n_train],
        data.x_test,
        data.y_test,
        data.n_classes,
        data.classes,
    )
