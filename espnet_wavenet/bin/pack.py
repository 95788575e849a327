#!/usr/bin/env python3
"""Pack an ESPnet experiment into a vocoder directory (config, weights, stats)."""

import argparse
import logging

from espnet2.utils.types import str2bool

from espnet_wavenet.generation import PRECISION_OPTIONS
from espnet_wavenet.vocoder.pack import pack_experiment


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", required=True, help="exp/<tag>/config.yaml")
    p.add_argument("--model_file", required=True, help="e.g. exp/<tag>/valid.loss.best.pth")
    p.add_argument("--stats_file", default=None, help="feats_stats.npz (default: from config)")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--use_ema", type=str2bool, default=True)
    p.add_argument("--precision", default="auto", choices=PRECISION_OPTIONS,
                   help="the packed vocoder's fast-generator weights (decode --precision "
                   "overrides it); auto: int8 where its x86 vector products are measured "
                   "faster (not exact), else float32 (exact)")
    return p


def main(cmd=None) -> None:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    pack_experiment(
        args.config, args.model_file, args.out_dir, args.stats_file, args.use_ema, args.precision
    )


if __name__ == "__main__":
    main()
