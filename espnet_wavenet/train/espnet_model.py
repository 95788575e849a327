"""The ESPnet model wrapper: teacher-forced NLL of WaveNet on audio segments."""

import contextlib
import logging
import math
from typing import Dict, List, Optional, Tuple

import torch
from espnet2.layers.abs_normalize import AbsNormalize
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet_wavenet.distributions import Distribution
from espnet_wavenet.models.wavenet import WaveNet
from espnet_wavenet.train.ema import ExponentialMovingAverage
from espnet_wavenet.train.residual_stack import StackKernel


class ESPnetWaveNetModel(AbsESPnetModel):
    """WaveNet + output distribution + feature normalization + weight EMA.

    The EMA is updated at the start of every training forward pass, i.e. with the
    weights the previous optimizer step produced (ESPnet's Trainer has no
    post-step hook); it lives in the state dict, so checkpoints carry it.

    ``compile``: the network runs through ``torch.compile`` (TorchInductor fuses
    the gate and the elementwise work of forward and backward); its parameter
    names, hence checkpoints, stay the same. The first step of each mode
    (training, validation) pays the compilation.
    """

    def __init__(
        self,
        wavenet: WaveNet,
        distribution: Distribution,
        normalize: Optional[AbsNormalize] = None,
        ema_decay: float = 0.9999,
        max_nonfinite_steps: int = 20,
        cpu_bf16: bool = False,
        compile: bool = False,
    ):
        super().__init__()
        self.cpu_bf16 = cpu_bf16
        self.max_nonfinite_steps = max_nonfinite_steps
        self.nonfinite_in_a_row = 0
        self.wavenet = wavenet
        if wavenet.stack_kernel is None:  # CPU float training: the compiled stack
            wavenet.stack_kernel = StackKernel.load()
        self.distribution = distribution
        self.normalize = normalize
        self.ema = ExponentialMovingAverage(wavenet, ema_decay) if ema_decay > 0 else None
        if compile:
            wavenet.compile()  # in place: the state dict keeps its names

    def nll(
        self,
        speech: torch.Tensor,
        feats: torch.Tensor,
        sids: Optional[torch.Tensor] = None,
        wavenet: Optional[WaveNet] = None,
    ) -> torch.Tensor:
        """Per-sample NLL in nats, (B, T); ``feats`` (B, T_frames + 2 ctx, D) normalized."""
        net = self.wavenet if wavenet is None else wavenet
        bf16 = self.cpu_bf16 and self.training and speech.device.type == "cpu"
        # Not autocast(enabled=False) when off: that would switch off a caller's autocast.
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            logits = net(self.distribution.teacher_forced_input(speech), feats.transpose(1, 2), sids)
        return self.distribution.nll(logits.float(), speech)

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        feats: torch.Tensor,
        feats_lengths: torch.Tensor,
        sids: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        if self.training and self.ema is not None:
            self.ema.update(self.wavenet)
        if self.normalize is not None:
            # ESPnet's GlobalMVN normalizes in place: not the caller's tensor
            feats, _ = self.normalize(feats.clone(), feats_lengths)
        nll = self.nll(speech, feats, sids)
        mask = (
            torch.arange(speech.shape[1], device=speech.device)[None, :]
            < speech_lengths[:, None]
        ).to(nll.dtype)
        loss = (nll * mask).sum() / mask.sum().clamp(min=1.0)
        nonfinite = self.check_finite(loss, kwargs.get("utt_id"))
        stats = dict(
            # a copy: ESPnet's Trainer divides the loss in place by --accum_grad,
            # and a detached view would report that quotient as the loss
            loss=loss.detach().clone(),
            nll_bits=loss.detach() / math.log(2.0),
            nonfinite=torch.tensor(float(nonfinite), device=loss.device),
        )
        batch_size = torch.tensor(speech.shape[0], device=speech.device)
        loss, stats, weight = force_gatherable((loss, stats, batch_size), loss.device)
        return loss, stats, weight

    def check_finite(self, loss: torch.Tensor, utt_ids: Optional[List[str]]) -> bool:
        """Count non-finite losses; too many in a row stop training.

        ESPnet's Trainer skips the update of a step whose gradient is not
        finite; this makes the skip visible and refuses to go on forever.
        """
        if torch.isfinite(loss):
            self.nonfinite_in_a_row = 0
            return False
        self.nonfinite_in_a_row += 1
        if not self.training:
            return True
        logging.warning(
            "non-finite loss (%d in a row), step skipped; batch: %s",
            self.nonfinite_in_a_row,
            utt_ids,
        )
        if self.nonfinite_in_a_row >= self.max_nonfinite_steps > 0:
            raise RuntimeError(
                f"{self.nonfinite_in_a_row} non-finite losses in a row; "
                f"utterances of the last batch: {utt_ids}"
            )
        return True

    def collect_feats(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        feats: torch.Tensor,
        feats_lengths: torch.Tensor,
        **kwargs,
    ) -> Dict[str, torch.Tensor]:
        return {"feats": feats, "feats_lengths": feats_lengths}
