"""ESPnet integration: vocoder registry, the TTS hook and the feature contract.

Activation is explicit: ``import espnet_wavenet`` changes nothing in ESPnet.
Call once, before building ``Text2Speech``::

    import espnet_wavenet.integration
    espnet_wavenet.integration.activate()
    tts = Text2Speech(train_config=..., model_file=..., vocoder_file="exp/pack")

``python -m espnet_wavenet.bin.tts_inference`` (the drop-in for
``espnet2.bin.tts_inference``) activates it for you. This package does not
import espnet2 until ``activate()`` is called.
"""

from typing import Optional


def activate(allow_feats_mismatch: Optional[bool] = None) -> None:
    """Hook registered vocoders into ESPnet TTS inference (idempotent)."""
    from espnet_wavenet.integration.espnet_tts import activate as _activate

    _activate(allow_feats_mismatch=allow_feats_mismatch)


def deactivate() -> None:
    """Give ESPnet back its own vocoder builder."""
    from espnet_wavenet.integration.espnet_tts import deactivate as _deactivate

    _deactivate()


def is_active() -> bool:
    from espnet_wavenet.integration.espnet_tts import is_active as _is_active

    return _is_active()


__all__ = ["activate", "deactivate", "is_active"]
