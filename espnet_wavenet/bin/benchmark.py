"""Generation speed benchmark; prints JSON.

    python -m espnet_wavenet.bin.benchmark --config conf/default.yaml conf/quality.yaml \
        --kinds fast fast_fp16 fast_int8 reference --quality_model exp/<name>/pack

Kinds: fast (float32 kernel, exact), fast_fp16 / fast_int8 (float16 / int8
weights, not exact), reference, gpu. Random weights (speed does not depend on
them); wall-clock medians over ``--repeats`` runs, plus the process CPU time
(on a shared machine wall time also counts other people's work). The
fast/reference ratio is measured in the same run; the reference is timed on a
short stretch only (it is slow).

What the lower precisions cost is measured with ``--quality_model`` on a
trained packed model and real speech (``precision_quality``: teacher-forced
NLL per precision, free-running agreement with the float32 kernel and the
generated audio's log-mel distance to the natural speech; see
:mod:`espnet_wavenet.evaluation.precision`).
"""

import argparse
import ctypes
import json
import logging
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import yaml

from espnet_wavenet.generation.cpu import abi, build
from espnet_wavenet.generation.cpu.generator import (
    CompiledGenerator,
    barrier_ns,
    compiled_available,
)
from espnet_wavenet.generation.interface import FrameGenerator
from espnet_wavenet.generation.reference import ReferenceGenerator
from espnet_wavenet.models.builder import build_wavenet
from espnet_wavenet.utils.cpu import cpu_name, l2_cache_kb

KINDS = ("fast", "fast_fp16", "fast_int8", "reference", "gpu")
PRECISION_OF_KIND = {"fast": "float32", "fast_fp16": "float16", "fast_int8": "int8"}
# Default --quality_wavs: real speech shipped with the repository.
MINI_DB = Path(__file__).resolve().parents[2] / "egs" / "mini_kathleen" / "db"


def make_generator(kind: str, net, dist, threads: int):
    if kind == "reference":
        return ReferenceGenerator(net, dist)
    if kind == "gpu":
        from espnet_wavenet.generation.gpu import GpuGenerator

        return GpuGenerator(net.cuda(), dist)
    return CompiledGenerator(net, dist, threads=threads, precision=PRECISION_OF_KIND[kind])


def split_barrier_ns() -> Optional[float]:
    """Cost of one spin exchange between two threads, ns (None without the kernel)."""

    lib = abi.load()
    return round(barrier_ns(lib), 1) if lib is not None else None


def time_run(gen, batch: int, length: int, aux: int, dist, repeats: int) -> Dict[str, Any]:
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
        run = lambda: gen.generate_from_frames(frames, length, noise)  # noqa: E731
    else:
        c_up = torch.randn(batch, aux, length, device=device)
        gen.generate(c_up[:, :, :warm], warm, noise[:, :warm])
        run = lambda: gen.generate(c_up, length, noise)  # noqa: E731
    walls, cpus = [], []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        w, c = time.perf_counter(), time.process_time()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    wall = statistics.median(walls)
    return dict(
        samples=batch * length,
        wall_s=round(wall, 4),
        cpu_s=round(statistics.median(cpus), 4),
        samples_per_s=round(batch * length / wall, 1),
    )


def default_quality_wavs(n: int = 3) -> List[str]:
    """The first ``n`` dev utterances of the repository's mini_kathleen subset."""
    split = MINI_DB / "splits" / "dev"
    if not split.is_file():
        raise FileNotFoundError(f"{split}: no mini_kathleen subset; pass --quality_wavs")
    return [str(MINI_DB / "wav" / f"{u}.flac") for u in split.read_text().split()[:n]]


def precision_quality_of(args) -> Dict[str, Any]:
    """``precision_quality`` of the packed model ``--quality_model`` on real speech."""
    from espnet_wavenet.evaluation.precision import precision_quality, utterances_from_wavs
    from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

    vocoder = WaveNetVocoder.from_pretrained(args.quality_model)
    if not compiled_available(vocoder.net):
        logging.warning("fast kernel unavailable: no precision quality")
        return dict(model=str(args.quality_model), skipped="fast kernel unavailable")
    if vocoder.net.n_speakers > 0 and args.quality_sid is None:
        raise ValueError(f"{args.quality_model}: speaker-conditioned; pass --quality_sid")
    wavs = args.quality_wavs or default_quality_wavs()
    utts = utterances_from_wavs(vocoder, wavs, args.quality_seconds)
    sids = [args.quality_sid] * len(utts) if vocoder.net.n_speakers > 0 else None
    out: Dict[str, Any] = dict(
        model=str(args.quality_model),
        wavs=[str(w) for w in wavs],
        seconds_per_utterance=args.quality_seconds,
        parameters=sum(p.numel() for p in vocoder.net.parameters()),
    )
    out.update(
        precision_quality(
            vocoder.net, vocoder.dist, utts, sids, args.quality_precisions, args.threads,
            args.quality_free_run_steps, feats_conf=vocoder.feats_conf,
        )
    )
    return out




