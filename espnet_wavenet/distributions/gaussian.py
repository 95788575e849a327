"""Single Gaussian output (ClariNet-style), continuous input."""

import math

import torch

from espnet_wavenet.distributions.base import Distribution
from espnet_wavenet.distributions.sampling import DEFAULT_SAMPLING, Sampling


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
        # Box-Muller on uniforms rather than torch.randn: torch's CPU normal sampler
        # treats a partial last block of 16 differently, so a shorter randn draw is
        # not a prefix of a longer one. Uniform draws are, which keeps batched,
        # one-by-one and streaming generation on the same random numbers.
        u = torch.rand(batch, length, 2, generator=generator, dtype=torch.float64)
        r = torch.sqrt(-2.0 * torch.log1p(-u[..., :1]))
        return (r * torch.cos(2.0 * math.pi * u[..., 1:])).float()

    def sample(self, logits: torch.Tensor, noise: torch.Tensor,
               sampling: Sampling = DEFAULT_SAMPLING) -> torch.Tensor:
        floor = sampling.floor(self)
        mean = logits[:, 0].float()
        log_std = logits[:, 1].float().clamp(min=floor)
        return (mean + torch.exp(log_std) * noise[:, 0]).clamp(-1.0, 1.0)
