#!/usr/bin/env python3
"""Convert rhasspy/dataset-voice-cathy ``data/`` into the Kathleen corpus layout.

The source holds ``arctic_xNNNN_<unix time>.wav`` (48 kHz, 2 identical channels)
with a ``.txt`` transcript per take; some prompts were recorded more than once.
Kept: the latest take of every prompt, mono (channel mean), resampled to
``--fs`` (torchaudio), 16-bit FLAC as ``wav/arctic_xNNNN.flac``. Splits as the
corpus defines them: dev arctic_b0440..b0489, eval arctic_b0490..b0539, train
the rest.
"""

import argparse
import logging
import re
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import soundfile as sf
from tqdm import tqdm

from espnet_wavenet.data.audio import read_audio, resample
from espnet_wavenet.data.datadir import atomic_write_text, write_lines

TAKE = re.compile(r"^(arctic_[ab]\d{4})_(\d+)\.wav$")
DEV = [f"arctic_b{i:04d}" for i in range(440, 490)]
EVAL = [f"arctic_b{i:04d}" for i in range(490, 540)]


def latest_takes(src: Path) -> Dict[str, Tuple[int, Path]]:
    """``prompt -> (time, wav)`` of the most recent take of every prompt."""
    takes: Dict[str, Tuple[int, Path]] = {}
    for wav in src.glob("*.wav"):
        m = TAKE.match(wav.name)
        if m:
            prompt, t = m.group(1), int(m.group(2))
            if prompt not in takes or t > takes[prompt][0]:
                takes[prompt] = (t, wav)
    return takes


def transcript(src: Path, prompt: str, wav: Path) -> str:
    """The take's own .txt, else any .txt of the same prompt."""
    own = wav.with_suffix(".txt")
    candidates = [own] if own.is_file() else sorted(src.glob(f"{prompt}_*.txt"))
    if not candidates:
        raise FileNotFoundError(f"{prompt}: no transcript (.txt) in {src}")
    return " ".join(candidates[-1].read_text(encoding="utf-8").split())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--src", required=True, help="the source's data/ folder")
    p.add_argument("--db_root", required=True)
    p.add_argument("--fs", type=int, default=22050)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    src, db = Path(args.src), Path(args.db_root)
    takes = latest_takes(src)
    if not takes:
        raise SystemExit(f"{src}: no arctic_*_<time>.wav files")
    (db / "wav").mkdir(parents=True, exist_ok=True)
    text = {}
    for prompt, (_, wav_path) in tqdm(sorted(takes.items()), desc="convert", unit="utt"):
        text[prompt] = transcript(src, prompt, wav_path)
        out = db / "wav" / f"{prompt}.flac"
        if out.is_file():
            continue
        wav, rate = read_audio(wav_path, prompt)  # channel mean
        wav = np.clip(resample(wav, rate, args.fs), -1.0, 1.0)
        tmp = out.with_suffix(".tmp.flac")
        sf.write(str(tmp), wav, args.fs, subtype="PCM_16")
        tmp.replace(out)
    write_lines(db / "text", text.items())
    held = set(DEV) | set(EVAL)
    splits = {
        "train": [u for u in sorted(text) if u not in held],
        "dev": [u for u in DEV if u in text],
        "eval": [u for u in EVAL if u in text],
    }
    for name, ids in splits.items():
        atomic_write_text(db / "splits" / name, "".join(f"{u}\n" for u in ids))
    atomic_write_text(
        db / "README.md",
        "Kathleen corpus converted from https://github.com/rhasspy/dataset-voice-cathy "
        f"(data/): latest take per prompt, mono, {args.fs} Hz 16-bit FLAC. Licence CC0 1.0.\n",
    )
    logging.info("%s: %s", db, {k: len(v) for k, v in splits.items()})


if __name__ == "__main__":
    main()
