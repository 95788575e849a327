"""The reference generator reproduces the parallel forward pass exactly."""

import pytest
import torch

from espnet_wavenet.generation.reference import ReferenceGenerator
from espnet_wavenet.layers.upsample import pad_context
from espnet_wavenet.models.builder import build_wavenet

FEATS = dict(fs=8000, n_fft=64, hop_length=12, n_mels=6, fmin=0, fmax=4000)
NET = dict(layers=6, stacks=2, residual_channels=8, gate_channels=16, skip_channels=8,
           aux_context_window=1, upsample_scales=[3, 4])


@pytest.mark.parametrize("dist_name", ["mulaw", "mol", "gaussian"])
@pytest.mark.parametrize("speakers", [0, 3])
def test_reference_equals_parallel_forward(dist_name, speakers):
    torch.manual_seed(0)
    net, dist = build_wavenet(FEATS, dict(NET, n_speakers=speakers), dist_name)
    net.eval()
    frames = 20
    c = pad_context(torch.randn(2, 6, frames), 1)
    g = torch.tensor([0, 2]) if speakers else None
    length = frames * 12
    noise = dist.noise(2, length, torch.Generator().manual_seed(3))
    with torch.no_grad():
        c_up = net.upsample_conditioning(c)
        wav, logits = ReferenceGenerator(net, dist).generate(
            c_up, length, noise, g, return_logits=True
        )
        assert wav.shape == (2, length)
        assert wav.abs().max() <= 1.0
        x_in = dist.encode_input(torch.nn.functional.pad(wav[:, :-1], (1, 0)))
        full = net(x_in, c, g)
    assert (full - logits).abs().max().item() < 1e-4
    # sampling is deterministic given the same noise
    with torch.no_grad():
        wav2, _ = ReferenceGenerator(net, dist).generate(c_up, length, noise, g)
    assert torch.equal(wav, wav2)
