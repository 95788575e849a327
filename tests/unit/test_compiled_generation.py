"""Fast, batched, streaming and GPU generation against the reference oracle."""

import logging
from types import SimpleNamespace

import pytest
import torch

from nets import DISTS, needs_fast, tiny
from espnet_wavenet.distributions import Sampling
from espnet_wavenet.generation import build_generator
from espnet_wavenet.generation.cpu import build, loader
from espnet_wavenet.generation.cpu.generator import CompiledGenerator, compiled_available
from espnet_wavenet.generation.reference import ReferenceGenerator
from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

@pytest.fixture(autouse=True)
def one_thread():
    # The reference is launch-bound: extra threads only add overhead on 2 cores.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def compare(dist, net, d, length, batch=2, g=None, kernel=None, **kw):
    c_up = torch.randn(batch, net.aux_channels, length, generator=torch.Generator().manual_seed(1))
    noise = d.noise(batch, length, torch.Generator().manual_seed(2))
    ref, ref_lg = ReferenceGenerator(net, d).generate(c_up, length, noise, g, return_logits=True, **kw)
    fast, fast_lg = CompiledGenerator(net, d, kernel=kernel).generate(
        c_up, length, noise, g, return_logits=True, **kw)
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


@pytest.mark.parametrize("level", build.install_levels())
def test_every_installed_level_equals_reference(level):
    # Each instruction-set build of the kernel (vector width 16, 8 or 4) gives
    # the reference's samples; the CPU picks among them at load, and
    # kernel=<level> runs one whatever the process loaded (the benchmark's
    # --isa with several levels).
    if level not in loader.cpu_levels():
        pytest.skip(f"this CPU cannot run {level}")
    if not build.kernel_path(level).is_file():
        pytest.skip("kernels not installed (make venv builds them)")
    for dist in ("mulaw", "mol"):
        _, net, d = tiny(dist, 3)
        gen = CompiledGenerator(net, d, kernel=level)
        assert gen.kernel == level and (gen.int8_path == "scalar") == (level == "baseline")
        compare(dist, net, d, 600, g=torch.tensor([2, 0]), kernel=level)


def test_a_level_this_machine_lacks_is_refused():
    _, net, d = tiny("mulaw")
    with pytest.raises(RuntimeError, match="no_such_level"):
        CompiledGenerator(net, d, kernel="no_such_level")


@needs_fast
@pytest.mark.parametrize("temperature", [0.0, 0.6])
def test_mulaw_temperature_and_argmax(temperature):
    _, net, d = tiny("mulaw")
    compare("mulaw", net, d, 400, sampling=Sampling(temperature))


@needs_fast
def test_mulaw_tail_cut_never_draws_the_tail():
    _, net, d = tiny("mulaw")
    # 1/256 = 0.0039: a tail of 0.003 leaves only the likely classes of a tiny net
    cut = Sampling(temperature=1.0, tail=0.003)
    a = compare("mulaw", net, d, 500, sampling=cut)
    b = compare("mulaw", net, d, 500)
    assert not torch.equal(a, b)
    # every drawn class had at least the tail's probability
    c_up = torch.randn(2, net.aux_channels, 500, generator=torch.Generator().manual_seed(1))
    noise = d.noise(2, 500, torch.Generator().manual_seed(2))
    out, lg = CompiledGenerator(net, d).generate(c_up, 500, noise, None, cut, return_logits=True)
    probs = torch.softmax(lg, dim=1)  # (B, O, T)
    drawn = probs.gather(1, d.encode(out).unsqueeze(1))[:, 0]
    assert float(drawn.min()) >= 0.003
    assert float(probs.min()) < 0.003  # there was a tail to cut
    with pytest.raises(ValueError, match="tail 0.004 must be below 1 / 256"):
        CompiledGenerator(net, d).generate(c_up, 10, noise, None, Sampling(tail=0.004))


@needs_fast
@pytest.mark.parametrize("dist", ["mol", "gaussian"])
def test_log_scale_floor(dist):
    _, net, d = tiny(dist)
    a = compare(dist, net, d, 300, sampling=Sampling(log_scale_min=0.5))
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
    fast, _ = CompiledGenerator(net, d).generate(None, length, noise, torch.tensor([1]))
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=0)


@needs_fast
def test_chunked_kernel_calls(monkeypatch):
    # Several kernel calls (state carried across) and pipelined projections.
    from espnet_wavenet.generation.cpu import generator

    monkeypatch.setattr(generator, "CHUNK", 128)
    _, net, d = tiny("mulaw", 2)
    compare("mulaw", net, d, 700, g=torch.tensor([1, 0]))


