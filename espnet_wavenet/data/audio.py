"""Audio reading with sample-rate handling."""

from pathlib import Path
from typing import Tuple, Union

import numpy as np
import soundfile as sf
import torch
import torchaudio


def read_audio(path: Union[str, Path], uttid: str = "") -> Tuple[np.ndarray, int]:
    """Mono float32 audio and its rate; errors name the utterance and file."""
    who = f"{uttid}: " if uttid else ""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{who}{path}: no such audio file")
    try:
        wav, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{who}{path}: unreadable audio ({e})") from e
    return wav.mean(axis=1), int(rate)


def resample(wav: np.ndarray, orig_fs: int, new_fs: int) -> np.ndarray:
    """Band-limited resampling (torchaudio's windowed sinc)."""
    if orig_fs == new_fs:
        return wav
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
    return torchaudio.functional.resample(x, orig_fs, new_fs).numpy()
