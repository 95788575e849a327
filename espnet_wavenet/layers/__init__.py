"""Network building blocks."""

from espnet_wavenet.layers.causal_conv import CausalConv1d
from espnet_wavenet.layers.residual_block import ResidualBlock
from espnet_wavenet.layers.upsample import ConditioningUpsampler

__all__ = ["CausalConv1d", "ResidualBlock", "ConditioningUpsampler"]