@needs_fast
def test_changed_weights_are_repacked():
    # The generator packs once and repacks when a weight changes: in place
    # (load_state_dict, an optimizer step) or by ``.data =``, in the layers and
    # in the upsampler (whose per-sample frame weights are cached too).
    from espnet_wavenet.layers.upsample import pad_context

    _, net, d = tiny("mulaw", 0)
    frames = [pad_context(torch.randn(1, 80, 4, generator=torch.Generator().manual_seed(2)), 2)[0]]
    noise = d.noise(1, 700, torch.Generator().manual_seed(3))
    gen = CompiledGenerator(net, d, split=False)

    def check(change):
        before = gen.generate_from_frames(frames, 700, noise, return_logits=True)[1]
        with torch.no_grad():
            change()
        after = gen.generate_from_frames(frames, 700, noise, return_logits=True)[1]
        fresh = CompiledGenerator(net, d, split=False)
        assert not torch.equal(after, before)
        assert torch.equal(after, fresh.generate_from_frames(frames, 700, noise, return_logits=True)[1])

    layer_w = [p for n, p in net.named_parameters() if not n.startswith("upsample")][-1]
    up_w = next(net.upsample.parameters())
    check(lambda: layer_w.mul_(1.5))
    check(lambda: setattr(layer_w, "data", layer_w.data * 0.5))
    check(lambda: up_w.mul_(1.5))
    check(lambda: setattr(up_w, "data", up_w.data + 0.1))


@needs_fast
def test_frame_rate_calls_follow_the_budget(monkeypatch):
    # Frame-rate conditioning: one kernel call while the budget holds the
    # utterance, several (state carried across) when it does not; same samples.
    from espnet_wavenet.generation.cpu import generator
    from espnet_wavenet.layers.upsample import pad_context

    _, net, d = tiny("mulaw", 0)
    frames = [pad_context(torch.randn(1, 80, 6, generator=torch.Generator().manual_seed(4)), 2)[0]]
    length = 6 * net.upsample.hop
    noise = d.noise(1, length, torch.Generator().manual_seed(5))
    gen = CompiledGenerator(net, d)
    assert gen.frame_chunk(1) >= length
    whole, whole_lg = gen.generate_from_frames(frames, length, noise, return_logits=True)
    monkeypatch.setattr(generator, "COND_BUDGET", 2000)
    assert 16 <= gen.frame_chunk(1) < length // 3
    calls = []
    run = gen.lib.wn_run
    monkeypatch.setattr(gen, "lib", SimpleNamespace(wn_run=lambda *a: calls.append(1) or run(*a)))
    parts, parts_lg = gen.generate_from_frames(frames, length, noise, return_logits=True)
    assert len(calls) > 3
    assert torch.equal(parts, whole) and torch.equal(parts_lg, whole_lg)


@needs_fast
def test_torch_ops_of_generation_run_on_one_thread(monkeypatch):
    # The projection runs on one torch thread while the kernel runs (woken
    # OpenMP workers would spin on the kernel's cores); the count is restored.
    from espnet_wavenet.layers.upsample import pad_context

    _, net, d = tiny("mulaw", 0)
    frames = [pad_context(torch.randn(1, 80, 3, generator=torch.Generator().manual_seed(4)), 2)[0]]
    noise = d.noise(1, 512, torch.Generator().manual_seed(5))
    gen = CompiledGenerator(net, d, threads=2, split=True)
    gen.step_weight_bytes()  # packs the weights with the real library
    seen = []
    run = gen.lib.wn_run
    monkeypatch.setattr(
        gen, "lib", SimpleNamespace(wn_run=lambda *a: seen.append(torch.get_num_threads()) or run(*a))
    )
    torch.set_num_threads(2)
    gen.generate_from_frames(frames, 512, noise)
    assert seen == [1] and torch.get_num_threads() == 2


def vocoder(dist: str, n_speakers: int = 0, generator: str = "fast",
            noise_shaping_conf=None) -> WaveNetVocoder:
    conf, net, d = tiny(dist, n_speakers)
    wc = dict(conf["wavenet_conf"], n_speakers=n_speakers)
    gen = torch.Generator().manual_seed(5)
    voc = WaveNetVocoder(
        conf["feats_conf"], wc, dist, DISTS[dist],
        mean=torch.randn(80, generator=gen).numpy(),
        std=(torch.rand(80, generator=gen) + 0.5).numpy(),
        generator=generator, noise_shaping_conf=noise_shaping_conf,
    )
    voc.net.load_state_dict(net.state_dict())
    return voc.eval()


