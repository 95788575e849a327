#!/usr/bin/env python3
"""Append an experiment's evaluation to a recipe's results table (RESULTS.md).

    python -m espnet_wavenet.bin.results_row --results RESULTS.md --name default \
        --exp_dir exp/default --eval_dir dev=exp/default/decode_x/dev/eval \
        --eval_dir eval=exp/default/decode_x/eval/eval
"""

import argparse
import logging
import os
from pathlib import Path

import yaml

from espnet_wavenet.evaluation.results_table import append_rows
from espnet_wavenet.utils.cpu import cpu_name
from espnet_wavenet.vocoder.wavenet_vocoder import CONFIG_NAME


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--results", required=True, help="the Markdown file (table at its end)")
    p.add_argument("--name", required=True, help="the row's config name")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--exp_dir", help="exp/<tag>: config.yaml, checkpoint (the cost)")
    src.add_argument("--model_dir", help="a packed model: its config's provenance (the cost)")
    p.add_argument("--checkpoint", default="checkpoint.pth", help="in --exp_dir")
    p.add_argument("--eval_dir", action="append", required=True,
                   help="SET=DIR: stage 5's output (summary.json) of one set")
    p.add_argument("--cpu", default=None, help="CPU that trained (default: this one)")
    p.add_argument("--cores", type=int, default=None,
                   help="cores training used (CPU-h = hours x cores; default: this machine's)")
    return p


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    eval_dirs = {}
    for item in args.eval_dir:
        set_name, sep, path = item.partition("=")
        if not sep or not set_name or not path:
            raise SystemExit(f"--eval_dir {item!r}: expected SET=DIR")
        eval_dirs[set_name] = path
    cost, cpu, cores = None, args.cpu or cpu_name(), args.cores or os.cpu_count()
    if args.model_dir:
        # the pack's config says it all; no need to build the network
        conf_path = Path(args.model_dir) / CONFIG_NAME
        conf = yaml.safe_load(conf_path.read_text(encoding="utf-8"))
        cost = conf.get("provenance")
        if cost is None:
            logging.warning("%s: no provenance; no training cost", conf_path)
        else:  # what its NLL is of (the row's name says)
            cost = dict(cost, noise_shaping=conf.get("noise_shaping_conf") or {})
        cpu = args.cpu or (cost or {}).get("cpu", "-")
        cores = args.cores or (cost or {}).get("cores") or cores
    for line in append_rows(args.results, args.name, eval_dirs, args.exp_dir,
                            cpu, cores,
                            args.checkpoint, cost):
        print(line)


if __name__ == "__main__":
    main()
