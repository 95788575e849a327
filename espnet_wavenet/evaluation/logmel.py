"""Log-mel spectral distance computed with the recipe's own features.

Both signals go through ESPnet's ``LogMelFbank`` with the model's feature
configuration (:func:`espnet_wavenet.features.build_feats_extract`; by default
fs 22050, n_fft 1024, hop 256, hann, 80 mels, 80..7600 Hz, log10 of the mel
*magnitude*). The distance is the root-mean-square difference in dB over all
(frame, mel bin) cells, frame-aligned:

    logmel_rmse_db = sqrt(mean_{t,k} (20 * (log10 M_{t,k} - log10 M'_{t,k}))^2)

(for ``log_base`` other than 10 the features are first converted to log10).
"""

import math
from typing import Any, Dict, Optional

import numpy as np
import torch

from espnet_wavenet.features import build_feats_extract, check_feats_conf


def db_per_unit(log_base: Optional[float]) -> float:
    """dB per unit of a log-mel magnitude feature with this log base (None = e)."""
    ln_base = 1.0 if log_base is None else math.log(log_base)
    return 20.0 * ln_base / math.log(10.0)


class LogMelDistance:
    """Log-mel features (in dB) and their RMSE distance for one feature config."""

    def __init__(self, feats_conf: Dict[str, Any]):
        self.conf = check_feats_conf(feats_conf)
        self.fs = self.conf["fs"]
        self.extract = build_feats_extract(self.conf).eval()
        self.scale = db_per_unit(self.conf["log_base"])

    @torch.no_grad()
    def logmel_db(self, wav: np.ndarray) -> np.ndarray:
        """(T_frames, n_mels) log-mel magnitude in dB."""
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)).reshape(1, -1)
        feats, _ = self.extract(x, torch.tensor([x.shape[1]]))
        return feats[0].numpy().astype(np.float64) * self.scale

    def __call__(self, ref: np.ndarray, deg: np.ndarray) -> float:
        a, b = self.logmel_db(ref), self.logmel_db(deg)
        n = min(len(a), len(b))
        if n == 0:
            return math.nan
        diff = a[:n] - b[:n]
        return float(np.sqrt(np.mean(diff * diff)))
