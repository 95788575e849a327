#!/usr/bin/env python3
"""Kaldi data directories of VCTK 0.92 with held-out utterances and speakers.

Layout: ``txt/<spk>/<spk>_<nnn>.txt`` and
``wav48_silence_trimmed/<spk>/<spk>_<nnn>_<mic>.flac``. Utterance id
``<spk>_<nnn>``; utterances lacking a transcript or the audio of ``--mic`` are
left out (counted in the log; p315 has no transcripts).

Sets:
- ``eval_unseen``: every utterance of the speakers in ``--heldout_speakers``;
- ``eval``: the utterances in ``--eval_list`` if given, else the last ``--n_eval``
  utterances (sorted) of every other speaker;
- ``dev``: the ``--n_dev`` utterances before those, per speaker;
- ``train``: the rest.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import Dict, List

from espnet_wavenet.data.datadir import DataDirError, iter_ids, sort_key, write_data_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--db_root", required=True)
    p.add_argument("--out_dir", default="data")
    p.add_argument("--mic", default="mic1", choices=["mic1", "mic2"])
    p.add_argument("--n_dev", type=int, default=5)
    p.add_argument("--n_eval", type=int, default=5)
    p.add_argument("--eval_list", default=None, help="utterance ids of the eval set")
    p.add_argument("--heldout_speakers", default=None, help="speaker ids, one per line")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    root = Path(args.db_root).resolve()
    txt_dir, wav_dir = root / "txt", root / "wav48_silence_trimmed"
    for d in (txt_dir, wav_dir):
        if not d.is_dir():
            sys.exit(f"ERROR: {d}: not found (VCTK 0.92 layout: txt/, wav48_silence_trimmed/)")

    text: Dict[str, str] = {}
    wav: Dict[str, str] = {}
    no_text = no_audio = 0
    for spk_dir in sorted(wav_dir.iterdir()):
        if not spk_dir.is_dir():
            continue
        for audio in sorted(spk_dir.glob(f"*_{args.mic}.flac")):
            utt = audio.name[: -len(f"_{args.mic}.flac")]
            t = txt_dir / spk_dir.name / f"{utt}.txt"
            if not t.is_file():
                no_text += 1
                continue
            words = " ".join(t.read_text(encoding="utf-8", errors="replace").split())
            if not words:
                no_text += 1
                continue
            text[utt], wav[utt] = words, str(audio)
    for t in txt_dir.glob("*/*.txt"):
        if t.stem not in wav and t.stem not in text:
            no_audio += 1
    if not text:
        sys.exit(f"ERROR: {root}: no utterance with both {args.mic} audio and a transcript")
    logging.info(
        "%d utterances; left out: %d without transcript, %d without %s audio",
        len(text), no_text, no_audio, args.mic,
    )

    utt2spk = {u: u.split("_")[0] for u in text}
    unseen = set(iter_ids(args.heldout_speakers)) if args.heldout_speakers else set()
    by_spk: Dict[str, List[str]] = {}
    for u in sorted(text, key=sort_key):
        by_spk.setdefault(utt2spk[u], []).append(u)
    sets: Dict[str, List[str]] = {"train": [], "dev": [], "eval": [], "eval_unseen": []}
    eval_ids = set(iter_ids(args.eval_list)) if args.eval_list else None
    if eval_ids is not None:
        missing = sorted(eval_ids - set(text))
        if missing:
            logging.warning("%s: %d ids not in the corpus, e.g. %s", args.eval_list, len(missing), missing[:3])
    for spk, utts in by_spk.items():
        if spk in unseen:
            sets["eval_unseen"] += utts
            continue
        if eval_ids is not None:
            ev = [u for u in utts if u in eval_ids]
            rest = [u for u in utts if u not in eval_ids]
        else:
            ev, rest = utts[len(utts) - args.n_eval :], utts[: len(utts) - args.n_eval]
        dev, train = rest[len(rest) - args.n_dev :], rest[: len(rest) - args.n_dev]
        if not train:
            sys.exit(f"ERROR: speaker {spk}: no utterance left for training")
        sets["eval"] += ev
        sets["dev"] += dev
        sets["train"] += train
    try:
        for name, utts in sets.items():
            if not utts:
                sys.exit(f"ERROR: set {name} is empty")
            write_data_dir(
                Path(args.out_dir) / name,
                wav={u: wav[u] for u in utts},
                text={u: text[u] for u in utts},
                utt2spk={u: utt2spk[u] for u in utts},
            )
            logging.info(
                "%s/%s: %d utterances, %d speakers",
                args.out_dir, name, len(utts), len({utt2spk[u] for u in utts}),
            )
    except DataDirError as e:
        sys.exit(f"ERROR: {e}")


if __name__ == "__main__":
    main()
