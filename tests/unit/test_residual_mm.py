"""The fused CPU training layer against ResidualBlock's own modules: values and
every gradient in float64, with and without the residual output."""

import math

import pytest
import torch

from espnet_wavenet.layers.residual_block import ResidualBlock
from espnet_wavenet.layers.residual_mm import residual_layer_mm


@pytest.mark.parametrize(
    "residual,kernel,dilation,length",
    [(True, 2, 4, 40), (False, 2, 4, 40), (True, 3, 2, 17), (True, 2, 64, 9)],
)
def test_fused_layer_equals_the_block(residual, kernel, dilation, length):
    torch.manual_seed(kernel + dilation)
    block = ResidualBlock(8, 12, 6, 4, kernel, dilation=dilation, residual=residual).double()
    x = torch.randn(2, 8, length, dtype=torch.float64, requires_grad=True)
    cond = torch.randn(2, 12, length, dtype=torch.float64, requires_grad=True)
    skips0 = torch.randn(2, 6, length, dtype=torch.float64, requires_grad=True)
    params = [x, cond, skips0] + list(block.parameters())

    def by_modules():
        z = block.gated(block.conv(x), cond)
        h = x if block.conv_res is None else (x + block.conv_res(z)) * math.sqrt(0.5)
        return h, skips0 + block.conv_skip(z)

    def fused():
        res = block.conv_res
        # the layer takes over its gate buffer (bias included) and the running skip
        # sum (its caller adds the skip biases)
        out, skips = residual_layer_mm(
            x, cond + block.conv.bias[:, None], skips0 + block.conv_skip.bias[:, None],
            block.conv.weight,
            None if res is None else res.weight[..., 0], None if res is None else res.bias,
            block.conv_skip.weight[..., 0], dilation, math.sqrt(0.5),
        )
        return (x if out is None else out), skips

    up_h = torch.randn(2, 8, length, dtype=torch.float64)
    up_s = torch.randn(2, 6, length, dtype=torch.float64)
    results = []
    for run in (by_modules, fused):
        h, s = run()
        loss = (h * up_h).sum() + (s * up_s).sum()
        results.append(((h, s), torch.autograd.grad(loss, params, allow_unused=True)))
    (want, want_g), (got, got_g) = results
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for p, g, w in zip(params, got_g, want_g):
        if w is None:  # the last layer's (absent) residual conv
            assert g is None or not g.abs().any()
            continue
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)
