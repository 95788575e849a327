"""Single Gaussian output (ClariNet-style), continuous input."""

import math
from typing import Optional

import torch

from espnet_wavenet.distributions.base import Distribution


class Gaussian(Distribution):
    """Logits are [mean, log std] per time step."""

    input_type = "continuous"
    noise_dim = 1

    def __init__(self, log_scale_min: float = -9.0):
        self.log_scale_min = float(log_scale_min)
        self.out_channels = 2

    def encode_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()

    def nll(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mean = logits[:, 0].float()
        log_std = logits[:, 1].float().clamp(min=self.log_scale_min)
        z = (x.float() - mean) * torch.exp(-log_std)
        return 0.5 * math.log(2 * math.pi) + log_std + 0.5 * z * z

    def noise(self, batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(batch, length, 1, generator=generator)

    def sample(
        self,
        logits: torch.Tensor,
        noise: torch.Tensor,
        temperature: float = 1.0,
        log_scale_min: Optional[float] = None,
    ) -> torch.Tensor:
        floor = self.log_scale_min if log_scale_min is None else log_scale_min
        mean = logits[:, 0].float()
        log_std = logits[:, 1].float().clamp(min=floor)
        return (mean + torch.exp(log_std) * noise[:, 0]).clamp(-1.0, 1.0)