def feats(n_frames: int, seed: int) -> torch.Tensor:
    return torch.randn(n_frames, 80, generator=torch.Generator().manual_seed(seed))


@needs_fast
@pytest.mark.parametrize("dist,n_speakers", [("mulaw", 0), ("gaussian", 2)])
def test_batched_equals_one_by_one(dist, n_speakers):
    voc = vocoder(dist, n_speakers)
    assert isinstance(voc.generator, CompiledGenerator)
    utts = [feats(n, i) for i, n in enumerate((3, 7, 1, 5))]
    sids = [1, 0, 1, 0] if n_speakers else None
    batch = voc.generate(utts, sids=sids, seed=11)
    for i, f in enumerate(utts):
        one = voc.generate([f], sids=[sids[i]] if sids else None, seed=11 + i)[0]
        assert batch[i].shape == (f.shape[0] * voc.hop,)
        assert torch.equal(batch[i], one)


@needs_fast
@pytest.mark.parametrize("dist,n_speakers", [("mulaw", 2), ("mol", 0), ("gaussian", 0)])
def test_streaming_equals_offline(dist, n_speakers):
    check_streaming(vocoder(dist, n_speakers), 1 if n_speakers else None)


@needs_fast
@pytest.mark.parametrize("precision", ["float16", "int8"])
def test_streaming_equals_offline_low_precision(precision):
    # Quantization is per vector and deterministic, so chunking changes nothing.
    voc = vocoder("mulaw", 2)
    voc.set_generator("fast", precision)
    assert voc.generator.precision == precision
    check_streaming(voc, 1)


@needs_fast
def test_streaming_equals_offline_with_noise_shaping():
    # de-emphasis carries its filter state from chunk to chunk
    voc = vocoder("mulaw", noise_shaping_conf=dict(pre_emphasis=0.85))
    assert voc.shaping.enabled
    check_streaming(voc, None)


@needs_fast
def test_streaming_equals_offline_with_lpc_excitation():
    # the all-pole synthesis sees only the frames that have arrived, carries
    # its memories across chunks, and ends where one pass would
    voc = vocoder("mulaw", noise_shaping_conf=dict(lpc_order=16))
    assert voc.shaping.conf()["lpc_order"] == 16
    check_streaming(voc, None)


@needs_fast
def test_streaming_keeps_only_the_frames_it_still_needs():
    # A long stream: the frames (and the log-mel rows of the LPC synthesis)
    # before the cone of the next sample are dropped, so a push's work does
    # not grow with the utterance; the audio still equals offline.
    from espnet_wavenet.generation.streaming import StreamingVocoder

    voc = vocoder("mulaw", noise_shaping_conf=dict(lpc_order=16))
    f = feats(72, 5)
    stream = StreamingVocoder(voc, seed=9)
    chunks, held = [], []
    for i in range(0, len(f), 2):
        chunks.append(stream.push(f[i : i + 2]))
        held.append((len(stream.frames), len(stream.logmel)))
    chunks.append(stream.flush())
    assert torch.equal(torch.cat(chunks), voc.generate([f], seed=9)[0])
    # look-ahead 4 + context 2 + the push's 2 frames + the sample cone's first frames
    assert max(n for n, _ in held) <= 12 and max(m for _, m in held) <= 8
    assert stream.kept > 50 and stream.logmel_from > 50


def check_streaming(voc: WaveNetVocoder, sid) -> None:
    from espnet_wavenet.generation.streaming import StreamingVocoder

    f = feats(19, 3)
    offline = voc.generate([f], sids=[sid] if sid is not None else None, seed=7)[0]
    stream = StreamingVocoder(voc, sid=sid, seed=7)
    la = stream.lookahead_frames
    assert la == 4  # aux_context_window 2 + 2 frames of the 4x4x4x4 smoothing
    chunks, pos = [], 0
    for n in (1, 3, 2, 6, 1, 4, 2):
        chunks.append(stream.push(f[pos : pos + n]))
        pos += n
        # everything up to `la` frames before the newest one is out already
        assert sum(len(c) for c in chunks) >= max(0, pos - la) * voc.hop
    chunks.append(stream.flush())
    assert torch.equal(torch.cat(chunks), offline)


