"""Data preparation of a corpus in the "split layout" (the Kathleen layout).

``<db_root>/text`` (Kaldi ``UTTID transcript``), ``<db_root>/wav/UTTID.<ext>`` and
``<db_root>/splits/<set>`` (one id per line). The embedded mini_kathleen corpus
and a local copy of the full Kathleen corpus use it; corpus-specific preparation
(LJSpeech, VCTK, the Kathleen download) lives in each recipe's ``local/``.
"""

import logging
from pathlib import Path
from typing import Dict, Sequence, Union

from espnet_wavenet.data.datadir import DataDirError, iter_ids, read_dict, write_data_dir

AUDIO_EXTS = (".flac", ".wav")


def find_audio(wav_dir: Path, uttid: str) -> Path:
    """``wav_dir/uttid.flac`` or ``.wav``; the ``.flac`` name when neither exists
    (validation then reports the missing file with its line)."""
    for ext in AUDIO_EXTS:
        p = wav_dir / f"{uttid}{ext}"
        if p.is_file():
            return p
    return wav_dir / f"{uttid}{AUDIO_EXTS[0]}"


def prepare_split_corpus(
    db_root: Union[str, Path],
    out_dir: Union[str, Path],
    sets: Sequence[str] = ("train", "dev", "eval"),
    speaker: str = "spk",
) -> Dict[str, int]:
    """Write ``<out_dir>/<set>/{wav.scp,text,utt2spk,spk2utt}`` for every split.

    Returns the number of utterances per set.
    """
    db = Path(db_root).resolve()
    for need in ("text", "wav", "splits"):
        if not (db / need).exists():
            raise DataDirError(f"{db / need}: missing; {db} is not in the split layout")
    text = read_dict(db / "text", allow_empty_value=True)
    counts = {}
    seen: Dict[str, str] = {}
    for name in sets:
        split = db / "splits" / name
        if not split.is_file():
            raise DataDirError(f"{split}: no such split")
        ids = list(iter_ids(split))
        for uttid in ids:
            if uttid in seen:
                raise DataDirError(
                    f"{split}: '{uttid}' is listed twice (also in split '{seen[uttid]}')"
                )
            seen[uttid] = name
            if uttid not in text:
                raise DataDirError(f"{split}: '{uttid}' has no line in {db / 'text'}")
        write_data_dir(
            Path(out_dir) / name,
            wav={u: str(find_audio(db / "wav", u)) for u in ids},
            text={u: text[u] for u in ids},
            utt2spk={u: speaker for u in ids},
        )
        counts[name] = len(ids)
        logging.info("%s/%s: %d utterances", out_dir, name, len(ids))
    return counts
