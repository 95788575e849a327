"""Non-intrusive MOS estimates (no reference needed): DNSMOS P.835 and P.808.

Microsoft's DNSMOS (Reddy et al., ICASSP 2021/2022) as packaged by
``speechmos``, whose wheel carries the ONNX models, run with onnxruntime on
the CPU, offline. Audio is resampled to 16 kHz (torchaudio) and clipped to
[-1, 1]; clips shorter than 9.01 s are repeated to that length by speechmos,
longer ones are scored in 9 s windows with a 1 s hop and averaged.

- ``dnsmos_sig``, ``dnsmos_bak``, ``dnsmos_ovrl``: P.835 speech signal quality,
  background (noise) quality and overall quality, 1..5;
- ``dnsmos_p808``: the P.808 overall-quality model, 1..5.

They were trained on noisy and enhanced speech, not on vocoders: use them to
rank systems on the same utterances, not as absolute MOS.
"""

from typing import Dict

import numpy as np

from espnet_wavenet.data.audio import resample

DNSMOS_FS = 16000
DNSMOS_METRICS = ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808")


def dnsmos_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
        import speechmos  # noqa: F401
    except ImportError:
        return False
    return True


def dnsmos(wav: np.ndarray, fs: int) -> Dict[str, float]:
    """DNSMOS P.835 (SIG, BAK, OVRL) and P.808 of a 1-D signal at ``fs``."""
    try:
        from speechmos import dnsmos as speechmos_dnsmos
    except ImportError as e:
        raise ImportError(
            "DNSMOS needs speechmos and onnxruntime (pip install 'espnet_wavenet[eval]')"
        ) from e
    x = resample(np.asarray(wav, dtype=np.float32), fs, DNSMOS_FS)
    out = speechmos_dnsmos.run(np.clip(x, -1.0, 1.0), DNSMOS_FS)
    return dict(
        dnsmos_ovrl=float(out["ovrl_mos"]),
        dnsmos_sig=float(out["sig_mos"]),
        dnsmos_bak=float(out["bak_mos"]),
        dnsmos_p808=float(out["p808_mos"]),
    )
