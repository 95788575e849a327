"""Fast, batched, streaming and GPU generation against the reference oracle."""

import logging
from pathlib import Path

import pytest
import torch
import yaml

from espnet_wavenet.generation import build_generator, extension
from espnet_wavenet.generation.fast import FastGenerator, fast_available
from espnet_wavenet.generation.reference import ReferenceGenerator
from espnet_wavenet.models.builder import build_wavenet
from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

CONF = Path(__file__).resolve().parents[1] / "conf" / "tiny.yaml"
DISTS = {
    "mulaw": {},
    "mol": {"num_mixtures": 3, "log_scale_min": -7.0},
    "gaussian": {"log_scale_min": -9.0},
}

needs_fast = pytest.mark.skipif(
    extension.load_library() is None, reason="fast kernel not built"
)


@pytest.fixture(autouse=True)
def one_thread():
    # The reference is launch-bound: extra threads only add overhead on 2 cores.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny(dist: str, n_speakers: int = 0, **wavenet):
    conf = yaml.safe_load(CONF.read_text())
    wc = dict(conf["wavenet_conf"], n_speakers=n_speakers, **wavenet)
    torch.manual_seed(0)
    net, d = build_wavenet(conf["feats_conf"], wc, dist, DISTS[dist])
    with torch.no_grad():  # larger than init so that outputs actually vary
        for p in net.parameters():
            p.mul_(1.5)
    return conf, net.eval(), d


def compare(dist, net, d, length, batch=2, g=None, **kw):
    c_up = torch.randn(batch, net.aux_channels, length, generator=torch.Generator().manual_seed(1))
    noise = d.noise(batch, length, torch.Generator().manual_seed(2))
    ref, ref_lg = ReferenceGenerator(net, d).generate(c_up, length, noise, g, return_logits=True, **kw)
    fast, fast_lg = FastGenerator(net, d).generate(c_up, length, noise, g, return_logits=True, **kw)
    assert fast.shape == ref.shape and fast_lg.shape == ref_lg.shape
    if dist == "mulaw":
        assert torch.equal(fast, ref)
    else:  # continuous samples are fed back: equal up to float rounding
        torch.testing.assert_close(fast, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast_lg, ref_lg, atol=1e-4, rtol=0)
    return ref


@needs_fast
@pytest.mark.parametrize("dist", list(DISTS))
@pytest.mark.parametrize("n_speakers", [0, 3])
def test_fast_equals_reference(dist, n_speakers):
    _, net, d = tiny(dist, n_speakers)
    g = torch.tensor([2, 0]) if n_speakers else None
    wav = compare(dist, net, d, 2000, g=g)
    assert wav.abs().max() <= 1.0 and wav.std() > 1e-3  # not a constant output


@needs_fast
@pytest.mark.parametrize("temperature", [0.0, 0.6])
def test_mulaw_temperature_and_argmax(temperature):
    _, net, d = tiny("mulaw")
    compare("mulaw", net, d, 400, temperature=temperature)


@needs_fast
@pytest.mark.parametrize("dist", ["mol", "gaussian"])
def test_log_scale_floor(dist):
    _, net, d = tiny(dist)
    a = compare(dist, net, d, 300, log_scale_min=0.5)
    b = compare(dist, net, d, 300)
    assert not torch.equal(a, b)  # the floor changed the samples


@needs_fast
def test_no_conditioning_and_odd_sizes():
    # Channel counts that are not multiples of 16 and kernel size 3.
    _, net, d = tiny(
        "mol", 2, residual_channels=10, gate_channels=22, skip_channels=7, kernel_size=3
    )
    compare("mol", net, d, 300, g=torch.tensor([1, 0]))
    length = 200
    noise = d.noise(1, length, torch.Generator().manual_seed(0))
    ref, _ = ReferenceGenerator(net, d).generate(None, length, noise, torch.tensor([1]))
    fast, _ = FastGenerator(net, d).generate(None, length, noise, torch.tensor([1]))
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=0)
