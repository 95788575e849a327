"""The training forward (conditioning projected at frame rate) computes the
reference's function: loss and every gradient; bf16 autocast; the benchmark."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from espnet_wavenet.bin import benchmark_train
from espnet_wavenet.layers.upsample import ConditioningUpsampler
from espnet_wavenet.models.builder import build_wavenet
from espnet_wavenet.train.speed import benchmark_training, build_model
from conftest import needs_inductor

ROOT = Path(__file__).resolve().parents[2]
TINY = yaml.safe_load((ROOT / "conf" / "tiny.yaml").read_text())
DISTS = {
    "mulaw": {},
    "mol": {"num_mixtures": 3, "log_scale_min": -7.0},
    "gaussian": {"log_scale_min": -9.0},
}


def perturbed_net(dist: str, n_speakers: int, dtype=torch.float64):
    torch.manual_seed(0)
    wc = dict(TINY["wavenet_conf"], n_speakers=n_speakers)
    net, d = build_wavenet(TINY["feats_conf"], wc, dist, DISTS[dist])
    with torch.no_grad():  # smoothing kernels that are not the symmetric init
        for conv in net.upsample.smooth:
            conv.weight.add_(torch.randn_like(conv.weight) * 0.1)
    return net.to(dtype), d


@pytest.mark.parametrize("dist", list(DISTS))
@pytest.mark.parametrize("n_speakers", [0, 3])
@pytest.mark.parametrize("frames", [1, 4, 9, 24])
def test_forward_equals_reference_loss_and_gradients(dist, n_speakers, frames):
    # In float64 the two orders of the same linear maps agree to rounding.
    net, d = perturbed_net(dist, n_speakers)
    gen = torch.Generator().manual_seed(1)
    batch, length = 2, frames * net.hop
    speech = torch.rand(batch, length, generator=gen, dtype=torch.float64) * 1.6 - 0.8
    x = torch.nn.functional.pad(speech[:, :-1], (1, 0))
    x = d.encode_input(x) if net.input_type == "categorical" else x
    c = torch.randn(batch, 80, frames + 2 * net.aux_context_window, generator=gen,
                    dtype=torch.float64)
    g = torch.tensor([2, 0]) if n_speakers else None
    params = list(net.parameters())
    losses, grads = [], []
    for forward in (net.forward_reference, net.forward):
        loss = d.nll(forward(x, c, g), speech).mean()
        losses.append(loss)
        grads.append(torch.autograd.grad(loss, params))
    assert abs(losses[0] - losses[1]) <= 1e-12 * abs(losses[0])
    for (name, _), a, b in zip(net.named_parameters(), *grads):
        scale = a.abs().max().clamp(min=1e-30)
        assert (a - b).abs().max() <= 1e-9 * scale, name


@pytest.mark.parametrize("scales", [[4, 4, 4, 4], [8, 8, 4], [5, 5, 4, 3], [256]])
@pytest.mark.parametrize("frames", [1, 2, 6, 7, 40])
def test_frame_band_equals_stretch(scales, frames):
    # The banded per-frame form of the repeat-and-smooth chain, edges included.
    up = ConditioningUpsampler(3, scales).double()
    with torch.no_grad():
        for conv in up.smooth:
            conv.weight.copy_(torch.rand_like(conv.weight))
    p = torch.randn(2, 3, frames, dtype=torch.float64)
    band = up.frame_band(frames)
    assert band.shape == (frames, 2 * up.reach + 1, up.hop)
    want = up.stretch(p.reshape(6, 1, frames)).reshape(2, 3, -1)
    torch.testing.assert_close(up.stretch_frames(p, band), want, atol=1e-12, rtol=0)
    # a term constant in time (bias, speaker), per batch item and channel or shared
    for offset in (torch.randn(2, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)):
        got = up.stretch_frames(p, band, offset)
        assert got.is_contiguous()
        torch.testing.assert_close(got, want + offset[..., None], atol=1e-12, rtol=0)


def test_frame_stretch_in_the_features_dtype():
    # autocast may hand the band over in another dtype than the projections
    up = ConditioningUpsampler(3, [4, 4]).double()
    band = up.frame_band(9).detach().requires_grad_()
    p = torch.randn(2, 3, 9, requires_grad=True)
    off = torch.randn(3, dtype=torch.float64, requires_grad=True)
    out = up.stretch_frames(p, band, off)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert (p.grad.dtype, band.grad.dtype, off.grad.dtype) == (
        torch.float32, torch.float64, torch.float64)
    want = up.stretch_frames(p.detach().double(), band.detach(), off.detach())
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)


def test_bf16_autocast_trains_on_cpu():
    # What --amp bf16 runs: finite loss near float32's, gradients for every weight.
    net, d = perturbed_net("mulaw", 0, torch.float32)
    gen = torch.Generator().manual_seed(3)
    speech = torch.rand(2, 4 * net.hop, generator=gen) * 1.6 - 0.8
    x = d.encode_input(torch.nn.functional.pad(speech[:, :-1], (1, 0)))
    c = torch.randn(2, 80, 8, generator=gen)
    full = d.nll(net(x, c), speech).mean()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = net(x, c)
    assert logits.dtype == torch.bfloat16
    loss = d.nll(logits.float(), speech).mean()
    loss.backward()
    assert torch.isfinite(loss) and abs(loss - full) < 0.05 * full
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_benchmark_times_the_model_and_the_reference(capsys):
    # bf16 autocast too: a timing of NaN steps would not be a training step's
    benchmark_train.main(["--config", str(ROOT / "conf" / "tiny.yaml"), "--kinds", "model",
                          "reference", "--steps", "1", "--warmup", "1", "--segment_frames", "4",
                          "--amp", "bf16"])
    out = json.loads(capsys.readouterr().out)
    kinds = {r["kind"]: r for r in out["results"]}
    assert set(kinds) == {"model", "reference"}
    for r in kinds.values():
        assert r["samples_per_second"] > 0 and r["segment_samples"] == 4 * 256
        assert r["parameters"] == kinds["model"]["parameters"] and r["threads"] >= 1
        assert r["losses_finite"] and r["amp"] == "bf16" and r["compiled"] is False
        assert r["first_step_seconds"] > 0


def test_benchmark_rounds_interleave_the_kinds(capsys):
    benchmark_train.main(["--config", str(ROOT / "conf" / "tiny.yaml"), "--kinds", "model",
                          "reference", "--steps", "2", "--warmup", "1", "--rounds", "2",
                          "--segment_frames", "4", "--accum_grad", "1"])
    out = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in out["results"]] == ["model", "reference"]
    for r in out["results"]:
        assert r["timed_steps"] == 4 and r["losses_finite"] and r["amp"] == "none"
        assert r["step_seconds_min"] <= r["step_seconds"]


def test_unknown_kind_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        benchmark_training(TINY, "wavernn", 1, 2)
    # our kinds take bf16 through the model on the CPU, never the outer autocast:
    # fp16 there must still be refused, not timed as float32
    with pytest.raises(ValueError, match="fp16 autocast needs a GPU"):
        benchmark_training(TINY, "model", 1, 2, amp="fp16")


def test_bf16_runs_the_network_in_bf16_inside_or_under_the_model(tmp_path):
    # The model's own switch (--cpu_bf16) and a caller's autocast (the benchmark's
    # r9y9 path, ESPnet's --use_amp) both reach the network: an inner disabled
    # autocast context once switched the caller's off (bf16 timed as float32).
    model = build_model(TINY, tmp_path).train()
    seen = []
    model.wavenet.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    hop = model.wavenet.hop
    batch = dict(speech=torch.rand(1, 4 * hop) - 0.5, speech_lengths=torch.tensor([4 * hop]),
                 feats=torch.randn(1, 4 + 2 * model.wavenet.upsample.aux_context_window,
                                   TINY["feats_conf"]["n_mels"]))
    batch["feats_lengths"] = torch.tensor([batch["feats"].shape[1]])
    model(**batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(**batch)
    model.cpu_bf16 = True
    model(**batch)
    model.eval()
    model(**batch)  # validation stays float32
    assert seen == [torch.float32, torch.bfloat16, torch.bfloat16, torch.float32]


def model_batch(model: torch.nn.Module, frames: int = 4, batch: int = 2, seed: int = 5):
    gen = torch.Generator().manual_seed(seed)
    hop, ctx = model.wavenet.hop, model.wavenet.upsample.aux_context_window
    feats = torch.randn(batch, frames + 2 * ctx, TINY["feats_conf"]["n_mels"], generator=gen)
    return dict(speech=torch.rand(batch, frames * hop, generator=gen) * 1.6 - 0.8,
                speech_lengths=torch.full((batch,), frames * hop), feats=feats,
                feats_lengths=torch.full((batch,), feats.shape[1]))


def test_model_forward_leaves_the_callers_features_alone(tmp_path):
    # ESPnet's GlobalMVN normalizes in place: a batch seen twice (the training
    # benchmark's steps) was normalized twice, its loss drifting step by step.
    model = build_model(TINY, tmp_path).train()
    batch = model_batch(model)
    feats = batch["feats"].clone()
    first = model(**batch)[0]
    assert torch.equal(batch["feats"], feats)
    assert torch.equal(model(**batch)[0], first)


@needs_inductor
def test_compiled_model_computes_the_same_loss_and_gradients(tmp_path):
    # --compile: torch.compile of the network, same parameter names (checkpoints
    # load either way), the same loss and gradients up to float32 reordering.
    eager = build_model(TINY, tmp_path).train()
    compiled = build_model(TINY, tmp_path, compile=True).train()
    compiled.load_state_dict(eager.state_dict())
    assert list(compiled.state_dict()) == list(eager.state_dict())
    batch = model_batch(eager)
    results = []
    for model in (eager, compiled):
        loss = model(**batch)[0]
        loss.backward()
        results.append((loss.detach(), [p.grad for p in model.wavenet.parameters()]))
    (le, ge), (lc, gc) = results
    torch.testing.assert_close(lc, le, rtol=1e-5, atol=0)
    for (name, _), a, b in zip(eager.wavenet.named_parameters(), ge, gc):
        assert (a - b).abs().max() <= 1e-4 * a.abs().max().clamp(min=1e-12), name
    assert compiled.wavenet._compiled_call_impl is not None
