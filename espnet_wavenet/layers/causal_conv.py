"""Causal dilated 1-D convolution."""

import torch


class CausalConv1d(torch.nn.Conv1d):
    """Dilated convolution whose output at time t sees inputs at times <= t only.

    Shapes: (B, C_in, T) -> (B, C_out, T). Left padding of (kernel_size - 1) * dilation.
    Tap k of the kernel multiplies x[t - (kernel_size - 1 - k) * dilation].
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        dilation: int = 1,
        bias: bool = True,
    ):
        super().__init__(
            in_channels, out_channels, kernel_size, dilation=dilation, bias=bias
        )
        self.left_pad = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.nn.functional.pad(x, (self.left_pad, 0)))
