"""Statistical checks shared by the initializer tests.

Tolerances follow STYLE.md: a KS test against the exact distribution (pass if p > 1e-4) and
moment checks with bounds from the sample size (std within 5/sqrt(2n) relative, mean within
5 std/sqrt(n)). On ~32k samples the pair never fails a correct sampler and catches a 2-5%
error in the std.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

P_MIN = 1e-4


def check_sample(values, dist, *, std: float | None = None, mean: float | None = None) -> None:
    """Assert that ``values`` look drawn from the frozen SciPy distribution ``dist``."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    n = x.size
    target_std = float(dist.std()) if std is None else std
    target_mean = float(dist.mean()) if mean is None else mean
    assert abs(x.std() / target_std - 1) < 5 / math.sqrt(2 * n), (x.std(), target_std)
    assert abs(x.mean() - target_mean) < 5 * target_std / math.sqrt(n), (x.mean(), target_mean)
    p = stats.kstest(x, dist.cdf).pvalue
    assert p > P_MIN, f"KS test rejects the target distribution: p = {p:.2e}"
    low, high = dist.support()
    slack = 1e-6 * max(
        abs(low) if math.isfinite(low) else 0, abs(high) if math.isfinite(high) else 0
    )
    assert x.min() >= low - slack and x.max() <= high + slack, (x.min(), x.max(), low, high)