def profile_pipeline(net, dist, precision: str, length: int, aux: int) -> Dict[str, Any]:
    """Where one utterance's time goes in the two-thread pipeline: TSC cycles
    per sample of each part, from a kernel built with -DWN_PROFILE."""

    lib = abi.bind(build.load_profiling_library())
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
        us_per_sample=round(wall / length * 1e6, 2),
        tsc_ghz=round(v["total"] / wall / 1e9, 2),
        cycles_per_sample=per,
        note="thread A: a_layers (newest taps, gates, residuals, last skips) + a_head + "
        "a_draw (sampling) + a_wait (for B); thread B: b_older (next step's older taps "
        "and conditioning) + b_skips (first layers' skips) + b_wait (for A)",
    )


def bench_config(path: str, args) -> Dict[str, Any]:
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
    for batch in args.batch_sizes:
        rows = {}
        for kind in kinds:
            seconds = args.reference_seconds if kind == "reference" else args.seconds
            length = max(1, int(seconds * fs))
            gen = make_generator(kind, net, dist, args.threads)
            repeats = 1 if kind == "reference" else args.repeats
            # The reference is launch-bound: intra-op threads only add overhead
            # (on a busy 2-core machine they slow it down many times), so it is
            # timed with --reference_threads (default 1), its fastest setting here.
            n_threads = torch.get_num_threads()
            if kind == "reference":
                torch.set_num_threads(args.reference_threads)
            try:
                r = time_run(gen, batch, length, net.aux_channels, dist, repeats)
            finally:
                torch.set_num_threads(n_threads)
            if kind == "reference":
                r["threads"] = args.reference_threads
            r.update(kind=kind, batch=batch, audio_s_per_stream=round(length / fs, 4),
                     load_average=os.getloadavg()[0])
            # real-time factor per stream: seconds of compute per second of audio
            r["rtf"] = round(r["wall_s"] / (length / fs), 4)
            r["rtf_cpu_time"] = round(r["cpu_s"] / (length / fs), 4)
            rows[kind] = r
            out["results"].append(r)
            logging.info("%s", r)
        if "reference" in rows:
            for kind, r in rows.items():
                if kind != "reference":
                    r["speedup_vs_reference"] = round(
                        r["samples_per_s"] / rows["reference"]["samples_per_s"], 1
                    )
        net = net.cpu()
    out["load_average_after"] = os.getloadavg()
    return out


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", nargs="+", default=["conf/default.yaml"])
    p.add_argument("--seconds", type=float, default=2.0, help="audio per stream (fast kinds)")
    p.add_argument("--reference_seconds", type=float, default=0.05)
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 16])
    p.add_argument("--kinds", nargs="+", choices=KINDS,
                   default=["fast", "fast_fp16", "fast_int8", "reference"],
                   help="fast: float32 kernel (exact); fast_fp16, fast_int8: float16 / int8 "
                   "weights (faster, not exact); reference; gpu")
    p.add_argument("--threads", type=int, default=None, help="default: torch threads")
    p.add_argument("--isa", default=None,
                   help="kernel to load: auto, native or an ISA level (baseline, avx2, avx512, "
                   "avx512vnni): measure a lower level on a CPU that has a higher one "
                   "(sets ESPNET_WAVENET_KERNEL)")
    p.add_argument("--profile", action="store_true",
                   help="instead of timings: cycles per sample of each part of the two-thread "
                   "pipeline (one utterance), from a -DWN_PROFILE build of the kernel")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--reference_threads", type=int, default=1)
    q = p.add_argument_group("precision quality on a trained model")
    q.add_argument("--quality_model", default=None,
                   help="packed model directory (config.yaml, model.pth, feats_stats.npz)")
    q.add_argument("--quality_wavs", nargs="+", default=None,
                   help="audio files (default: the first 3 mini_kathleen dev utterances)")
    q.add_argument("--quality_seconds", type=float, default=1.0,
                   help="audio per utterance (cut before feature extraction)")
    q.add_argument("--quality_precisions", nargs="+", choices=["float16", "int8"],
                   default=["float16", "int8"], help="compared with the float32 kernel")
    q.add_argument("--quality_free_run_steps", type=int, default=4000,
                   help="free-running samples per utterance")
    q.add_argument("--quality_sid", type=int, default=None,
                   help="speaker id (speaker-conditioned models)")
    return p


def main(argv: Optional[List[str]] = None) -> None:
    parser = get_parser()
    args = parser.parse_args(argv)
    # Fail before the (long) timings, not after them.
    if args.quality_model is not None and not Path(args.quality_model, "config.yaml").is_file():
        parser.error(f"--quality_model {args.quality_model}: no packed model (config.yaml)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.isa is not None:  # before the kernel is first loaded
        os.environ["ESPNET_WAVENET_KERNEL"] = args.isa
    args.threads = args.threads or torch.get_num_threads()
    gpu = "gpu" in args.kinds and torch.cuda.is_available()
    report = dict(
        device="cuda:" + torch.cuda.get_device_name() if gpu else "cpu",
        cpu=cpu_name(),
        cpu_levels=build.cpu_levels(),
        kernel=build.kernel_kind(),  # the ISA level (or native build) that ran
        kernel_error=build.load_error(),
        l2_cache_kb_per_core=l2_cache_kb(),
        cpu_count=os.cpu_count(),
        threads=args.threads,
        torch=torch.__version__,
        load_average_at_start=os.getloadavg(),
        split_barrier_ns=split_barrier_ns(),
        configs=[bench_config(c, args) for c in args.config],
    )
    if args.quality_model is not None:
        report["precision_quality"] = precision_quality_of(args)
    report.update(
        load_average_at_end=os.getloadavg(),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
