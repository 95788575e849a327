"""Noise shaping: the network models pre-emphasized audio, generation de-emphasizes.

An 8-bit mu-law output adds quantization and sampling noise that is flat
across the band, where speech (whose energy falls with frequency) leaves it
audible above a few kHz. Training on ``x[n] - a x[n-1]`` and filtering the
output with ``1 / (1 - a z^-1)`` tilts that noise down at high frequencies,
under the speech spectrum (LPCNet uses a = 0.85). De-emphasis multiplies DC by
1 / (1 - a) (6.7 at 0.85), so a Butterworth high-pass, below the features'
fmin, removes any offset of the generated signal; the training target goes
through the same high-pass so that the network never learns one.

Analysis (training target): high-pass, then pre-emphasis.
Synthesis (generated audio): de-emphasis, then high-pass; stateful, so audio
filtered in chunks equals audio filtered at once.
"""

from typing import Any, Dict, Optional, Tuple

import numpy as np
from scipy import signal


class NoiseShaping:
    """Pre-/de-emphasis with a DC high-pass; off when ``pre_emphasis`` is 0.

    Args:
        fs: sampling rate (Hz).
        pre_emphasis: the coefficient a of ``1 - a z^-1``, in [0, 1).
        highpass_hz: cut-off of the 2nd-order Butterworth high-pass (0: none).
    """

    def __init__(self, fs: int, pre_emphasis: float = 0.0, highpass_hz: float = 70.0):
        if not 0.0 <= pre_emphasis < 1.0:
            raise ValueError(f"pre_emphasis must be in [0, 1), got {pre_emphasis}")
        if not 0.0 <= highpass_hz < fs / 2:
            raise ValueError(f"highpass_hz must be in [0, fs/2), got {highpass_hz}")
        self.fs = int(fs)
        self.pre_emphasis = float(pre_emphasis)
        self.highpass_hz = float(highpass_hz)
        if self.enabled and self.highpass_hz > 0:
            hp_b, hp_a = signal.butter(2, self.highpass_hz, "highpass", fs=self.fs)
        else:
            hp_b, hp_a = np.ones(1), np.ones(1)
        emph = np.array([1.0, -self.pre_emphasis])
        self.analysis_ba = (np.convolve(hp_b, emph), hp_a)
        self.synthesis_ba = (hp_b, np.convolve(hp_a, emph))

    @property
    def enabled(self) -> bool:
        return self.pre_emphasis > 0.0

    @classmethod
    def from_conf(cls, conf: Optional[Dict[str, Any]], fs: int) -> "NoiseShaping":
        """From a config mapping (``noise_shaping_conf``); empty or None is off."""
        conf = dict(conf or {})
        unknown = set(conf) - {"pre_emphasis", "highpass_hz"}
        if unknown:
            raise ValueError(f"noise_shaping_conf: unknown keys {sorted(unknown)}")
        return cls(fs, **conf)

    def conf(self) -> Dict[str, float]:
        return dict(pre_emphasis=self.pre_emphasis, highpass_hz=self.highpass_hz)

    def analysis(self, wav: np.ndarray, logmel: Optional[np.ndarray] = None) -> np.ndarray:
        """Natural audio -> the signal the network is trained on, in [-1, 1]
        (``logmel``: unused; LPC shaping needs it)."""
        if not self.enabled:
            return wav
        b, a = self.analysis_ba
        out = signal.lfilter(b, a, np.asarray(wav, dtype=np.float64))
        # |x[n] - a x[n-1]| can exceed 1 on full-scale high-frequency audio
        return np.clip(out, -1.0, 1.0).astype(np.float32)

    def initial_state(self) -> np.ndarray:
        b, a = self.synthesis_ba
        return np.zeros(max(len(a), len(b)) - 1)

    def synthesis(
        self, wav: np.ndarray, state: Optional[np.ndarray] = None,
        logmel: Optional[np.ndarray] = None, first_frame: int = 0,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Generated audio -> waveform in [-1, 1]; returns (audio, filter state)
        (``logmel``, ``first_frame``: unused; LPC shaping needs them)."""
        if not self.enabled:
            return wav, state
        b, a = self.synthesis_ba
        zi = self.initial_state() if state is None else state
        out, zf = signal.lfilter(b, a, np.asarray(wav, dtype=np.float64), zi=zi)
        return np.clip(out, -1.0, 1.0).astype(np.float32), zf
