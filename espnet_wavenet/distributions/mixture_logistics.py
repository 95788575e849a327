"""Discretized mixture of logistics over 16-bit audio (PixelCNN++ / Parallel WaveNet)."""

import math

import torch
import torch.nn.functional as F

from espnet_wavenet.distributions.base import Distribution, inverse_cdf
from espnet_wavenet.distributions.sampling import DEFAULT_SAMPLING, Sampling


class MixtureOfLogistics(Distribution):
    """Logits are [mixture logits (M), means (M), log scales (M)] per time step.

    The likelihood of x is the mixture mass of the bin of width 2 / (num_classes - 1)
    around x; the edge bins extend to -inf / +inf.
    """

    input_type = "continuous"
    noise_dim = 2

    def __init__(
        self,
        num_mixtures: int = 10,
        num_classes: int = 65536,
        log_scale_min: float = -7.0,
    ):
        self.num_mixtures = int(num_mixtures)
        self.num_classes = int(num_classes)
        self.log_scale_min = float(log_scale_min)
        self.out_channels = 3 * self.num_mixtures

    def encode_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()

    def split(self, logits: torch.Tensor):
        """(B, 3M, ...) -> mixture logits, means, log scales, each (B, M, ...)."""
        m = self.num_mixtures
        return logits[:, :m], logits[:, m : 2 * m], logits[:, 2 * m : 3 * m]

    def nll(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logit_probs, means, log_scales = self.split(logits.float())
        log_scales = log_scales.clamp(min=self.log_scale_min)
        x = x.float().unsqueeze(1)  # (B, 1, T)
        centered = x - means
        inv_s = torch.exp(-log_scales)
        half_bin = 1.0 / (self.num_classes - 1)
        plus_in = inv_s * (centered + half_bin)
        min_in = inv_s * (centered - half_bin)
        cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
        log_cdf_plus = plus_in - F.softplus(plus_in)  # log sigmoid, for x = -1
        log_one_minus_cdf_min = -F.softplus(min_in)  # log(1 - sigmoid), for x = 1
        mid_in = inv_s * centered
        # log density at the bin centre times the bin width, when cdf_delta underflows
        log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
        inner = torch.where(
            cdf_delta > 1e-5,
            torch.log(cdf_delta.clamp(min=1e-12)),
            log_pdf_mid - math.log((self.num_classes - 1) / 2),
        )
        log_probs = torch.where(
            x < -0.999,
            log_cdf_plus,
            torch.where(x > 0.999, log_one_minus_cdf_min, inner),
        )
        log_probs = log_probs + F.log_softmax(logit_probs, dim=1)
        return -torch.logsumexp(log_probs, dim=1)

    def sample(self, logits: torch.Tensor, noise: torch.Tensor,
               sampling: Sampling = DEFAULT_SAMPLING) -> torch.Tensor:
        floor = sampling.floor(self)
        logit_probs, means, log_scales = self.split(logits.float())
        k = inverse_cdf(torch.softmax(logit_probs, dim=-1), noise[:, 0]).unsqueeze(-1)
        mean = means.gather(1, k).squeeze(1)
        log_scale = log_scales.gather(1, k).squeeze(1).clamp(min=floor)
        u = noise[:, 1].clamp(1e-5, 1.0 - 1e-5)
        x = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
        return x.clamp(-1.0, 1.0)
