"""Output distributions: losses prefer the truth, mu-law bounds, sample statistics."""

import math

import pytest
import torch
import torchaudio

from espnet_wavenet.distributions import Sampling, build_distribution


def test_mulaw_loss_lowest_for_true_class():
    dist = build_distribution("mulaw")
    x = torch.tensor([[-0.7, -0.01, 0.0, 0.3, 0.95]])
    q = dist.encode(x)
    logits = torch.full((1, 256, 5), -3.0)
    logits.scatter_(1, q.unsqueeze(1), 4.0)
    true_nll = dist.nll(logits, x)
    for shift in (0.05, -0.2, 0.5):
        other = (x + shift).clamp(-1, 1)
        changed = dist.encode(other) != q
        assert (dist.nll(logits, other)[changed] > true_nll[changed]).all()


def test_mulaw_round_trip_within_quantisation_bound():
    dist = build_distribution("mulaw")
    mu = 255.0
    x = torch.linspace(-1, 1, 20001)
    err = (dist.decode(dist.encode(x)) - x).abs()
    # rounding moves the companded value by at most half a step (1/mu);
    # map that interval back through the expander at each x
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    expand = lambda v: torch.sign(v) * (torch.exp(v.abs() * math.log1p(mu)) - 1) / mu
    bound = (expand((y.abs() + 1 / mu).clamp(max=1.0)) - x.abs()).abs() + 1e-6
    assert (err <= bound).all(), (err - bound).max()
    assert err.max() < 0.022  # half a step near |x| = 1: 5.57 / 255
    assert err[(x.abs() < 1e-3)].max() < 1.5e-4  # fine resolution near zero


def test_mulaw_matches_torchaudio():
    dist = build_distribution("mulaw")
    x = torch.rand(1000) * 2 - 1
    assert torch.equal(dist.encode(x), torchaudio.functional.mu_law_encoding(x, 256))


def test_mulaw_sampling_controls():
    dist = build_distribution("mulaw")
    logits = torch.randn(4, 256)
    noise = torch.rand(4, 1)
    argmax = dist.sample(logits, noise, Sampling(temperature=0.0))
    assert torch.equal(argmax, dist.decode(logits.argmax(-1)))
    # low temperature concentrates on the mode
    cold = dist.sample(logits, noise, Sampling(temperature=1e-3))
    assert torch.equal(cold, argmax)


def test_mol_loss_lowest_for_true_sample():
    dist = build_distribution("mol", dict(num_mixtures=3))
    x = torch.tensor([[-0.5, 0.0, 0.25, 0.8]])
    logits = torch.zeros(1, 9, 4)
    logits[:, 0] = 3.0  # mixture 0 dominates
    logits[:, 3] = x  # its means sit on the truth
    logits[:, 6] = -5.0  # small scales
    logits[:, 4:6] = 0.9
    true_nll = dist.nll(logits, x)
    for shift in (0.02, -0.1, 0.3):
        other = (x + shift).clamp(-0.99, 0.99)
        assert (dist.nll(logits, other) > true_nll).all()
    assert torch.isfinite(dist.nll(logits, torch.tensor([[-1.0, 1.0, -1.0, 1.0]]))).all()


def test_gaussian_loss_lowest_for_true_sample():
    dist = build_distribution("gaussian")
    x = torch.tensor([[-0.5, 0.0, 0.25, 0.8]])
    logits = torch.stack([x, torch.full_like(x, -3.0)], dim=1)
    true_nll = dist.nll(logits, x)
    for shift in (0.01, -0.1, 0.3):
        assert (dist.nll(logits, x + shift) > true_nll).all()


def test_mol_sample_mean_matches_parameters():
    dist = build_distribution("mol", dict(num_mixtures=2))
    n = 40000
    logits = torch.zeros(n, 6)
    logits[:, 0], logits[:, 1] = math.log(0.3), math.log(0.7)
    logits[:, 2], logits[:, 3] = -0.4, 0.2
    logits[:, 4], logits[:, 5] = math.log(0.05), math.log(0.02)
    gen = torch.Generator().manual_seed(0)
    s = dist.sample(logits, dist.noise(n, 1, gen)[:, 0])
    expected = 0.3 * -0.4 + 0.7 * 0.2
    assert abs(s.mean().item() - expected) < 0.01
    # the mixture weights are respected
    assert abs((s < -0.1).float().mean().item() - 0.3) < 0.01
    # logistic std = s * pi / sqrt(3) for the narrow component
    narrow = s[s > -0.1]
    assert abs(narrow.std().item() - 0.02 * math.pi / math.sqrt(3)) < 0.004


def test_gaussian_sample_moments_and_floor():
    dist = build_distribution("gaussian")
    n = 40000
    logits = torch.zeros(n, 2)
    logits[:, 0], logits[:, 1] = 0.1, math.log(0.2)
    gen = torch.Generator().manual_seed(0)
    s = dist.sample(logits, dist.noise(n, 1, gen)[:, 0])
    assert abs(s.mean().item() - 0.1) < 0.005
    assert abs(s.std().item() - 0.2) < 0.005
    # a log-scale floor widens a too-sharp distribution
    sharp = torch.zeros(n, 2)
    sharp[:, 1] = -20.0
    wide = dist.sample(sharp, dist.noise(n, 1, gen)[:, 0], Sampling(log_scale_min=math.log(0.1)))
    assert abs(wide.std().item() - 0.1) < 0.005


def test_unknown_distribution_rejected():
    with pytest.raises(ValueError, match="unknown output distribution"):
        build_distribution("laplace")


def test_mulaw_nll_is_cross_entropy_values_and_gradient():
    # its own autograd function (fewer passes over the logits) against torch's
    dist = build_distribution("mulaw")
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(2, 256, 37, generator=g, dtype=torch.float64) * 30).requires_grad_()
    x = torch.rand(2, 37, generator=g, dtype=torch.float64) * 2 - 1
    up = torch.randn(2, 37, generator=g, dtype=torch.float64)
    got = dist.nll(logits, x)
    want = torch.nn.functional.cross_entropy(logits, dist.encode(x), reduction="none")
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    (gg,) = torch.autograd.grad((got * up).sum(), logits)
    (gw,) = torch.autograd.grad((want * up).sum(), logits)
    torch.testing.assert_close(gg, gw, rtol=1e-12, atol=1e-12)
