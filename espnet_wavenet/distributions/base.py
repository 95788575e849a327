"""Interface shared by the output distributions."""

import torch

from espnet_wavenet.distributions.sampling import DEFAULT_SAMPLING, Sampling


class Distribution:
    """What the network predicts for the next sample.

    Sampling is split in two so that every generator (reference, fast, GPU,
    streaming) draws the same random numbers: :meth:`noise` pre-draws them on the
    CPU from a seeded generator, :meth:`sample` turns logits plus that noise into
    samples deterministically.
    """

    #: channels the network must output
    out_channels: int
    #: "categorical" (previous sample fed as a class index) or "continuous"
    input_type: str
    #: number of classes for categorical input
    in_classes: int = 0
    #: random numbers consumed per sample
    noise_dim: int = 1

    def encode_input(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform in [-1, 1] -> network input (class ids or floats)."""
        raise NotImplementedError

    def teacher_forced_input(self, x: torch.Tensor) -> torch.Tensor:
        """Training's input for waveforms (B, T): at step t sample t - 1, silence first."""
        return self.encode_input(torch.nn.functional.pad(x[:, :-1], (1, 0)))

    def nll(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood in nats. logits (B, C, T), x (B, T) -> (B, T)."""
        raise NotImplementedError

    def noise(self, batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
        """Random numbers for ``length`` steps, (B, T, noise_dim), float32 CPU."""
        return torch.rand(batch, length, self.noise_dim, generator=generator)

    def sample(self, logits: torch.Tensor, noise: torch.Tensor,
               sampling: Sampling = DEFAULT_SAMPLING) -> torch.Tensor:
        """logits (B, C), noise (B, noise_dim) -> samples (B,) in [-1, 1]."""
        raise NotImplementedError


def inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index i with cdf[i-1] <= u * total < cdf[i]; probs (B, K), u (B,) -> (B,)."""
    cdf = torch.cumsum(probs, dim=-1)
    idx = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1), right=True)
    return idx.squeeze(-1).clamp_(max=probs.shape[-1] - 1)
