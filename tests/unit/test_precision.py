"""Precision of the fast kernel: teacher forcing, thread layouts, trained-model NLL.

float32 teacher forcing must equal the parallel forward pass; float16 and int8
are not exact, but must be deterministic across batch and thread layouts, and
on a (briefly) trained model on real speech cost almost nothing in likelihood.
"""

import json
import math

import numpy as np
import pytest
import torch
import yaml
from conftest import CONF, MINI_DB, mini_ids
from nets import DISTS, needs_fast, tiny

from espnet_wavenet.data.audio import read_audio
from espnet_wavenet.evaluation.nll import nll_bits_per_sample
from espnet_wavenet.features import check_feats_conf, extract_feats
from espnet_wavenet.generation.cpu.generator import CompiledGenerator
from espnet_wavenet.evaluation.precision import precision_quality, utterances_from_wavs
from espnet_wavenet.layers.upsample import pad_context
from espnet_wavenet.models.builder import build_wavenet
from espnet_wavenet.train.espnet_model import ESPnetWaveNetModel
from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

pytestmark = needs_fast

TRAIN_STEPS = 150  # ~25 s on one core; NLL about 8.0 -> 6.5 bits on the dev utterance
SEGMENT = 8  # frames per training crop
DEV_SECONDS = 0.5  # of the dev utterance scored


def random_frames(n_frames, seed: int) -> torch.Tensor:
    c = torch.randn(1, 80, n_frames, generator=torch.Generator().manual_seed(seed))
    return pad_context(c, 2)[0]


def parallel_logits(net, dist, frames, x, g=None) -> torch.Tensor:
    """Training's teacher forcing: input at step t is sample t - 1."""
    x_in = dist.encode_input(torch.nn.functional.pad(x[:, :-1], (1, 0)))
    with torch.no_grad():
        return net(x_in, torch.stack(frames), g)


@pytest.mark.parametrize("dist", list(DISTS))
@pytest.mark.parametrize("n_speakers", [0, 2])
def test_teacher_forcing_float32_equals_parallel_forward(dist, n_speakers):
    _, net, d = tiny(dist, n_speakers)
    frames = [random_frames(3, 1), random_frames(3, 2)]
    t = torch.arange(3 * 256)
    gen = torch.Generator().manual_seed(3)
    # A voiced-like signal with noise, so every class / value region is visited.
    x = (0.6 * torch.sin(2 * math.pi * t / 57.0) * torch.rand(2, 1, generator=gen)
         + 0.1 * torch.randn(2, len(t), generator=gen)).clamp(-1, 1)
    g = torch.tensor([1, 0]) if n_speakers else None
    ref = parallel_logits(net, d, frames, x, g)
    lg = CompiledGenerator(net, d, threads=1).teacher_forced_logits(frames, x, g)
    assert lg.shape == ref.shape
    torch.testing.assert_close(lg, ref, atol=1e-4, rtol=0)
    assert ref.std() > 0.1  # the logits vary: the comparison is not vacuous
    # One stream on the two-thread pipeline: the same rounding as the batch.
    one = CompiledGenerator(net, d, threads=2, split=True).teacher_forced_logits(
        frames[1:], x[1:], g[1:] if g is not None else None
    )
    assert torch.equal(one[0], lg[1])


@pytest.mark.parametrize("precision", ["float16", "int8"])
@pytest.mark.parametrize("dist", ["mulaw", "mol"])
def test_low_precision_batch_and_thread_layout_exact(precision, dist):
    # Wide enough that each of the two split threads owns gate rows (Hp 32).
    _, net, d = tiny(dist, 2, residual_channels=32, gate_channels=64, skip_channels=32)
    n_frames = (2, 1, 3)
    frames = [random_frames(n, n) for n in n_frames]
    length = max(n_frames) * 256
    noise = d.noise(len(frames), length, torch.Generator().manual_seed(4))
    g = torch.tensor([1, 0, 1])
    gen = CompiledGenerator(net, d, threads=2, precision=precision, split=False)
    batch, batch_lg = gen.generate_from_frames(frames, length, noise, g, return_logits=True)
    _, f32_lg = CompiledGenerator(net, d, threads=2, split=False).generate_from_frames(
        frames, length, noise, g, return_logits=True
    )
    assert not torch.equal(batch_lg, f32_lg)  # the precision is really in use
    for split in (True, False):
        gen = CompiledGenerator(net, d, threads=2, precision=precision, split=split)
        for i in range(len(frames)):
            one, one_lg = gen.generate_from_frames(
                [frames[i]], length, noise[i : i + 1], g[i : i + 1], return_logits=True
            )
            assert torch.equal(one[0], batch[i]), (split, i)
            assert torch.equal(one_lg[0], batch_lg[i]), (split, i)


