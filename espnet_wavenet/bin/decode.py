#!/usr/bin/env python3
"""Decode log-mel features (Kaldi ark scp or npy scp) into 16-bit wav files.

Writes ``<out_dir>/wav/<utt>.wav``, ``<out_dir>/wav.scp`` and
``<out_dir>/decode_stats.json`` (with ``--job_tag JOB``: ``wav.JOB.scp`` and
``decode_stats.JOB.json``, joined later with ``--merge_jobs``). Rerunning skips
finished utterances; every wav is written atomically.
"""

import argparse
import dataclasses
import logging
import sys

import torch
import yaml
from espnet2.utils.types import str2bool, str_or_none

from espnet_wavenet.generation import GENERATORS, PRECISION_OPTIONS
from espnet_wavenet.recipe.decode import DecodeInputError, decode_scp, merge_jobs


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    g = p.add_argument_group("model (a packed directory, or an experiment)")
    g.add_argument("--model_dir", type=str_or_none, default=None, help="packed vocoder dir")
    g.add_argument("--config", type=str_or_none, default=None, help="exp/<tag>/config.yaml")
    g.add_argument("--model_file", type=str_or_none, default=None, help="exp/<tag>/*.pth")
    g.add_argument("--stats_file", type=str_or_none, default=None, help="feats_stats.npz")
    g = p.add_argument_group("input / output")
    g.add_argument("--feats_scp", type=str_or_none, default=None, help="feats.scp (ark or npy)")
    g.add_argument("--utt2sid", type=str_or_none, default=None, help="speaker ids (text_int)")
    g.add_argument("--out_dir", required=True)
    g.add_argument("--job_tag", type=str_or_none, default=None, help="suffix of per-job files")
    g.add_argument(
        "--merge_jobs", type=str_or_none, default=None,
        help="only join the per-job outputs of tags 1..N (e.g. 4) in --out_dir",
    )
    g = p.add_argument_group("decoding")
    g.add_argument("--decode_config", type=str_or_none, default=None,
                   help="YAML whose keys set the options of this group")
    g.add_argument("--generator", default="auto", choices=GENERATORS)
    g.add_argument("--precision", type=str_or_none, default=None,
                   choices=[*PRECISION_OPTIONS, None],
                   help="fast generator weights (default: the packed model's); float32 "
                   "equals the reference; int8 is faster, not exact (its likelihood "
                   "cost: bin/benchmark.py --quality_model); auto: int8 where its x86 "
                   "vector products are measured faster, else float32")
    g.add_argument("--normalized", type=str2bool, default=False,
                   help="features are already normalized (ESPnet norm/feats.scp)")
    g.add_argument("--batch_size", type=int, default=1, help="utterances generated together")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--temperature", type=float, default=None,
                   help="mu-law softmax: logits / T, 0: argmax (default: the packed model's)")
    g.add_argument("--tail", type=float, default=None,
                   help="mu-law softmax: probability taken from every class before "
                   "drawing, e.g. 0.002 (default: the packed model's, else 0)")
    g.add_argument("--min_frames", type=int, default=3, help="shorter input is an error")
    g.add_argument("--ngpu", type=int, default=0)
    g.add_argument("--num_threads", type=int, default=None, help="torch CPU threads")
    return p


def parse_args(cmd=None) -> argparse.Namespace:
    """Command line over ``--decode_config`` over defaults."""
    parser = get_parser()
    args, _ = parser.parse_known_args(cmd)
    if args.decode_config:
        with open(args.decode_config, encoding="utf-8") as f:
            conf = yaml.safe_load(f) or {}
        known = {a.dest for a in parser._actions}
        unknown = sorted(set(conf) - known)
        if unknown:
            parser.error(f"{args.decode_config}: unknown keys {unknown}")
        parser.set_defaults(**conf)
    return parser.parse_args(cmd)


def main(cmd=None) -> None:
    args = parse_args(cmd)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.merge_jobs:
        merge_jobs(args.out_dir, [str(i) for i in range(1, int(args.merge_jobs) + 1)])
        return
    if args.feats_scp is None:
        sys.exit("ERROR: --feats_scp is required")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    device = "cuda" if args.ngpu > 0 else "cpu"
    try:
        if args.model_dir:
            from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

            vocoder = WaveNetVocoder.from_pretrained(args.model_dir)
        elif args.config and args.model_file:
            from espnet_wavenet.vocoder.pack import vocoder_from_experiment

            vocoder = vocoder_from_experiment(args.config, args.model_file, args.stats_file)
        else:
            sys.exit("ERROR: give --model_dir, or --config and --model_file")
    except (OSError, ValueError) as e:
        sys.exit(f"ERROR: cannot load the vocoder: {e}")
    vocoder = vocoder.to(device).eval()
    vocoder.set_generator(args.generator, args.precision)
    for key in ("temperature", "tail"):
        if getattr(args, key) is not None:
            vocoder.sampling = dataclasses.replace(vocoder.sampling, **{key: getattr(args, key)})
    try:
        decode_scp(
            vocoder,
            args.feats_scp,
            args.out_dir,
            utt2sid=args.utt2sid,
            normalized=args.normalized,
            batch_size=args.batch_size,
            seed=args.seed,
            min_frames=args.min_frames,
            job_tag=args.job_tag,
            device=device,
        )
    except DecodeInputError as e:
        sys.exit(f"ERROR: {e}")


if __name__ == "__main__":
    main()
