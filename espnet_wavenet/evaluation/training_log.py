"""Training curves from ESPnet's ``exp/<tag>/train.log``.

ESPnet's Trainer logs one line per epoch::

    ... 3epoch results: [train] iter_time=..., loss=5.533, nll_bits=7.982, ...,
        [valid] loss=5.467, nll_bits=7.888, ...

and, every ``log_interval`` batches, ``3epoch:train:101-200batch: loss=..., ...``.
The log is parsed rather than ``checkpoint.pth`` (which needs unpickling of
numpy scalars). A resumed run repeats epochs; the last line for an epoch wins.
"""

import re
from pathlib import Path
from typing import Dict, List, Tuple, Union

EPOCH_RE = re.compile(r"(\d+)epoch results: (.*)$")
BATCH_RE = re.compile(r"(\d+)epoch:train:(\d+)-(\d+)batch: (.*)$")
SECTION_RE = re.compile(r"\[(\w+)\]\s")
# ESPnet's batch lines may glue two entries ("lr0=0.001train_time=1.9"): a key
# must not follow a digit or dot, and a value must end at a comma or line end.
VALUE_RE = re.compile(
    r"(?<![\w.])([A-Za-z_]\w*)=([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))(?=,|\s*$)"
)

Curve = List[Tuple[float, float]]


def _values(text: str) -> Dict[str, float]:
    return {k: float(v) for k, v in VALUE_RE.findall(text)}


def parse_train_log(path: Union[str, Path]) -> Dict[str, Dict[str, Curve]]:
    """{"train": {key: [(epoch, v)]}, "valid": {...}, "train_batches": {key: [(x, v)]}}.

    For batch lines x is a fractional epoch: epoch - 1 + end_batch / batches_in_epoch
    (batches_in_epoch = the largest end batch logged for that epoch).
    """
    epochs: Dict[str, Dict[int, Dict[str, float]]] = {}
    batches: Dict[Tuple[int, int], Dict[str, float]] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = EPOCH_RE.search(line)
            if m:
                epoch = int(m.group(1))
                parts = SECTION_RE.split(m.group(2))
                for name, text in zip(parts[1::2], parts[2::2]):
                    epochs.setdefault(name, {})[epoch] = _values(text)
                continue
            m = BATCH_RE.search(line)
            if m:
                batches[(int(m.group(1)), int(m.group(3)))] = _values(m.group(4))
    out: Dict[str, Dict[str, Curve]] = {}
    for name, per_epoch in epochs.items():
        curves: Dict[str, Curve] = {}
        for epoch in sorted(per_epoch):
            for k, v in per_epoch[epoch].items():
                curves.setdefault(k, []).append((float(epoch), v))
        out[name] = curves
    if batches:
        last = {}
        for epoch, end in batches:
            last[epoch] = max(last.get(epoch, 0), end)
        curves = {}
        for epoch, end in sorted(batches):
            x = epoch - 1 + end / last[epoch]
            for k, v in batches[(epoch, end)].items():
                curves.setdefault(k, []).append((x, v))
        out["train_batches"] = curves
    return out
