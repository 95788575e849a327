"""The network: causality, receptive field, upsampler lengths, speaker input."""

import pytest
import torch

from espnet_wavenet.layers.upsample import ConditioningUpsampler, pad_context
from espnet_wavenet.models.wavenet import WaveNet, dilations_for, receptive_field


def small_net(input_type="categorical", out=256, **kw):
    conf = dict(
        layers=6, stacks=2, kernel_size=2, residual_channels=8, gate_channels=16,
        skip_channels=8, aux_channels=5, aux_context_window=1, upsample_scales=[2, 3],
    )
    conf.update(kw)
    torch.manual_seed(0)
    return WaveNet(out_channels=out, input_type=input_type, in_classes=256, **conf).eval()


def make_input(net, batch, length, gen):
    if net.input_type == "categorical":
        return torch.randint(0, 256, (batch, length), generator=gen)
    return torch.rand(batch, length, generator=gen) * 2 - 1


@pytest.mark.parametrize("input_type", ["categorical", "continuous"])
@pytest.mark.parametrize("kernel_size", [2, 3])
def test_causality(input_type, kernel_size):
    net = small_net(input_type, kernel_size=kernel_size, n_speakers=3)
    gen = torch.Generator().manual_seed(1)
    frames = 10
    length = frames * net.hop
    x = make_input(net, 2, length, gen)
    c = torch.randn(2, 5, frames + 2, generator=gen)
    g = torch.tensor([0, 2])
    with torch.no_grad():
        base = net(x, c, g)
        for tau in (1, 17, length // 2, length - 1):
            x2 = x.clone()
            x2[:, tau:] = make_input(net, 2, length - tau, gen)
            out = net(x2, c, g)
            assert torch.equal(out[:, :, :tau], base[:, :, :tau]), tau
            # and the change does matter at tau itself
            assert not torch.allclose(out[:, :, tau], base[:, :, tau])


@pytest.mark.parametrize(
    "layers,stacks,kernel_size", [(6, 2, 2), (8, 1, 2), (6, 3, 3), (24, 4, 2)]
)
def test_receptive_field_formula_and_measured(layers, stacks, kernel_size):
    dil = dilations_for(layers, stacks)
    cycle = layers // stacks
    assert dil == [2 ** (i % cycle) for i in range(layers)]
    expected = (kernel_size - 1) * sum(dil) + 1
    assert receptive_field(layers, stacks, kernel_size) == expected
    net = small_net("continuous", out=2, layers=layers, stacks=stacks,
                    kernel_size=kernel_size, aux_channels=0)
    length = expected + 40
    x = torch.zeros(1, length, requires_grad=True)
    out = net(x)
    out[0, :, length - 1].sum().backward()
    seen = (x.grad[0].abs() > 0).nonzero().flatten()
    assert seen.max().item() == length - 1
    assert length - seen.min().item() == expected


@pytest.mark.parametrize("scales", [[4, 4, 4, 4], [2, 3], [3, 4, 5, 5], [5]])
@pytest.mark.parametrize("context", [0, 2])
def test_upsampler_length_is_frames_times_hop(scales, context):
    up = ConditioningUpsampler(3, scales, context)
    for frames in (1, 2, 7, 33):
        c = pad_context(torch.randn(2, 3, frames), context)
        out = up(c)
        assert out.shape == (2, 3, frames * up.hop)
    assert up.hop == int(torch.tensor(scales).prod())


def test_bad_configs_rejected():
    with pytest.raises(ValueError, match="multiple of stacks"):
        dilations_for(10, 3)
    with pytest.raises(ValueError, match="gate_channels"):
        small_net(gate_channels=15)
    net = small_net(n_speakers=2)
    with pytest.raises(ValueError, match="speaker id out of range"):
        net.global_condition(torch.tensor([2]))
    with pytest.raises(ValueError, match="speaker ids needed"):
        net.global_condition(None)


def test_speaker_conditioning_changes_output():
    net = small_net(n_speakers=2)
    gen = torch.Generator().manual_seed(0)
    x = make_input(net, 1, 6 * net.hop, gen)
    c = torch.randn(1, 5, 8, generator=gen)
    with torch.no_grad():
        a = net(x, c, torch.tensor([0]))
        b = net(x, c, torch.tensor([1]))
    assert not torch.allclose(a, b)
