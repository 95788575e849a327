"""Linear prediction from the log-mel features alone (the ExcitNet / LPCNet idea).

Per frame, LPC coefficients are computed from the same 80-band log-mel a TTS
model outputs, so every ESPnet TTS model still pairs with the vocoder: the mel
amplitudes are spread back over the FFT bins (each bin the filter-weighted mean
of the bands' mean amplitudes; bins outside fmin..fmax take the edge band's),
squared into a power spectrum whose inverse FFT is the autocorrelation, which
a lag window smooths before Levinson-Durbin gives the predictor.

Conventions: ``a`` is (T, order) with x[n] ~ sum_k a[k] x[n - 1 - k]; frame t
predicts samples t * hop .. (t + 1) * hop - 1 (the vocoder's alignment of
frames and samples). :func:`excitation` e[n] = x[n] - prediction and
:func:`synthesis` are exact inverses of each other (the filter state carries
across frames).
"""

import functools
from typing import Any, Dict, Optional

import numpy as np

from espnet_wavenet.features import check_feats_conf


def mel_matrix(feats_conf: Dict[str, Any]) -> np.ndarray:
    """ESPnet's mel filterbank of these features: (n_fft // 2 + 1, n_mels)."""
    c = check_feats_conf(feats_conf)
    keys = ("fs", "n_fft", "n_mels", "fmin", "fmax", "htk", "log_base")
    return _mel_matrix(*(c[k] for k in keys))


@functools.lru_cache(maxsize=8)  # built per utterance by the data loader otherwise
def _mel_matrix(fs, n_fft, n_mels, fmin, fmax, htk, log_base) -> np.ndarray:
    from espnet2.layers.log_mel import LogMel

    mel = LogMel(fs=fs, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk,
                 log_base=log_base)
    out = mel.melmat.numpy().astype(np.float64)
    out.setflags(write=False)
    return out


def mel_to_power(logmel: np.ndarray, feats_conf: Dict[str, Any]) -> np.ndarray:
    """Log-mel (T, n_mels) -> an approximate power spectrum (T, n_fft // 2 + 1)."""
    c = check_feats_conf(feats_conf)
    w = mel_matrix(c)  # (F, B)
    base = float(c["log_base"]) if c["log_base"] is not None else np.e
    amp = np.power(base, np.asarray(logmel, dtype=np.float64))  # band sums of |X|
    band_mean = amp / np.maximum(w.sum(axis=0), 1e-12)  # mean |X| per band
    cover = w.sum(axis=1)  # (F,) how much of each bin the bands cover
    # einsum, not BLAS: a frame's result must not depend on how many come with it
    # (streaming computes a few frames at a time and must equal one pass)
    spec = np.einsum("tb,fb->tf", band_mean, w) / np.maximum(cover, 1e-12)
    # Bins no band covers (below fmin, above fmax): the nearest covered bin.
    covered = np.flatnonzero(cover > 1e-3 * cover.max())
    lo, hi = covered[0], covered[-1]
    spec[:, :lo] = spec[:, lo : lo + 1]
    spec[:, hi + 1 :] = spec[:, hi : hi + 1]
    return spec**2


def levinson(r: np.ndarray, order: int) -> np.ndarray:
    """Autocorrelations (T, >= order + 1) -> predictors (T, order), x[n] ~ sum a_k x[n-k]."""
    r = np.asarray(r, dtype=np.float64)
    t = r.shape[0]
    a = np.zeros((t, order))
    err = r[:, 0].copy()
    for i in range(order):
        acc = r[:, i + 1] - np.einsum("tk,tk->t", a[:, :i], r[:, i:0:-1]) if i else r[:, 1].copy()
        k = acc / np.maximum(err, 1e-30)
        if i:
            a[:, :i] = a[:, :i] - k[:, None] * a[:, i - 1 :: -1]
        a[:, i] = k
        err = err * (1.0 - k * k)
    return a


def lpc_from_power(power: np.ndarray, order: int, fs: int, lag_hz: float = 60.0,
                   white_noise: float = 1e-4) -> np.ndarray:
    """Power spectra (T, F) -> predictors (T, order): autocorrelation, a Gaussian
    lag window of ``lag_hz`` bandwidth and white-noise correction (stability)."""
    r = np.fft.irfft(power, axis=-1)[:, : order + 1]
    lags = np.arange(order + 1)
    r = r * np.exp(-0.5 * (2.0 * np.pi * lag_hz * lags / fs) ** 2)
    r[:, 0] *= 1.0 + white_noise
    return levinson(r, order)


