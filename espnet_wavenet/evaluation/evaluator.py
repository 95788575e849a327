"""Per-utterance objective metrics of a degraded/generated signal against natural speech.

Every signal is compared with its natural recording at the feature sample rate,
sample-aligned (the generated signal is trimmed or zero-padded to the natural
length), so all frame-based metrics are frame-aligned with no time warping.
See the modules of each metric for its definition and constants.
"""

import logging
from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np

from espnet_wavenet.evaluation.f0 import f0_metrics
from espnet_wavenet.evaluation.logmel import LogMelDistance
from espnet_wavenet.evaluation.mcd import espnet_mcd_dtw, espnet_mcep, mel_cepstral_distortion
from espnet_wavenet.evaluation.perceptual import pesq_wb, stoi
from espnet_wavenet.evaluation.world import WorldFeatures, world_analysis

# name -> (label, better, definition)
METRICS: Dict[str, tuple] = {
    "pesq_wb": (
        "PESQ-WB",
        "higher",
        "ITU-T P.862.2 wide-band MOS-LQO (pesq package), both signals resampled to 16 kHz",
    ),
    "stoi": ("STOI", "higher", "short-time objective intelligibility (pystoi, 0..1)"),
    "mcd_db": (
        "MCD (dB)",
        "lower",
        "10/ln10*sqrt(2*sum_{d=1..24}(c_d-c'_d)^2) per 5 ms frame, averaged; "
        "mel-cepstra from pyworld CheapTrick + pysptk sp2mc, alpha=pysptk mcepalpha(fs), "
        "c0 excluded, frame-aligned (no DTW); envelope limited to the features' fmin..fmax "
        "(bins outside take the edge bin's value)",
    ),
    "mcd_dtw_db": (
        "MCD-DTW ESPnet (dB)",
        "lower",
        "ESPnet egs2 evaluate_mcd.py's definition: SPTK mcep (order 34, alpha 0.45 at "
        "22.05 kHz) of 1024/256 Hamming frames, c0 included, full band, DTW-aligned "
        "(exact DTW; ESPnet uses fastdtw)",
    ),
    "f0_rmse_cents": (
        "F0 RMSE (cent)",
        "lower",
        "RMSE of 1200*log2(f0/f0_ref) over 5 ms frames voiced in both (pyworld Harvest)",
    ),
    "vuv_error": (
        "V/UV error",
        "lower",
        "fraction of 5 ms frames whose voiced/unvoiced decision differs (pyworld Harvest)",
    ),
    "logmel_rmse_db": (
        "log-mel RMSE (dB)",
        "lower",
        "RMSE in dB over all (frame, mel bin) cells of the recipe's ESPnet LogMelFbank "
        "features (20*log10 of mel magnitude)",
    ),
    "dnsmos_ovrl": (
        "DNSMOS OVRL",
        "higher",
        "non-intrusive P.835 overall quality (DNSMOS via speechmos, 16 kHz), 1..5",
    ),
    "dnsmos_sig": ("DNSMOS SIG", "higher", "non-intrusive P.835 speech signal quality, 1..5"),
    "dnsmos_bak": ("DNSMOS BAK", "higher", "non-intrusive P.835 background quality, 1..5"),
    "dnsmos_p808": ("DNSMOS P.808", "higher", "non-intrusive P.808 overall quality, 1..5"),
    "nll_bits": (
        "NLL (bit/sample)",
        "lower",
        "model's teacher-forced negative log-likelihood of the natural audio, "
        "bits per sample (whole utterance)",
    ),
}
SIGNAL_METRICS = (
    "pesq_wb", "stoi", "mcd_db", "mcd_dtw_db", "f0_rmse_cents", "vuv_error", "logmel_rmse_db",
)


@dataclass
class Reference:
    """A natural recording and its cached analyses."""

    wav: np.ndarray
    world: WorldFeatures
    logmel_db: np.ndarray
    espnet_mcep: np.ndarray


def fit_length(wav: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad a 1-D signal to ``n`` samples."""
    wav = np.asarray(wav, dtype=np.float32)
    if len(wav) >= n:
        return wav[:n]
    return np.pad(wav, (0, n - len(wav)))


class SignalEvaluator:
    """Scores signals against a natural reference with one feature configuration."""

    def __init__(self, feats_conf: Dict[str, Any], f0_method: str = "harvest"):
        self.logmel = LogMelDistance(feats_conf)
        self.fs = self.logmel.fs
        self.f0_method = f0_method
        conf = self.logmel.conf
        self.band = (conf.get("fmin") or 0.0, conf.get("fmax") or self.fs / 2)

    def reference(self, wav: np.ndarray) -> Reference:
        wav = np.asarray(wav, dtype=np.float32)
        return Reference(
            wav=wav,
            world=world_analysis(wav, self.fs, f0_method=self.f0_method, band=self.band),
            logmel_db=self.logmel.logmel_db(wav),
            espnet_mcep=espnet_mcep(wav, self.fs),
        )

    def score(
        self, ref: Reference, deg: np.ndarray, logmel_db: Optional[np.ndarray] = None
    ) -> Dict[str, float]:
        """All signal metrics of ``deg`` (same rate, trimmed/padded to the reference)."""
        deg = fit_length(deg, len(ref.wav))
        if not np.isfinite(deg).all():
            raise ValueError("signal contains NaN or Inf")
        if np.max(np.abs(deg), initial=0.0) == 0.0:
            logging.warning("signal is all zeros; its scores are meaningless")
        world = world_analysis(deg, self.fs, f0_method=self.f0_method, band=self.band)
        f0_rmse, vuv = f0_metrics(ref.world.f0, world.f0)
        if logmel_db is None:
            logmel_db = self.logmel.logmel_db(deg)
        n = min(len(logmel_db), len(ref.logmel_db))
        diff = ref.logmel_db[:n] - logmel_db[:n]
        return dict(
            pesq_wb=pesq_wb(ref.wav, deg, self.fs),
            stoi=stoi(ref.wav, deg, self.fs),
            mcd_db=mel_cepstral_distortion(ref.world.mcep, world.mcep),
            mcd_dtw_db=espnet_mcd_dtw(ref.espnet_mcep, espnet_mcep(deg, self.fs)),
            f0_rmse_cents=f0_rmse,
            vuv_error=vuv,
            logmel_rmse_db=float(np.sqrt(np.mean(diff * diff))) if n else float("nan"),
        )
