"""LPC excitation as the training target (the ExcitNet form of the LPCNet idea).

The network models the excitation ``e = A(z) x`` of the (high-passed) speech,
where ``A(z)`` is the per-frame linear predictor computed from the log-mel
features alone (:mod:`espnet_wavenet.data.lpc`), so any ESPnet TTS model still
pairs. Generation filters the drawn excitation with ``1 / A(z)`` (the
prediction from past output samples added back sample by sample) and the same
high-pass: mu-law noise that is flat in the excitation comes out under the
spectral envelope of the speech, formants included, where pre-emphasis only
tilts it. The network's input is its own past excitation; it does not see the
prediction (LPCNet's form, which needs the kernel to compute it per sample).
"""

from typing import Any, Dict, Optional, Tuple

import numpy as np
from scipy import signal

from espnet_wavenet.data import lpc
from espnet_wavenet.features import check_feats_conf


class LPCShaping:
    """Excitation analysis and all-pole synthesis from the mels, with a DC high-pass.

    Args:
        feats_conf: the features the predictors are computed from.
        lpc_order: predictor order (LPCNet: 16 at 16 kHz).
        highpass_hz: cut-off of the 2nd-order Butterworth high-pass (0: none),
            applied before analysis and after synthesis (the all-pole filter's
            gain at DC would otherwise amplify any offset of the output).
    """

    enabled = True

    def __init__(self, feats_conf: Dict[str, Any], lpc_order: int = 24,
                 highpass_hz: float = 70.0):
        self.feats_conf = check_feats_conf(feats_conf)
        self.fs, self.hop = self.feats_conf["fs"], self.feats_conf["hop_length"]
        if not 1 <= int(lpc_order) <= 64:
            raise ValueError(f"lpc_order must be in 1..64, got {lpc_order}")
        if not 0.0 <= highpass_hz < self.fs / 2:
            raise ValueError(f"highpass_hz must be in [0, fs/2), got {highpass_hz}")
        self.order = int(lpc_order)
        self.highpass_hz = float(highpass_hz)
        if self.highpass_hz > 0:
            self.hp_ba = signal.butter(2, self.highpass_hz, "highpass", fs=self.fs)
        else:
            self.hp_ba = (np.ones(1), np.ones(1))

    def conf(self) -> Dict[str, float]:
        return dict(lpc_order=self.order, highpass_hz=self.highpass_hz)

    def predictors(self, logmel: np.ndarray) -> np.ndarray:
        """Denormalized log-mel (T, n_mels) -> predictors (T, order)."""
        return lpc.lpc_from_mels(np.asarray(logmel, dtype=np.float64), self.feats_conf,
                                 self.order)

    def analysis(self, wav: np.ndarray, logmel: Optional[np.ndarray] = None) -> np.ndarray:
        """Natural audio and its log-mel -> the excitation the network is trained on."""
        if logmel is None:
            raise ValueError("LPC excitation needs the utterance's log-mel features")
        b, a = self.hp_ba
        x = signal.lfilter(b, a, np.asarray(wav, dtype=np.float64))
        e = lpc.excitation(x, self.predictors(logmel), self.hop)
        return np.clip(e, -1.0, 1.0).astype(np.float32)

    def initial_state(self) -> Dict[str, Any]:
        return dict(pos=0, hist=np.zeros(self.order), zi=None,
                    hp=np.zeros(len(self.hp_ba[1]) - 1))

    def synthesis(
        self, wav: np.ndarray, state: Optional[Dict[str, Any]] = None,
        logmel: Optional[np.ndarray] = None, first_frame: int = 0,
    ) -> Tuple[np.ndarray, Dict[str, Any]]:
        """Generated excitation -> waveform in [-1, 1]; returns (audio, state).

        ``logmel`` holds the utterance's frames from frame ``first_frame`` (in
        streaming: those that have arrived; the chunk's own first frame or an
        earlier one); ``state`` carries the position and the filters' memories
        from chunk to chunk, so chunks equal one pass.
        """
        if logmel is None:
            raise ValueError("LPC synthesis needs the utterance's log-mel features")
        st = self.initial_state() if state is None else state
        pos, n_frames = st["pos"], first_frame + len(logmel)
        f0 = min(pos // self.hop, n_frames - 1)
        f1 = min((pos + max(len(wav), 1) - 1) // self.hop, n_frames - 1)
        if f0 < first_frame:
            raise ValueError(f"log-mel from frame {first_frame}: the chunk needs frame {f0}")
        rows = np.asarray(logmel)[f0 - first_frame : f1 + 1 - first_frame]
        a = self.predictors(rows)  # frames are independent
        x, hist, zi = lpc.synthesis_from(wav, a, self.hop, st["hist"], pos - f0 * self.hop,
                                         st["zi"])
        b, a_hp = self.hp_ba
        y, hp = signal.lfilter(b, a_hp, x, zi=st["hp"])
        new = dict(pos=pos + len(wav), hist=hist, zi=zi, hp=hp)
        return np.clip(y, -1.0, 1.0).astype(np.float32), new
