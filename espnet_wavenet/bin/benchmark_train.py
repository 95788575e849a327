#!/usr/bin/env python3
"""Training speed benchmark; prints JSON (see espnet_wavenet.train.speed).

    python -m espnet_wavenet.bin.benchmark_train --config conf/default.yaml \
        --batch_size 4 --segment_frames 32 --kinds model reference r9y9 [--amp bf16] \
        [--compile] [--accum_grad 2] [--rounds 3]

``r9y9`` needs r9y9's ``wavenet_vocoder`` package (a benchmark extra:
``pip install wavenet_vocoder``); it is skipped, and said so, without it.
"""

import argparse
import json
import logging
import platform
from typing import List, Optional

import torch
import yaml

from espnet_wavenet.train.speed import AMP, KINDS, benchmark_kinds, r9y9_available
from espnet_wavenet.utils.cpu import cpu_name


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--segment_frames", type=int, default=None, help="default: the config's")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--amp", choices=AMP, default="none")
    p.add_argument("--compile", action="store_true",
                   help="our kinds through torch.compile, as --compile trains (r9y9 as shipped)")
    p.add_argument("--threads", type=int, default=None, help="default: torch's (the cores)")
    p.add_argument("--accum_grad", type=int, default=1,
                   help="each step as this many micro-batches (ESPnet's --accum_grad)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per kind and round")
    p.add_argument("--rounds", type=int, default=1,
                   help="the kinds take turns this many times (a shared machine's slow "
                   "spells then fall on all kinds alike); medians over all rounds")
    p.add_argument("--warmup", type=int, default=4,
                   help="untimed steps; glibc's malloc keeps mmap'ing and page-faulting "
                   "the large activations for the first 3-4 steps")
    return p


def main(cmd: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    with open(args.config, encoding="utf-8") as f:
        conf = yaml.safe_load(f)
    frames = args.segment_frames or int(conf.get("segment_frames", 32))
    skipped = []
    kinds = list(args.kinds)
    if "r9y9" in kinds and not r9y9_available():
        kinds.remove("r9y9")
        skipped.append({"kind": "r9y9", "skipped": "wavenet_vocoder is not installed"})
    results = benchmark_kinds(
        conf, kinds, args.batch_size, frames, args.device, args.amp, args.steps, args.warmup,
        compile=args.compile, accum_grad=args.accum_grad, rounds=args.rounds,
    ) if kinds else []
    results += skipped
    base = next((r for r in results if r.get("kind") == "r9y9" and "samples_per_second" in r),
                None)
    for r in results:
        if base is not None and "samples_per_second" in r:
            r["vs_r9y9"] = round(r["samples_per_second"] / base["samples_per_second"], 2)
    device = torch.cuda.get_device_name() if args.device == "cuda" else cpu_name()
    print(json.dumps({"config": args.config, "machine": platform.machine(), "device": device,
                      "torch": torch.__version__, "results": results}, indent=2))


if __name__ == "__main__":
    main()
