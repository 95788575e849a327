"""Small networks and settings shared by the tests."""

from pathlib import Path

import pytest
import torch
import yaml

from espnet_wavenet.generation.cpu import loader
from espnet_wavenet.models.builder import build_wavenet

CONF = Path(__file__).resolve().parents[1] / "conf" / "tiny.yaml"

DISTS = {
    "mulaw": {},
    "mol": {"num_mixtures": 3, "log_scale_min": -7.0},
    "gaussian": {"log_scale_min": -9.0},
}

needs_fast = pytest.mark.skipif(
    loader.load_library() is None, reason="fast kernel not built"
)


def tiny(dist: str, n_speakers: int = 0, **wavenet):
    conf = yaml.safe_load(CONF.read_text())
    wc = dict(conf["wavenet_conf"], n_speakers=n_speakers, **wavenet)
    torch.manual_seed(0)
    net, d = build_wavenet(conf["feats_conf"], wc, dist, DISTS[dist])
    with torch.no_grad():  # larger than init so that outputs actually vary
        for p in net.parameters():
            p.mul_(1.5)
    return conf, net.eval(), d


# A vocoder small enough to generate with the reference generator in a test.
FEATS = dict(fs=16000, n_fft=256, hop_length=16, n_mels=10, fmin=0, fmax=8000)
NET = dict(layers=4, stacks=2, residual_channels=8, gate_channels=16, skip_channels=8,
           aux_context_window=1, upsample_scales=[4, 4])
