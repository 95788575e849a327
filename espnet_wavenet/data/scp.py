"""Features that a Kaldi-style feats.scp points at (read the scp with
``espnet_wavenet.data.datadir.read_dict``)."""

from pathlib import Path

import kaldiio
import numpy as np


def load_feats(location: str, where: str = "") -> np.ndarray:
    """(T, D) float32 features from an ``.npy`` file or a Kaldi ``ark:offset``.

    ``where`` (an utterance id, or ``file:line: utterance``) starts every error.
    """
    try:
        path = location if location.endswith(".npy") else location.rsplit(":", 1)[0]
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} not found")
        if location.endswith(".npy"):
            feats = np.load(location, allow_pickle=False)
        else:
            feats = kaldiio.load_mat(location)
    except Exception as e:  # noqa: BLE001 - re-raised naming the utterance and file
        raise ValueError(f"{where}: cannot read features from {location} ({e})") from e
    if feats.ndim != 2:
        raise ValueError(f"{where}: expected (frames, n_mels) at {location}, got {feats.shape}")
    return np.asarray(feats, dtype=np.float32)
