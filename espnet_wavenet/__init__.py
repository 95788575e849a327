"""Mel-conditioned WaveNet vocoder for ESPnet."""

__version__ = "0.1.0"
