"""Non-intrusive MOS estimates (no reference needed): DNSMOS P.835 and P.808.

Microsoft's DNSMOS (Reddy et al., ICASSP 2021/2022) as packaged by
``speechmos``, whose wheel carries the ONNX models, run with onnxruntime on
the CPU, offline. Audio is resampled to 16 kHz (torchaudio) and clipped to
[-1, 1]; clips shorter than 9.01 s are repeated (doubled until long enough),
then scored in 9.01 s windows with a 1 s hop and averaged: speechmos'
procedure, with the windows of a signal batched into one run of each model.

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


_SESSIONS = {}
# speechmos' procedure: windows of 9.01 s at a 1 s hop over the clip, repeated
# (by doubling) until it is at least that long.
WINDOW_S = 9.01


def _sessions(threads: int):
    """The P.835 and P.808 onnxruntime sessions with ``threads`` intra-op threads
    (onnxruntime's default takes every core, which oversubscribes the CPU when
    --nj processes score)."""
    if threads not in _SESSIONS:
        import os

        import onnxruntime as ort
        from speechmos import dnsmos as speechmos_dnsmos

        models = os.path.join(os.path.dirname(speechmos_dnsmos.__file__), "dnsmos_models")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        _SESSIONS[threads] = tuple(
            ort.InferenceSession(os.path.join(models, name), options)
            for name in ("sig_bak_ovr.onnx", "model_v8.onnx")
        )
    return _SESSIONS[threads]


def windows(audio: np.ndarray) -> np.ndarray:
    """(N, 9.01 s) windows of 16 kHz ``audio`` as speechmos cuts them."""
    n = int(WINDOW_S * DNSMOS_FS)
    if len(audio) == 0:
        raise ValueError("DNSMOS of an empty signal")
    while len(audio) < n:
        audio = np.append(audio, audio)
    hops = int(np.floor(len(audio) / DNSMOS_FS) - WINDOW_S) + 1
    segs = [audio[i * DNSMOS_FS : i * DNSMOS_FS + n] for i in range(hops)]
    return np.stack([s for s in segs if len(s) == n]).astype(np.float32)


def dnsmos(wav: np.ndarray, fs: int) -> Dict[str, float]:
    """DNSMOS P.835 (SIG, BAK, OVRL) and P.808 of a 1-D signal at ``fs``; as many
    onnxruntime threads as torch has (one in an --nj worker). speechmos'
    windows, features and polynomial mapping, with all windows of a signal in
    one batch per model (speechmos runs them one by one)."""
    if not dnsmos_available():
        raise ImportError(
            "DNSMOS needs speechmos and onnxruntime (pip install 'espnet_wavenet[eval]')"
        )
    import torch
    from speechmos.dnsmos import DNSMOS

    x = resample(np.asarray(wav, dtype=np.float32), fs, DNSMOS_FS)
    segs = windows(np.clip(x, -1.0, 1.0))
    p835, p808 = _sessions(torch.get_num_threads())
    raw = p835.run(None, {"input_1": segs})[0]  # (N, 3): SIG, BAK, OVRL before mapping
    # speechmos' P.808 input: the log-mel of each window less its last 10 ms.
    mels = np.stack([DNSMOS.audio_melspec(None, audio=s[:-160]) for s in segs])
    p808_mos = p808.run(None, {"input_1": mels.astype(np.float32)})[0][:, 0]
    sig, bak, ovr = DNSMOS.get_polyfit_val(None, raw[:, 0], raw[:, 1], raw[:, 2], False)
    return dict(
        dnsmos_ovrl=float(np.mean(ovr)),
        dnsmos_sig=float(np.mean(sig)),
        dnsmos_bak=float(np.mean(bak)),
        dnsmos_p808=float(np.mean(p808_mos)),
    )
