"""Reference generator: cached dilated-conv queues in PyTorch, one sample a step.

This is the correctness oracle for every faster generator and the baseline of
the benchmark. It runs the same arithmetic as :meth:`WaveNet.forward`, but
incrementally: each layer keeps the last ``(kernel_size - 1) * dilation + 1``
inputs it saw.
"""

from typing import List, Optional, Tuple

import torch
from tqdm import tqdm

from espnet_wavenet.distributions import DEFAULT_SAMPLING, Distribution, Sampling
from espnet_wavenet.models.wavenet import WaveNet


class ReferenceGenerator:
    """Sample-by-sample generation with per-layer input queues."""

    kind = "reference"
    precision = "float32"
    kernel = None

    def __init__(self, net: WaveNet, dist: Distribution):
        self.net = net.eval()
        self.dist = dist

    @torch.no_grad()
    def generate(self, c_up: Optional[torch.Tensor], length: int, noise: torch.Tensor,
                 g: Optional[torch.Tensor] = None, sampling: Sampling = DEFAULT_SAMPLING,
                 return_logits: bool = False, progress: bool = False,
                 ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Generate ``length`` samples.

        Args:
            c_up: upsampled conditioning (B, aux, >= length) or None.
            noise: (B, length, noise_dim) from ``dist.noise``.
            g: speaker ids (B,) or None.
            sampling: temperature, log-scale floor, tail (see :class:`Sampling`).
        Returns:
            samples (B, length) in [-1, 1], and logits (B, out, length) if asked.
        """
        net = self.net
        batch = noise.shape[0]
        device = next(net.parameters()).device
        gcond = net.global_condition(g.to(device) if g is not None else None)
        queues: List[torch.Tensor] = [
            torch.zeros(
                batch,
                net.residual_channels,
                (b.kernel_size - 1) * b.dilation + 1,
                device=device,
            )
            for b in net.blocks
        ]
        # The speaker term is constant over time: project it once per layer.
        gterms = [b.project_conditioning(None, gcond) for b in net.blocks]
        prev = torch.zeros(batch, device=device)
        out = torch.empty(batch, length, device=device)
        logits_all = [] if return_logits else None
        steps = range(length)
        if progress:
            steps = tqdm(steps, desc="reference", unit="sample", leave=False)
        for t in steps:
            h = net.embed_input(self.dist.encode_input(prev).unsqueeze(1))[:, :, 0]
            c_t = c_up[:, :, t : t + 1].to(device) if c_up is not None else None
            skips = 0
            for i, block in enumerate(net.blocks):
                q = torch.cat([queues[i][:, :, 1:], h.unsqueeze(-1)], dim=-1)
                queues[i] = q
                taps = q[:, :, :: block.dilation]  # oldest .. newest
                conv = torch.einsum("brk,grk->bg", taps, block.conv.weight)
                conv = conv + block.conv.bias
                cond = block.project_conditioning(c_t, None)
                if gterms[i] is not None:
                    cond = gterms[i] if cond is None else cond + gterms[i]
                z = block.gated(conv.unsqueeze(-1), cond)
                skips = skips + block.conv_skip(z)[:, :, 0]
                if block.conv_res is not None:
                    h = (h + block.conv_res(z)[:, :, 0]) * (0.5**0.5)
            logits = net.output_head(skips.unsqueeze(-1))[:, :, 0]
            if logits_all is not None:
                logits_all.append(logits)
            prev = self.dist.sample(logits, noise[:, t].to(device), sampling)
            out[:, t] = prev
        logits_out = torch.stack(logits_all, dim=-1) if logits_all is not None else None
        return out, logits_out
