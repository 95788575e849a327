"""Summary statistics: mean with a 95% confidence interval (Student's t)."""

import math
from typing import Dict, Iterable

import numpy as np


def mean_ci(values: Iterable[float], level: float = 0.95) -> Dict[str, float]:
    """Mean, half-width of the two-sided t confidence interval, std, n (NaNs dropped).

    ci95 = t_{(1+level)/2, n-1} * s / sqrt(n) with s the sample std (ddof=1);
    NaN when fewer than two values.
    """
    from scipy.stats import t

    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return dict(mean=math.nan, ci95=math.nan, std=math.nan, n=0)
    mean = float(v.mean())
    if n < 2:
        return dict(mean=mean, ci95=math.nan, std=math.nan, n=n)
    std = float(v.std(ddof=1))
    half = float(t.ppf(0.5 + level / 2.0, n - 1) * std / math.sqrt(n))
    return dict(mean=mean, ci95=half, std=std, n=n)
