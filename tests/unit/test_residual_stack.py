"""The compiled residual stack (CPU float32 training) against the network's
reference forward in float64: logits and every parameter gradient, with and
without mel conditioning and speakers, dilations beyond the segment, batches
that do not divide over the threads; the sizes it refuses fall back to torch ops."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from espnet_wavenet.models.wavenet import WaveNet
from espnet_wavenet.train.residual_stack import StackKernel

KERNEL = StackKernel.load()
pytestmark = pytest.mark.skipif(KERNEL is None, reason="no compiled kernel here")


def _net(n_speakers=0, aux=8, layers=6, stacks=2, **kw):
    torch.manual_seed(0)
    net = WaveNet(layers=layers, stacks=stacks, residual_channels=16, gate_channels=64,
                  skip_channels=16, aux_channels=aux, aux_context_window=1 if aux else 0,
                  upsample_scales=(4, 4), n_speakers=n_speakers, global_channels=4, **kw)
    with torch.no_grad():  # weights large enough that every layer's gate matters
        for p in net.parameters():
            p.normal_(0.0, 0.3 if p.dim() > 1 else 0.1)
    net.stack_kernel = KERNEL  # as the training model attaches it
    return net


def _grads(net, forward, x, c, g, w):
    net.zero_grad()
    y = forward(x, c, g)
    (y * w).sum().backward()
    return y.detach(), {n: p.grad.detach().clone() for n, p in net.named_parameters()
                        if p.grad is not None}


def _check(net, batch, frames, n_speakers=0):
    length = frames * net.hop
    x = torch.randint(0, 256, (batch, length))
    c = None if net.aux_channels == 0 else torch.randn(batch, net.aux_channels, frames + 2)
    g = torch.arange(batch) % n_speakers if n_speakers else None
    w = torch.randn(batch, 256, length)
    assert net.stack_kernel_for(length) is not None  # the kernel runs these sizes
    got, got_g = _grads(net, net.forward, x, c, g, w)
    ref = copy.deepcopy(net).double()
    want, want_g = _grads(ref, ref.forward_reference, x, None if c is None else c.double(), g,
                          w.double())
    scale = want.abs().max()
    torch.testing.assert_close(got.double(), want, rtol=0, atol=2e-5 * scale)
    assert set(got_g) == set(want_g)
    for name, grad in got_g.items():
        tol = 1e-4 * want_g[name].abs().max() + 1e-7
        torch.testing.assert_close(grad.double(), want_g[name], rtol=0, atol=tol, msg=name)


@pytest.mark.parametrize("n_speakers", [0, 3])
def test_stack_equals_reference(n_speakers):
    _check(_net(n_speakers), batch=2, frames=8, n_speakers=n_speakers)


def test_stack_without_mel_conditioning():
    _check(_net(n_speakers=2, aux=0), batch=2, frames=128, n_speakers=2)  # hop 1


def test_stack_odd_batch_and_long_dilations():
    # 3 elements over the threads; dilations up to 128 against 64 samples: the
    # delayed taps of the last layers see only the zeros before the start
    net = _net(layers=8, stacks=1)
    assert max(net.dilations) > 64
    _check(net, batch=3, frames=4)
    _check(net, batch=1, frames=4)


def test_stack_repeated_steps_reuse_buffers():
    # the second step writes over the first one's released activations
    net = _net()
    x = torch.randint(0, 256, (2, 128))
    c = torch.randn(2, 8, 10)
    w = torch.randn(2, 256, 128)
    first = _grads(net, net.forward, x, c, None, w)[1]
    _grads(net, net.forward, torch.randint(0, 256, (2, 128)), c, None, w)
    again = _grads(net, net.forward, x, c, None, w)[1]
    for name in first:
        torch.testing.assert_close(again[name], first[name], rtol=0, atol=0)


def test_stack_refuses_a_second_backward():
    net = _net()
    y = net(torch.randint(0, 256, (2, 128)), torch.randn(2, 8, 10))
    y.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.sum().backward()


def test_sizes_the_kernel_refuses_fall_back():
    # 48 samples: not a multiple of the kernel's 64-sample tile
    net = _net(aux=0)
    assert net.stack_kernel_for(48) is None
    x = torch.randint(0, 256, (2, 48))
    w = torch.randn(2, 256, 48)
    got = _grads(net, net.forward, x, None, None, w)[0]
    ref = copy.deepcopy(net).double()
    want = _grads(ref, ref.forward_reference, x, None, None, w.double())[0]
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5 * want.abs().max())


_LEVEL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_residual_stack import _check, _net
from espnet_wavenet.generation.cpu import loader
assert loader.kernel_kind() == {level!r}, loader.kernel_kind()
_check(_net(n_speakers=2), batch=3, frames=4, n_speakers=2)
"""


@pytest.mark.parametrize("level", ["avx2", "baseline"])
def test_stack_at_lower_isa_levels(level):
    # other register blocks (4 rows; 8 or 4 lanes), and no AVX transposes on the baseline
    from espnet_wavenet.generation.cpu import loader

    if level not in loader.cpu_levels():
        pytest.skip(f"this CPU cannot run the {level} build")
    env = dict(os.environ, ESPNET_WAVENET_KERNEL=level)
    script = _LEVEL_SCRIPT.format(tests=str(Path(__file__).parent), level=level)
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
