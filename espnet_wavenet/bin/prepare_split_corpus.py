#!/usr/bin/env python3
"""Kaldi data directories from a corpus in the split layout (text, wav/, splits/)."""

import argparse
import logging
import sys

from espnet_wavenet.recipe.corpora import prepare_split_corpus
from espnet_wavenet.data.datadir import DataDirError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--db_root", required=True, help="holds text, wav/, splits/")
    p.add_argument("--out_dir", required=True, help="writes <out_dir>/<set>/")
    p.add_argument("--sets", nargs="+", default=["train", "dev", "eval"])
    p.add_argument("--speaker", default="spk", help="speaker id of every utterance")
    return p


def main(cmd=None) -> None:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        prepare_split_corpus(args.db_root, args.out_dir, args.sets, args.speaker)
    except DataDirError as e:
        sys.exit(f"ERROR: {e}")


if __name__ == "__main__":
    main()
