"""Weights of a WaveNet laid out for the kernel (see ``csrc/matvec.h``, ``int8.h``).

Every channel count is padded to a multiple of :data:`PANEL`; each matrix is
cut into panels of the kernel's vector width in rows, each panel stored column
by column, so a matrix-vector product streams memory linearly. int8 matrices
get per-row scales and the row sums the kernel needs to undo the activations'
unsigned offset. The per-layer conditioning weights stay float32 for the
Python-side projection.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch

from espnet_wavenet.distributions import Distribution, Gaussian, MixtureOfLogistics, MuLawSoftmax
from espnet_wavenet.generation.cpu import abi
from espnet_wavenet.models.wavenet import WaveNet

# Every channel count is padded to a multiple of this; the kernel's panels
# (its vector width: 16 rows with AVX-512, 8 with AVX2, 4 without) divide it.
PANEL = 16
_DIST_NAMES = {MuLawSoftmax: "mulaw", MixtureOfLogistics: "mol", Gaussian: "gaussian"}


def dist_code(dist: Distribution) -> int:
    """The kernel's code of a distribution (ValueError if it has none)."""
    name = _DIST_NAMES.get(type(dist))
    if name is None:
        raise ValueError(f"unsupported distribution {type(dist).__name__}")
    return abi.DISTRIBUTIONS.index(name)