@needs_fast
def test_streaming_pushes_run_on_one_torch_thread(monkeypatch):
    # A push's own small ops (padding, concatenation) would wake torch's
    # workers, which spin on through the kernel call; the count is restored.
    from espnet_wavenet.generation import streaming

    seen = []
    pad = streaming.pad_context
    monkeypatch.setattr(
        streaming, "pad_context", lambda *a, **k: seen.append(torch.get_num_threads()) or pad(*a, **k)
    )
    voc = vocoder("mulaw")
    f = feats(9, 2)
    torch.set_num_threads(2)
    stream = streaming.StreamingVocoder(voc, seed=3)
    audio = torch.cat([stream.push(f[:5]), stream.push(f[5:]), stream.flush()])
    assert len(seen) == 3 and set(seen) == {1} and torch.get_num_threads() == 2
    assert torch.equal(audio, voc.generate([f], seed=3)[0])


@needs_fast
def test_network_on_a_gpu_decodes_with_cpu_generators(monkeypatch, caplog):
    # No GPU here: the device check is what is simulated; the rest is real.
    import espnet_wavenet.generation as generation

    _, net, d = tiny("mulaw")
    monkeypatch.setattr(generation, "_on_gpu", lambda n: n is net)
    with caplog.at_level(logging.INFO):
        gen = build_generator(net, d, "auto")
    assert isinstance(gen, CompiledGenerator) and gen.net is not net
    assert "CPU copy of the weights" in caplog.text and "unverified" in caplog.text
    for name, p in net.state_dict().items():
        assert torch.equal(gen.net.state_dict()[name], p)
    assert isinstance(build_generator(net, d, "reference"), ReferenceGenerator)
    with pytest.raises(RuntimeError, match="needs the network on a CUDA device"):
        build_generator(net, d, "gpu")  # by name only, and only on a GPU


def test_generators_declare_what_they_can_do():
    from espnet_wavenet.generation.gpu import GpuGenerator
    from espnet_wavenet.generation.interface import (
        FrameGenerator, Generator, IncrementalGenerator,
    )

    _, net, d = tiny("mulaw")
    ref = ReferenceGenerator(net, d)
    gpu = GpuGenerator(net, d, use_graphs=False)  # eager mode runs on the CPU
    assert isinstance(ref, Generator) and not isinstance(ref, FrameGenerator)
    assert isinstance(gpu, Generator) and not isinstance(gpu, IncrementalGenerator)
    if compiled_available(net):
        fast = CompiledGenerator(net, d)
        assert isinstance(fast, IncrementalGenerator) and isinstance(fast, FrameGenerator)


def test_fallback_without_extension(monkeypatch, caplog):
    monkeypatch.setenv("ESPNET_WAVENET_NO_EXT", "1")
    _, net, d = tiny("mulaw")
    assert not compiled_available(net)
    with caplog.at_level(logging.WARNING):
        gen = build_generator(net, d, "auto")
    assert isinstance(gen, ReferenceGenerator)
    assert "reference" in caplog.text
    assert "slower" in caplog.text and "ESPNET_WAVENET_NO_EXT" in caplog.text
    with pytest.raises(RuntimeError, match="cannot run here: disabled by ESPNET_WAVENET_NO_EXT"):
        build_generator(net, d, "fast")
    voc = vocoder("mulaw", generator="auto")
    with caplog.at_level(logging.WARNING):
        wav = voc.generate([feats(1, 0)], seed=3)[0]
    assert isinstance(voc.generator, ReferenceGenerator)
    monkeypatch.delenv("ESPNET_WAVENET_NO_EXT")
    if loader.load_library() is not None:  # the fast path gives the same audio
        voc.set_generator("fast")
        assert torch.equal(voc.generate([feats(1, 0)], seed=3)[0], wav)


def gpu_case(dist: str, length: int):
    """A two-speaker tiny net, its inputs and the reference's output for the GPU tests."""
    _, net, d = tiny(dist, 2)
    g = torch.tensor([1, 0])
    c_up = torch.randn(2, 80, length)
    noise = d.noise(2, length, torch.Generator().manual_seed(4))
    ref, ref_lg = ReferenceGenerator(net, d).generate(c_up, length, noise, g, return_logits=True)
    return net, d, c_up, noise, g, ref, ref_lg


