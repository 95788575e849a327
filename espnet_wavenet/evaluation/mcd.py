"""Mel-cepstral distortion (MCD) in dB.

Definition (per frame t, averaged over all frames):

    MCD_t = 10 / ln(10) * sqrt(2 * sum_{d=1..D} (c_{t,d} - c'_{t,d})^2)

with mel-cepstra c, c' of order D = 24 from :mod:`espnet_wavenet.evaluation.world`
(pyworld CheapTrick envelope, pysptk ``sp2mc``, all-pass constant
``pysptk.util.mcepalpha(fs)``, 5 ms frames). The energy term c0 is excluded.
No dynamic time warping: a vocoder's output is sample-aligned with the natural
recording it was conditioned on, so frame t is compared with frame t.
All frames count, silences included.

Caveat: the envelope covers 0..fs/2, so a band-limited output is penalised
heavily where the natural recording has energy it lacks. Griffin-Lim on features
with fmax = 7600 Hz leaves 7.6..11 kHz empty; the natural recording low-passed at
7.6 kHz alone scores ~22 dB against itself. Read MCD next to the log-mel
distance, which only covers the feature band.
"""

import math

import numpy as np

MCD_CONST = 10.0 / math.log(10.0) * math.sqrt(2.0)


def mel_cepstral_distortion(mcep_ref: np.ndarray, mcep_deg: np.ndarray) -> float:
    """Mean frame-aligned MCD in dB over c1..cD; inputs (T, D + 1)."""
    n = min(len(mcep_ref), len(mcep_deg))
    if n == 0:
        return math.nan
    diff = mcep_ref[:n, 1:] - mcep_deg[:n, 1:]
    return float(np.mean(MCD_CONST * np.sqrt(np.sum(diff * diff, axis=1))))
