"""What a training run cost: samples seen and hours, from ESPnet's config and checkpoint."""

import datetime
import math
from pathlib import Path
from typing import Any, Dict, Union

import yaml

from espnet_wavenet.train.checkpoint import load_checkpoint


def cost_of(conf: Dict[str, Any], reporter: Dict[str, Any], source: str = "") -> Dict[str, Any]:
    """Epochs, samples seen and training hours of a run of this task.

    ``conf``: its ``config.yaml``; ``reporter``: the checkpoint's ``reporter``
    state (ESPnet keeps each epoch's ``time`` there).
    """
    epochs = int(reporter["epoch"])
    if not conf.get("num_iters_per_epoch") or conf.get("batch_type") != "unsorted":
        raise ValueError(f"{source}: samples per epoch are not fixed "
                         "(needs num_iters_per_epoch and batch_type unsorted)")
    per_epoch = (conf["num_iters_per_epoch"] * conf["batch_size"]
                 * conf["segment_frames"] * conf["feats_conf"]["hop_length"])
    seconds = sum(_seconds(reporter["stats"][e]["train"].get("time", math.nan))
                  for e in range(1, epochs + 1))
    return dict(epochs=epochs, samples=epochs * per_epoch, train_hours=seconds / 3600)


def training_cost(exp_dir: Union[str, Path], checkpoint: str = "checkpoint.pth") -> Dict[str, Any]:
    """:func:`cost_of` an ESPnet experiment folder, with its noise shaping."""
    exp = Path(exp_dir)
    with open(exp / "config.yaml", encoding="utf-8") as f:
        conf = yaml.safe_load(f)
    reporter = load_checkpoint(exp / checkpoint)["reporter"]
    return dict(cost_of(conf, reporter, f"{exp}/config.yaml"),
                noise_shaping=conf.get("noise_shaping_conf") or {})


def _seconds(t: Any) -> float:
    """ESPnet's reporter keeps an epoch's ``time`` as a timedelta."""
    return t.total_seconds() if isinstance(t, datetime.timedelta) else float(t)
