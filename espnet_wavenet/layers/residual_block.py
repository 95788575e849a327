"""One WaveNet layer: dilated causal conv, gated activation, residual and skip 1x1."""

import math
from typing import Optional, Tuple

import torch

from espnet_wavenet.layers.causal_conv import CausalConv1d
from espnet_wavenet.layers.conv_mm import causal_conv_mm, gated_tanh


class ResidualBlock(torch.nn.Module):
    """Gated residual layer of the WaveNet paper (Sec. 2.3-2.5).

    z = tanh(W_f * x + V_f c) * sigmoid(W_g * x + V_g c); the conv produces
    ``gate_channels`` channels, the first half is the filter, the second the gate.
    Residual out: (x + W_r z) * sqrt(0.5) (the last layer has no W_r and passes
    x through); skip out: W_s z.

    Shapes: x (B, R, T), c (B, G, T) (the conditioning, already projected to
    ``gate_channels`` by :meth:`project_conditioning`, speaker term included) ->
    (B, R, T), (B, S, T).

    On the CPU the convolutions run as batched matrix products
    (:func:`causal_conv_mm`, the conditioning added by the dilated conv's
    product); elsewhere as ``Conv1d``.
    """

    def __init__(
        self,
        residual_channels: int,
        gate_channels: int,
        skip_channels: int,
        aux_channels: int,
        kernel_size: int,
        dilation: int,
        global_channels: int = 0,
        residual: bool = True,
    ):
        super().__init__()
        if gate_channels % 2 != 0:
            raise ValueError(f"gate_channels must be even, got {gate_channels}")
        self.dilation = dilation
        self.kernel_size = kernel_size
        self.conv = CausalConv1d(
            residual_channels, gate_channels, kernel_size, dilation=dilation
        )
        self.conv_aux = (
            torch.nn.Conv1d(aux_channels, gate_channels, 1, bias=False)
            if aux_channels > 0
            else None
        )
        self.conv_global = (
            torch.nn.Conv1d(global_channels, gate_channels, 1, bias=False)
            if global_channels > 0
            else None
        )
        half = gate_channels // 2
        # The last layer feeds only the skip path: a residual conv there would be
        # a parameter without gradient (and DDP refuses those).
        self.conv_res = torch.nn.Conv1d(half, residual_channels, 1) if residual else None
        self.conv_skip = torch.nn.Conv1d(half, skip_channels, 1)

    def project_conditioning(
        self, c: Optional[torch.Tensor], g: Optional[torch.Tensor]
    ) -> Optional[torch.Tensor]:
        """Conditioning term V c + U g, shape (B, G, T) or (B, G, 1) or None."""
        out = None
        if c is not None and self.conv_aux is not None:
            out = self.conv_aux(c)
        if g is not None and self.conv_global is not None:
            gg = self.conv_global(g)
            out = gg if out is None else out + gg
        return out

    def gated(self, h: torch.Tensor, cond: Optional[torch.Tensor]) -> torch.Tensor:
        if cond is not None:
            h = h + cond
        a, b = h.chunk(2, dim=1)
        return torch.tanh(a) * torch.sigmoid(b)

    def forward(
        self, x: torch.Tensor, cond: Optional[torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        if x.device.type == "cpu":
            return self.forward_mm(x, cond)
        z = self.gated(self.conv(x), cond)
        if self.conv_res is None:
            return x, self.conv_skip(z)
        return (x + self.conv_res(z)) * math.sqrt(0.5), self.conv_skip(z)

    def forward_mm(
        self, x: torch.Tensor, cond: Optional[torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` as batched matrix products (faster on CPUs)."""
        z = gated_tanh(
            causal_conv_mm(x, self.conv.weight, self.conv.bias, self.dilation, addend=cond)
        )
        # res and skip as two products: one product split in two would
        # concatenate their gradients in the backward pass
        s = causal_conv_mm(z, self.conv_skip.weight, self.conv_skip.bias)
        if self.conv_res is None:
            return x, s
        r = causal_conv_mm(z, self.conv_res.weight, self.conv_res.bias)
        return (x + r) * math.sqrt(0.5), s
