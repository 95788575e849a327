"""Learned upsampler from feature frames to the sample rate."""

from typing import Optional, Sequence

import numpy as np
import torch

from espnet_wavenet.utils.matmul import row_stable_mm


class ConditioningUpsampler(torch.nn.Module):
    """Frame-rate features -> sample-rate features, total scale = prod(scales).

    An optional context conv (kernel 2 * aux_context_window + 1, no padding) first
    lets every frame see a few neighbouring frames; then, for each scale s, the
    frames are repeated s times and smoothed by a length-(2s+1) conv shared across
    feature channels (nearest-neighbour stretch plus learned smoothing avoids the
    checkerboard artefacts of transposed convs).

    Shapes: (B, C, T_frames + 2 * aux_context_window) -> (B, C, T_frames * hop).
    """

    def __init__(
        self,
        aux_channels: int,
        upsample_scales: Sequence[int],
        aux_context_window: int = 0,
    ):
        super().__init__()
        if len(upsample_scales) == 0 or any(int(s) < 1 for s in upsample_scales):
            raise ValueError(f"bad upsample_scales {list(upsample_scales)}")
        self.scales = [int(s) for s in upsample_scales]
        self.hop = int(np.prod(self.scales))
        self.aux_context_window = int(aux_context_window)
        self.conv_in = (
            torch.nn.Conv1d(
                aux_channels, aux_channels, 2 * aux_context_window + 1, bias=False
            )
            if aux_context_window > 0
            else None
        )
        self.reach = stretch_reach(self.scales)
        self.smooth = torch.nn.ModuleList()
        for s in self.scales:
            conv = torch.nn.Conv1d(1, 1, 2 * s + 1, padding=s, bias=False)
            # Start as a moving average: a sensible interpolation before training.
            torch.nn.init.constant_(conv.weight, 1.0 / (2 * s + 1))
            self.smooth.append(conv)

    def context(self, c: torch.Tensor) -> torch.Tensor:
        """The context conv, (B, C, T + 2 w) -> (B, C, T), as one matrix product
        over (batch x frame) rows that rounds each frame alike however many
        frames there are (a conv's algorithm depends on the length): streaming
        then equals offline generation."""
        if self.conv_in is None:
            return c
        b, ch, t = c.shape
        k = self.conv_in.kernel_size[0]
        cols = c.unfold(2, k, 1).transpose(1, 2).reshape(b * (t - k + 1), ch * k)
        w = self.conv_in.weight.reshape(self.conv_in.out_channels, ch * k)
        return row_stable_mm(cols, w.t()).reshape(b, t - k + 1, -1).transpose(1, 2)

    def stretch(self, x: torch.Tensor) -> torch.Tensor:
        """The repeat-and-smooth chain on every channel: (N, 1, T) -> (N, 1, T * hop)."""
        for s, conv in zip(self.scales, self.smooth):
            x = conv(torch.repeat_interleave(x, s, dim=-1))
        return x

    # ---- which frames a sample depends on (the stretch's dependency cone)
    # Output position p of a (repeat s, conv 2s+1, pad s) stage reads the stage's
    # inputs (p - s) // s .. (p + s) // s; chained from the last stage back.
    # ``n`` is a sample index (int or integer tensor); frames count after the
    # context conv, and may fall outside the sequence (< 0 or >= T) at its ends.

    def first_frame(self, n):
        """First context-conv output frame sample ``n`` depends on."""
        for s in reversed(self.scales):
            n = (n - s) // s
        return n

    def last_frame(self, n):
        """Last context-conv output frame sample ``n`` depends on."""
        for s in reversed(self.scales):
            n = (n + s) // s
        return n

    def last_input_frame(self, n: int) -> int:
        """Last input frame (before the context conv) sample ``n`` depends on."""
        return self.last_frame(n) + self.aux_context_window

    def lookahead_frames(self) -> int:
        """Frames that must arrive after frame j before all of j's samples can be made."""
        j = 16  # any frame away from the start: the look-ahead is shift-invariant
        return self.last_input_frame(j * self.hop + self.hop - 1) - j

    @torch.no_grad()
    def impulse_combs(self, n_frames: int, width: int) -> torch.Tensor:
        """(n_frames * hop, width): the stretch of comb r (impulses at the frames
        congruent to r modulo ``width``) at every sample."""
        x = torch.zeros(width, 1, n_frames)
        for r in range(width):
            x[r, 0, r::width] = 1.0
        return self.stretch(x)[:, 0, :].t().float().contiguous()

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        c = self.context(c)
        b, ch, t = c.shape
        return self.stretch(c.reshape(b * ch, 1, t)).reshape(b, ch, -1)

    def frame_band(self, n_frames: int) -> torch.Tensor:
        """The stretch as per-frame coefficients (n_frames, 2 r + 1, hop), r =
        :attr:`reach`: sample ``f * hop + p`` is ``sum_j coef[f, j, p] *
        frame[f + j - r]`` (frames outside the sequence count as zero).

        Computed from the responses to single frames (so it carries the smoothing
        weights' gradient) of a sequence of at most 2 r + 3 frames: every frame
        farther than r from both ends has the same coefficients, only the edges
        (zero padding) differ."""
        r, hop = self.reach, self.hop
        margin = r + 1
        n = min(n_frames, 2 * margin + 1)
        w = self.smooth[0].weight
        resp = self.stretch(torch.eye(n, dtype=w.dtype, device=w.device).unsqueeze(1))
        resp = torch.nn.functional.pad(resp[:, 0], (0, 0, r, r)).view(n + 2 * r, n, hop)
        f = torch.arange(n, device=w.device)
        coef = torch.stack([resp[f + j, f] for j in range(2 * r + 1)], dim=1)
        if n < n_frames:  # interior frames share the middle one's coefficients
            inner = coef[margin : margin + 1].expand(n_frames - 2 * margin, -1, -1)
            coef = torch.cat([coef[:margin], inner, coef[n - margin :]])
        return coef

    def stretch_frames(
        self, p: torch.Tensor, band: torch.Tensor, offset: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """(B, C, F) -> (B, C, F * hop) with ``band = frame_band(F)``: the same
        as :meth:`stretch` on every channel, in (2 r + 1) multiply-adds per
        output sample (a banded matrix product), plus ``offset`` (B, C) or (C,),
        constant in time, if given. Returns a new tensor, contiguous."""
        b, ch, n = p.shape
        r = self.reach
        if n > 2 * r:
            return _BandStretch.apply(p, band, offset, r)
        windows = torch.nn.functional.pad(p, (r, r)).unfold(2, 2 * r + 1, 1)  # (B, C, F, w)
        out = torch.einsum("bcfw,fwp->bcfp", windows, band).reshape(b, ch, n * self.hop)
        return out if offset is None else out + offset[..., None]


class _BandStretch(torch.autograd.Function):
    """:meth:`ConditioningUpsampler.stretch_frames` where some frame lies r
    frames away from both ends: frames there share one set of coefficients
    (``band[r]``), so the whole output is one matrix product with those (the
    offset as one more column, of ones), then the 2 r edge frames are corrected
    in place. Backward by hand: autograd's in-place bookkeeping on views of the
    output (a copy of the whole gradient per edge) cost more than the product."""

    @staticmethod
    def forward(ctx, p, band, offset, r: int):
        # in p's dtype: under autocast the band may come in another (and an
        # out= product is not autocast's), the gradients go back in their own
        ctx.dtypes = (band.dtype, None if offset is None else offset.dtype)
        band = band.to(p.dtype)
        offset = None if offset is None else offset.to(p.dtype)
        b, ch, n = p.shape
        w, hop = 2 * r + 1, band.shape[-1]
        cols = p.new_empty(b, ch, n, w + (offset is not None))
        cols[..., :w] = torch.nn.functional.pad(p, (r, r)).unfold(2, w, 1)
        inner = band[r]
        if offset is not None:
            cols[..., w] = offset.expand(b, ch)[..., None]
            inner = torch.cat([inner, inner.new_ones(1, hop)])
        # the product into the returned tensor itself: a view of it, returned,
        # could not be modified in place by the layer that takes it over
        out = p.new_empty(b, ch, n * hop)
        torch.mm(cols.view(-1, cols.shape[-1]), inner, out=out.view(-1, hop))
        frames = out.view(b, ch, n, hop)
        for edge in _edges(n, r):
            frames[:, :, edge] += torch.einsum("bcfw,fwp->bcfp", cols[:, :, edge, :w],
                                               band[edge] - band[r])
        ctx.r = r
        ctx.offset_shape = None if offset is None else offset.shape
        ctx.save_for_backward(cols, band)
        return out

    @staticmethod
    def backward(ctx, dout):
        cols, band = ctx.saved_tensors
        r = ctx.r
        b, ch, n, k = cols.shape
        w, hop = 2 * r + 1, band.shape[-1]
        dout = dout.to(cols.dtype).contiguous().view(b, ch, n, hop)
        dp = dband = doffset = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[2]:
            inner = band[r] if k == w else torch.cat([band[r], band.new_ones(1, hop)])
            dcols = torch.mm(dout.view(-1, hop), inner.t()).view(b, ch, n, k)
            for edge in _edges(n, r):
                dcols[:, :, edge, :w] += torch.einsum("bcfp,fwp->bcfw", dout[:, :, edge],
                                                      band[edge] - band[r])
            if ctx.needs_input_grad[0]:
                dpad = dcols.new_zeros(b, ch, n + 2 * r)
                for j in range(w):  # column j of frame f read padded frame f + j
                    dpad[:, :, j : j + n] += dcols[..., j]
                dp = dpad[:, :, r : r + n]
            if ctx.needs_input_grad[2]:
                doffset = dcols[..., w].sum(2).sum_to_size(ctx.offset_shape).to(ctx.dtypes[1])
        if ctx.needs_input_grad[1]:
            dband = band.new_zeros(band.shape)
            dband[r] = torch.mm(cols.view(-1, k).t(), dout.view(-1, hop))[:w]
            for edge in _edges(n, r):
                g = torch.einsum("bcfw,bcfp->fwp", cols[:, :, edge, :w], dout[:, :, edge])
                dband[edge] += g
                dband[r] -= g.sum(0)
            dband = dband.to(ctx.dtypes[0])
        return dp, dband, doffset, None


def _edges(n: int, r: int):
    """The frames within r of either end (slices), for n > 2 r frames."""
    return [slice(0, r), slice(n - r, n)] if r > 0 else []


def stretch_reach(scales: Sequence[int]) -> int:
    """Frames on each side of a sample's own frame that the repeat-and-smooth
    chain reaches (each stage one input sample each way: 1 + 1/4 + ... frames
    for scales 4, 4, 4, 4, so 2), found from the chain's structure."""
    hop, n = int(np.prod(scales)), 2 * len(scales) + 3
    x = torch.eye(n).unsqueeze(1)
    for s in scales:
        ones = torch.ones(1, 1, 2 * s + 1)
        x = torch.nn.functional.conv1d(torch.repeat_interleave(x, s, dim=-1), ones, padding=s)
    src, t = torch.nonzero(x[:, 0] > 0, as_tuple=True)
    return int((src - t // hop).abs().max())


def pad_context(c: torch.Tensor, context: int, right: bool = True,
                left: bool = True) -> torch.Tensor:
    """Replicate-pad (B, C, T) frames by ``context`` frames on both sides
    (streaming: not on the right before the end is known, not on the left
    once the first frame is no longer needed)."""
    sides = (context if left else 0, context if right else 0)
    if context <= 0 or sides == (0, 0):
        return c
    return torch.nn.functional.pad(c, sides, mode="replicate")
