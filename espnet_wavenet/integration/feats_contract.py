"""The feature contract between a vocoder and an ESPnet TTS model.

A vocoder only makes sense behind a TTS model whose features it was trained on:
same sampling rate, STFT, mel filter bank and log. This module reads the TTS
model's ``feats_extract`` (ESPnet ``LogMelFbank``) and compares every field with
the vocoder's ``feats_conf``. Normalization is *not* part of the contract: ESPnet's
Text2Speech hands the vocoder denormalized features (``feat_gen_denorm``) and the
vocoder applies its own statistics, so differing GlobalMVN statistics are fine.
"""

import logging
import math
import os
from typing import Any, Dict, List, NamedTuple, Optional

import torch

ENV_ALLOW = "ESPNET_WAVENET_ALLOW_FEATS_MISMATCH"

# STFT settings the vocoder's feature extractor always uses (LogMelFbank defaults).
_VOCODER_STFT_FIXED = dict(center=True, normalized=False, onesided=True)


class Mismatch(NamedTuple):
    field: str
    vocoder: Any
    tts: Any


class FeatsMismatchError(ValueError):
    """The vocoder's features differ from the TTS model's."""

    def __init__(self, mismatches: List[Mismatch], where: str = ""):
        self.mismatches = list(mismatches)
        lines = [f"  {m.field}: vocoder={m.vocoder!r} tts={m.tts!r}" for m in mismatches]
        super().__init__(
            f"vocoder and TTS model features differ{where}:\n"
            + "\n".join(lines)
            + f"\nRetrain or pick a matching vocoder; to use it anyway pass "
            f"allow_feats_mismatch=True (CLI: --allow_feats_mismatch true) or set "
            f"{ENV_ALLOW}=1."
        )


def effective_vocoder_feats(feats_conf: Dict[str, Any]) -> Dict[str, Any]:
    """A vocoder ``feats_conf`` with ESPnet's implicit values made explicit."""
    from espnet_wavenet.features import check_feats_conf

    c = check_feats_conf(feats_conf)
    out = dict(
        feats_extract="fbank",
        fs=c["fs"],
        n_fft=c["n_fft"],
        hop_length=c["hop_length"],
        win_length=c["win_length"] if c["win_length"] is not None else c["n_fft"],
        window=c["window"],
        n_mels=c["n_mels"],
        fmin=0 if c["fmin"] is None else c["fmin"],
        fmax=c["fs"] / 2 if c["fmax"] is None else c["fmax"],
        htk=bool(c["htk"]),
        log_base=c["log_base"],
    )
    out.update(_VOCODER_STFT_FIXED)
    return out


def tts_feats(model: torch.nn.Module) -> Optional[Dict[str, Any]]:
    """The feature fields of an ESPnet TTS model (``ESPnetTTSModel``).

    Returns None when the model has no ``feats_extract`` (it was trained on
    features given by the data loader, so nothing can be read).
    """
    fe = getattr(model, "feats_extract", None)
    if fe is None:
        return None
    kind = type(fe).__name__
    stft = getattr(fe, "stft", None)
    logmel = getattr(fe, "logmel", None)
    params = fe.get_parameters() if hasattr(fe, "get_parameters") else {}
    mel_options = getattr(logmel, "mel_options", {}) or {}
    fs = getattr(fe, "fs", params.get("fs"))
    n_fft = getattr(fe, "n_fft", params.get("n_fft"))
    out = dict(
        feats_extract="fbank" if kind == "LogMelFbank" else kind,
        fs=fs,
        n_fft=n_fft,
        hop_length=getattr(fe, "hop_length", params.get("n_shift")),
        win_length=getattr(stft, "win_length", None)
        or params.get("win_length")
        or n_fft,
        window=getattr(stft, "window", params.get("window")),
        n_mels=getattr(fe, "n_mels", params.get("n_mels")),
        fmin=mel_options.get("fmin", params.get("fmin")),
        fmax=mel_options.get("fmax", params.get("fmax")),
        htk=mel_options.get("htk"),
        log_base=getattr(logmel, "log_base", None),
    )
    for key in _VOCODER_STFT_FIXED:
        out[key] = getattr(stft, key, None)
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
    return a == b


