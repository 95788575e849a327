"""The whole residual stack as one autograd function, run by the compiled kernel.

For float training on the CPU: ``csrc/train_stack.h`` runs every layer of one
batch element on one thread, tile by tile of 64 samples, so a layer's gate
input, activations and outputs stay in the core's caches and memory sees only
what the backward pass keeps (each layer's input and gate activations). The
conditioning arrives at frame rate (every layer's projection of the frames,
its coefficients of the stretch, and a per-layer offset: conv bias plus
speaker term) and is stretched inside the tile. The function is
:class:`~espnet_wavenet.layers.residual_block.ResidualBlock`'s stack with
kernel size 2 (the tests compare values and every gradient with the network's
other forwards).
"""

import ctypes
import logging
from typing import Dict, Optional, Sequence, Tuple

import torch

TILE = 64  # samples per tile: csrc/train_stack.h's TT


# Each training step's saved activations (hundreds of MB) in the buffers the
# previous backward pass released: freshly allocated, the kernel page-faulted
# its way through them every micro-batch (about a third of the forward's time).
_SPARE: Dict[Tuple[torch.Size, torch.Size], Tuple[torch.Tensor, torch.Tensor]] = {}


def _buffers(x0: torch.Tensor, n_layers: int, gate: int) -> Tuple[torch.Tensor, torch.Tensor]:
    b, r, t = x0.shape
    shapes = (torch.Size((n_layers, b, r, t)), torch.Size((n_layers, b, gate, t)))
    spare = _SPARE.pop(shapes, None)
    if spare is not None:
        return spare
    return x0.new_empty(shapes[0]), x0.new_empty(shapes[1])


def _ptr(t: Optional[torch.Tensor]) -> Optional[int]:
    return None if t is None else t.data_ptr()


class _ResidualStack(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x0, proj, coef, offset, w_dil, w_out, b_res, dilations, scale, lib):
        from espnet_wavenet.generation.cpu import abi

        b, r, t = x0.shape
        n_layers, g = w_dil.shape[:2]
        s = w_out.shape[1] - r
        xs, acts = _buffers(x0, n_layers, g)
        xs[0] = x0
        skips = x0.new_empty(b, s, t)
        dil = torch.tensor(dilations, dtype=torch.int32)
        call = abi.Stack(
            B=b, T=t, L=n_layers, R=r, G=g, S=s,
            F=0 if proj is None else proj.shape[-1],
            hop=0 if proj is None else coef.shape[-1],
            n_coef=1 if proj is None else coef.shape[1],
            n_threads=torch.get_num_threads(), scale=scale,
            dilations=dil.data_ptr(), w_dil=w_dil.data_ptr(), w_out=w_out.data_ptr(),
            b_res=b_res.data_ptr(), proj=_ptr(proj), coef=_ptr(coef), offset=offset.data_ptr(),
            xs=xs.data_ptr(), acts=acts.data_ptr(), skips=skips.data_ptr(),
        )
        err = lib.wn_stack_forward(ctypes.byref(call))
        if err:
            raise ValueError(f"training kernel refused the stack's shapes (code {err})")
        ctx.call, ctx.lib, ctx.dil, ctx.released = call, lib, dil, False
        ctx.save_for_backward(xs, acts, proj, coef, offset, w_dil, w_out, b_res)
        return skips

    @staticmethod
    def backward(ctx, d_skips):
        if ctx.released:
            raise RuntimeError("the CPU training kernel's saved activations were released after "
                               "the first backward pass (retain_graph is not supported there)")
        xs, acts, proj, coef, offset, w_dil, w_out, b_res = ctx.saved_tensors
        call = ctx.call
        d_skips = d_skips.contiguous()
        grads = dict(
            d_x0=torch.empty_like(xs[0]), d_w_dil=torch.empty_like(w_dil),
            d_w_out=torch.empty_like(w_out), d_b_res=torch.empty_like(b_res),
            d_offset=torch.zeros_like(offset),
            d_proj=None if proj is None else torch.zeros_like(proj),
            d_coef=None if proj is None else torch.empty_like(coef),
        )
        call.d_skips = d_skips.data_ptr()
        for name, tensor in grads.items():
            setattr(call, name, _ptr(tensor))
        err = ctx.lib.wn_stack_backward(ctypes.byref(call))
        if err:
            raise ValueError(f"training kernel refused the stack's shapes (code {err})")
        ctx.released = True  # the next forward may write over xs and acts
        _SPARE[(xs.shape, acts.shape)] = (xs, acts)
        return (grads["d_x0"], grads["d_proj"], grads["d_coef"], grads["d_offset"],
                grads["d_w_dil"], grads["d_w_out"], grads["d_b_res"], None, None, None)


class StackKernel:
    """The compiled stack as :class:`~espnet_wavenet.models.wavenet.WaveNet`
    uses it (its ``stack_kernel``; the training model attaches one)."""

    def __init__(self, lib: ctypes.CDLL):
        self.lib = lib

    @classmethod
    def load(cls) -> Optional["StackKernel"]:
        """The kernel, or None where none can load (then torch ops train)."""
        from espnet_wavenet.generation.cpu import abi

        try:
            lib = abi.load()
        except (OSError, RuntimeError) as e:
            logging.warning("no compiled training kernel, torch ops instead: %s", e)
            return None
        return None if lib is None else cls(lib)

    def __deepcopy__(self, memo) -> "StackKernel":
        return self  # a loaded library, shared

    def __reduce__(self):
        return (StackKernel.load, ())

    @staticmethod
    def supports(residual: int, gate: int, skip: int, kernel_size: int, length: int,
                 hop: Optional[int]) -> bool:
        """Whether the kernel takes these sizes (else the caller keeps torch
        ops); ``hop`` None: no mel conditioning."""
        return (kernel_size == 2 and residual % 16 == 0 and gate % 64 == 0 and skip % 16 == 0
                and length >= TILE and length % TILE == 0 and (hop is None or hop % 16 == 0))

    def __call__(
        self,
        x0: torch.Tensor,
        proj: Optional[torch.Tensor],
        coef: Optional[torch.Tensor],
        offset: torch.Tensor,
        w_dil: torch.Tensor,
        w_out: torch.Tensor,
        b_res: torch.Tensor,
        dilations: Sequence[int],
        scale: float,
    ) -> torch.Tensor:
        """The summed skip outputs (B, S, T), skip biases not included.

        ``x0`` (B, R, T) the first layer's input; ``proj`` (B, L, G, F) every
        layer's projection of the frames and ``coef`` (F, 2 r + 1, hop) the
        stretch's coefficients (``ConditioningUpsampler.frame_band``), or both
        None; ``offset`` (B, L, G); ``w_dil`` (L, G, 2 R): the newest tap's
        weights, then the delayed one's; ``w_out`` (L, S + R, G / 2): skip rows,
        then residual rows (zeros for the last layer); ``b_res`` (L, R). Float32
        CPU tensors."""
        args = [x0, proj, coef, offset, w_dil, w_out, b_res]
        args = [None if a is None else a.contiguous() for a in args]
        return _ResidualStack.apply(*args, tuple(int(d) for d in dilations), float(scale),
                                    self.lib)
