"""A whole residual layer as one autograd function, for float training on the CPU.

What it saves over :class:`ResidualBlock`'s layer of separate ops is memory
traffic, which bounds CPU training (each layer's activations are megabytes,
larger than a core's L2): the gate input is computed in place in the buffer
holding its conditioning term (bias included), the gate's activations are
written over it and, in the backward pass, the gate's gradient over them; the
skip output is added in place into the running sum by its product; the
residual sum and its scale are the product's own epilogue. Backward is written
out by hand for the same reason. The function is :meth:`ResidualBlock.forward`'s
(the tests check values and every gradient in float64).
"""

from typing import List, Optional, Tuple

import torch


class _ResidualLayerMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h, skips, w_dil, w_res, b_res, w_skip, dilation: int, scale: float):
        ctx.set_materialize_grads(False)
        b, _, t = x.shape
        half = h.shape[1] // 2
        taps = _taps(w_dil)
        h.baddbmm_(taps[-1].expand(b, -1, -1), x)
        for k, shift in _shifts(len(taps), dilation, t):
            h[:, :, shift:].baddbmm_(taps[k].expand(b, -1, -1), x[:, :, : t - shift])
        th, sg = h[:, :half], h[:, half:]
        th.tanh_()
        sg.sigmoid_()
        z = th * sg
        skips.baddbmm_(w_skip.expand(b, -1, -1), z)
        # h is the caller's scratch (see residual_layer_mm), not marked dirty:
        # it may be a view (autograd refuses several outputs then); were it saved
        # for another backward, its version counter still catches the change
        ctx.mark_dirty(skips)
        ctx.dilation, ctx.scale, ctx.residual = dilation, scale, w_res is not None
        ctx.save_for_backward(x, h, z, w_dil, w_res, w_skip)
        if w_res is None:
            return skips
        out = torch.add(x, b_res[:, None])
        out.baddbmm_(w_res.expand(b, -1, -1), z, beta=scale, alpha=scale)
        return skips, out

    @staticmethod
    def backward(ctx, *grads):
        x, h, z, w_dil, w_res, w_skip = ctx.saved_tensors
        d_skips = grads[0]
        d_out = grads[1] if ctx.residual else None
        b, _, t = x.shape
        half = h.shape[1] // 2
        scale = ctx.scale
        if d_skips is None:
            d_skips = x.new_zeros(b, w_skip.shape[0], t)
        dz = torch.bmm(w_skip.t().expand(b, -1, -1), d_skips)
        dw_skip = _summed_outer(d_skips, z)
        dw_res = db_res = None
        if d_out is not None:
            dz.baddbmm_(w_res.t().expand(b, -1, -1), d_out, alpha=scale)
            dw_res = _summed_outer(d_out, z).mul_(scale)
            db_res = d_out.sum((0, 2)).mul_(scale)
        # the gate's gradient, written over its activations
        th, sg = h[:, :half], h[:, half:]
        dz_t = dz * th
        dz.mul_(sg)
        torch.ops.aten.tanh_backward.grad_input(dz, th, grad_input=th)
        torch.ops.aten.sigmoid_backward.grad_input(dz_t, sg, grad_input=sg)
        dh = h
        taps = _taps(w_dil)
        dw = [None] * len(taps)
        dw[-1] = _summed_outer(dh, x)
        if d_out is not None:
            dx = torch.baddbmm(d_out, taps[-1].t().expand(b, -1, -1), dh, beta=scale)
        else:
            dx = torch.bmm(taps[-1].t().expand(b, -1, -1), dh)
        for k, shift in _shifts(len(taps), ctx.dilation, t):
            dw[k] = _summed_outer(dh[:, :, shift:], x[:, :, : t - shift])
            dx[:, :, : t - shift].baddbmm_(taps[k].t().expand(b, -1, -1), dh[:, :, shift:])
        for k in range(len(taps)):
            if dw[k] is None:  # the tap reaches before the start everywhere
                dw[k] = w_dil.new_zeros(w_dil.shape[:2])
        return (dx, dh, d_skips, torch.stack(dw, dim=-1), dw_res, db_res,
                dw_skip, None, None)


def _taps(w: torch.Tensor) -> List[torch.Tensor]:
    """(C_out, C_in, K) -> K contiguous (C_out, C_in) matrices."""
    return [w[..., k].contiguous() for k in range(w.shape[-1])]


def _shifts(k_size: int, dilation: int, length: int) -> List[Tuple[int, int]]:
    """(tap, delay) of the delayed taps that reach inside the sequence."""
    out = []
    for k in range(k_size - 1):
        shift = (k_size - 1 - k) * dilation
        if shift < length:
            out.append((k, shift))
    return out


def _summed_outer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum over the batch of a_i b_i^T: (B, M, T), (B, N, T) -> (M, N)."""
    out = torch.mm(a[0], b[0].t())
    for i in range(1, a.shape[0]):
        out.addmm_(a[i], b[i].t())
    return out


def residual_layer_mm(
    x: torch.Tensor,
    h: torch.Tensor,
    skips: torch.Tensor,
    w_dil: torch.Tensor,
    w_res: Optional[torch.Tensor],
    b_res: Optional[torch.Tensor],
    w_skip: torch.Tensor,
    dilation: int,
    scale: float,
) -> Tuple[Optional[torch.Tensor], torch.Tensor]:
    """One layer: x (B, R, T); ``h`` (B, G, T) its gate input's conditioning
    term plus the dilated conv's bias, a fresh tensor the layer takes over;
    ``skips`` (B, S, T) the running skip sum, added to in place; ``w_dil``
    (G, R, K); ``w_res`` (R, G/2) or None (the last layer); ``w_skip`` (S, G/2).
    Returns the residual output ``(x + w_res z + b_res) * scale`` (None without
    ``w_res``) and ``skips + w_skip z``, z the gated activation."""
    if w_res is None:
        skips = _ResidualLayerMM.apply(x, h, skips, w_dil, None, None, w_skip,
                                       dilation, scale)
        return None, skips
    skips, out = _ResidualLayerMM.apply(x, h, skips, w_dil, w_res, b_res, w_skip,
                                           dilation, scale)
    return out, skips
