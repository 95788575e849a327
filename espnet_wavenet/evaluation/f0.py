"""F0 RMSE in cents and voiced/unvoiced (V/UV) error rate.

Frames come from :mod:`espnet_wavenet.evaluation.world` (5 ms, pyworld Harvest by
default), compared frame by frame without time warping.

- F0 RMSE (cents) = sqrt(mean over frames voiced in both signals of
  (1200 * log2(f0_deg / f0_ref))^2); NaN when no frame is voiced in both.
- V/UV error = fraction of all frames whose voicing decision (f0 > 0) differs.
"""

import math
from typing import Tuple

import numpy as np


def f0_metrics(f0_ref: np.ndarray, f0_deg: np.ndarray) -> Tuple[float, float]:
    """(F0 RMSE in cents, V/UV error rate in [0, 1])."""
    n = min(len(f0_ref), len(f0_deg))
    if n == 0:
        return math.nan, math.nan
    r, d = f0_ref[:n], f0_deg[:n]
    v_ref, v_deg = r > 0, d > 0
    vuv = float(np.mean(v_ref != v_deg))
    both = v_ref & v_deg
    if not both.any():
        return math.nan, vuv
    cents = 1200.0 * np.log2(d[both] / r[both])
    return float(np.sqrt(np.mean(cents * cents))), vuv
