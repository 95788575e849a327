#!/usr/bin/env python3
"""Kaldi data directories of LJSpeech-1.1, split as ESPnet's ljspeech recipe.

``metadata.csv`` lines are ``ID|transcription|normalized transcription``; the
normalized one is the text (the raw one when it is empty). Utterance ids are
sorted; the last ``n_dev + n_eval`` are held out: the first ``n_dev`` of them
form dev, the last ``n_eval`` eval, the rest train (12,600 / 250 / 250).
Speaker: ``LJ``.
"""

import argparse
import logging
import sys
from pathlib import Path

from espnet_wavenet.data.datadir import DataDirError, sort_key, write_data_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--db_root", required=True, help="holds LJSpeech-1.1/ (or is it)")
    p.add_argument("--out_dir", default="data")
    p.add_argument("--n_dev", type=int, default=250)
    p.add_argument("--n_eval", type=int, default=250)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    root = Path(args.db_root).resolve()
    if not (root / "metadata.csv").is_file():
        root = root / "LJSpeech-1.1"
    meta = root / "metadata.csv"
    if not meta.is_file():
        sys.exit(f"ERROR: {meta}: not found (run stage -1 or give --db_root)")
    text = {}
    with open(meta, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("|")
            if len(fields) < 2:
                sys.exit(f"ERROR: {meta}:{lineno}: expected 'ID|text|normalized text'")
            norm = fields[2] if len(fields) > 2 else ""
            text[fields[0]] = " ".join((norm or fields[1]).split())
    ids = sorted(text, key=sort_key)
    held = args.n_dev + args.n_eval
    if len(ids) <= held:
        sys.exit(f"ERROR: {meta}: {len(ids)} utterances, {held} are to be held out")
    sets = {
        "train": ids[: len(ids) - held],
        "dev": ids[len(ids) - held : len(ids) - args.n_eval],
        "eval": ids[len(ids) - args.n_eval :],
    }
    try:
        for name, utts in sets.items():
            write_data_dir(
                Path(args.out_dir) / name,
                wav={u: str(root / "wavs" / f"{u}.wav") for u in utts},
                text={u: text[u] for u in utts},
                utt2spk={u: "LJ" for u in utts},
            )
            logging.info("%s/%s: %d utterances", args.out_dir, name, len(utts))
    except DataDirError as e:
        sys.exit(f"ERROR: {e}")


if __name__ == "__main__":
    main()
