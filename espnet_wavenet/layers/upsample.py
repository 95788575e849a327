"""Learned upsampler from feature frames to the sample rate."""

from typing import Sequence

import numpy as np
import torch

from espnet_wavenet.utils.matmul import row_stable_mm


class ConditioningUpsampler(torch.nn.Module):
    """Frame-rate features -> sample-rate features, total scale = prod(scales).

    An optional context conv (kernel 2 * aux_context_window + 1, no padding) first
    lets every frame see a few neighbouring frames; then, for each scale s, the
    frames are repeated s times and smoothed by a length-(2s+1) conv shared across
    feature channels (nearest-neighbour stretch plus learned smoothing avoids the
    checkerboard artefacts of transposed convs).

    Shapes: (B, C, T_frames + 2 * aux_context_window) -> (B, C, T_frames * hop).
    """

    def __init__(
        self,
        aux_channels: int,
        upsample_scales: Sequence[int],
        aux_context_window: int = 0,
    ):
        super().__init__()
        if len(upsample_scales) == 0 or any(int(s) < 1 for s in upsample_scales):
            raise ValueError(f"bad upsample_scales {list(upsample_scales)}")
        self.scales = [int(s) for s in upsample_scales]
        self.hop = int(np.prod(self.scales))
        self.aux_context_window = int(aux_context_window)
        self.conv_in = (
            torch.nn.Conv1d(
                aux_channels, aux_channels, 2 * aux_context_window + 1, bias=False
            )
            if aux_context_window > 0
            else None
        )
        self.smooth = torch.nn.ModuleList()
        for s in self.scales:
            conv = torch.nn.Conv1d(1, 1, 2 * s + 1, padding=s, bias=False)
            # Start as a moving average: a sensible interpolation before training.
            torch.nn.init.constant_(conv.weight, 1.0 / (2 * s + 1))
            self.smooth.append(conv)

    def context(self, c: torch.Tensor) -> torch.Tensor:
        """The context conv, (B, C, T + 2 w) -> (B, C, T), as one matrix product
        over (batch x frame) rows that rounds each frame alike however many
        frames there are (a conv's algorithm depends on the length): streaming
        then equals offline generation."""
        if self.conv_in is None:
            return c
        b, ch, t = c.shape
        k = self.conv_in.kernel_size[0]
        cols = c.unfold(2, k, 1).transpose(1, 2).reshape(b * (t - k + 1), ch * k)
        w = self.conv_in.weight.reshape(self.conv_in.out_channels, ch * k)
        return row_stable_mm(cols, w.t()).reshape(b, t - k + 1, -1).transpose(1, 2)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        c = self.context(c)
        b, ch, t = c.shape
        x = c.reshape(b * ch, 1, t)
        for s, conv in zip(self.scales, self.smooth):
            x = conv(torch.repeat_interleave(x, s, dim=-1))
        return x.reshape(b, ch, -1)


def pad_context(c: torch.Tensor, context: int) -> torch.Tensor:
    """Replicate-pad (B, C, T) frames by ``context`` frames on both sides."""
    if context <= 0:
        return c
    return torch.nn.functional.pad(c, (context, context), mode="replicate")
