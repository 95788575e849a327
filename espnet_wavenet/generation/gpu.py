"""GPU generator: a whole block of sample steps replayed as one CUDA graph.

A PyTorch step is ~100 small kernels; launched one by one from Python the launch
overhead, not the arithmetic, sets the speed. Here the step is written with
static buffers only (layer histories as ring buffers indexed by a device-side
time counter, conditioning and noise in per-block staging buffers), so that
``steps_per_graph`` consecutive steps are captured once into a CUDA graph and
replayed: one launch per block instead of ~100 per sample. Between replays,
one batched matmul projects the next block's conditioning for all layers.

The same code runs eagerly (``use_graphs=False``), which is how the CPU test
suite checks its arithmetic against the reference; graph capture itself needs a
CUDA device. Per-sample latency is still one kernel after another inside the
graph (~100 per step), so a single stream stays far from real time; batching is
where this path pays off.
"""

import logging
import math
from typing import Dict, Optional, Tuple

import torch

from espnet_wavenet.distributions import DEFAULT_SAMPLING, Distribution, Sampling
from espnet_wavenet.models.wavenet import WaveNet


def gpu_available(net: WaveNet) -> bool:
    try:
        return torch.cuda.is_available() and next(net.parameters()).is_cuda
    except StopIteration:
        return False


class _Plan:
    """Static buffers and (optionally) the captured graph for one batch shape."""

    def __init__(self, gen: "GpuGenerator", batch: int, key: Tuple):
        net, dev = gen.net, gen.device
        self.key = key
        self.batch = batch
        n = gen.steps_per_graph
        R, O = net.residual_channels, net.out_channels
        width = gen.cond_width
        self.t = torch.zeros((), dtype=torch.long, device=dev)  # device-side clock
        self.rings = [torch.zeros(batch, R, m + 1, device=dev) for m in gen.masks]
        self.prev = torch.zeros(batch, device=dev)
        self.cond = torch.zeros(n, batch, width, device=dev)
        self.noise = torch.zeros(n, batch, gen.dist.noise_dim, device=dev)
        self.out = torch.zeros(n, batch, device=dev)
        self.logits = torch.zeros(n, batch, O, device=dev)
        self.graph = None

    def reset(self) -> None:
        self.t.zero_()
        self.prev.zero_()
        for r in self.rings:
            r.zero_()