def compare_feats(feats_conf: Dict[str, Any], model: torch.nn.Module) -> List[Mismatch]:
    """Every feature field where the vocoder and the TTS model differ."""
    voc = effective_vocoder_feats(feats_conf)
    tts = tts_feats(model)
    if tts is None:
        odim = getattr(getattr(model, "tts", None), "odim", None)
        mism = [
            Mismatch(
                "feats_extract",
                "fbank",
                "none (trained on features from the data loader; cannot be checked)",
            )
        ]
        if odim is not None and int(odim) != voc["n_mels"]:
            mism.append(Mismatch("n_mels", voc["n_mels"], int(odim)))
        return mism
    if tts["feats_extract"] != "fbank":
        # A linear spectrogram or another extractor: the fields mean other things.
        return [Mismatch("feats_extract", "fbank", tts["feats_extract"])]
    return [Mismatch(k, v, tts.get(k)) for k, v in voc.items() if not _same(v, tts.get(k))]


def describe_normalization(vocoder: Any, model: torch.nn.Module) -> str:
    """One line on how normalization is converted between the two models."""
    norm = getattr(model, "normalize", None)
    voc_has = bool(getattr(vocoder, "normalized", getattr(vocoder, "mean", None) is not None))
    if norm is None:
        tts_part = "TTS model is unnormalized (its output is used as is)"
    else:
        tts_part = f"TTS {type(norm).__name__} is inverted by ESPnet (feat_gen_denorm)"
        t_mean, v_mean = getattr(norm, "mean", None), getattr(vocoder, "mean", None)
        if isinstance(t_mean, torch.Tensor) and isinstance(v_mean, torch.Tensor):
            if t_mean.numel() != v_mean.numel():
                tts_part += f" [stats dims differ: {t_mean.numel()} vs {v_mean.numel()}]"
            elif torch.allclose(t_mean.float().cpu(), v_mean.float().cpu(), atol=1e-5):
                tts_part += " (same mean as the vocoder's)"
            else:
                tts_part += " (statistics differ from the vocoder's: fine)"
    voc_part = (
        "the vocoder applies its own GlobalMVN" if voc_has else "the vocoder is unnormalized"
    )
    return f"{tts_part}; {voc_part}"


def allow_from_env() -> bool:
    return os.environ.get(ENV_ALLOW, "").strip().lower() in ("1", "true", "yes", "on")


def check_pairing(
    vocoder: Any,
    model: Optional[torch.nn.Module],
    allow_feats_mismatch: Optional[bool] = None,
    where: str = "",
) -> List[Mismatch]:
    """Raise :class:`FeatsMismatchError` unless the features agree (or it is allowed).

    ``allow_feats_mismatch=None`` reads the environment variable
    ``ESPNET_WAVENET_ALLOW_FEATS_MISMATCH``. Returns the (allowed) mismatches.
    """
    if model is None:
        logging.warning("no TTS model given: the vocoder's features are not checked")
        return []
    feats_conf = getattr(vocoder, "feats_conf", None)
    if feats_conf is None:
        logging.warning(
            "%s has no feats_conf: its features cannot be checked against the TTS model",
            type(vocoder).__name__,
        )
        return []
    mismatches = compare_feats(feats_conf, model)
    if allow_feats_mismatch is None:
        allow_feats_mismatch = allow_from_env()
    if mismatches:
        err = FeatsMismatchError(mismatches, where)
        if not allow_feats_mismatch:
            raise err
        logging.warning("allowed by request: %s", err.args[0].split("\nRetrain")[0])
    logging.info("normalization: %s", describe_normalization(vocoder, model))
    return mismatches
