"""Fast CPU generator: one compiled call runs all layers for many samples.

Same interface and semantics as :class:`ReferenceGenerator` (same noise, same
sampling rules, same outputs up to float rounding). Before the loop, weights
are packed once into 16-row panels (see ``csrc/wavenet_fast.cpp``) and the
conditioning of every layer (aux projection + speaker projection + conv bias)
is projected for a chunk of time steps with one batched matmul. The compiled
loop then runs the chunk for the whole batch, threads splitting the batch.

:meth:`FastGenerator.generate_from_frames` (what the vocoder and the streaming
API use) projects at frame rate instead and forms each sample's conditioning
in the kernel from the 3-4 projected frames it depends on (see
"frame-rate conditioning" below). With fewer streams than threads, each
stream runs on a pair of threads as a pipeline (``split``; see the kernel);
every path rounds identically, so a batch equals its utterances one by one
whatever the thread layout. ``precision`` picks float32 (exact), float16 or
int8 weights.
"""

import ctypes
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Tuple

import torch

from espnet_wavenet.distributions import (
    Distribution,
    Gaussian,
    MixtureOfLogistics,
    MuLawSoftmax,
)
from espnet_wavenet.generation import extension
from espnet_wavenet.generation.extension import PRECISIONS
from espnet_wavenet.models.wavenet import WaveNet
from espnet_wavenet.utils.matmul import row_stable_mm

# Every channel count is padded to a multiple of this; the kernel's panels
# (its vector width: 16 rows with AVX-512, 8 with AVX2) divide it.
PANEL = 16
# Floats of precomputed conditioning held at once (bounds memory: 32 MB).
COND_BUDGET = 8 * 1024 * 1024
CHUNK = 2048  # steps per kernel call (pipelined with the next projection)
# Above this a spin exchange means another process holds a core: the pipeline's
# threads would wait on each other (and on it) more than they gain.
SPLIT_MAX_BARRIER_NS = 500.0
SPLIT_PROBE_EVERY_S = 30.0

_p = ctypes.c_void_p


class _Model(ctypes.Structure):
    _fields_ = [
        *[(n, ctypes.c_int32) for n in ("L", "K", "Rp", "Hp", "Sp", "Op", "O")],
        *[(n, ctypes.c_int32) for n in ("input_type", "dist", "n_mix", "n_classes")],
        ("prec", ctypes.c_int32),
        ("skip_scale", ctypes.c_float),
        *[
            (n, _p)
            for n in (
                "dil", "emb_w", "emb_b", "wconv", "wrs", "brs",
                "w1", "b1", "w2", "b2", "dec", "enc",
                "qconv", "qconv_s", "qconv_c", "qrs", "qrs_s", "qrs_c",
            )
        ],
    ]


class _Call(ctypes.Structure):
    _fields_ = [
        ("B", ctypes.c_int32),
        ("n_steps", ctypes.c_int32),
        ("t0", ctypes.c_int64),
        ("rings", _p),
        ("ring_bstride", ctypes.c_int64),
        ("ring_off", _p),
        ("ring_mask", _p),
        ("prev_cls", _p),
        ("prev_x", _p),
        ("cond", _p),
        ("cond_bstride", ctypes.c_int64),
        ("cond_tstride", ctypes.c_int64),
        ("cond_t0", ctypes.c_int64),
        ("noise", _p),
        ("noise_bstride", ctypes.c_int64),
        ("noise_dim", ctypes.c_int32),
        ("temperature", ctypes.c_float),
        ("log_scale_min", ctypes.c_float),
        ("out", _p),
        ("out_bstride", ctypes.c_int64),
        ("logits", _p),
        ("logits_bstride", ctypes.c_int64),
        ("n_threads", ctypes.c_int32),
        ("cond_mode", ctypes.c_int32),
        ("n_coef", ctypes.c_int32),
        ("frames", _p),
        ("frames_bstride", ctypes.c_int64),
        ("fidx", _p),
        ("coef", _p),
        ("coef_bstride", ctypes.c_int64),
        ("base", _p),
        ("split", ctypes.c_int32),
        ("forced_cls", _p),
        ("forced_x", _p),
        ("forced_bstride", ctypes.c_int64),
    ]


