#!/usr/bin/env python3
"""Compute ESPnet LogMelFbank features for a wav.scp into a Kaldi ark/scp.

Audio whose rate differs from ``fs`` is resampled (torchaudio) and written as
16-bit wav under ``<out_dir>/wav``; the output wav.scp points at the audio that
training must read (original or resampled), so features and audio agree.
With ``--segments`` (Kaldi ``utt reco start end``; ``wav.scp`` then lists
recordings) every segment is cut out and written under ``<out_dir>/wav``.
Recipes run ``--nj`` jobs by calling this once per split of ``wav.scp`` (or of
``segments``) and concatenating the scp files.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple

import kaldiio
import numpy as np
import soundfile as sf
import torch
import yaml
from tqdm import tqdm

from espnet_wavenet.data.audio import read_audio, resample
from espnet_wavenet.features import build_feats_extract, check_feats_conf
from espnet_wavenet.data.datadir import read_dict as read_scp


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", required=True, help="YAML with a feats_conf section")
    p.add_argument("--wav_scp", required=True, help="Kaldi wav.scp (uttid path)")
    p.add_argument("--out_dir", required=True, help="writes feats.{ark,scp}, wav.scp")
    p.add_argument("--name", default="feats", help="basename of the ark/scp")
    p.add_argument("--fs", type=int, default=None, help="override feats_conf.fs")
    p.add_argument("--segments", default=None, help="Kaldi segments (wav.scp lists recordings)")
    return p


def _write_wav(path: Path, wav: np.ndarray, fs: int, uttid: str) -> Tuple[np.ndarray, str]:
    """Write 16-bit audio for training; return what training will read back."""
    sf.write(str(path), np.clip(wav, -1.0, 1.0), fs, subtype="PCM_16")
    wav, _ = read_audio(path, uttid)
    return wav, str(path.resolve())


def iter_audio(
    wav_scp: str, segments: Optional[str], fs: int, out: Path
) -> Iterator[Tuple[str, np.ndarray, str]]:
    """Yield ``(uttid, audio at fs, path training reads)`` per utterance."""
    if segments is None:
        for uttid, path in read_scp(wav_scp).items():
            wav, rate = read_audio(path, uttid)
            if rate != fs:
                wav, path = _write_wav(out / "wav" / f"{uttid}.wav", resample(wav, rate, fs), fs, uttid)
            yield uttid, wav, path
        return
    recordings: Dict[str, str] = read_scp(wav_scp)
    cached: Tuple[Optional[str], Optional[np.ndarray], int] = (None, None, 0)
    for uttid, value in read_scp(segments).items():
        try:
            reco, start_s, end_s = value.split()[:3]
            start, end = float(start_s), float(end_s)
        except ValueError:
            sys.exit(f"{segments}: '{uttid}': expected 'utt reco start end', got {value!r}")
        if reco not in recordings:
            sys.exit(f"{segments}: '{uttid}': recording '{reco}' is not in {wav_scp}")
        if cached[0] != reco:
            audio, rate = read_audio(recordings[reco], reco)
            cached = (reco, audio, rate)
        _, audio, rate = cached
        wav = resample(audio[int(round(start * rate)) : int(round(end * rate))], rate, fs)
        wav, path = _write_wav(out / "wav" / f"{uttid}.wav", wav, fs, uttid)
        yield uttid, wav, path


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
    n_entries = len(read_scp(args.segments or args.wav_scp))
    wav_lines = []
    name = out / args.name
    with kaldiio.WriteHelper(f"ark,scp:{name}.ark,{name}.scp") as writer:
        audio = iter_audio(args.wav_scp, args.segments, fs, out)
        for uttid, wav, path in tqdm(audio, total=n_entries, desc="features", unit="utt"):
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
