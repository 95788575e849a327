"""Exponential moving average of a module's weights, kept as buffers."""

from typing import Dict

import torch


def shadow_buffer_name(param_name: str) -> str:
    """Buffer name of a parameter's shadow (in the state dict: ``ema.<this>``)."""
    return param_name.replace(".", "__")


class ExponentialMovingAverage(torch.nn.Module):
    """Shadow weights ``s <- decay * s + (1 - decay) * p``.

    The shadows are registered buffers, so they sit in the owner's
    ``state_dict``: ESPnet's Trainer saves them in every checkpoint and restores
    them on ``--resume``. ``num_updates`` counts the updates (it carries on across
    resumes). The first update copies the weights; then the effective decay is
    warmed up, min(decay, (1 + n) / (10 + n)), so early shadows follow training.

    An update when no weight has changed since the last one is skipped: with
    ESPnet's ``--accum_grad N`` the model runs N forwards per optimizer step,
    and the average must move once per step, not N times.
    """

    def __init__(self, module: torch.nn.Module, decay: float = 0.9999):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.names = [n for n, _ in module.named_parameters()]
        for name, p in module.named_parameters():
            self.register_buffer(shadow_buffer_name(name), p.detach().clone())
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self._versions = None  # the weights' in-place versions at the last update

    @staticmethod
    def _weight_versions(module: torch.nn.Module):
        # every in-place change (optimizer step, load_state_dict) bumps _version
        return tuple(p._version for p in module.parameters())

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        versions = self._weight_versions(module)
        if versions == self._versions:
            return
        self._versions = versions
        n = int(self.num_updates)
        # The first update copies: after --init_param (fine-tuning) the shadows
        # must start from the loaded weights, not the random initialisation.
        decay = 0.0 if n == 0 else min(self.decay, (1.0 + n) / (10.0 + n))
        for name, p in module.named_parameters():
            shadow = getattr(self, shadow_buffer_name(name))
            shadow.lerp_(p.detach().to(shadow.dtype), 1.0 - decay)
        self.num_updates += 1

    def shadow_state_dict(self) -> Dict[str, torch.Tensor]:
        """Parameter name -> averaged tensor (no buffers of the module)."""
        return {n: getattr(self, shadow_buffer_name(n)).detach().clone() for n in self.names}

    @torch.no_grad()
    def copy_to(self, module: torch.nn.Module) -> None:
        """Overwrite ``module``'s parameters with the averages."""
        for name, p in module.named_parameters():
            p.copy_(getattr(self, shadow_buffer_name(name)))
