"""Turn an ESPnet experiment (config.yaml + model file) into a packed vocoder."""

import logging
import os
from pathlib import Path
from typing import Optional, Union

import yaml

from espnet_wavenet.generation import PRECISION_OPTIONS
from espnet_wavenet.train.checkpoint import load_checkpoint
from espnet_wavenet.train.cost import cost_of
from espnet_wavenet.utils.cpu import cpu_name
from espnet_wavenet.train.ema import shadow_buffer_name
from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder, load_stats


def vocoder_from_experiment(
    config: Union[str, Path],
    model_file: Union[str, Path],
    stats_file: Optional[Union[str, Path]] = None,
    use_ema: bool = True,
) -> WaveNetVocoder:
    """Build a vocoder from ESPnet's ``config.yaml`` and a ``*.pth`` of the task.

    ``use_ema`` takes the exponential moving average of the weights when the
    model file has one (``checkpoint.pth`` files are accepted too).
    """
    with open(config, encoding="utf-8") as f:
        args = yaml.safe_load(f)
    if not isinstance(args, dict) or "feats_conf" not in args:
        raise ValueError(f"{config}: not a config.yaml of espnet_wavenet's task")
    state = load_checkpoint(model_file)  # also checkpoint.pth (reporter's numpy scalars)
    provenance = None
    if "model" in state and isinstance(state["model"], dict):  # checkpoint.pth
        if "reporter" in state:
            try:
                # cpu: the machine that packs, normally the one that trained
                provenance = dict(cost_of(args, state["reporter"], str(config)),
                                  checkpoint=Path(model_file).name, cpu=cpu_name(),
                                  cores=os.cpu_count())
            except (ValueError, KeyError) as e:
                logging.info("no training cost in the pack: %s", e)
        state = state["model"]
    net_state = {k[len("wavenet.") :]: v for k, v in state.items() if k.startswith("wavenet.")}
    if not net_state:
        raise ValueError(f"{model_file}: no 'wavenet.*' weights")
    ema_updates = state.get("ema.num_updates")
    if use_ema and ema_updates is not None and int(ema_updates) > 0:
        for name in list(net_state):
            key = "ema." + shadow_buffer_name(name)
            if key in state:
                net_state[name] = state[key]
        logging.info("using EMA weights (%d updates)", int(ema_updates))
    elif use_ema:
        logging.warning("%s has no EMA weights; using the raw weights", model_file)
    mean = std = None
    if args.get("normalize") is not None:
        stats_file = stats_file or (args.get("normalize_conf") or {}).get("stats_file")
        if stats_file is None:
            raise ValueError(f"{config}: normalize is set but no stats file is given")
        stats = load_stats(stats_file)
        mean, std = stats["mean"], stats["std"]
    vocoder = WaveNetVocoder(
        args["feats_conf"],
        args.get("wavenet_conf") or {},
        args.get("distribution", "mulaw"),
        args.get("distribution_conf") or {},
        mean,
        std,
        noise_shaping_conf=args.get("noise_shaping_conf"),
    )
    vocoder.net.load_state_dict(net_state)
    vocoder.stats_file = stats_file
    vocoder.provenance = provenance
    return vocoder.eval()


def pack_experiment(
    config: Union[str, Path],
    model_file: Union[str, Path],
    out_dir: Union[str, Path],
    stats_file: Optional[Union[str, Path]] = None,
    use_ema: bool = True,
    precision: str = "auto",
) -> Path:
    """Write a packed model directory that ``WaveNetVocoder.from_pretrained`` reads;
    ``precision`` is its fast generator's default (e.g. for ESPnet's Text2Speech,
    which has no option for it)."""
    if precision not in PRECISION_OPTIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISION_OPTIONS}")
    vocoder = vocoder_from_experiment(config, model_file, stats_file, use_ema)
    vocoder.precision = precision
    out = vocoder.save_pretrained(out_dir, stats_file=vocoder.stats_file)
    logging.info("packed %s -> %s", model_file, out)
    return out
