"""Convolutions as batched matrix products (the CPU training path) against
torch's own convolution: values and every gradient."""

import pytest
import torch
import torch.nn.functional as F

from espnet_wavenet.layers.conv_mm import causal_conv_mm, gated_tanh
from espnet_wavenet.layers.residual_block import ResidualBlock


def conv_reference(x, w, b, dilation, addend):
    k = w.shape[-1]
    y = F.conv1d(F.pad(x, ((k - 1) * dilation, 0)), w, b, dilation=dilation)
    return y if addend is None else y + addend


@pytest.mark.parametrize(
    "kernel,dilation,length,bias,addend",
    [
        (2, 4, 37, True, "full"),
        (3, 2, 29, False, "full"),
        (1, 1, 23, True, None),
        (2, 8, 6, True, "per_channel"),  # every shifted tap falls before the start
        (2, 1, 19, False, None),
    ],
)
def test_equals_torch_conv_values_and_gradients(kernel, dilation, length, bias, addend):
    g = torch.Generator().manual_seed(kernel * 100 + dilation)

    def leaf(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()

    x, w = leaf(3, 5, length), leaf(7, 5, kernel)
    b = leaf(7) if bias else None
    shape = {"full": (3, 7, length), "per_channel": (3, 7, 1)}.get(addend)
    a = leaf(*shape) if shape else None
    y = causal_conv_mm(x, w, b, dilation, addend=a)
    torch.testing.assert_close(y, conv_reference(x, w, b, dilation, a), rtol=1e-12, atol=1e-12)
    inputs = [t for t in (x, w, b, a) if t is not None]
    up = torch.randn(y.shape, dtype=torch.float64, generator=g)
    got = torch.autograd.grad((y * up).sum(), inputs)
    want = torch.autograd.grad((conv_reference(x, w, b, dilation, a) * up).sum(), inputs)
    for gv, wv in zip(got, want):
        assert gv.shape == wv.shape
        torch.testing.assert_close(gv, wv, rtol=1e-10, atol=1e-10)


def test_gate_gradient():
    h = torch.randn(2, 6, 11, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gated_tanh, (h,))
    a, b = h.chunk(2, dim=1)
    torch.testing.assert_close(gated_tanh(h), torch.tanh(a) * torch.sigmoid(b))


@pytest.mark.parametrize("residual", [True, False])
def test_residual_block_on_cpu_equals_its_conv_modules(residual):
    torch.manual_seed(0)
    block = ResidualBlock(8, 12, 6, 4, 2, dilation=4, residual=residual).double()
    x = torch.randn(2, 8, 40, dtype=torch.float64, requires_grad=True)
    cond = torch.randn(2, 12, 40, dtype=torch.float64, requires_grad=True)

    def by_modules():
        z = block.gated(block.conv(x), cond)
        h = x if block.conv_res is None else (x + block.conv_res(z)) * 0.5**0.5
        return h, block.conv_skip(z)

    params = [x, cond] + list(block.parameters())
    outs = [block(x, cond), by_modules()]
    grads = []
    for h, s in outs:
        assert h.shape == x.shape and s.shape == (2, 6, 40)
        loss = (h * torch.linspace(-1, 1, 40)).sum() + (s**2).sum()
        grads.append(torch.autograd.grad(loss, params, allow_unused=True))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    for got, want in zip(*grads):
        if want is None:
            assert got is None
        else:
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_autocast_bf16_products_and_float32_gradients():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 64, requires_grad=True)
    w = torch.randn(32, 16, 2, requires_grad=True)
    b = torch.randn(32, requires_grad=True)
    a = torch.randn(2, 32, 64, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = causal_conv_mm(x, w, b, 2, addend=a)
    assert y.dtype == torch.bfloat16
    y.float().square().sum().backward()
    want = conv_reference(x.detach(), w.detach(), b.detach(), 2, a.detach())
    torch.testing.assert_close(y.float(), want, rtol=0.05, atol=0.3)
    for t in (x, w, b, a):
        assert t.grad.dtype == torch.float32 and torch.isfinite(t.grad).all()
