#!/usr/bin/env python3
"""Compute ESPnet LogMelFbank features for a wav.scp into a Kaldi ark/scp.

Audio whose rate differs from ``fs`` is resampled (torchaudio) and written as
16-bit wav under ``<out_dir>/wav``; the output wav.scp points at the audio that
training must read (original or resampled), so features and audio agree.
"""

import argparse
import logging
import sys
from pathlib import Path

import kaldiio
import numpy as np
import soundfile as sf
import torch
import yaml
from tqdm import tqdm

from espnet_wavenet.data.audio import read_audio, resample
from espnet_wavenet.features import build_feats_extract, check_feats_conf


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", required=True, help="YAML with a feats_conf section")
    p.add_argument("--wav_scp", required=True, help="Kaldi wav.scp (uttid path)")
    p.add_argument("--out_dir", required=True, help="writes feats.{ark,scp}, wav.scp")
    p.add_argument("--name", default="feats", help="basename of the ark/scp")
    p.add_argument("--fs", type=int, default=None, help="override feats_conf.fs")
    return p


def main(cmd=None) -> None:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with open(args.config, encoding="utf-8") as f:
        conf = check_feats_conf((yaml.safe_load(f) or {}).get("feats_conf"))
    if args.fs is not None:
        conf["fs"] = args.fs
    fs = conf["fs"]
    fe = build_feats_extract(conf).eval()
    out = Path(args.out_dir)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    entries = []
    with open(args.wav_scp, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.strip().split(maxsplit=1)
            if not parts:
                continue
            if len(parts) != 2:
                sys.exit(f"{args.wav_scp}:{lineno}: expected 'uttid path', got {line!r}")
            entries.append(parts)
    wav_lines = []
    name = out / args.name
    with kaldiio.WriteHelper(f"ark,scp:{name}.ark,{name}.scp") as writer:
        for uttid, path in tqdm(entries, desc="features", unit="utt"):
            wav, rate = read_audio(path, uttid)
            if rate != fs:
                wav = resample(wav, rate, fs)
                path = str((out / "wav" / f"{uttid}.wav").resolve())
                sf.write(path, np.clip(wav, -1.0, 1.0), fs, subtype="PCM_16")
                wav, _ = read_audio(path, uttid)  # what training will read
            if len(wav) < conf["hop_length"]:
                logging.warning("%s: only %d samples, skipped", uttid, len(wav))
                continue
            with torch.no_grad():
                x = torch.from_numpy(wav).unsqueeze(0)
                feats, _ = fe(x, torch.tensor([x.shape[1]]))
            writer(uttid, feats[0].numpy().astype(np.float32))
            wav_lines.append(f"{uttid} {path}\n")
    with open(out / "wav.scp", "w", encoding="utf-8") as f:
        f.writelines(wav_lines)
    logging.info("wrote %d utterances to %s.scp", len(wav_lines), name)


if __name__ == "__main__":
    main()
