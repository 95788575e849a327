"""256-way mu-law softmax, the paper's output (Sec. 2.2)."""


import torch
import torchaudio

from espnet_wavenet.distributions.base import Distribution, inverse_cdf
from espnet_wavenet.distributions.sampling import DEFAULT_SAMPLING, Sampling


class _CrossEntropy(torch.autograd.Function):
    """``cross_entropy(logits, target, reduction="none")`` over dim 1 in fewer
    passes over the logits (the largest activation of a training step): the
    gradient is softmax minus one-hot, made in one new tensor, where torch's
    log_softmax + NLL keeps the log-probabilities and zero-fills a one-hot."""

    @staticmethod
    def forward(ctx, logits, target):
        lse = torch.logsumexp(logits, dim=1)
        ctx.save_for_backward(logits, lse, target)
        return lse - logits.gather(1, target.unsqueeze(1)).squeeze(1)

    @staticmethod
    def backward(ctx, g):
        logits, lse, target = ctx.saved_tensors
        g = g.unsqueeze(1)
        d = torch.sub(logits, lse.unsqueeze(1)).exp_().mul_(g)
        return d.scatter_add_(1, target.unsqueeze(1), -g), None


class MuLawSoftmax(Distribution):
    """Categorical distribution over mu-law companded classes."""

    input_type = "categorical"
    noise_dim = 1

    def __init__(self, quantization_channels: int = 256):
        self.quantization_channels = int(quantization_channels)
        self.out_channels = self.quantization_channels
        self.in_classes = self.quantization_channels

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform in [-1, 1] -> class ids (long)."""
        return torchaudio.functional.mu_law_encoding(
            x.clamp(-1.0, 1.0), self.quantization_channels
        )

    def decode(self, q: torch.Tensor) -> torch.Tensor:
        """Class ids -> waveform in [-1, 1] (float32)."""
        return torchaudio.functional.mu_law_decoding(q, self.quantization_channels).to(
            torch.float32
        )

    def encode_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def nll(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Cross-entropy, (B, Q, T) logits -> (B, T) nats."""
        return _CrossEntropy.apply(logits, self.encode(x))

    def sample(self, logits: torch.Tensor, noise: torch.Tensor,
               sampling: Sampling = DEFAULT_SAMPLING) -> torch.Tensor:
        if sampling.temperature <= 0.0:
            idx = logits.argmax(dim=-1)
        else:
            probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)
            if sampling.tail > 0.0:
                sampling.check_tail(probs.shape[-1])
                probs = (probs - sampling.tail).clamp_(min=0.0)
            idx = inverse_cdf(probs, noise[:, 0])
        return self.decode(idx)