@pytest.mark.parametrize("dist", ["mulaw", "mol"])
def test_gpu_step_arithmetic_eager_on_cpu(dist):
    # The CUDA-graph generator's step, run eagerly on the CPU, against the oracle.
    from espnet_wavenet.generation.gpu import GpuGenerator

    length = 150
    net, d, c_up, noise, g, ref, ref_lg = gpu_case(dist, length)
    gen = GpuGenerator(net, d, steps_per_graph=64, use_graphs=False)
    out, lg = gen.generate(c_up, length, noise, g, return_logits=True)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(lg, ref_lg, atol=1e-4, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dist", list(DISTS))
def test_gpu_graphs_equal_reference(dist):
    from espnet_wavenet.generation.gpu import GpuGenerator

    length = 600
    net, d, c_up, noise, g, ref, ref_lg = gpu_case(dist, length)
    net = net.cuda()
    gen = build_generator(net, d, "gpu")  # by name: auto decodes on the CPU (unverified)
    assert isinstance(gen, GpuGenerator) and gen.use_graphs
    out, lg = gen.generate(c_up.cuda(), length, noise, g.cuda(), return_logits=True)
    torch.testing.assert_close(out.cpu(), ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(lg.cpu(), ref_lg, atol=1e-3, rtol=0)


def test_streaming_without_incremental_generator(caplog):
    # The reference generator has no state to carry: all audio comes at flush().
    from espnet_wavenet.generation.streaming import StreamingVocoder

    voc = vocoder("mulaw", generator="reference")
    f = feats(2, 1)
    with caplog.at_level(logging.WARNING):
        stream = StreamingVocoder(voc, seed=4)
    assert "flush" in caplog.text
    assert len(stream.push(f[:1])) == 0 and len(stream.push(f[1:])) == 0
    assert torch.equal(stream.flush(), voc.generate([f], seed=4)[0])


@needs_fast
@pytest.mark.parametrize("dist", list(DISTS))
def test_split_step_and_frame_rate_conditioning(dist):
    # Frame-rate conditioning (projection before upsampling) against the
    # reference on the upsampler's output, utterances of 1, 3 and 5 frames (both
    # ends matter); a batch of 3 (whole streams per thread) against each stream
    # alone (the two-thread pipeline). Wider than tiny: several panels a matrix.
    from espnet_wavenet.layers.upsample import pad_context

    torch.set_num_threads(2)
    _, net, d = tiny(dist, 2, residual_channels=32, gate_channels=64, skip_channels=32)
    n_frames = (1, 5, 3)
    frames = [
        pad_context(torch.randn(1, 80, t, generator=torch.Generator().manual_seed(t)), 2)[0]
        for t in n_frames
    ]
    length = max(n_frames) * 256
    c_up = torch.zeros(len(frames), 80, length)
    for i, f in enumerate(frames):
        c_up[i, :, : n_frames[i] * 256] = net.upsample(f[None])[0]
    noise = d.noise(len(frames), length, torch.Generator().manual_seed(3))
    g = torch.tensor([1, 0, 1])
    ref, ref_lg = ReferenceGenerator(net, d).generate(c_up, length, noise, g, return_logits=True)
    gen = CompiledGenerator(net, d, threads=2, split=True)  # whatever the machine load
    out, lg = gen.generate_from_frames(frames, length, noise, g, return_logits=True)
    torch.testing.assert_close(lg, ref_lg, atol=1e-4, rtol=0)
    if dist == "mulaw":
        assert torch.equal(out, ref)
    else:
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    for i in range(len(frames)):  # one stream, two threads: the pipeline
        one, one_lg = gen.generate_from_frames(
            [frames[i]], length, noise[i : i + 1], g[i : i + 1], return_logits=True
        )
        assert torch.equal(one[0], out[i]) and torch.equal(one_lg[0], lg[i])
    dense, _ = gen.generate(c_up[:1], length, noise[:1], g[:1])
    torch.testing.assert_close(dense[0], out[0], atol=1e-5, rtol=0)



@needs_fast
def test_step_bytes_count_every_weight_the_kernel_reads_per_step():
    # The benchmark's bytes per sample and bandwidth rest on this count.
    _, net, d = tiny("mulaw")
    size = {p: CompiledGenerator(net, d, threads=1, precision=p).step_weight_bytes()
            for p in ("float32", "float16", "int8")}
    L, K, Rp, Hp, Sp, Op = (CompiledGenerator(net, d, threads=1)._pack().dims[k]
                            for k in ("L", "K", "Rp", "Hp", "Sp", "Op"))
    layers = L * (2 * Hp * K * Rp + (Rp + Sp) * Hp)  # dilated taps; residual + skip rows
    head, biases = Sp * Sp + Op * Sp, L * (Rp + Sp) + Sp + Op
    assert size["float32"] == 4 * (layers + head + biases)
    assert size["float16"] == 2 * (layers + head) + 4 * biases
    # int8 layers: a byte per weight, a float scale and an int32 offset per row
    assert size["int8"] == layers + 8 * L * (2 * Hp * K + Rp + Sp) + 4 * (head + biases)
