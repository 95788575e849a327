"""ESPnet's Trainer with crash-safe checkpoints.

ESPnet writes ``checkpoint.pth`` and ``{epoch}epoch.pth`` with a plain
``torch.save``: a kill while writing leaves a truncated file that ``--resume``
cannot read. This subclass makes those writes atomic and loads the checkpoint
with ``weights_only=True``. Everything else is ESPnet's own loop.
"""

import logging
from pathlib import Path
from typing import Optional, Sequence, Union

import espnet2.train.trainer as espnet_trainer
import torch
from espnet2.train.reporter import Reporter
from espnet2.train.trainer import Trainer

from espnet_wavenet.train.checkpoint import atomic_save, load_checkpoint


class _TorchWithAtomicSave:
    """``torch`` as ESPnet's trainer module sees it, with an atomic ``save``."""

    save = staticmethod(atomic_save)

    def __getattr__(self, name):
        return getattr(torch, name)


class WaveNetTrainer(Trainer):
    """ESPnet Trainer; atomic checkpoint writes, safe checkpoint loads."""

    @classmethod
    def run(cls, *args, **kwargs) -> None:
        # ESPnet's run() saves through its module's `torch` name.
        if not isinstance(espnet_trainer.torch, _TorchWithAtomicSave):
            espnet_trainer.torch = _TorchWithAtomicSave()
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