def lpc_from_mels(logmel: np.ndarray, feats_conf: Dict[str, Any], order: int = 16) -> np.ndarray:
    """Log-mel (T, n_mels) -> per-frame predictors (T, order)."""
    c = check_feats_conf(feats_conf)
    return lpc_from_power(mel_to_power(logmel, c), order, c["fs"])


def lpc_from_wav(wav: np.ndarray, feats_conf: Dict[str, Any], order: int = 16) -> np.ndarray:
    """The same from the waveform's own STFT power (what the mels approximate)."""
    c = check_feats_conf(feats_conf)
    n_fft, hop = c["n_fft"], c["hop_length"]
    x = np.pad(np.asarray(wav, dtype=np.float64), n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    spec = np.abs(np.fft.rfft(frames * np.hanning(n_fft + 1)[:-1], axis=-1)) ** 2
    return lpc_from_power(spec, order, c["fs"])


def envelope_db(a: np.ndarray, n_fft: int) -> np.ndarray:
    """Log power response 1 / |A(e^jw)|^2 of predictors (T, order), in dB, (T, F)."""
    poly = np.concatenate([np.ones((a.shape[0], 1)), -a], axis=1)
    return -20.0 * np.log10(np.maximum(np.abs(np.fft.rfft(poly, n_fft, axis=-1)), 1e-12))


def _frame_of(n: int, hop: int, n_frames: int) -> np.ndarray:
    return np.minimum(np.arange(n) // hop, n_frames - 1)


def excitation(x: np.ndarray, a: np.ndarray, hop: int,
               history: Optional[np.ndarray] = None) -> np.ndarray:
    """e[n] = x[n] - sum_k a[frame(n), k] x[n - 1 - k] (zeros before the start, or
    ``history``: the last ``order`` samples before x, oldest first)."""
    x = np.asarray(x, dtype=np.float64)
    order = a.shape[1]
    past = np.zeros(order) if history is None else np.asarray(history, dtype=np.float64)
    xp = np.concatenate([past, x])
    taps = np.lib.stride_tricks.sliding_window_view(xp[:-1], order)[:, ::-1]  # x[n-1-k]
    coef = a[_frame_of(len(x), hop, a.shape[0])]
    return x - np.einsum("nk,nk->n", taps[: len(x)], coef)


def synthesis(e: np.ndarray, a: np.ndarray, hop: int,
              history: Optional[np.ndarray] = None) -> np.ndarray:
    """The inverse of :func:`excitation`: x[n] = e[n] + sum_k a[frame(n), k] x[n - 1 - k]."""
    order = a.shape[1]
    hist = np.zeros(order) if history is None else np.asarray(history, dtype=np.float64)
    return synthesis_from(e, a, hop, hist)[0]


def _all_pole_state(den: np.ndarray, hist: np.ndarray) -> np.ndarray:
    """lfilter's state (direct form II transposed) of 1 / den after the past
    outputs ``hist`` (oldest first): z[m] = -sum_j den[m + 1 + j] y[-1 - j].
    What scipy's lfiltic gives, without its per-coefficient Python loop
    (~0.17 ms a frame boundary, a few a streaming push)."""
    order = len(den) - 1
    m = np.arange(order)
    idx = m[:, None] + m[None, :]  # m + j
    taps = np.where(idx < order, np.concatenate([den[1:], np.zeros(order)])[idx], 0.0)
    return -(taps @ hist[::-1])


def synthesis_from(e: np.ndarray, a: np.ndarray, hop: int, hist: np.ndarray,
                   offset: int = 0, zi: Optional[np.ndarray] = None):
    """:func:`synthesis` of a piece that starts ``offset`` samples into a's first
    frame; returns (x, the last ``order`` outputs, the filter state at the end).

    A piece that starts mid-frame continues from ``zi``, the state the previous
    piece ended with, so pieces equal one pass bitwise; at frame starts the
    state is rebuilt from the past outputs, as in one pass.
    """
    from scipy.signal import lfilter

    e = np.asarray(e, dtype=np.float64)
    order = a.shape[1]
    out = np.empty_like(e)
    t, zf = 0, zi
    last = a.shape[0] - 1
    while t < len(e):
        frame = (t + offset) // hop
        # the last frame's predictor also serves any samples past it
        end = len(e) if frame >= last else min(len(e), t + hop - (t + offset) % hop)
        den = np.concatenate([[1.0], -a[min(frame, last)]])
        if zf is None or ((t + offset) % hop == 0 and frame <= last):
            zf = _all_pole_state(den, hist)  # the state after the past outputs
        out[t:end], zf = lfilter([1.0], den, e[t:end], zi=zf)
        hist = np.concatenate([hist, out[t:end]])[-order:]
        t = end
    return out, hist, zf
