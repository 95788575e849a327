"""Generation speed: time the generators on a config's network, profile the
compiled kernel's two-thread pipeline, and describe the machine it ran on.

What ``python -m espnet_wavenet.bin.benchmark`` prints (see its docstring).
Random weights (speed does not depend on them); wall-clock medians, plus the
process CPU time (on a shared machine wall time also counts other work).
"""

import contextlib
import copy
import ctypes
import logging
import os
import statistics
import time
from typing import Any, Callable, Dict, Optional, Tuple

import torch
import yaml

from espnet_wavenet.generation.cpu import abi, loader
from espnet_wavenet.generation.cpu.generator import (
    CompiledGenerator,
    barrier_ns,
    compiled_available,
)
from espnet_wavenet.generation.interface import FrameGenerator
from espnet_wavenet.generation.reference import ReferenceGenerator
from espnet_wavenet.models.builder import build_wavenet
from espnet_wavenet.utils.cpu import cpu_name, l2_cache_kb, l3_cache_kb

KINDS = ("fast", "fast_fp16", "fast_int8", "reference", "gpu")
PRECISION_OF_KIND = {"fast": "float32", "fast_fp16": "float16", "fast_int8": "int8"}
# --split: the generator's probe decides (auto), or the pipeline is forced on / off.
SPLIT_OPTIONS = {"auto": None, "on": True, "off": False}


def machine(threads: int, gpu: bool) -> Dict[str, Any]:
    """Where the figures come from: device, CPU, its kernel levels, L2, threads."""
    return dict(
        device="cuda:" + torch.cuda.get_device_name() if gpu else "cpu",
        cpu=cpu_name(),
        cpu_levels=loader.cpu_levels(),
        kernel=loader.kernel_kind(),  # the ISA level (or native build) that ran
        kernel_error=loader.load_error(),
        l2_cache_kb_per_core=l2_cache_kb(),
        l3_cache_kb=l3_cache_kb(),
        cpu_count=os.cpu_count(),
        threads=threads,
        torch=torch.__version__,
        load_average_at_start=os.getloadavg(),
        split_barrier_ns=split_barrier_ns(),
        read_gb_per_s=read_bandwidth(threads),
    )


