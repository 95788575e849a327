"""ESPnet's Trainer with crash-safe checkpoints and safe loads.

ESPnet writes ``checkpoint.pth`` and ``{epoch}epoch.pth`` with a plain
``torch.save``: a kill while writing leaves a truncated file that ``--resume``
cannot read; and it loads ``--resume`` / ``--init_param`` files with
``weights_only=False``, which runs any code a pickle carries. The trainer
module and the pre-trained-model loader see ``torch`` through a proxy whose
``save`` is atomic and whose ``load`` is ``weights_only=True``. Everything else
is ESPnet's own loop.
"""

import logging
from pathlib import Path
from typing import Optional, Sequence, Union

import espnet2.torch_utils.load_pretrained_model as espnet_pretrained
import espnet2.train.trainer as espnet_trainer
import torch
from espnet2.train.reporter import Reporter
from espnet2.train.trainer import Trainer

from espnet_wavenet.train.checkpoint import atomic_save, load_checkpoint


def _safe_load(f, map_location=None, weights_only=True, **kwargs):
    """``torch.load`` that ignores a request for ``weights_only=False``."""
    return load_checkpoint(f, map_location=map_location)


class _SafeTorch:
    """``torch`` as ESPnet's modules see it: atomic ``save``, safe ``load``."""

    save = staticmethod(atomic_save)
    load = staticmethod(_safe_load)

    def __getattr__(self, name):
        return getattr(torch, name)


def install_safe_io() -> None:
    """Route ESPnet's checkpoint writes and model loads through safe I/O."""
    for module in (espnet_trainer, espnet_pretrained):
        if not isinstance(module.torch, _SafeTorch):
            module.torch = _SafeTorch()


class WaveNetTrainer(Trainer):
    """ESPnet Trainer; atomic checkpoint writes, safe checkpoint loads."""

    @classmethod
    def run(cls, *args, **kwargs) -> None:
        install_safe_io()
        return super().run(*args, **kwargs)

    @staticmethod
    def resume(
        checkpoint: Union[str, Path],
        model: torch.nn.Module,
        reporter: Reporter,
        optimizers: Sequence[torch.optim.Optimizer],
        schedulers: Sequence[Optional[object]],
        scaler: Optional[object],
        ngpu: int = 0,
        strict: bool = True,
    ):
        device = f"cuda:{torch.cuda.current_device()}" if ngpu > 0 else "cpu"
        states = load_checkpoint(checkpoint, map_location=device)
        model.load_state_dict(states["model"], strict=strict)
        reporter.load_state_dict(states["reporter"])
        for optimizer, state in zip(optimizers, states["optimizers"]):
            optimizer.load_state_dict(state)
        for scheduler, state in zip(schedulers, states["schedulers"]):
            if scheduler is not None:
                scheduler.load_state_dict(state)
        if scaler is not None and states.get("scaler") is not None:
            scaler.load_state_dict(states["scaler"])
        logging.info(f"The training was resumed using {checkpoint}")
