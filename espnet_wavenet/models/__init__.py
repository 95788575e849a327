"""Networks."""

from espnet_wavenet.models.wavenet import WaveNet

__all__ = ["WaveNet"]