def read_bandwidth(threads: int) -> Optional[Dict[str, float]]:
    """Read bandwidth of ``threads`` threads (GB/s, together) from a buffer each
    of half the L2, of 4 L2 (at most a share of half the L3: other cores, other
    tenants of a virtual machine, use the rest) and of twice the L3 (memory):
    the ceilings that ``weight_gb_per_s`` meets. None without the kernel."""
    lib = abi.load()
    if lib is None:
        return None
    l2 = (l2_cache_kb() or 1024) * 1024
    l3 = (l3_cache_kb() or 32768) * 1024
    sizes = (
        ("L2", l2 // 2, 4_000_000_000),
        ("L3", min(4 * l2, l3 // (2 * threads)), 2_000_000_000),
        ("memory", 2 * l3, 1_000_000_000),
    )
    return {
        f"{name}_{size / 1e6:.2f}MB_per_thread":
            round(lib.wn_read_bench(size, threads, max(1, total // size)), 1)
        for name, size, total in sizes
    }


def make_generator(kind: str, net, dist, threads: int, split: Optional[bool] = None,
                   level: Optional[str] = None):
    """The generator a benchmark kind names (see :data:`KINDS`); ``split``: the
    fast kinds' pipeline choice (None: the generator's own probe); ``level``:
    the fast kinds' ISA level (None: the process's kernel)."""
    if kind == "reference":
        return ReferenceGenerator(net, dist)
    if kind == "gpu":
        from espnet_wavenet.generation.gpu import GpuGenerator

        # its own copy: the other kinds, timed in turn with it, keep the CPU net
        return GpuGenerator(copy.deepcopy(net).cuda(), dist)
    return CompiledGenerator(
        net, dist, threads=threads, precision=PRECISION_OF_KIND[kind], split=split, kernel=level
    )


def split_barrier_ns() -> Optional[float]:
    """Cost of one spin exchange between two threads, ns (None without the kernel)."""
    lib = abi.load()
    return round(barrier_ns(lib), 1) if lib is not None else None


def prepare_run(gen, batch: int, length: int, aux: int, dist) -> Callable[[], Any]:
    """One generation of ``batch`` x ``length`` samples from random conditioning,
    as a call (after a short warm-up run)."""
    device = next(gen.net.parameters()).device
    noise = dist.noise(batch, length, torch.Generator().manual_seed(0))
    warm = min(length, 256)
    up = gen.net.upsample
    if isinstance(gen, FrameGenerator) and up is not None:
        # What the vocoder runs: frame-rate conditioning (context-padded frames),
        # the generator's own upsampling/projection included in the time.
        n_frames = -(-length // up.hop)
        frames = [
            torch.randn(aux, n_frames + 2 * up.aux_context_window) for _ in range(batch)
        ]
        warm_frames = [f[:, : 1 + 2 * up.aux_context_window] for f in frames]
        gen.generate_from_frames(warm_frames, warm, noise[:, :warm])
        return lambda: gen.generate_from_frames(frames, length, noise)
    c_up = torch.randn(batch, aux, length, device=device)
    gen.generate(c_up[:, :, :warm], warm, noise[:, :warm])
    return lambda: gen.generate(c_up, length, noise)


def time_once(run: Callable[[], Any], cuda: bool) -> Tuple[float, float]:
    """Wall and process CPU seconds of one call of ``run``."""
    if cuda:
        torch.cuda.synchronize()
    w, c = time.perf_counter(), time.process_time()
    run()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - w, time.process_time() - c


def timing(samples: int, walls, cpus) -> Dict[str, Any]:
    """Medians of the timed runs of ``samples`` samples each."""
    wall = statistics.median(walls)
    return dict(
        samples=samples,
        wall_s=round(wall, 4),
        cpu_s=round(statistics.median(cpus), 4),
        samples_per_s=round(samples / wall, 1),
        runs=len(walls),
    )


def time_streaming(conf: Dict[str, Any], net, precision: str, seconds: float,
                   frames_per_push: int, repeats: int) -> Dict[str, Any]:
    """One utterance through :class:`StreamingVocoder` (``frames_per_push`` mel
    frames a push) against offline generation of the same audio, medians of
    ``repeats``; a push's time early and late in the utterance shows whether
    its work grows with the utterance."""
    from espnet_wavenet.generation.streaming import StreamingVocoder
    from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

    voc = WaveNetVocoder(
        conf["feats_conf"], conf["wavenet_conf"], conf["distribution"],
        conf.get("distribution_conf"), generator="fast", precision=precision,
    ).eval()
    voc.net.load_state_dict(net.state_dict())
    n_frames = max(2 * frames_per_push, int(seconds * voc.fs / voc.hop))
    feats = torch.randn(n_frames, conf["feats_conf"]["n_mels"],
                        generator=torch.Generator().manual_seed(0))
    voc.generate([feats[: 2 * frames_per_push]], seed=1)  # warm-up
    offline, streamed, early, late = [], [], [], []
    for _ in range(repeats):
        w = time.perf_counter()
        voc.generate([feats], seed=1)
        offline.append(time.perf_counter() - w)
        stream, pushes = StreamingVocoder(voc, seed=1), []
        for i in range(0, n_frames, frames_per_push):
            w = time.perf_counter()
            stream.push(feats[i : i + frames_per_push])
            pushes.append(time.perf_counter() - w)
        w = time.perf_counter()
        stream.flush()
        streamed.append(sum(pushes) + time.perf_counter() - w)
        tenth = max(1, len(pushes) // 10)
        early.append(statistics.median(pushes[1 : 1 + tenth]))  # the first push warms up
        late.append(statistics.median(pushes[-tenth:]))
    med = statistics.median
    return dict(
        precision=precision,
        audio_s=round(n_frames * voc.hop / voc.fs, 3),
        frames_per_push=frames_per_push,
        pushes=-(-n_frames // frames_per_push),
        offline_wall_s=round(med(offline), 4),
        streaming_wall_s=round(med(streamed), 4),
        streaming_over_offline=round(med(streamed) / med(offline), 3),
        ms_per_push_first_tenth=round(1000 * med(early), 3),
        ms_per_push_last_tenth=round(1000 * med(late), 3),
    )


def profile_pipeline(net, dist, precision: str, length: int, aux: int) -> Dict[str, Any]:
    """Where one utterance's time goes in the two-thread pipeline: TSC cycles
    per sample of each part, from a kernel built with -DWN_PROFILE."""
    raw, kernel = loader.load_profiling_library()
    lib = abi.bind(raw)
    gen = CompiledGenerator(net, dist, threads=2, precision=precision, split=True)
    gen.lib = lib
    up = net.upsample
    frames = [torch.randn(aux, -(-length // up.hop) + 2 * up.aux_context_window)]
    noise = dist.noise(1, length, torch.Generator().manual_seed(0))
    gen.generate_from_frames(frames, min(length, 2048), noise)  # warm-up
    buf = (ctypes.c_uint64 * len(abi.PROFILE_SLOTS))()
    lib.wn_profile(buf)  # reset
    wall = time.perf_counter()
    gen.generate_from_frames(frames, length, noise)
    wall = time.perf_counter() - wall
    lib.wn_profile(buf)
    v = dict(zip(abi.PROFILE_SLOTS, buf))
    n = max(1, v.pop("steps"))
    per = {k: round(c / n) for k, c in v.items()}
    # Thread A's layer work is what is left of its time (it runs the chain).
    per["a_layers"] = per["total"] - per["a_wait"] - per["a_head"] - per["a_draw"]
    return dict(
        precision=precision,
        kernel=kernel,
        int8_path=abi.INT8_PATHS[lib.wn_int8_path()],
        us_per_sample=round(wall / length * 1e6, 2),
        tsc_ghz=round(v["total"] / wall / 1e9, 2),
        cycles_per_sample=per,
        note="thread A: a_layers (newest taps a_conv, gates a_gate, residual and last "
        "skip products a_rs, the rest: ring writes, sums) + a_head + "
        "a_draw (sampling) + a_wait (for B); thread B: b_older (next step's older taps "
        "and conditioning) + b_skips (first layers' skips) + b_wait (for A)",
    )


@contextlib.contextmanager
def reference_threads(kind: str, n: int):
    """The reference is launch-bound: intra-op threads only add overhead (on a
    busy 2-core machine they slow it down many times), so it runs with ``n``
    torch threads (``--reference_threads``, default 1: its fastest setting here)."""
    if kind != "reference":
        yield
        return
    n_threads = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(n_threads)


def bench_config(path: str, args) -> Dict[str, Any]:
    """Time every kind of ``args.kinds`` at every batch size on the network of
    config ``path`` (random weights), or with ``args.profile`` profile the
    pipeline. ``args``: the options of ``bin/benchmark.py``."""
    with open(path, encoding="utf-8") as f:
        conf = yaml.safe_load(f)
    torch.manual_seed(0)
    net, dist = build_wavenet(
        conf["feats_conf"], conf["wavenet_conf"], conf["distribution"],
        conf.get("distribution_conf"),
    )
    net.eval()
    fs = conf["feats_conf"]["fs"]
    params = sum(p.numel() for p in net.parameters())
    out: Dict[str, Any] = dict(
        config=path,
        fs=fs,
        distribution=conf["distribution"],
        wavenet_conf={k: v for k, v in conf["wavenet_conf"].items()},
        parameters=params,
        random_weights=True,
        results=[],
    )
    if args.profile and net.upsample is not None and compiled_available(net):
        out["profile"] = [
            profile_pipeline(net, dist, PRECISION_OF_KIND[k], int(args.seconds * fs),
                             conf["feats_conf"]["n_mels"])
            for k in args.kinds if k in PRECISION_OF_KIND
        ]
        return out
    kinds = [k for k in args.kinds if k != "gpu" or torch.cuda.is_available()]
    if any(k.startswith("fast") for k in kinds) and not compiled_available(net):
        logging.warning("fast kernel unavailable: timing the reference only")
        kinds = [k for k in kinds if not k.startswith("fast")]
    if args.streaming_frames > 0 and net.upsample is not None:
        out["streaming"] = [
            time_streaming(conf, net, PRECISION_OF_KIND[k], args.seconds,
                           args.streaming_frames, args.repeats)
            for k in kinds if k in PRECISION_OF_KIND
        ]
    # (kind, ISA level): with several --isa levels every fast kind runs at each.
    levels = args.isa if args.isa and len(args.isa) > 1 else [None]
    timed = [(k, lv) for k in kinds for lv in (levels if k in PRECISION_OF_KIND else [None])]
    for batch in args.batch_sizes:
        rows, gens, runs, lengths = {}, {}, {}, {}
        for key in timed:
            kind, level = key
            seconds = args.reference_seconds if kind == "reference" else args.seconds
            lengths[key] = max(1, int(seconds * fs))
            gens[key] = make_generator(kind, net, dist, args.threads, SPLIT_OPTIONS[args.split],
                                       level)
            with reference_threads(kind, args.reference_threads):
                runs[key] = prepare_run(gens[key], batch, lengths[key], net.aux_channels, dist)
        # Rounds over the kinds (and levels), not each one's repeats in a row:
        # this shared machine's speed drifts over minutes (up to 2x), and the
        # ratios between them, the reference's included, are what the runs compare.
        walls = {k: [] for k in timed}
        cpus = {k: [] for k in timed}
        for _ in range(args.repeats):
            for key in timed:
                with reference_threads(key[0], args.reference_threads):
                    w, c = time_once(runs[key], key[0] == "gpu")
                walls[key].append(w)
                cpus[key].append(c)
        for key in timed:
            kind = key[0]
            gen, length = gens[key], lengths[key]
            r = timing(batch * length, walls[key], cpus[key])
            if kind == "reference":
                r["threads"] = args.reference_threads
            r.update(kind=kind, batch=batch, audio_s_per_stream=round(length / fs, 4),
                     load_average=os.getloadavg()[0])
            # real-time factor per stream: seconds of compute per second of audio
            r["rtf"] = round(r["wall_s"] / (length / fs), 4)
            if isinstance(gen, CompiledGenerator):
                r["kernel"] = gen.kernel
                # Memory traffic: every step reads all weights once (a batch shares them).
                step = gen.step_weight_bytes()
                r["weight_bytes_per_step"] = step
                r["weight_bytes_per_sample"] = round(step / batch, 1)
                r["weight_gb_per_s"] = round(step * r["samples_per_s"] / batch / 1e9, 2)
                # One stream per pair of threads ran as the two-thread pipeline (the
                # probe may refuse it on a busy machine: then one thread ran it).
                r["pipeline"] = bool(gen.last_split) and batch < gen.threads
            r["rtf_cpu_time"] = round(r["cpu_s"] / (length / fs), 4)
            rows[key] = r
            out["results"].append(r)
            logging.info("%s", r)
        ref = rows.get(("reference", None))
        if ref is not None:
            for key, r in rows.items():
                if key[0] != "reference":
                    r["speedup_vs_reference"] = round(r["samples_per_s"] / ref["samples_per_s"], 1)
    out["load_average_after"] = os.getloadavg()
    return out
