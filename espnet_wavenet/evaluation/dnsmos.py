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


_MODELS = {}


def _model(threads: int):
    """speechmos' DNSMOS with onnxruntime sessions of ``threads`` threads (its own
    take every core, which oversubscribes the CPU when --nj processes score)."""
    if threads not in _MODELS:
        import os

        import onnxruntime as ort
        from speechmos import dnsmos as speechmos_dnsmos

        models = os.path.join(os.path.dirname(speechmos_dnsmos.__file__), "dnsmos_models")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        m = speechmos_dnsmos.DNSMOS(os.path.join(models, "sig_bak_ovr.onnx"),
                                    os.path.join(models, "model_v8.onnx"))
        m.onnx_sess = ort.InferenceSession(m.primary_model_path, options)
        m.p808_onnx_sess = ort.InferenceSession(os.path.join(models, "model_v8.onnx"), options)
        _MODELS[threads] = m
    return _MODELS[threads]


def dnsmos(wav: np.ndarray, fs: int) -> Dict[str, float]:
    """DNSMOS P.835 (SIG, BAK, OVRL) and P.808 of a 1-D signal at ``fs``; as many
    onnxruntime threads as torch has (one in an --nj worker)."""
    if not dnsmos_available():
        raise ImportError(
            "DNSMOS needs speechmos and onnxruntime (pip install 'espnet_wavenet[eval]')"
        )
    import torch

    x = resample(np.asarray(wav, dtype=np.float32), fs, DNSMOS_FS)
    out = _model(torch.get_num_threads())(np.clip(x, -1.0, 1.0), DNSMOS_FS, False)
    return dict(
        dnsmos_ovrl=float(out["ovrl_mos"]),
        dnsmos_sig=float(out["sig_mos"]),
        dnsmos_bak=float(out["bak_mos"]),
        dnsmos_p808=float(out["p808_mos"]),
    )
