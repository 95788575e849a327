"""Perceptual and intelligibility scores: PESQ wide-band (ITU-T P.862.2) and STOI.

Both come from maintained packages (``pesq``, ``pystoi``); this module only
resamples and guards against their failure modes.

- PESQ wide-band: both signals are resampled to 16 kHz (torchaudio's windowed
  sinc) and scored by ``pesq.pesq(16000, ref, deg, "wb")``. Range about
  1.04 (bad) .. 4.64 (identical).
- STOI: ``pystoi.stoi(ref, deg, fs, extended=False)`` (Taal et al. 2011; the
  package resamples to 10 kHz internally). Range 0 .. 1 (identical).
"""

import logging
import math

import numpy as np

from espnet_wavenet.data.audio import resample

PESQ_FS = 16000


def pesq_wb(ref: np.ndarray, deg: np.ndarray, fs: int) -> float:
    """Wide-band PESQ (MOS-LQO) of ``deg`` against ``ref``; NaN when PESQ refuses."""
    from pesq import PesqError, pesq

    r = resample(np.asarray(ref, dtype=np.float32), fs, PESQ_FS).astype(np.float64)
    d = resample(np.asarray(deg, dtype=np.float32), fs, PESQ_FS).astype(np.float64)
    n = min(len(r), len(d))
    try:
        return float(pesq(PESQ_FS, r[:n], d[:n], "wb"))
    except PesqError as e:  # e.g. no utterance detected in a silent reference
        logging.warning("PESQ failed (%s: %s); scored NaN", type(e).__name__, e)
        return math.nan


def stoi(ref: np.ndarray, deg: np.ndarray, fs: int, extended: bool = False) -> float:
    """Short-time objective intelligibility of ``deg`` against ``ref`` (0..1)."""
    from pystoi import stoi as _stoi

    n = min(len(ref), len(deg))
    r = np.asarray(ref[:n], dtype=np.float64)
    d = np.asarray(deg[:n], dtype=np.float64)
    value = float(_stoi(r, d, fs, extended=extended))
    if not np.isfinite(value):
        logging.warning("STOI is not finite (silent signal?); scored NaN")
        return math.nan
    return value
