"""Griffin-Lim floor: ESPnet's ``Spectrogram2Waveform`` on the same log-mel features.

The feature configuration maps to ESPnet's arguments as fs, n_fft,
n_shift = hop_length, win_length, window, n_mels, fmin, fmax. ESPnet inverts
the mel filterbank with a pseudo-inverse (``logmel2linear``, which expects log10
features; other log bases are converted first) and runs librosa's fast
Griffin-Lim. ESPnet's own call leaves librosa's random phase initialisation
unseeded; with ``seed`` set this module runs the same two steps with a seeded
phase so reports are reproducible. ``n_iter`` defaults to 32 (ESPnet's
``tts_inference`` default is 8), i.e. a slightly stronger floor than ESPnet's.
"""

import math
from typing import Any, Dict, Optional

import numpy as np
import torch

from espnet_wavenet.features import check_feats_conf


class GriffinLimBaseline:
    """Denormalized log-mel (T_feats, n_mels) -> waveform of T_feats * hop samples."""

    def __init__(
        self, feats_conf: Dict[str, Any], n_iter: int = 32, seed: Optional[int] = 0
    ):
        from espnet2.utils.griffin_lim import Spectrogram2Waveform

        conf = check_feats_conf(feats_conf)
        self.conf = conf
        self.fs = conf["fs"]
        self.hop = conf["hop_length"]
        self.seed = seed
        self.n_iter = int(n_iter)
        self.s2w = Spectrogram2Waveform(
            n_fft=conf["n_fft"],
            n_shift=self.hop,
            fs=self.fs,
            n_mels=conf["n_mels"],
            win_length=conf["win_length"],
            window=conf["window"],
            fmin=None if conf["fmin"] is None else int(conf["fmin"]),
            fmax=None if conf["fmax"] is None else int(conf["fmax"]),
            griffin_lim_iters=self.n_iter,
        )
        base = conf["log_base"]
        self.to_log10 = (1.0 if base is None else math.log(base)) / math.log(10.0)

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        feats = np.asarray(feats, dtype=np.float32) * np.float32(self.to_log10)
        if self.seed is None:
            wav = self.s2w(torch.from_numpy(feats)).numpy()
        else:
            import librosa

            spc = self.s2w.logmel2linear(feats)  # ESPnet's mel inversion, (T, n_fft//2+1)
            p = self.s2w.params
            wav = librosa.griffinlim(
                S=np.abs(spc.T),
                n_iter=p["n_iter"],
                hop_length=p["n_shift"],
                win_length=p["win_length"],
                window=p["window"],
                center=spc.shape[0] > 1,
                random_state=int(self.seed),
            )
        want = feats.shape[0] * self.hop
        wav = np.asarray(wav, dtype=np.float32)[:want]
        if len(wav) < want:
            wav = np.pad(wav, (0, want - len(wav)))
        return np.clip(wav, -1.0, 1.0)
