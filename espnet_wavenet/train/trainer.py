"""ESPnet's Trainer with crash-safe checkpoints and safe loads.

ESPnet writes ``checkpoint.pth`` and ``{epoch}epoch.pth`` with a plain
``torch.save``: a kill while writing leaves a truncated file that ``--resume``
cannot read; it writes ``checkpoint.pth`` before ``{epoch}epoch.pth``, so a
kill between the two resumes an epoch whose model file the n-best averaging
then cannot find; and it loads ``--resume`` / ``--init_param`` files with
``weights_only=False``, which runs any code a pickle carries. The trainer
module and the pre-trained-model loader see ``torch`` through a proxy whose
``save`` is atomic and whose ``load`` is ``weights_only=True``; a resume first
finishes the epoch end that a kill cut short. Everything else is ESPnet's own
loop.
"""

import logging
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

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

    # (phase, key, mode) of --best_model_criterion, set by run() for resume()
    _best_model_criterion: Sequence[Tuple[str, str, str]] = ()

    @classmethod
    def run(cls, *args, **kwargs) -> None:
        install_safe_io()
        options = kwargs.get("trainer_options")
        cls._best_model_criterion = getattr(options, "best_model_criterion", ())
        return super().run(*args, **kwargs)

    @classmethod
    def resume(
        cls,
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
        cls._finish_epoch_end(Path(checkpoint).parent, states["model"], reporter)
        logging.info(f"The training was resumed using {checkpoint}")

    @classmethod
    def _finish_epoch_end(cls, output_dir: Path, model_state: dict,
                          reporter: Reporter) -> None:
        """Write what ESPnet writes after ``checkpoint.pth`` if a kill prevented it.

        The checkpoint's model is the state ESPnet saves as ``{epoch}epoch.pth``;
        the links ``latest.pth`` and ``{phase}.{key}.best.pth`` follow it.
        """
        epoch = reporter.get_epoch()
        target = output_dir / f"{epoch}epoch.pth"
        rank0 = not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0
        if epoch < 1 or target.exists() or not rank0:
            return
        logging.warning(f"{target}: missing after an interrupted epoch end; "
                        "written from checkpoint.pth")
        atomic_save(model_state, target)
        links = ["latest.pth"] + [
            f"{phase}.{key}.best.pth"
            for phase, key, mode in cls._best_model_criterion
            if reporter.has(phase, key) and reporter.get_best_epoch(phase, key, mode) == epoch
        ]
        for name in links:
            link = output_dir / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target.name)
