"""The feature definition shared by training, generation and the TTS pairing."""

from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

# ESPnet's LogMelFbank defaults with the hop and range of its tts1 recipes.
DEFAULT_FEATS_CONF: Dict[str, Any] = dict(
    fs=22050,
    n_fft=1024,
    win_length=None,
    hop_length=256,
    window="hann",
    n_mels=80,
    fmin=80,
    fmax=7600,
    htk=False,
    log_base=10.0,
)

FEATS_FIELDS = tuple(DEFAULT_FEATS_CONF)


def check_feats_conf(conf: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """Complete a feature configuration with ESPnet's defaults and validate it."""
    conf = dict(conf or {})
    unknown = sorted(set(conf) - set(FEATS_FIELDS))
    if unknown:
        raise ValueError(f"unknown feature fields {unknown}; known: {list(FEATS_FIELDS)}")
    out = dict(DEFAULT_FEATS_CONF)
    out.update(conf)
    for key in ("fs", "n_fft", "hop_length", "n_mels"):
        out[key] = int(out[key])
        if out[key] <= 0:
            raise ValueError(f"feature field {key} must be positive, got {out[key]}")
    if out["win_length"] is not None:
        out["win_length"] = int(out["win_length"])
    if out["log_base"] is not None:
        out["log_base"] = float(out["log_base"])
    return out


def feats_conf_mismatch(
    a: Optional[Dict[str, Any]], b: Optional[Dict[str, Any]]
) -> Dict[str, Tuple[Any, Any]]:
    """Fields where two feature configurations differ (after defaults): {field: (a, b)}."""
    a, b = check_feats_conf(a), check_feats_conf(b)
    return {k: (a[k], b[k]) for k in FEATS_FIELDS if a[k] != b[k]}


def build_feats_extract(conf: Dict[str, Any]):
    """ESPnet's own LogMelFbank for this configuration (identical features)."""
    from espnet2.tts.feats_extract.log_mel_fbank import LogMelFbank

    return LogMelFbank(**check_feats_conf(conf))


@torch.no_grad()
def extract_feats(wav: torch.Tensor, conf: Dict[str, Any]) -> torch.Tensor:
    """Log-mel frames (T_frames, n_mels) of a 1-D waveform, computed by ESPnet."""
    fe = build_feats_extract(conf)
    feats, _ = fe(wav.reshape(1, -1).float(), torch.tensor([wav.numel()]))
    return feats[0]


def feats_problem(feats, n_mels: Optional[int], min_frames: int = 1) -> Optional[str]:
    """What makes log-mel ``feats`` (array or tensor, (T_feats, n_mels)) unusable,
    or None: the shape, fewer than ``min_frames`` frames, NaN or Inf. The one
    check behind training, decoding and the vocoder; callers prefix the name."""
    x = feats.detach().cpu().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats)
    if x.ndim != 2:
        return f"expected (T_feats, {n_mels or 'n_mels'}) log-mel features, got shape {x.shape}"
    if n_mels is not None and x.shape[1] != n_mels:
        return f"{x.shape[1]} mel bins, the model's n_mels is {n_mels}"
    if x.shape[0] < min_frames:
        what = "empty" if x.shape[0] == 0 else "too short"
        return f"{what} ({x.shape[0]} frames, at least {min_frames} needed)"
    bad = ~np.isfinite(x)
    if bad.any():
        frame = int(np.argwhere(bad)[0][0])
        kind = "NaN" if np.isnan(x[frame]).any() else "Inf"
        return f"features contain {kind} (first at frame {frame})"
    return None