def test_auto_precision_is_int8_only_with_vector_int8_products(tmp_path):
    from espnet_wavenet.generation.cpu import abi
    from espnet_wavenet.generation.cpu.generator import auto_precision

    assert auto_precision("scalar") == "float32"  # the baseline build: int8 4x slower
    assert auto_precision("neon_dotprod") == "float32"  # Arm: speed never measured
    assert [p for p in abi.INT8_PATHS if auto_precision(p) == "int8"] == [
        "avx2", "avx512bw", "avx512vnni", "avxvnni"]
    _, net, d = tiny("mulaw")
    gen = CompiledGenerator(net, d, threads=1, precision="auto")
    assert gen.precision == auto_precision(gen.int8_path)  # resolved: what decode_stats record
    frames = [random_frames(2, 5)]
    noise = d.noise(1, 512, torch.Generator().manual_seed(6))
    chosen = CompiledGenerator(net, d, threads=1, precision=gen.precision)
    assert torch.equal(gen.generate_from_frames(frames, 512, noise)[0],
                       chosen.generate_from_frames(frames, 512, noise)[0])
    # the default of a pack (what Text2Speech and decode read) and its round trip
    conf = yaml.safe_load((CONF / "tiny.yaml").read_text())
    voc = WaveNetVocoder(conf["feats_conf"], conf["wavenet_conf"], precision="auto")
    voc.save_pretrained(tmp_path / "pack")
    loaded = WaveNetVocoder.from_pretrained(tmp_path / "pack")
    assert loaded.precision == "auto" and loaded.generator.precision == gen.precision


def test_unknown_precision_raises():
    _, net, d = tiny("mulaw")
    with pytest.raises(ValueError, match="precision"):
        CompiledGenerator(net, d, precision="bf16")


# ------------------------------------------------------ a briefly trained model
def load_utts(split: str, n: int, fc):
    out = []
    for u in mini_ids(split, n):
        wav, _ = read_audio(MINI_DB / "wav" / f"{u}.flac", u)
        out.append((torch.from_numpy(wav), extract_feats(torch.from_numpy(wav), fc)))
    return out