class GpuGenerator:
    """Same interface as :class:`ReferenceGenerator`; see the module docstring."""

    kind = "gpu"
    precision = "float32"
    kernel = None

    def __init__(
        self,
        net: WaveNet,
        dist: Distribution,
        steps_per_graph: int = 128,
        use_graphs: Optional[bool] = None,
    ):
        self.net = net.eval()
        self.dist = dist
        self.device = next(net.parameters()).device
        self.steps_per_graph = int(steps_per_graph)
        self.use_graphs = self.device.type == "cuda" if use_graphs is None else use_graphs
        if self.use_graphs and self.device.type != "cuda":
            raise ValueError("CUDA graphs need the network on a CUDA device")
        self._plans: Dict[Tuple, _Plan] = {}
        self._prepare()

    @torch.no_grad()
    def _prepare(self) -> None:
        """Flatten weights for the step; stack the conditioning projections."""
        net = self.net
        K = net.kernel_size
        self.masks, self.tap_offsets = [], []
        self.wconv, self.wrs, self.brs, self.has_res = [], [], [], []
        aux, glob, bias = [], [], []
        for b in net.blocks:
            span = (K - 1) * b.dilation + 1
            self.masks.append((1 << max(0, math.ceil(math.log2(span)))) - 1)
            # taps oldest .. newest, as in the reference's queue
            self.tap_offsets.append(
                torch.tensor([(K - 1 - k) * b.dilation for k in range(K)], device=self.device)
            )
            self.wconv.append(b.conv.weight.reshape(b.conv.weight.shape[0], -1))
            # res and skip 1x1 convs as one matmul; a block without conv_res (the
            # last one) feeds only the skips
            res = [] if b.conv_res is None else [b.conv_res.weight[:, :, 0]]
            self.wrs.append(torch.cat(res + [b.conv_skip.weight[:, :, 0]]))
            res = [] if b.conv_res is None else [b.conv_res.bias]
            self.brs.append(torch.cat(res + [b.conv_skip.bias]))
            self.has_res.append(b.conv_res is not None)
            bias.append(b.conv.bias)
            if b.conv_aux is not None:
                aux.append(b.conv_aux.weight[:, :, 0])
            if b.conv_global is not None:
                glob.append(b.conv_global.weight[:, :, 0])
        self.aux_w = torch.cat(aux).t().contiguous() if aux else None
        self.glob_w = torch.cat(glob) if glob else None
        self.bias = torch.cat(bias)
        self.cond_width = self.bias.numel()
        self.gate = net.gate_channels

    # ------------------------------------------------------------------ step
    def _step(self, p: _Plan, i: int, sampling: Sampling) -> None:
        """One sample for the whole batch, reading and writing only ``p``'s buffers."""
        net, R, G = self.net, self.net.residual_channels, self.gate
        h = net.embed_input(self.dist.encode_input(p.prev).unsqueeze(1))[:, :, 0]
        cond = p.cond[i]
        skips = None
        for l, ring in enumerate(p.rings):
            mask = self.masks[l]
            ring.index_copy_(2, (p.t & mask).reshape(1), h.unsqueeze(-1))
            taps = ring.index_select(2, (p.t - self.tap_offsets[l]) & mask)  # (B, R, K)
            a = torch.addmm(cond[:, l * G : (l + 1) * G], taps.reshape(h.shape[0], -1), self.wconv[l].t())
            fa, ga = a.chunk(2, dim=1)
            z = torch.tanh(fa) * torch.sigmoid(ga)
            rs = torch.addmm(self.brs[l], z, self.wrs[l].t())
            r = R if self.has_res[l] else 0
            skip = rs[:, r:]
            skips = skip if skips is None else skips + skip
            if r:
                h = (h + rs[:, :R]) * (0.5**0.5)
        logits = net.output_head(skips.unsqueeze(-1))[:, :, 0]
        p.logits[i].copy_(logits)
        x = self.dist.sample(logits, p.noise[i], sampling)
        p.out[i].copy_(x)
        p.prev.copy_(x)
        p.t.add_(1)

    def _block(self, p: _Plan, sampling: Sampling) -> None:
        for i in range(self.steps_per_graph):
            self._step(p, i, sampling)

    def _plan(self, batch: int, sampling: Sampling) -> _Plan:
        key = (batch, sampling)
        p = self._plans.get(key)
        if p is None:
            p = _Plan(self, batch, key)
            if self.use_graphs:
                # Warm up on a side stream (allocator, cuBLAS handles), then capture.
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    self._block(p, sampling)
                torch.cuda.current_stream().wait_stream(side)
                p.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(p.graph):
                    self._block(p, sampling)
                logging.info("captured %d WaveNet steps as one CUDA graph", self.steps_per_graph)
            self._plans[key] = p
        return p

    # ------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(self, c_up: Optional[torch.Tensor], length: int, noise: torch.Tensor,
                 g: Optional[torch.Tensor] = None, sampling: Sampling = DEFAULT_SAMPLING,
                 return_logits: bool = False) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``length`` samples in CUDA-graph blocks of ``steps_per_graph``;
        arguments and result as :meth:`ReferenceGenerator.generate`."""
        dev, batch, n = self.device, noise.shape[0], self.steps_per_graph
        p = self._plan(batch, sampling)
        p.reset()
        base = self.bias.unsqueeze(0).expand(batch, -1).clone()
        gcond = self.net.global_condition(g.to(dev) if g is not None else None)
        if gcond is not None and self.glob_w is not None:
            base += gcond[:, :, 0] @ self.glob_w.t()
        out = torch.empty(batch, length, device=dev)
        logits = torch.empty(batch, self.net.out_channels, length, device=dev) if return_logits else None
        for s0 in range(0, length, n):
            m = min(n, length - s0)
            # Stage this block's conditioning and noise; a short last block runs
            # on zeros past its end and those samples are dropped.
            p.cond.copy_(base.unsqueeze(0).expand(n, -1, -1))
            if c_up is not None and self.aux_w is not None:
                cc = c_up[:, :, s0 : s0 + m].to(dev, torch.float32).permute(2, 0, 1)
                p.cond[:m] += cc @ self.aux_w
            p.noise.zero_()
            p.noise[:m].copy_(noise[:, s0 : s0 + m].to(dev).transpose(0, 1), non_blocking=True)
            if p.graph is not None:
                p.graph.replay()
            else:
                self._block(p, sampling)
            out[:, s0 : s0 + m] = p.out[:m].t()
            if logits is not None:
                logits[:, :, s0 : s0 + m] = p.logits[:m].permute(1, 2, 0)
        return out, logits
