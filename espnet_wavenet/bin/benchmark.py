"""Generation speed benchmark; prints JSON.

    python -m espnet_wavenet.bin.benchmark --config conf/default.yaml conf/quality.yaml

Random weights (speed does not depend on them); wall-clock medians over
``--repeats`` runs, plus the process CPU time (on a shared machine wall time
also counts other people's work). The fast/reference ratio is measured in the
same run; the reference is timed on a short stretch only (it is slow).
"""

import argparse
import json
import logging
import os
import platform
import resource
import statistics
import time
from typing import Any, Dict, List

import torch
import yaml

from espnet_wavenet.generation.fast import FastGenerator, fast_available
from espnet_wavenet.generation.reference import ReferenceGenerator
from espnet_wavenet.models.builder import build_wavenet

KINDS = ("fast", "fast_fp16", "fast_int8", "reference", "gpu")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def make_generator(kind: str, net, dist, threads: int):
    if kind == "reference":
        return ReferenceGenerator(net, dist)
    if kind == "gpu":
        from espnet_wavenet.generation.gpu import GpuGenerator

        return GpuGenerator(net.cuda(), dist)
    precision = {"fast_fp16": "float16", "fast_int8": "int8"}.get(kind, "float32")
    return FastGenerator(net, dist, threads=threads, precision=precision)


def split_barrier_ns():
    """Cost of one barrier of the two-thread split step, ns (None without the kernel)."""
    from espnet_wavenet.generation import extension

    lib = extension.load_library()
    if lib is None:
        return None
    holder = type("Probe", (), {"lib": lib})()
    return round(FastGenerator.barrier_ns(holder), 1)


def time_run(gen, batch: int, length: int, aux: int, dist, repeats: int) -> Dict[str, Any]:
    device = next(gen.net.parameters()).device
    noise = dist.noise(batch, length, torch.Generator().manual_seed(0))
    warm = min(length, 256)
    up = gen.net.upsample
    if hasattr(gen, "generate_from_frames") and up is not None:
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


def quality_check(net, dist, threads: int, length: int = 2000) -> Dict[str, Any]:
    """float16 weights vs float32 on the same noise: logits error and agreement."""
    c_up = torch.randn(1, net.aux_channels, length)
    noise = dist.noise(1, length, torch.Generator().manual_seed(0))
    a, la = FastGenerator(net, dist, threads).generate(c_up, length, noise, return_logits=True)
    b, lb = FastGenerator(net, dist, threads, precision="float16").generate(
        c_up, length, noise, return_logits=True
    )
    first = int((a != b).nonzero()[0, 1]) if (a != b).any() else length
    span = max(first, 1)  # logits compared while both have the same past
    return dict(
        steps=length,
        identical_samples_before_divergence=first,
        max_abs_logit_err=float((la - lb)[:, :, :span].abs().max()),
        logit_range=float(la.abs().max()),
        note="random weights: a weak check; rerun on a trained model",
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
    kinds = [k for k in args.kinds if k != "gpu" or torch.cuda.is_available()]
    if any(k.startswith("fast") for k in kinds) and not fast_available(net):
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
    if "fast_fp16" in kinds:
        out["fp16_quality"] = quality_check(net, dist, args.threads)
    out["load_average_after"] = os.getloadavg()
    return out


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", nargs="+", default=["conf/default.yaml"])
    p.add_argument("--seconds", type=float, default=2.0, help="audio per stream (fast kinds)")
    p.add_argument("--reference_seconds", type=float, default=0.05)
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 16])
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=["fast", "fast_fp16", "reference"])
    p.add_argument("--threads", type=int, default=None, help="default: torch threads")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--reference_threads", type=int, default=1)
    return p


def main(argv: List[str] = None) -> None:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args.threads = args.threads or torch.get_num_threads()
    report = dict(
        device="cuda:" + torch.cuda.get_device_name() if "gpu" in args.kinds and torch.cuda.is_available() else "cpu",
        cpu=cpu_name(),
        cpu_count=os.cpu_count(),
        threads=args.threads,
        torch=torch.__version__,
        load_average_at_start=os.getloadavg(),
        split_barrier_ns=split_barrier_ns(),
        configs=[bench_config(c, args) for c in args.config],
        load_average_at_end=os.getloadavg(),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