def pad(n: int) -> int:
    return -(-n // PANEL) * PANEL


def pad_vec(v: Optional[torch.Tensor], n: int) -> torch.Tensor:
    out = torch.zeros(n)
    if v is not None:
        out[: v.numel()] = v.detach().float().reshape(-1)
    return out


def panels(w: torch.Tensor, rows_p: int, panel: int) -> torch.Tensor:
    """(rows, cols) -> padded rows, cut into ``panel``-row panels stored column-major."""
    rows, cols = w.shape
    full = w.new_zeros(rows_p, cols)
    full[:rows] = w
    return full.reshape(rows_p // panel, panel, cols).transpose(1, 2).contiguous()


def split_gate(w: torch.Tensor, hp: int) -> torch.Tensor:
    """(G, ...) -> (2 hp, ...): filter half padded to hp, then gate half."""
    h = w.shape[0] // 2
    out = w.new_zeros(2 * hp, *w.shape[1:])
    out[:h] = w[:h]
    out[hp : hp + h] = w[h:]
    return out


def quantize(w: torch.Tensor, panel: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded (rows, cols) float matrix -> int8 panels for the kernel's integer
    products (``panel`` rows, columns in groups of 4), per-row scales and 128 * row sums."""
    rows, cols = w.shape
    scale = w.abs().amax(dim=1) / 127.0
    q = torch.where(scale[:, None] > 0, w / scale.clamp(min=1e-30)[:, None], torch.zeros_like(w))
    q = q.round().clamp(-127, 127).to(torch.int8)
    csum = (q.to(torch.int32).sum(dim=1) * 128).to(torch.int32)
    p = q.reshape(rows // panel, panel, cols // 4, 4).transpose(1, 2).contiguous()
    return p.reshape(-1), scale.float().contiguous(), csum.contiguous()


# What the kernel reads at every step, whatever the batch (the conditioning is
# projected per frame in Python, the embedding is one row per stream).
STEP_TENSORS = ("wconv", "wrs", "qconv", "qconv_s", "qconv_c", "qrs", "qrs_s", "qrs_c",
                "brs", "w1", "b1", "w2", "b2")


@dataclass
class PackedNet:
    """A network packed for the kernel.

    ``model`` points into ``tensors`` (keep this object alive while the kernel
    runs); ``aux_w`` (aux, L * 2 Hp), ``glob_w`` (L * 2 Hp, gin) and ``bias``
    (L * 2 Hp) form each layer's conditioning, in the kernel's gate-row order.
    """

    model: abi.Model
    tensors: Dict[str, torch.Tensor]
    dims: Dict[str, int]
    aux_w: Optional[torch.Tensor]
    glob_w: Optional[torch.Tensor]
    bias: torch.Tensor
    first_cls: int  # the class fed before the first sample (mu-law of 0)

    def step_bytes(self) -> int:
        """Bytes of weights the kernel reads per generated step (shared by the
        streams of a call): what must come from cache or memory per step."""
        return sum(self.tensors[n].nbytes for n in STEP_TENSORS if n in self.tensors)


@torch.no_grad()
def pack(net: WaveNet, dist: Distribution, precision: str, panel: int) -> PackedNet:
    """Lay ``net`` out for the kernel with ``precision`` matrices and
    ``panel``-row panels (the kernel's ``wn_panel_rows``)."""
    blocks = list(net.blocks)
    L, K = len(blocks), net.kernel_size
    R, G, S, O = net.residual_channels, net.gate_channels, net.skip_channels, net.out_channels
    Rp, Hp, Sp, Op = pad(R), pad(G // 2), pad(S), pad(O)
    wdt = torch.float16 if precision == "float16" else torch.float32
    t = {}  # every tensor the kernel reads
    t["dil"] = torch.tensor([b.dilation for b in blocks], dtype=torch.int32)
    if net.input_type == "categorical":
        emb = net.first.weight.detach().float()
        t["emb_w"] = torch.zeros(emb.shape[0], Rp)
        t["emb_w"][:, :R] = emb
        t["emb_b"] = torch.zeros(Rp)
    else:
        t["emb_w"] = pad_vec(net.first.weight, Rp)
        t["emb_b"] = pad_vec(net.first.bias, Rp)
    taps, rs, brs = [], [], []  # taps: per layer and tap, (2 Hp, Rp)
    aux, glob, bias = [], [], []
    for b in blocks:
        w = b.conv.weight.detach().float()  # (G, R, K)
        m = torch.zeros(G, K, Rp)
        m[:, :, :R] = w.permute(0, 2, 1)
        taps += [split_gate(m[:, k], Hp) for k in range(K)]
        m = torch.zeros(Rp + Sp, Hp)
        # A block without conv_res (the last one) only feeds the skips; the
        # kernel's residual update after it is never read.
        if b.conv_res is None and b is not blocks[-1]:
            raise ValueError("only the last block may lack a residual conv")
        if b.conv_res is not None:
            m[:R, : G // 2] = b.conv_res.weight.detach().float()[:, :, 0]
        m[Rp : Rp + S, : G // 2] = b.conv_skip.weight.detach().float()[:, :, 0]
        rs.append(m)
        res_bias = b.conv_res.bias if b.conv_res is not None else None
        brs.append(torch.cat([pad_vec(res_bias, Rp), pad_vec(b.conv_skip.bias, Sp)]))
        bias.append(split_gate(pad_vec(b.conv.bias, G), Hp))
        if b.conv_aux is not None:
            aux.append(split_gate(b.conv_aux.weight.detach().float()[:, :, 0], Hp))
        if b.conv_global is not None:
            glob.append(split_gate(b.conv_global.weight.detach().float()[:, :, 0], Hp))
    if precision == "int8":
        for name, mats in (("qconv", taps), ("qrs", rs)):
            q = [quantize(x, panel) for x in mats]
            t[name], t[name + "_s"], t[name + "_c"] = (torch.cat(v) for v in zip(*q))
    else:  # per layer and tap a (2 Hp, Rp) matrix, as int8's: each thread's taps contiguous
        t["wconv"] = torch.stack([panels(x, 2 * Hp, panel) for x in taps]).to(wdt)
        t["wrs"] = torch.stack([panels(x, Rp + Sp, panel) for x in rs]).to(wdt)
    t["brs"] = torch.stack(brs).contiguous()
    # Columns padded too: the kernel reads Sp columns (the padded skips are
    # zero, but unpadded columns would read past the buffer).
    w1 = torch.zeros(S, Sp)
    w1[:, :S] = net.out1.weight.detach().float()[:, :, 0]
    t["w1"] = panels(w1, Sp, panel).to(wdt)
    t["b1"] = pad_vec(net.out1.bias, Sp)
    w2 = torch.zeros(O, Sp)
    w2[:, :S] = net.out2.weight.detach().float()[:, :, 0]
    t["w2"] = panels(w2, Op, panel).to(wdt)
    t["b2"] = pad_vec(net.out2.bias, Op)
    if isinstance(dist, MuLawSoftmax):
        classes = torch.arange(dist.quantization_channels)
        dec = dist.decode(classes).float()
        t["dec"] = dec.contiguous()
        t["enc"] = dist.encode_input(dec).to(torch.int32).contiguous()
        first_cls = int(dist.encode_input(torch.zeros(1))[0])
    else:
        t["dec"] = torch.zeros(1)
        t["enc"] = torch.zeros(1, dtype=torch.int32)
        first_cls = 0
    model = abi.Model(
        L=L, K=K, Rp=Rp, Hp=Hp, Sp=Sp, Op=Op, O=O,
        input_type=abi.INPUT_TYPES.index(net.input_type),
        dist=dist_code(dist),
        n_mix=getattr(dist, "num_mixtures", 0),
        n_classes=t["emb_w"].shape[0] if net.input_type == "categorical" else 0,
        prec=abi.PRECISIONS.index(precision),
        skip_scale=net.skip_scale,
    )
    for name, v in t.items():
        setattr(model, name, v.data_ptr())
    return PackedNet(
        model=model,
        tensors=t,
        dims=dict(L=L, K=K, Rp=Rp, Hp=Hp, Sp=Sp, Op=Op, O=O),
        # Conditioning projection for all layers at once: (aux, L * 2 Hp).
        aux_w=torch.cat(aux).t().contiguous() if aux else None,
        glob_w=torch.cat(glob) if glob else None,
        bias=torch.cat(bias),
        first_cls=first_cls,
    )
