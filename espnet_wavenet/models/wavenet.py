"""The WaveNet network (van den Oord et al. 2016, arXiv 1609.03499)."""

import math
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import torch

from espnet_wavenet.layers.conv_mm import causal_conv_mm
from espnet_wavenet.layers.residual_block import ResidualBlock
from espnet_wavenet.layers.residual_mm import residual_layer_mm
from espnet_wavenet.layers.upsample import ConditioningUpsampler


def dilations_for(layers: int, stacks: int) -> List[int]:
    """Dilations 1, 2, 4, ... 2^(layers/stacks - 1), repeated ``stacks`` times."""
    if layers <= 0 or stacks <= 0 or layers % stacks != 0:
        raise ValueError(
            f"layers ({layers}) must be a positive multiple of stacks ({stacks})"
        )
    cycle = layers // stacks
    return [2 ** (i % cycle) for i in range(layers)]


def receptive_field(layers: int, stacks: int, kernel_size: int) -> int:
    """Samples seen by one output: (kernel_size - 1) * sum(dilations) + 1."""
    return (kernel_size - 1) * sum(dilations_for(layers, stacks)) + 1


class WaveNet(torch.nn.Module):
    """Causal dilated-conv stack with gated units, residual and skip connections.

    Input of :meth:`forward`: ``x`` (B, T), the *previous* samples in the
    distribution's input form (class ids for categorical input, floats
    otherwise), i.e. ``x[:, t]`` is sample t-1; ``c`` (B, aux_channels,
    T_frames + 2 * aux_context_window) log-mel frames with context; ``g`` (B,)
    speaker ids. Output: logits (B, out_channels, T), where logits[:, :, t]
    depends on x[:, :t+1] only.
    """

    def __init__(
        self,
        out_channels: int = 256,
        input_type: str = "categorical",
        in_classes: int = 256,
        layers: int = 24,
        stacks: int = 4,
        kernel_size: int = 2,
        residual_channels: int = 64,
        gate_channels: int = 128,
        skip_channels: int = 64,
        aux_channels: int = 80,
        aux_context_window: int = 2,
        upsample_scales: Sequence[int] = (4, 4, 4, 4),
        n_speakers: int = 0,
        global_channels: int = 16,
    ):
        super().__init__()
        if input_type not in ("categorical", "continuous"):
            raise ValueError(f"input_type must be categorical or continuous: {input_type}")
        self.out_channels = out_channels
        self.input_type = input_type
        self.layers = layers
        self.stacks = stacks
        self.kernel_size = kernel_size
        self.residual_channels = residual_channels
        self.gate_channels = gate_channels
        self.skip_channels = skip_channels
        self.aux_channels = aux_channels
        self.aux_context_window = aux_context_window
        self.n_speakers = n_speakers
        self.dilations = dilations_for(layers, stacks)

        if input_type == "categorical":
            # One-hot input followed by a 1x1 conv is an embedding lookup.
            self.first = torch.nn.Embedding(in_classes, residual_channels)
        else:
            self.first = torch.nn.Conv1d(1, residual_channels, 1)
        if n_speakers > 0:
            self.speaker_embed = torch.nn.Embedding(n_speakers, global_channels)
        else:
            self.speaker_embed = None
            global_channels = 0
        self.upsample = (
            ConditioningUpsampler(aux_channels, upsample_scales, aux_context_window)
            if aux_channels > 0
            else None
        )
        self.blocks = torch.nn.ModuleList(
            ResidualBlock(
                residual_channels,
                gate_channels,
                skip_channels,
                aux_channels,
                kernel_size,
                d,
                global_channels,
                residual=i < layers - 1,
            )
            for i, d in enumerate(self.dilations)
        )
        self.out1 = torch.nn.Conv1d(skip_channels, skip_channels, 1)
        self.out2 = torch.nn.Conv1d(skip_channels, out_channels, 1)
        self.skip_scale = math.sqrt(1.0 / layers)
        # CPU float training through the compiled stack where it takes the sizes:
        # train.residual_stack.StackKernel, attached by the training model
        self.stack_kernel: Optional[Callable[..., torch.Tensor]] = None

    @property
    def hop(self) -> int:
        return self.upsample.hop if self.upsample is not None else 1

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.layers, self.stacks, self.kernel_size)

    def embed_input(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, R, T)."""
        if self.input_type == "categorical":
            return self.first(x).transpose(1, 2)
        return self.first(x.unsqueeze(1))

    def global_condition(self, g: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """Speaker ids (B,) -> (B, global_channels, 1), or None."""
        if self.speaker_embed is None:
            return None
        if g is None:
            raise ValueError("this model is speaker-conditioned: speaker ids needed")
        g = g.long().reshape(-1)
        if (g < 0).any() or (g >= self.n_speakers).any():
            raise ValueError(
                f"speaker id out of range [0, {self.n_speakers}): {g.tolist()}"
            )
        return self.speaker_embed(g).unsqueeze(-1)

    def upsample_conditioning(self, c: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """(B, aux, T_frames + 2 ctx) -> (B, aux, T_frames * hop)."""
        if c is None or self.upsample is None:
            return None
        return self.upsample(c)

    def output_head(self, skips: torch.Tensor) -> torch.Tensor:
        """Summed skips (B, S, T) -> logits (B, out, T)."""
        h = torch.relu(skips * self.skip_scale)
        if h.device.type != "cpu":
            return self.out2(torch.relu(self.out1(h)))
        h = torch.relu(causal_conv_mm(h, self.out1.weight, self.out1.bias))
        return causal_conv_mm(h, self.out2.weight, self.out2.bias)

    def forward(
        self,
        x: torch.Tensor,
        c: Optional[torch.Tensor] = None,
        g: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Logits (B, out, T). The conditioning is projected into every layer
        at frame rate and then upsampled: the upsampler is linear in time and
        shared by all channels, so this is :meth:`forward_reference` (project
        the upsampled features) with about a third fewer multiply-adds.

        On the CPU in float (no autocast, not compiled) each layer is one
        autograd function (:func:`residual_layer_mm`) that works in place."""
        h = self.embed_input(x)
        if (
            h.device.type == "cpu" and not torch.is_autocast_enabled("cpu")
            and not torch.compiler.is_compiling()  # TorchInductor fuses on its own
        ):
            return self.forward_cpu(h, c, g)
        skips = 0
        for block, cond in zip(self.blocks, self.layer_conditioning(c, g, h.shape[-1])):
            h, s = block(h, cond)
            skips = skips + s
        return self.output_head(skips)

    def forward_cpu(
        self, h: torch.Tensor, c: Optional[torch.Tensor], g: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """:meth:`forward` from the embedded input h (B, R, T): the compiled
        stack where the kernel takes the sizes, else fused layers."""
        h = h.contiguous()
        b, _, t = h.shape
        skip_bias = torch.stack([block.conv_skip.bias for block in self.blocks]).sum(0)
        kernel = self.stack_kernel_for(t) if h.dtype == torch.float32 else None
        if kernel is not None:
            return self.output_head(self._forward_stack(kernel, h, c, g) + skip_bias[:, None])
        skips = skip_bias[None, :, None].expand(b, -1, t).contiguous()
        gate_inputs = self.layer_conditioning(c, g, t, with_bias=True)
        for block, gate_input in zip(self.blocks, gate_inputs):
            if gate_input.shape[-1] != t:  # constant in time: the layer needs a buffer
                gate_input = gate_input.expand(b, -1, t).contiguous()
            res = block.conv_res
            out, skips = residual_layer_mm(
                h, gate_input, skips, block.conv.weight,
                None if res is None else res.weight[..., 0],
                None if res is None else res.bias,
                block.conv_skip.weight[..., 0], block.dilation, math.sqrt(0.5),
            )
            h = h if out is None else out
        return self.output_head(skips)

    def stack_kernel_for(self, length: int):
        """The attached compiled stack if it runs this network at ``length``."""
        k = self.stack_kernel
        hop = None if self.upsample is None else self.hop
        if k is None or not k.supports(self.residual_channels, self.gate_channels,
                                       self.skip_channels, self.kernel_size, length, hop):
            return None
        return k

    def _forward_stack(
        self, kernel, h: torch.Tensor, c: Optional[torch.Tensor], g: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """The summed skips (without their biases) from the compiled stack."""
        b, r, t = h.shape
        proj, band, offsets = self.frame_conditioning(c, g, t, with_bias=True)
        offset = torch.stack([off.expand(b, -1) for off in offsets], dim=1)  # (B, L, G)
        if proj is not None:
            proj = proj.view(b, self.layers, self.gate_channels, -1)
        w_dil = torch.stack([torch.cat([blk.conv.weight[..., 1], blk.conv.weight[..., 0]], 1)
                             for blk in self.blocks])
        zeros_w = h.new_zeros(r, self.gate_channels // 2)
        w_out = torch.stack([
            torch.cat([blk.conv_skip.weight[..., 0],
                       zeros_w if blk.conv_res is None else blk.conv_res.weight[..., 0]])
            for blk in self.blocks
        ])
        b_res = torch.stack([h.new_zeros(r) if blk.conv_res is None else blk.conv_res.bias
                             for blk in self.blocks])
        return kernel(h, proj, band, offset, w_dil, w_out, b_res, self.dilations, math.sqrt(0.5))

    def layer_conditioning(
        self, c: Optional[torch.Tensor], g: Optional[torch.Tensor], length: int,
        with_bias: bool = False,
    ) -> Iterator[Optional[torch.Tensor]]:
        """Every layer's conditioning term V c + U g, one layer at a time: (B,
        G, T) (a new tensor), (B, G, 1), (G, 1) or None; ``with_bias``: plus the
        layer's dilated-conv bias."""
        proj, band, offsets = self.frame_conditioning(c, g, length, with_bias)
        if proj is None:
            yield from (None if off is None else off[..., None] for off in offsets)
            return
        for p, off in zip(proj.split(self.gate_channels, dim=1), offsets):
            yield self.upsample.stretch_frames(p, band, off)

    def frame_conditioning(
        self, c: Optional[torch.Tensor], g: Optional[torch.Tensor], length: int,
        with_bias: bool = False,
    ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor], List[Optional[torch.Tensor]]]:
        """The conditioning before the stretch: every layer's projection of the
        frames (B, L * G, F) and the stretch's coefficients (``frame_band``), or
        None and None; and per layer the term constant in time (speaker term,
        plus the conv bias with ``with_bias``): (B, G), (G,) or None."""
        gg = self.global_condition(g)
        offsets: List[Optional[torch.Tensor]] = []
        for block in self.blocks:
            off = block.conv.bias if with_bias else None
            if gg is not None and block.conv_global is not None:
                u = block.conv_global(gg)[..., 0]  # (B, G)
                off = u if off is None else u + off
            offsets.append(off)
        if c is None or self.upsample is None:
            return None, None, offsets
        ctx = self.upsample.context(c)  # (B, aux, F)
        if ctx.shape[-1] * self.hop != length:
            raise ValueError(
                f"conditioning upsampled to {ctx.shape[-1] * self.hop} samples, input has "
                f"{length}"
            )
        # All layers' projections in one product at frame rate.
        weight = torch.cat([block.conv_aux.weight for block in self.blocks])
        proj = torch.nn.functional.conv1d(ctx, weight)
        return proj, self.upsample.frame_band(ctx.shape[-1]), offsets

    def forward_reference(
        self,
        x: torch.Tensor,
        c: Optional[torch.Tensor] = None,
        g: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """:meth:`forward` as the paper writes it: upsample the features, then
        project them in every layer (kept as the oracle of the tests)."""
        c_up = self.upsample_conditioning(c)
        if c_up is not None and c_up.shape[-1] != x.shape[-1]:
            raise ValueError(
                f"conditioning upsampled to {c_up.shape[-1]} samples, input has "
                f"{x.shape[-1]}"
            )
        return self.forward_upsampled(x, c_up, self.global_condition(g))

    def forward_upsampled(
        self, x: torch.Tensor, c_up: Optional[torch.Tensor], g: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """Logits (B, out, T) from conditioning already upsampled (B, aux, T) and
        the speaker term of :meth:`global_condition` (either may be None): the
        layers' own projections of both, then the residual stack."""
        h = self.embed_input(x)
        skips = 0
        for block in self.blocks:
            h, s = block(h, block.project_conditioning(c_up, g))
            skips = skips + s
        return self.output_head(skips)
