"""Content-addressed cache of the scores that do not depend on the model under test.

Every evaluation of a data set scores the same natural recordings (their WORLD
and mel-cepstral analyses, their DNSMOS) and the same Griffin-Lim renderings of
the same features (waveform, every metric, DNSMOS): about half of the work of a
row of the results table. An entry is keyed by the SHA-1 of the input signals'
samples, the evaluation settings and the versions of the libraries that compute
the metrics, so a changed recording, feature file, setting or library is a miss,
never a stale hit. Entries are ``<key>.npz`` files (arrays, and the scalar
metrics as a JSON string), written atomically, so parallel scoring jobs and
interrupted runs leave either a whole entry or none.
"""

import hashlib
import json
import logging
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

PathLike = Union[str, Path]
# Bump when a metric's computation in this package changes.
CACHE_VERSION = 1
# Libraries whose versions are part of every key: they compute the metrics.
METRIC_LIBRARIES = ("pyworld", "pysptk", "pesq", "pystoi", "librosa", "speechmos",
                    "onnxruntime", "espnet", "torch", "torchaudio")

Entry = Tuple[Dict[str, np.ndarray], Dict[str, Any]]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


class ScoreCache:
    """Arrays and scalar scores by content key, in a directory (``None``: disabled)."""

    def __init__(self, root: Optional[PathLike], settings: Dict[str, Any]):
        self.root = None if root is None else Path(root)
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
        versions = {name: _version(name) for name in METRIC_LIBRARIES}
        self._salt = json.dumps(
            dict(version=CACHE_VERSION, settings=settings, libraries=versions),
            sort_keys=True, default=str,
        ).encode()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def key(self, kind: str, *arrays: np.ndarray) -> str:
        """SHA-1 of ``kind``, the settings and the arrays' dtypes, shapes and bytes."""
        h = hashlib.sha1(self._salt)
        h.update(kind.encode())
        for a in arrays:
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def get(self, key: str) -> Optional[Entry]:
        if self.root is None:
            return None
        path = self.root / f"{key}.npz"
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files if k != "__scores__"}
                scores = json.loads(str(z["__scores__"]))
        except FileNotFoundError:
            self.misses += 1
            return None
        except Exception as e:  # noqa: BLE001 - a damaged entry is recomputed, not fatal
            logging.warning("%s: unreadable cache entry (%s); recomputed", path, e)
            self.misses += 1
            return None
        self.hits += 1
        return arrays, scores

    def put(self, key: str, arrays: Dict[str, np.ndarray], scores: Dict[str, Any]) -> None:
        if self.root is None:
            return
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{key}.", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, __scores__=np.array(json.dumps(scores)), **arrays)
            os.replace(tmp, self.root / f"{key}.npz")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
