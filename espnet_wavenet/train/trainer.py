"""ESPnet's Trainer with crash-safe checkpoints and safe loads.

ESPnet writes ``checkpoint.pth`` and ``{epoch}epoch.pth`` with a plain
``torch.save``: a kill while writing leaves a truncated file that ``--resume``
cannot read; it writes ``checkpoint.pth`` before ``{epoch}epoch.pth``, so a
kill between the two resumes an epoch whose model file the n-best averaging
then cannot find; and it loads ``--resume`` / ``--init_param`` files with
``weights_only=False``, which runs any code a pickle carries. While the task
runs (:func:`safe_io`, entered by ``WaveNetVocoderTask.main_worker`` and left
when it returns), ESPnet's trainer module and pre-trained-model loader see
``torch`` through a proxy whose ``save`` is atomic and whose ``load`` is
``weights_only=True``; a resume runs ESPnet's own, then finishes the epoch end
that a kill cut short; the n-best averaging at the end skips best epochs whose
model files are gone (a run resumed from ``checkpoint.pth`` alone, as a kept
training state is). Everything else is ESPnet's own loop.

The upstream change that would make this unnecessary: ESPnet writing its
checkpoints by rename (write to a temporary file, then ``os.replace``), writing
``{epoch}epoch.pth`` before ``checkpoint.pth``, and loading with
``weights_only=True``.
"""

import contextlib
import copy
import logging
from pathlib import Path
from typing import Collection, List, Optional, Sequence, Tuple, Union

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


_espnet_average_nbest_models = espnet_trainer.average_nbest_models


def average_present_nbest_models(
    output_dir: Path,
    reporter: Reporter,
    best_model_criterion: Sequence[Sequence[str]],
    nbest: Union[Collection[int], int],
    **kwargs,
) -> None:
    """ESPnet's ``average_nbest_models`` over the epochs whose ``{epoch}epoch.pth`` exists.

    A run resumed from ``checkpoint.pth`` alone remembers best epochs whose files
    it never had; ESPnet would die opening them after the last epoch.
    """
    output_dir = Path(output_dir)
    missing = set()

    def present_only(phase: str, key: str, mode: str) -> List[Tuple[int, float]]:
        pairs = reporter.sort_epochs_and_values(phase, key, mode)
        missing.update(e for e, _ in pairs if not (output_dir / f"{e}epoch.pth").exists())
        return [(e, v) for e, v in pairs if e not in missing]

    if not any(present_only(*c) for c in best_model_criterion if reporter.has(*c[:2])):
        logging.warning(f"{output_dir}: no epoch model files; n-best averaging skipped")
        return
    if missing:
        logging.warning(f"{output_dir}: epochs {sorted(missing)} have no model file (resumed "
                        "from checkpoint.pth alone); averaging the best of the others")
    view = copy.copy(reporter)  # still a Reporter: ESPnet type-checks it
    view.sort_epochs_and_values = present_only
    _espnet_average_nbest_models(output_dir=output_dir, reporter=view,
                                 best_model_criterion=best_model_criterion, nbest=nbest,
                                 **kwargs)


# (module, attribute, replacement) that safe_io() swaps in for its block: the
# ESPnet modules' module-level ``torch``, and the Trainer's n-best averaging.
PATCHES = (
    (espnet_trainer, "torch", _SafeTorch()),
    (espnet_pretrained, "torch", _SafeTorch()),
    (espnet_trainer, "average_nbest_models", average_present_nbest_models),
)


@contextlib.contextmanager
def safe_io():
    """ESPnet's checkpoint writes, model loads and n-best averaging made safe, within the block."""
    saved = [getattr(module, name) for module, name, _ in PATCHES]
    for module, name, replacement in PATCHES:
        setattr(module, name, replacement)
    try:
        yield
    finally:
        for (module, name, _), original in zip(PATCHES, saved):
            setattr(module, name, original)


class WaveNetTrainer(Trainer):
    """ESPnet Trainer; atomic checkpoint writes, safe checkpoint loads."""

    # (phase, key, mode) of --best_model_criterion, set by run() for resume()
    _best_model_criterion: Sequence[Tuple[str, str, str]] = ()

    @classmethod
    def run(cls, *args, **kwargs) -> None:
        options = kwargs.get("trainer_options")
        cls._best_model_criterion = getattr(options, "best_model_criterion", ())
        with safe_io():  # also when run() is called outside the task
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
        with safe_io():  # ESPnet's resume loads through its module's torch
            Trainer.resume(checkpoint, model, reporter, optimizers, schedulers, scaler,
                           ngpu=ngpu, strict=strict)
        # The loaded model is the checkpoint's: what ESPnet saves as {epoch}epoch.pth.
        cls._finish_epoch_end(Path(checkpoint).parent, model.state_dict(), reporter)

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
