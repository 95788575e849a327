"""Mel-cepstral distortion (MCD) in dB.

Definition (per frame t, averaged over all frames):

    MCD_t = 10 / ln(10) * sqrt(2 * sum_{d=1..D} (c_{t,d} - c'_{t,d})^2)

with mel-cepstra c, c' of order D = 24 from :mod:`espnet_wavenet.evaluation.world`
(pyworld CheapTrick envelope, pysptk ``sp2mc``, all-pass constant
``pysptk.util.mcepalpha(fs)``, 5 ms frames). The energy term c0 is excluded.
No dynamic time warping: a vocoder's output is sample-aligned with the natural
recording it was conditioned on, so frame t is compared with frame t.
All frames count, silences included.

The envelope is limited to the features' band before the analysis (see
:mod:`espnet_wavenet.evaluation.world`), so a band-limited output is not
penalised for the band the features do not describe.

:func:`espnet_mcd_dtw` is the other definition, the one of ESPnet's egs2 TTS
evaluation (``pyscripts/utils/evaluate_mcd.py``), for comparison with ESPnet
papers: SPTK mel-cepstral analysis (``pysptk.sptk.mcep``, etype 1, eps 1e-8) of
Hamming-windowed 1024-sample frames with a 256-sample shift, order and all-pass
constant by rate (16 kHz: 23, 0.42; 22.05 kHz: 34, 0.45; 24 kHz: 34, 0.46;
44.1 kHz: 39, 0.53; 48 kHz: 39, 0.55), c0 included, full band, frames aligned by
DTW on the Euclidean distance and the same per-frame formula averaged over the
path. ESPnet aligns with ``fastdtw`` (an approximation); this is exact DTW, so
figures can differ from ESPnet's slightly (never upwards: the exact path costs at
most what the approximate one does).
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


# ESPnet egs2 evaluate_mcd.py: (mel-cepstral order, all-pass constant) by rate
ESPNET_MCEP_PARAMS = {
    8000: (13, 0.31), 16000: (23, 0.42), 22050: (34, 0.45), 24000: (34, 0.46),
    32000: (36, 0.50), 44100: (39, 0.53), 48000: (39, 0.55),
}
ESPNET_N_FFT = 1024
ESPNET_N_SHIFT = 256


def espnet_mcep(wav: np.ndarray, fs: int) -> np.ndarray:
    """(frames, order + 1) SPTK mel-cepstra as ESPnet's egs2 MCD computes them."""
    import pysptk

    if fs not in ESPNET_MCEP_PARAMS:
        raise ValueError(f"ESPnet's MCD has no mel-cepstral parameters for {fs} Hz "
                         f"(it knows {sorted(ESPNET_MCEP_PARAMS)})")
    order, alpha = ESPNET_MCEP_PARAMS[fs]
    x = np.asarray(wav, dtype=np.float64)
    win = pysptk.sptk.hamming(ESPNET_N_FFT)
    n = (len(x) - ESPNET_N_FFT) // ESPNET_N_SHIFT + 1
    if n < 1:
        return np.zeros((0, order + 1))
    frames = (x[i * ESPNET_N_SHIFT : i * ESPNET_N_SHIFT + ESPNET_N_FFT] * win for i in range(n))
    return np.stack([pysptk.sptk.mcep(f, order, alpha, eps=1e-8, etype=1) for f in frames])


def dtw_path(cost: np.ndarray) -> np.ndarray:
    """Exact DTW of a (n, m) local cost matrix with steps (1, 1), (1, 0), (0, 1):
    the (k, 2) index pairs of the cheapest path from (0, 0) to (n - 1, m - 1)."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):  # one row at a time; the row's own left neighbour is serial
        row, up, diag = acc[i], acc[i - 1, 1:], acc[i - 1, :-1]
        best = np.minimum(up, diag) + cost[i - 1]
        for j in range(1, m + 1):
            row[j] = min(best[j - 1], row[j - 1] + cost[i - 1, j - 1])
    path = [(n - 1, m - 1)]
    i, j = n, m
    while (i, j) != (1, 1):
        steps = ((i - 1, j - 1), (i - 1, j), (i, j - 1))
        i, j = min(steps, key=lambda ij: acc[ij])
        path.append((i - 1, j - 1))
    return np.array(path[::-1])


def espnet_mcd_dtw(mcep_ref: np.ndarray, mcep_deg: np.ndarray) -> float:
    """MCD in dB over the DTW path of two :func:`espnet_mcep` sequences (c0 included)."""
    if len(mcep_ref) == 0 or len(mcep_deg) == 0:
        return math.nan
    diff_all = mcep_deg[:, None, :] - mcep_ref[None, :, :]
    cost = np.sqrt(np.sum(diff_all * diff_all, axis=-1))  # Euclidean, as ESPnet
    path = dtw_path(cost)
    return float(np.mean(MCD_CONST * cost[path[:, 0], path[:, 1]]))
