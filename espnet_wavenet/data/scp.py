"""Kaldi-style scp files and the features they point at."""

from pathlib import Path
from typing import Dict, Union

import kaldiio
import numpy as np

PathLike = Union[str, Path]


def read_scp(path: PathLike) -> Dict[str, str]:
    """``{uttid: value}`` in file order (the value may hold spaces).

    Blank lines are ignored; a malformed line or a repeated id is an error that
    names the file and line.
    """
    out: Dict[str, str] = {}
    first: Dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.strip().split(maxsplit=1)
            if not parts:
                continue
            if len(parts) != 2:
                raise ValueError(f"{path}:{lineno}: expected 'uttid value', got {line!r}")
            if parts[0] in out:
                raise ValueError(
                    f"{path}:{lineno}: duplicate id '{parts[0]}' "
                    f"(first on line {first[parts[0]]})"
                )
            out[parts[0]] = parts[1]
            first[parts[0]] = lineno
    return out


def load_feats(location: str, uttid: str = "") -> np.ndarray:
    """(T, D) float32 features from an ``.npy`` file or a Kaldi ark location."""
    try:
        if location.endswith(".npy"):
            feats = np.load(location, allow_pickle=False)
        else:
            feats = kaldiio.load_mat(location)
    except Exception as e:  # noqa: BLE001 - re-raised with the utterance
        raise ValueError(f"{uttid}: cannot read features at {location}: {e}") from e
    if feats.ndim != 2:
        raise ValueError(f"{uttid}: expected (frames, n_mels) at {location}, got {feats.shape}")
    return np.asarray(feats, dtype=np.float32)
