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
        if w is None:  # conv_aux: the conditioning comes in projected
            assert g is None
            continue
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n_speakers", [0, 3])
def test_fused_network_without_mel_conditioning(n_speakers):
    # the gate buffers then hold only the bias (and the speaker term), constant in time
    from espnet_wavenet.models.wavenet import WaveNet

    torch.manual_seed(0)
    net = WaveNet(out_channels=16, in_classes=16, layers=4, stacks=2, residual_channels=8,
                  gate_channels=12, skip_channels=6, aux_channels=0,
                  n_speakers=n_speakers).double()
    x = torch.randint(0, 16, (2, 300))
    g = torch.tensor([1, 2]) if n_speakers else None
    params = list(net.parameters())
    outs = [f(x, None, g) for f in (net.forward, net.forward_reference)]
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    up = torch.randn_like(outs[0])
    got, want = (torch.autograd.grad((o * up).sum(), params) for o in outs)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
