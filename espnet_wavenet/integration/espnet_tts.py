"""The hook that makes ESPnet TTS inference build registered vocoders.

ESPnet's ``Text2Speech`` builds its vocoder with the classmethod
``TTSTask.build_vocoder_from_file(vocoder_config_file, vocoder_file, model,
device)``: Griffin-Lim for no file, Parallel WaveGAN for ``*.pkl``, ValueError
for anything else. :func:`activate` wraps that classmethod: a packed directory
of a registered vocoder (or its ``model.pth`` / ``config.yaml``, or
``<name>:<path>``) is built through :mod:`espnet_wavenet.integration.registry`
after the feature contract is checked; every other call goes to ESPnet's
original, unchanged. ``Text2Speech.__init__`` is wrapped too, only to tell the
vocoder build whether that Text2Speech was asked for ``prefer_normalized_feats``
(a context variable set for the duration of the constructor). Activation is
explicit and idempotent; :func:`deactivate` restores both originals.

The upstream change that would make both wrappers unnecessary: an entry-point
group for vocoders in ``TTSTask.build_vocoder_from_file`` (as this package's
``espnet.vocoders``), with Text2Speech passing ``prefer_normalized_feats`` to it.

Every ESPnet import that may change between releases stays in this module.
"""

import contextvars
import functools
import inspect
import logging
import sys
from pathlib import Path
from typing import Any, Optional, Union

import torch

from espnet_wavenet.integration import registry
from espnet_wavenet.integration.feats_contract import check_pairing

_MARK = "_espnet_wavenet_hook"
_state = dict(original=None, original_init=None, allow_feats_mismatch=None, skip_vocoder=False)
# prefer_normalized_feats of the Text2Speech being constructed (None: none is).
_PREFER_NORMALIZED: contextvars.ContextVar = contextvars.ContextVar(
    "espnet_wavenet_prefer_normalized_feats", default=None
)


def _tts_task():
    from espnet2.tasks.tts import TTSTask

    return TTSTask


def _text2speech():
    from espnet2.bin.tts_inference import Text2Speech

    return Text2Speech


class NormalizedInputVocoder(torch.nn.Module):
    """Feeds a vocoder that wants denormalized features from *normalized* ones.

    Used when ``Text2Speech(prefer_normalized_feats=True)``: ESPnet then passes
    ``feat_gen`` (normalized with the TTS model's statistics); this inverts the
    TTS model's normalizer first, so the vocoder can apply its own.
    """

    def __init__(self, vocoder: torch.nn.Module, tts_normalize: torch.nn.Module):
        super().__init__()
        self.vocoder = vocoder
        self.tts_normalize = tts_normalize

    @property
    def fs(self) -> int:
        return self.vocoder.fs

    @torch.no_grad()
    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        # ESPnet's inverse works in place on (B, T, D): give it a copy.
        denorm, _ = self.tts_normalize.inverse(feats.clone()[None])
        return self.vocoder(denorm[0])