@pytest.fixture(scope="module")
def trained():
    """Tiny mu-law WaveNet, a few hundred Adam steps on 4 train utterances, as a
    vocoder (with its MVN statistics), plus its untrained initial weights."""
    conf = yaml.safe_load((CONF / "tiny.yaml").read_text())
    fc = check_feats_conf(conf["feats_conf"])
    data = load_utts("train", 4, fc)
    allf = torch.cat([f for _, f in data])
    mean, std = allf.mean(0), allf.std(0).clamp(min=1e-3)
    torch.manual_seed(0)
    net, dist = build_wavenet(fc, conf["wavenet_conf"], conf["distribution"],
                              conf["distribution_conf"])
    untrained = {k: v.clone() for k, v in net.state_dict().items()}
    model = ESPnetWaveNetModel(net, dist, ema_decay=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    hop, batch = fc["hop_length"], 4
    for _ in range(TRAIN_STEPS):
        xs, cs = [], []
        for _ in range(batch):
            wav, f = data[int(torch.randint(len(data), (1,), generator=gen))]
            start = int(torch.randint(0, f.shape[0] - SEGMENT, (1,), generator=gen))
            c = pad_context(((f - mean) / std).t()[None], 2)[:, :, start : start + SEGMENT + 4]
            xs.append(wav[start * hop : (start + SEGMENT) * hop])
            cs.append(c[0].t())
        x, c = torch.stack(xs), torch.stack(cs)
        loss, _, _ = model(x, torch.full((batch,), x.shape[1]), c,
                           torch.full((batch,), c.shape[1]))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
    voc = WaveNetVocoder(fc, conf["wavenet_conf"], conf["distribution"],
                         conf["distribution_conf"], mean=mean.numpy(), std=std.numpy())
    voc.net.load_state_dict(net.state_dict())
    dev = MINI_DB / "wav" / f"{mini_ids('dev', 1)[0]}.flac"
    return dict(vocoder=voc.eval(), untrained=untrained, dev=dev)


@pytest.fixture(scope="module")
def quality(trained):
    voc = trained["vocoder"]
    utts = utterances_from_wavs(voc, [trained["dev"]], DEV_SECONDS)
    return utts, precision_quality(
        voc.net, voc.dist, utts, threads=2, free_run_steps=600, feats_conf=voc.feats_conf
    )


def test_trained_model_learned(trained, quality):
    utts, q = quality
    voc = trained["vocoder"]
    nll = q["teacher_forced"]["parallel_forward"]["nll_bits"]
    fresh = WaveNetVocoder(voc.feats_conf, voc.wavenet_conf, "mulaw", voc.distribution_conf)
    fresh.net.load_state_dict(trained["untrained"])
    q0 = precision_quality(fresh.net, fresh.dist, utts, precisions=(), free_run_steps=0)
    nll0 = q0["teacher_forced"]["parallel_forward"]["nll_bits"]
    # Clearly trained: otherwise the precision checks below would be a random-weights check.
    assert nll < nll0 - 0.5, (nll, nll0)


def test_utterances_match_vocoder_conditioning(trained, quality):
    # The helper's frames (normalization, context) and alignment are the
    # vocoder's: the NLL equals evaluation's, computed from denormalized features.
    utts, q = quality
    voc = trained["vocoder"]
    wav, _ = read_audio(trained["dev"])
    wav = wav[: int(DEV_SECONDS * voc.fs)]
    feats = extract_feats(torch.from_numpy(wav), voc.feats_conf).numpy()
    ref = nll_bits_per_sample(voc, wav, feats)
    assert abs(q["teacher_forced"]["parallel_forward"]["nll_bits"] - ref) < 1e-4
    frames, x = utts[0]
    assert frames.shape == (80, feats.shape[0] + 4) and x.shape == (feats.shape[0] * voc.hop,)


def test_trained_low_precision_nll(quality):
    _, q = quality
    json.dumps(q)  # JSON-able as the benchmark prints it
    tf = q["teacher_forced"]
    assert abs(tf["float32"]["delta_nll_bits_vs_forward"]) < 1e-4
    scale = max(1.0, tf["parallel_forward"]["logit_range"])
    assert tf["float32"]["max_abs_logit_err"] < 1e-5 * scale
    for p in ("float16", "int8"):
        assert abs(tf[p]["delta_nll_bits_vs_float32"]) < 0.05, (p, tf[p])
        assert tf[p]["max_abs_logit_err_vs_float32"] > 0.0, p  # not float32 in disguise
    # int8 quantizes far more coarsely than float16.
    err = {p: tf[p]["max_abs_logit_err_vs_float32"] for p in ("float16", "int8")}
    assert err["int8"] > err["float16"]
    fr = q["free_running"]
    assert fr["steps_per_utterance"] == [600]
    for key in ("temperature_1", "argmax"):
        assert len(fr[key]["float32_distinct_values"]) == 1
        for p in ("float16", "int8"):
            r = fr[key][p]
            assert len(r["first_divergence"]) == 1 and 0 <= r["first_divergence"][0] <= 600
            assert 0.0 <= r["identical_fraction"] <= 1.0
    # Whole-utterance audio: every precision about as far from the natural
    # speech as float32 (broken arithmetic would give noise, tens of dB away).
    mel = q["free_running_logmel_db"]
    assert set(mel) == {"float32", "float16", "int8", "float32_other_noise"}
    for p in ("float16", "int8", "float32_other_noise"):
        assert 0.0 < mel[p] < 40.0 and abs(mel[p] - mel["float32"]) < 3.0, mel


def test_int8_teacher_forcing_is_quantized(trained):
    # Directly on the kernel: int8 logits differ from float32's, and from float16's.
    voc = trained["vocoder"]
    (frames, x), = utterances_from_wavs(voc, [trained["dev"]], 0.1)
    lg = {
        p: CompiledGenerator(voc.net, voc.dist, threads=1, precision=p)
        .teacher_forced_logits([frames], x[None])
        for p in ("float32", "float16", "int8")
    }
    assert not torch.equal(lg["int8"], lg["float32"])
    assert not torch.equal(lg["int8"], lg["float16"])
    assert not torch.equal(lg["float16"], lg["float32"])
    assert np.isfinite(lg["int8"].numpy()).all()
