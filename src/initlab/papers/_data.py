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
