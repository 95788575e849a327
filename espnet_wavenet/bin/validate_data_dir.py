#!/usr/bin/env python3
"""Validate Kaldi data directories; one clear error naming the file and line."""

import argparse
import logging
import sys

from espnet2.utils.types import str2bool

from espnet_wavenet.data.datadir import DataDirError
from espnet_wavenet.recipe.validate import validate_data_dir


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("data_dirs", nargs="+", help="data/<set> directories")
    p.add_argument("--fs", type=int, default=None, help="the recipe's sampling rate")
    p.add_argument(
        "--allow_resample",
        type=str2bool,
        default=True,
        help="accept audio at another rate (one rate per directory); false: must be --fs",
    )
    p.add_argument("--check_audio", type=str2bool, default=True, help="open every audio file")
    return p


def main(cmd=None) -> None:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for d in args.data_dirs:
        try:
            validate_data_dir(d, args.fs, args.allow_resample, args.check_audio)
        except DataDirError as e:
            sys.exit(f"ERROR: invalid data directory: {e}")


if __name__ == "__main__":
    main()