def _wrap_init(original):
    """Text2Speech.__init__ that makes its prefer_normalized_feats visible to the
    vocoder build it runs (and to nothing else: reset when it returns)."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        call = signature.bind(self, *args, **kwargs)
        call.apply_defaults()
        token = _PREFER_NORMALIZED.set(bool(call.arguments["prefer_normalized_feats"]))
        try:
            original(self, *args, **kwargs)
        finally:
            _PREFER_NORMALIZED.reset(token)

    setattr(__init__, _MARK, True)
    return __init__


def build_paired_vocoder(
    name: str,
    model_dir: Union[str, Path],
    model: Optional[torch.nn.Module] = None,
    device: str = "cpu",
    allow_feats_mismatch: Optional[bool] = None,
    prefer_normalized_feats: bool = False,
) -> torch.nn.Module:
    """Build registered vocoder ``name`` and check it against the TTS ``model``."""
    vocoder = registry.build_vocoder(name, model_dir, device=device)
    check_pairing(
        vocoder, model, allow_feats_mismatch, where=f" ({name} vocoder at {model_dir})"
    )
    if prefer_normalized_feats and model is not None:
        if getattr(model, "normalize", None) is not None:
            logging.info("prefer_normalized_feats: inverting the TTS normalizer first")
            return NormalizedInputVocoder(vocoder, model.normalize)
    return vocoder


def _resolve_call(args: tuple, kwargs: dict, signature: inspect.Signature) -> dict:
    bound = signature.bind_partial(*args, **kwargs)
    return dict(bound.arguments)


def _make_wrapper(original: classmethod) -> classmethod:
    func = original.__func__
    signature = inspect.signature(func)

    @functools.wraps(func)
    def build_vocoder_from_file(cls, *args: Any, **kwargs: Any):
        call = _resolve_call((cls, *args), kwargs, signature)
        if _state["skip_vocoder"]:
            logging.info("skip_vocoder: features only, no waveform")
            return None
        vocoder_file = call.get("vocoder_file")
        vocoder_config = call.get("vocoder_config_file")
        target = None
        if vocoder_file is not None:
            target = registry.resolve(vocoder_file)
        elif vocoder_config is not None:
            # A packed config.yaml given as --vocoder_config alone: ESPnet would
            # feed it to Griffin-Lim and fail; build the vocoder it describes.
            target = registry.resolve(vocoder_config)
        if target is None:
            return func(cls, *args, **kwargs)
        name, model_dir = target
        if vocoder_file is not None and vocoder_config is not None:
            logging.warning(
                "vocoder_config %s is ignored: the packed %s vocoder at %s carries "
                "its own config",
                vocoder_config,
                name,
                model_dir,
            )
        return build_paired_vocoder(
            name,
            model_dir,
            model=call.get("model"),
            device=call.get("device", "cpu"),
            allow_feats_mismatch=_state["allow_feats_mismatch"],
            prefer_normalized_feats=bool(_PREFER_NORMALIZED.get()),
        )

    setattr(build_vocoder_from_file, _MARK, True)
    return classmethod(build_vocoder_from_file)


def is_active() -> bool:
    """Whether TTSTask.build_vocoder_from_file is currently wrapped."""
    current = _tts_task().__dict__.get("build_vocoder_from_file")
    return getattr(getattr(current, "__func__", None), _MARK, False)


def _check_text2speech(cls) -> None:
    """Text2Speech as the init wrapper expects it (one ESPnet release may change it)."""
    params = inspect.signature(cls.__init__).parameters
    if "prefer_normalized_feats" not in params:
        raise RuntimeError(
            "espnet2.bin.tts_inference.Text2Speech no longer takes prefer_normalized_feats; "
            "this ESPnet release is not supported by the hook"
        )


def activate(allow_feats_mismatch: Optional[bool] = None) -> None:
    """Make ESPnet TTS inference build registered vocoders (idempotent).

    ``allow_feats_mismatch``: True turns a feature mismatch into a warning; None
    (default) reads ``ESPNET_WAVENET_ALLOW_FEATS_MISMATCH`` at build time.
    """
    _state["allow_feats_mismatch"] = allow_feats_mismatch
    if is_active():
        return
    task = _tts_task()
    original = task.__dict__["build_vocoder_from_file"]
    if not isinstance(original, classmethod):
        raise RuntimeError(
            "espnet2.tasks.tts.TTSTask.build_vocoder_from_file is no longer a "
            "classmethod; this ESPnet release is not supported by the hook"
        )
    t2s = _text2speech()
    _check_text2speech(t2s)
    _state["original"] = original
    task.build_vocoder_from_file = _make_wrapper(original)
    if not getattr(t2s.__dict__["__init__"], _MARK, False):
        _state["original_init"] = t2s.__dict__["__init__"]
        t2s.__init__ = _wrap_init(_state["original_init"])
    logging.debug("espnet_wavenet: TTSTask.build_vocoder_from_file and Text2Speech hooked")


def deactivate() -> None:
    """Restore ESPnet's original build_vocoder_from_file and Text2Speech.__init__."""
    if is_active() and _state["original"] is not None:
        _tts_task().build_vocoder_from_file = _state["original"]
    if _state["original_init"] is not None:
        _text2speech().__init__ = _state["original_init"]
    _state["original"] = _state["original_init"] = None


def tts_inference_parser():
    """ESPnet's ``tts_inference`` parser plus ``--allow_feats_mismatch``."""
    from espnet2.bin.tts_inference import get_parser
    from espnet2.utils.types import str2bool

    parser = get_parser()
    parser.description = "TTS inference (ESPnet) with registered vocoders"
    parser.add_argument(
        "--allow_feats_mismatch",
        type=str2bool,
        default=False,
        help="Use the vocoder even if its features differ from the TTS model's "
        "(a warning instead of an error)",
    )
    parser.add_argument(
        "--skip_vocoder",
        type=str2bool,
        default=False,
        help="Build no vocoder (not even Griffin-Lim): write features only, "
        "e.g. GTA features with --use_teacher_forcing true",
    )
    return parser


def run_tts_inference(cmd=None) -> None:
    """Parse ESPnet's tts_inference options, activate the hook, run ESPnet's inference."""
    from espnet2.bin.tts_inference import inference

    print(" ".join([sys.executable, *sys.argv]), file=sys.stderr)
    kwargs = vars(tts_inference_parser().parse_args(cmd))
    kwargs.pop("config", None)
    skip_vocoder = kwargs.pop("skip_vocoder")
    activate(allow_feats_mismatch=kwargs.pop("allow_feats_mismatch") or None)
    _state["skip_vocoder"] = skip_vocoder
    try:
        inference(**kwargs)
    finally:
        _state["skip_vocoder"] = False