def _pad(n: int) -> int:
    return -(-n // PANEL) * PANEL


def fast_available(net: WaveNet) -> bool:
    """True when the kernel compiled and ``net`` is a CPU WaveNet it can run."""
    if extension.load_library() is None:
        return False
    try:
        device = next(net.parameters()).device
    except StopIteration:
        return False
    return device.type == "cpu" and net.gate_channels % 2 == 0


def _panels(w: torch.Tensor, rows_p: int, panel: int) -> torch.Tensor:
    """(rows, cols) -> padded rows, cut into ``panel``-row panels stored column-major."""
    rows, cols = w.shape
    full = w.new_zeros(rows_p, cols)
    full[:rows] = w
    return full.reshape(rows_p // panel, panel, cols).transpose(1, 2).contiguous()


def _split_gate(w: torch.Tensor, hp: int) -> torch.Tensor:
    """(G, ...) -> (2 hp, ...): filter half padded to hp, then gate half."""
    h = w.shape[0] // 2
    out = w.new_zeros(2 * hp, *w.shape[1:])
    out[:h] = w[:h]
    out[hp : hp + h] = w[h:]
    return out


def _quantize(w: torch.Tensor, panel: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded (rows, cols) float matrix -> int8 panels for the kernel's VNNI
    products (``panel`` rows, columns in groups of 4), per-row scales and 128 * row sums."""
    rows, cols = w.shape
    scale = w.abs().amax(dim=1) / 127.0
    q = torch.where(scale[:, None] > 0, w / scale.clamp(min=1e-30)[:, None], torch.zeros_like(w))
    q = q.round().clamp(-127, 127).to(torch.int8)
    csum = (q.to(torch.int32).sum(dim=1) * 128).to(torch.int32)
    panels = q.reshape(rows // panel, panel, cols // 4, 4).transpose(1, 2).contiguous()
    return panels.reshape(-1), scale.float().contiguous(), csum.contiguous()


def barrier_ns(lib: ctypes.CDLL, n: int = 2000) -> float:
    """Measured cost of one two-thread spin exchange (median of three, ns)."""
    fn = lib.wn_barrier_bench
    fn.restype = ctypes.c_double
    fn.argtypes = [ctypes.c_int64]
    return sorted(fn(n) for _ in range(3))[1]


def _pad_vec(v: Optional[torch.Tensor], n: int) -> torch.Tensor:
    out = torch.zeros(n)
    if v is not None:
        out[: v.numel()] = v.detach().float().reshape(-1)
    return out


class FastGenerator:
    """Compiled sample-by-sample generation (see the module docstring).

    Args:
        net: the WaveNet (on the CPU).
        dist: its output distribution.
        threads: worker threads across the batch (default: torch's thread count).
        precision: the layers' matrix weights: "float32" (default; equals the
            reference), "float16" (half the weight memory traffic) or "int8"
            (a quarter; per-row weight scales, activations quantized per vector
            on the fly, AVX-512 VNNI products; the output head stays float32).
            The lower precisions are not exact: their samples leave the float32
            ones within a few hundred steps, like another seed would, and
            ``bin/benchmark.py --quality_model`` measures what they cost in
            likelihood on real speech.
        split: let pairs of threads run a stream as a pipeline (one the
            critical chain of every layer, head and sampling; the other the next
            step's older taps and some skips; see the kernel), which the kernel
            does when the batch cannot keep every thread busy. None (default):
            only when a probe spin exchange is cheap (< SPLIT_MAX_BARRIER_NS;
            re-probed every SPLIT_PROBE_EVERY_S): when another process holds a
            core, spinning costs microseconds. The output is bitwise the same
            either way.
    """

    kind = "fast"

    def __init__(
        self,
        net: WaveNet,
        dist: Distribution,
        threads: Optional[int] = None,
        precision: str = "float32",
        split: Optional[bool] = None,
    ):
        self.lib = extension.load_library()
        if self.lib is None:
            raise RuntimeError(f"fast kernel unavailable: {extension.load_error()}")
        self.kernel = extension.kernel_kind()  # which build: an ISA level or "native"
        if isinstance(dist, MuLawSoftmax):
            self.dist_id = 0
        elif isinstance(dist, MixtureOfLogistics):
            self.dist_id = 1
        elif isinstance(dist, Gaussian):
            self.dist_id = 2
        else:
            raise ValueError(f"unsupported distribution {type(dist).__name__}")
        self.net = net.eval()
        self.dist = dist
        self.threads = threads or torch.get_num_threads()
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
        if precision == "int8" and not self.lib.wn_has_vnni():
            logging.warning(
                "no AVX-512 VNNI in this build of the kernel: int8 runs a portable loop, "
                "slower than float32 here (about 3x with AVX2, measured)"
            )
        self.precision = precision
        self.split = split
        self._key = None

    # ------------------------------------------------------------- packing
    def _weights_key(self):
        return tuple((p.data_ptr(), p._version) for p in self.net.parameters())

    @torch.no_grad()
    def _pack(self) -> None:
        """Pack the weights once (again only if the parameters changed)."""
        key = self._weights_key()
        if key == self._key:
            return
        net, dist = self.net, self.dist
        blocks = list(net.blocks)
        L, K = len(blocks), net.kernel_size
        R, G, S, O = (
            net.residual_channels,
            net.gate_channels,
            net.skip_channels,
            net.out_channels,
        )
        Rp, Hp, Sp, Op = _pad(R), _pad(G // 2), _pad(S), _pad(O)
        wdt = torch.float16 if self.precision == "float16" else torch.float32
        panel = int(self.lib.wn_panel_rows())  # the kernel's vector width
        t = {}  # every tensor the kernel reads; kept alive on self
        t["dil"] = torch.tensor([b.dilation for b in blocks], dtype=torch.int32)
        if net.input_type == "categorical":
            emb = net.first.weight.detach().float()
            t["emb_w"] = torch.zeros(emb.shape[0], Rp)
            t["emb_w"][:, :R] = emb
            t["emb_b"] = torch.zeros(Rp)
        else:
            t["emb_w"] = _pad_vec(net.first.weight, Rp)
            t["emb_b"] = _pad_vec(net.first.bias, Rp)
        taps, rs, brs = [], [], []  # taps: per layer and tap, (2 Hp, Rp)
        aux, glob, bias = [], [], []
        for b in blocks:
            w = b.conv.weight.detach().float()  # (G, R, K)
            m = torch.zeros(G, K, Rp)
            m[:, :, :R] = w.permute(0, 2, 1)
            taps += [_split_gate(m[:, k], Hp) for k in range(K)]
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
            brs.append(torch.cat([_pad_vec(res_bias, Rp), _pad_vec(b.conv_skip.bias, Sp)]))
            bias.append(_split_gate(_pad_vec(b.conv.bias, G), Hp))
            if b.conv_aux is not None:
                aux.append(_split_gate(b.conv_aux.weight.detach().float()[:, :, 0], Hp))
            if b.conv_global is not None:
                glob.append(_split_gate(b.conv_global.weight.detach().float()[:, :, 0], Hp))
        if self.precision == "int8":
            for name, mats in (("qconv", taps), ("qrs", rs)):
                q = [_quantize(x, panel) for x in mats]
                t[name], t[name + "_s"], t[name + "_c"] = (torch.cat(v) for v in zip(*q))
        else:  # every layer's taps side by side: (2 Hp, K Rp)
            conv = [torch.cat(taps[i : i + K], dim=1) for i in range(0, len(taps), K)]
            t["wconv"] = torch.stack([_panels(x, 2 * Hp, panel) for x in conv]).to(wdt)
            t["wrs"] = torch.stack([_panels(x, Rp + Sp, panel) for x in rs]).to(wdt)
        t["brs"] = torch.stack(brs).contiguous()
        # Columns padded too: the kernel reads Sp columns (the padded skips are
        # zero, but unpadded columns would read past the buffer).
        w1 = torch.zeros(S, Sp)
        w1[:, :S] = net.out1.weight.detach().float()[:, :, 0]
        t["w1"] = _panels(w1, Sp, panel).to(wdt)
        t["b1"] = _pad_vec(net.out1.bias, Sp)
        w2 = torch.zeros(O, Sp)
        w2[:, :S] = net.out2.weight.detach().float()[:, :, 0]
        t["w2"] = _panels(w2, Op, panel).to(wdt)
        t["b2"] = _pad_vec(net.out2.bias, Op)
        if isinstance(dist, MuLawSoftmax):
            classes = torch.arange(dist.quantization_channels)
            dec = dist.decode(classes).float()
            t["dec"] = dec.contiguous()
            t["enc"] = dist.encode_input(dec).to(torch.int32).contiguous()
            self._first_cls = int(dist.encode_input(torch.zeros(1))[0])
        else:
            t["dec"] = torch.zeros(1)
            t["enc"] = torch.zeros(1, dtype=torch.int32)
            self._first_cls = 0
        # Conditioning projection for all layers at once: (L * 2 Hp, aux).
        self._aux_w = torch.cat(aux).t().contiguous() if aux else None
        self._glob_w = torch.cat(glob) if glob else None
        self._bias = torch.cat(bias)
        self._t = t
        m = _Model(
            L=L, K=K, Rp=Rp, Hp=Hp, Sp=Sp, Op=Op, O=O,
            input_type=0 if net.input_type == "categorical" else 1,
            dist=self.dist_id,
            n_mix=getattr(dist, "num_mixtures", 0),
            n_classes=t["emb_w"].shape[0] if net.input_type == "categorical" else 0,
            prec=PRECISIONS.index(self.precision),
            skip_scale=net.skip_scale,
        )
        for name, v in t.items():
            setattr(m, name, v.data_ptr())
        self._model = m
        self._dims = dict(L=L, K=K, Rp=Rp, Hp=Hp, Sp=Sp, Op=Op, O=O)
        self._key = key

    def _may_pair(self) -> bool:
        """Whether threads may spin-wait on each other (the kernel then pairs
        them up when the batch cannot keep every thread busy)."""
        if self.threads < 2 or self.split is False:
            return False
        if self.split:
            return True
        # No load-average test: it counts this process's own generation threads.
        # A probe barrier is slow exactly when another process holds a core.
        if (os.cpu_count() or 1) < 2:
            return False
        now = time.monotonic()
        if now - getattr(self, "_probe_time", -math.inf) > SPLIT_PROBE_EVERY_S:
            self._probe_ok = barrier_ns(self.lib) < SPLIT_MAX_BARRIER_NS
            self._probe_time = now
        return self._probe_ok

    def _pool(self) -> ThreadPoolExecutor:
        if getattr(self, "_executor", None) is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="wavenet-cond")
        return self._executor

    # ---------------------------------------------------------- generation
    def new_state(self, batch: int) -> dict:
        """Per-stream state: layer input histories (rings) and the previous sample."""
        self._pack()
        d = self._dims
        offs, masks, off = [], [], 0
        for dil in self._t["dil"].tolist():
            slots = 1 << max(0, math.ceil(math.log2((d["K"] - 1) * dil + 1)))
            offs.append(off)
            masks.append(slots - 1)
            off += slots * d["Rp"]
        return dict(
            t=0,
            rings=torch.zeros(batch, off),
            ring_off=torch.tensor(offs, dtype=torch.int64),
            ring_mask=torch.tensor(masks, dtype=torch.int32),
            prev_cls=torch.full((batch,), self._first_cls, dtype=torch.int32),
            prev_x=torch.zeros(batch),
        )

    def _base_condition(self, batch: int, g: Optional[torch.Tensor]) -> torch.Tensor:
        """Conv bias + speaker projection per stream: (B, L * 2 Hp)."""
        base = self._bias.unsqueeze(0).expand(batch, -1).clone()
        gcond = self.net.global_condition(g)
        if gcond is not None and self._glob_w is not None:
            # Stream by stream: a batched matmul may round differently from a
            # single-row one, and a batch must equal its utterances one by one.
            for b in range(batch):
                base[b] += torch.mv(self._glob_w, gcond[b, :, 0].float())
        return base

    def _check(self, noise, out, logits) -> None:
        for name, x in (("noise", noise), ("out", out), ("logits", logits)):
            if x is not None and (x.dtype != torch.float32 or x.stride(-1) != 1):
                raise ValueError(f"{name} must be float32 with unit last stride")

    def _floor(self, log_scale_min: Optional[float]) -> float:
        floor = log_scale_min
        if floor is None:
            floor = getattr(self.dist, "log_scale_min", None)
        return float(floor) if floor is not None else -math.inf

    def _loop(self, state, n_steps, chunk, project, noise, out, temperature, floor, logits,
              forced=None):
        """Run the kernel chunk by chunk; ``project(s0, n)`` gives the chunk's
        conditioning as (call fields, tensors to keep alive).  ``forced``:
        (classes int32, values float32), both (B, >= n_steps): teacher forcing."""
        batch = state["rings"].shape[0]
        # The projection of chunk k+1 runs on a helper thread while the kernel
        # generates chunk k (both release the GIL).
        starts = list(range(0, n_steps, chunk))
        pool = self._pool() if len(starts) > 1 else None
        split = int(self._may_pair())
        pending = project(starts[0], min(chunk, n_steps)) if starts else None
        for i, s0 in enumerate(starts):
            n = min(chunk, n_steps - s0)
            t0 = state["t"]
            fields, _alive = pending.result() if i > 0 else pending
            if i + 1 < len(starts):
                s1 = starts[i + 1]
                pending = pool.submit(project, s1, min(chunk, n_steps - s1))
            lg = logits[:, s0 : s0 + n] if logits is not None else None
            if forced is not None:
                fields = dict(
                    fields, forced_cls=forced[0][:, s0:].data_ptr(),
                    forced_x=forced[1][:, s0:].data_ptr(), forced_bstride=forced[1].stride(0),
                )
            call = _Call(
                B=batch,
                n_steps=n,
                t0=t0,
                rings=state["rings"].data_ptr(),
                ring_bstride=state["rings"].shape[1],
                ring_off=state["ring_off"].data_ptr(),
                ring_mask=state["ring_mask"].data_ptr(),
                prev_cls=state["prev_cls"].data_ptr(),
                prev_x=state["prev_x"].data_ptr(),
                cond_t0=t0,
                noise=noise[:, s0:].data_ptr(),
                noise_bstride=noise.stride(0),
                noise_dim=noise.shape[2],
                temperature=float(temperature),
                log_scale_min=floor,
                out=out[:, s0:].data_ptr(),
                out_bstride=out.stride(0),
                logits=lg.data_ptr() if lg is not None else None,
                logits_bstride=lg.stride(0) if lg is not None else 0,
                n_threads=self.threads,
                split=split,
                **fields,
            )
            rc = self.lib.wn_run(ctypes.byref(self._model), ctypes.byref(call))
            if rc != 0:
                raise RuntimeError(f"fast WaveNet kernel failed (code {rc})")
            state["t"] = t0 + n

    @torch.no_grad()
    def run(
        self,
        state: dict,
        c_up: Optional[torch.Tensor],
        n_steps: int,
        noise: torch.Tensor,
        out: torch.Tensor,
        g: Optional[torch.Tensor] = None,
        temperature: float = 1.0,
        log_scale_min: Optional[float] = None,
        logits: Optional[torch.Tensor] = None,
    ) -> None:
        """Advance ``state`` by ``n_steps`` samples.

        ``c_up`` (B, aux, >= n_steps), ``noise`` (B, >= n_steps, dim), ``out``
        (B, >= n_steps) and ``logits`` (B, >= n_steps, O, optional) all start at
        this call's first step.
        """
        self._pack()
        d = self._dims
        batch = state["rings"].shape[0]
        base = self._base_condition(batch, g)
        width = d["L"] * 2 * d["Hp"]
        aux = self._aux_w.shape[0] if self._aux_w is not None else 0
        chunk = max(16, min(n_steps, CHUNK, COND_BUDGET // max(1, batch * width)))
        self._check(noise, out, logits)

        def project(s0: int, n: int):
            """Conditioning of every layer for a chunk: (B, n, L * 2 Hp)."""
            if c_up is None or self._aux_w is None:
                cond, tstride = base.unsqueeze(1).contiguous(), 0  # constant over time
            else:
                cc = c_up[:, :, s0 : s0 + n].float().transpose(1, 2).reshape(-1, aux)
                cond = row_stable_mm(cc, self._aux_w).view(batch, n, width)
                cond += base.unsqueeze(1)
                tstride = width
            fields = dict(
                cond_mode=0, cond=cond.data_ptr(), cond_bstride=cond.stride(0),
                cond_tstride=tstride,
            )
            return fields, cond

        self._loop(state, n_steps, chunk, project, noise, out, temperature,
                   self._floor(log_scale_min), logits)

    # ------------------------------------------- frame-rate conditioning
    # The upsampler (context conv, then per scale a repeat and a 1-channel
    # smoothing conv shared by all channels) is linear and channel-independent,
    # and so is the aux projection: they commute.  So the aux projection runs at
    # frame rate (hop times fewer rows) on the context conv's output, and the
    # kernel forms each sample's conditioning as a weighted sum of the W (3-4)
    # projected frames it depends on.  The weights depend only on the sample's
    # phase within the hop, except within a frame or two of either end (zero
    # padding of the smoothing convs): they are found by upsampling W impulse
    # combs once, and near the end from the utterance's actual length.
    def _first_frame(self, steps: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """First context-conv frame each sample depends on (0 at the start)."""
        idx = self.net.upsample.first_frame(steps)
        return idx.clamp(min=0) if clamp else idx

    def _tables(self) -> dict:
        """Band width W and the coefficient tables of the interior and the start."""
        key = tuple(p.data_ptr() for p in self.net.upsample.parameters()), tuple(
            p._version for p in self.net.upsample.parameters()
        )
        if getattr(self, "_tab_key", None) == key:
            return self._tab
        hop = self.net.upsample.hop
        probe = torch.arange(16 * hop, 17 * hop)  # shift invariant away from the ends
        up = self.net.upsample
        width = int((up.last_frame(probe) - up.first_frame(probe)).max()) + 1
        m = 4 * width + 8  # frames of the probe comb; its middle frame is interior
        x = up.impulse_combs(m, width)
        j = m // 2
        n = torch.arange(j * hop, (j + 1) * hop)
        idx = (self._first_frame(n)[:, None] + torch.arange(width)) % width
        interior = x[n].gather(1, idx)
        n_start = int((self._first_frame(torch.arange(j * hop), False) < 0).sum())
        n = torch.arange(n_start)
        idx = (self._first_frame(n)[:, None] + torch.arange(width)) % width
        start = x[n].gather(1, idx)
        self._tab = dict(width=width, span=m, interior=interior, start=start, end={})
        self._tab_key = key
        return self._tab

    def _end_table(self, n_frames: int) -> Tuple[int, torch.Tensor]:
        """Coefficients of the last ``span`` frames' samples of an utterance of
        ``n_frames`` context-conv frames: (first frame of the window, table)."""
        tab = self._tables()
        if n_frames not in tab["end"]:
            width, hop = tab["width"], self.net.upsample.hop
            ws = max(0, n_frames - tab["span"])
            x = self.net.upsample.impulse_combs(n_frames - ws, width)
            n = torch.arange(ws * hop, n_frames * hop)
            idx = (self._first_frame(n)[:, None] - ws + torch.arange(width)) % width
            if len(tab["end"]) > 64:
                tab["end"].clear()
            tab["end"][n_frames] = (ws, x[n - ws * hop].gather(1, idx))
        return tab["end"][n_frames]

    def _coefficients(self, steps: torch.Tensor, n_frames: Optional[int]) -> torch.Tensor:
        """(len(steps), W) weights of frames first_frame(n) + k for samples ``steps``
        of an utterance of ``n_frames`` context-conv frames (None: not known yet;
        then no sample asked for may depend on the end)."""
        tab = self._tables()
        hop = self.net.upsample.hop
        coef = tab["interior"][steps % hop]
        left = self._first_frame(steps, False) < 0
        if left.any():
            coef[left] = tab["start"][steps[left]]
        if n_frames is not None:
            right = self.net.upsample.last_frame(steps) > n_frames - 1
            if right.any():
                past = steps >= n_frames * hop  # batch padding: no conditioning
                near = right & ~past
                if near.any():
                    ws, end = self._end_table(n_frames)
                    coef[near] = end[steps[near] - ws * hop]
                coef[past] = 0.0
        return coef

    @torch.no_grad()
    def context_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(aux, T + 2 ctx) context-padded frames -> context conv output (aux, T)."""
        return self.net.upsample.context(frames.detach().cpu().float().unsqueeze(0))[0]

    @torch.no_grad()
    def run_frames(
        self,
        state: dict,
        frames,
        frame_offset: int,
        n_steps: int,
        noise: torch.Tensor,
        out: torch.Tensor,
        g: Optional[torch.Tensor] = None,
        temperature: float = 1.0,
        log_scale_min: Optional[float] = None,
        logits: Optional[torch.Tensor] = None,
        n_frames=None,
        forced=None,
    ) -> None:
        """Advance ``state`` by ``n_steps`` samples from frame-rate conditioning.

        ``frames``: per stream, context-conv output frames (aux, T_avail) (see
        :meth:`context_frames`) whose first column is frame ``frame_offset`` of
        the utterance; they must cover every frame the samples depend on.
        ``n_frames``: per stream, the utterance's total frames once known (None
        while streaming: then no sample may depend on the end).
        """
        self._pack()
        d = self._dims
        batch = state["rings"].shape[0]
        if len(frames) != batch:
            raise ValueError(f"{len(frames)} frame tensors for a batch of {batch}")
        self._check(noise, out, logits)
        width = self._tables()["width"]
        base = self._base_condition(batch, g).contiguous()
        lw = d["L"] * 2 * d["Hp"]
        t_abs = state["t"]
        totals = list(n_frames) if n_frames is not None else [None] * batch

        def project(s0: int, n: int):
            """Projected frames [fa, fb) of every stream for steps [s0, s0 + n)."""
            steps = torch.arange(t_abs + s0, t_abs + s0 + n)
            f0 = self._first_frame(steps)
            fa, fb = int(f0[0]), int(f0[-1]) + width
            proj = torch.zeros(batch, fb - fa, lw)
            coef = torch.empty(batch, n, width)
            for i, c in enumerate(frames):
                coef[i] = self._coefficients(steps, totals[i])
                # Stream by stream, and rows independent of the batch: a batch
                # rounds exactly like its utterances one by one.
                a = max(fa - frame_offset, 0)
                cc = c[:, a : fb - frame_offset].t()
                rows = cc.shape[0]
                if rows == 0:
                    continue
                r0 = a + frame_offset - fa
                proj[i, r0 : r0 + rows] = row_stable_mm(cc, self._aux_w)
            fidx = (f0 - fa).to(torch.int32).contiguous()
            fields = dict(
                cond_mode=1, n_coef=width, frames=proj.data_ptr(),
                frames_bstride=proj.stride(0), fidx=fidx.data_ptr(),
                coef=coef.data_ptr(), coef_bstride=coef.stride(0), base=base.data_ptr(),
            )
            return fields, (proj, fidx, coef)

        self._loop(state, n_steps, CHUNK, project, noise, out, temperature,
                   self._floor(log_scale_min), logits, forced)

    @torch.no_grad()
    def teacher_forced_logits(
        self, frames, x: torch.Tensor, g: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Logits (B, O, T) of the true waveforms ``x`` (B, T) in [-1, 1], each
        step fed the true previous sample, from context-padded ``frames`` (as in
        :meth:`generate_from_frames`): what the parallel forward pass computes,
        but through the kernel at this generator's precision (a quality check)."""
        self._pack()
        if self.net.upsample is None or self._aux_w is None:
            raise ValueError("teacher forcing needs a mel-conditioned WaveNet")
        x = x.detach().cpu().float().contiguous()
        batch, length = x.shape
        if len(frames) != batch:
            raise ValueError(f"{len(frames)} frame tensors for {batch} waveforms")
        cls = self.dist.encode_input(x).to(torch.int32).contiguous()
        ctx = [self.context_frames(c) for c in frames]
        noise = torch.full((batch, length, self.dist.noise_dim), 0.5)
        out = torch.empty(batch, length)
        logits = torch.empty(batch, length, self.net.out_channels)
        self.run_frames(self.new_state(batch), ctx, 0, length, noise, out, g, logits=logits,
                        n_frames=[c.shape[-1] for c in ctx], forced=(cls, x))
        return logits.transpose(1, 2).contiguous()

    @torch.no_grad()
    def generate_from_frames(
        self,
        frames,
        length: int,
        noise: torch.Tensor,
        g: Optional[torch.Tensor] = None,
        temperature: float = 1.0,
        log_scale_min: Optional[float] = None,
        return_logits: bool = False,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Like :meth:`generate`, from frame-rate conditioning: ``frames`` is a list
        of (aux, T_i + 2 * aux_context_window) context-padded feature frames (what
        ``net.upsample`` takes), one per utterance; utterance i has conditioning
        for its first T_i * hop samples and none (zeros) after, like an
        upsampled, zero-padded batch.  Equal to :meth:`generate` on the
        upsampled conditioning up to float rounding (sums reassociated)."""
        self._pack()
        if self.net.upsample is None or self._aux_w is None:
            return self.generate(None, length, noise, g, temperature, log_scale_min, return_logits)
        batch = noise.shape[0]
        if noise.shape[1] < length:
            raise ValueError(f"noise has {noise.shape[1]} steps, {length} needed")
        ctx = [self.context_frames(c) for c in frames]
        noise = noise.detach().cpu().float().contiguous()
        state = self.new_state(batch)
        out = torch.empty(batch, length)
        logits = torch.empty(batch, length, self.net.out_channels) if return_logits else None
        if length > 0:
            self.run_frames(state, ctx, 0, length, noise, out, g, temperature, log_scale_min,
                            logits, n_frames=[c.shape[-1] for c in ctx])
        if logits is not None:
            logits = logits.transpose(1, 2).contiguous()
        return out, logits

    @torch.no_grad()
    def generate(
        self,
        c_up: Optional[torch.Tensor],
        length: int,
        noise: torch.Tensor,
        g: Optional[torch.Tensor] = None,
        temperature: float = 1.0,
        log_scale_min: Optional[float] = None,
        return_logits: bool = False,
        progress: bool = False,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Generate ``length`` samples; see :meth:`ReferenceGenerator.generate`."""
        batch = noise.shape[0]
        if noise.shape[1] < length:
            raise ValueError(f"noise has {noise.shape[1]} steps, {length} needed")
        if c_up is not None and c_up.shape[-1] < length:
            raise ValueError(f"conditioning has {c_up.shape[-1]} steps, {length} needed")
        noise = noise.detach().cpu().float().contiguous()
        if c_up is not None:
            c_up = c_up.detach().cpu()
        state = self.new_state(batch)
        out = torch.empty(batch, length)
        logits = torch.empty(batch, length, self.net.out_channels) if return_logits else None
        if length > 0:
            self.run(state, c_up, length, noise, out, g, temperature, log_scale_min, logits)
        if logits is not None:
            logits = logits.transpose(1, 2).contiguous()
        return out, logits
