"""The vocoder: features in, waveform out."""
