"""The compiled CPU generator: one kernel call runs all layers for many samples.

Same interface and semantics as :class:`ReferenceGenerator` (same noise, same
sampling rules, same outputs up to float rounding). Before the loop the
weights are packed once (:mod:`.packing`) and the conditioning of every layer
(aux projection + speaker projection + conv bias) is projected for a chunk of
time steps with one matmul. The kernel (``csrc/``, bound by :mod:`.abi`) then
runs the chunk for the whole batch, threads splitting the batch.

:meth:`CompiledGenerator.generate_from_frames` (what the vocoder and the
streaming API use) projects at frame rate instead and has the kernel form each
sample's conditioning from the 3-4 projected frames it depends on
(:class:`~espnet_wavenet.layers.sample_coefficients.SampleCoefficients`). With
fewer streams than threads, each stream runs on a pair of threads as a pipeline
(``split``; see ``csrc/pipeline.h``); every path rounds identically, so a
batch equals its utterances one by one whatever the thread layout.
``precision`` picks float32 (exact), float16 or int8 weights.
"""

import ctypes
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Tuple

import torch

from espnet_wavenet.distributions import DEFAULT_SAMPLING, Distribution, MuLawSoftmax, Sampling
from espnet_wavenet.generation.cpu import abi, loader
from espnet_wavenet.generation.cpu.packing import PackedNet, dist_code, pack
from espnet_wavenet.layers.sample_coefficients import SampleCoefficients
from espnet_wavenet.models.wavenet import WaveNet
from espnet_wavenet.utils.matmul import row_stable_mm
from espnet_wavenet.utils.threads import one_torch_thread

# Floats of precomputed conditioning held at once (bounds memory: 32 MB).
COND_BUDGET = 8 * 1024 * 1024
# Steps per kernel call from sample-rate conditioning (pipelined with the next
# chunk's projection), and at most from frame-rate conditioning (frame_chunk).
CHUNK = 2048
FRAME_CHUNK = 32768
# Above this a spin exchange means another process holds a core: the pipeline's
# threads would wait on each other (and on it) more than they gain.
SPLIT_MAX_BARRIER_NS = 500.0
SPLIT_PROBE_EVERY_S = 30.0

def compiled_available(net: WaveNet) -> bool:
    """True when the kernel loaded and ``net`` is a CPU WaveNet it can run."""
    if abi.load() is None:
        return False
    try:
        device = next(net.parameters()).device
    except StopIteration:
        return False
    return device.type == "cpu" and net.gate_channels % 2 == 0


def barrier_ns(lib: ctypes.CDLL, n: int = 1000, rounds: int = 5) -> float:
    """Measured cost of one two-thread spin exchange (ns): the fastest of
    ``rounds`` rounds. Right after a torch op, libgomp's idle worker spins on the
    other core for some milliseconds (measured ~5 ms: a first round of ~10 us
    per exchange, then ~0.3 us), which says nothing of another process holding
    a core; that one slows every round. The median of three 2,000-exchange
    rounds refused the pipeline 26 times in 30 probes after a torch op on a
    Xeon (Emerald Rapids, 2 vCPUs), the fastest of five 1,000-exchange ones 4."""
    return min(lib.wn_barrier_bench(n) for _ in range(rounds))


# int8 paths measured faster than float32 at batch 1 (README, "Generation speed";
# AVX-VNNI's natively on a Xeon with it, and through its EVEX stand-in); Arm's
# (dotprod) has run only under qemu, its speed unknown.
FAST_INT8_PATHS = ("avx2", "avx512bw", "avx512vnni", "avxvnni")


def auto_precision(int8_path: str) -> str:
    """``auto``'s choice: int8 where the kernel's int8 products are measured faster
    than its float32 (x86 vector paths: at batch 1, 8 and 16 with VNNI, at batch 1
    with AVX-512BW, AVX-VNNI and AVX2), else float32 (the baseline build's scalar int8 loop
    is 4x slower). Its quality cost on the shipped model was below measurement
    (Kathleen RESULTS.md)."""
    return "int8" if int8_path in FAST_INT8_PATHS else "float32"


class CompiledGenerator:
    """Compiled sample-by-sample generation (see the module docstring).

    Args:
        net: the WaveNet (on the CPU).
        dist: its output distribution.
        threads: worker threads across the batch (default: torch's thread count).
        precision: the layers' matrix weights: "float32" (default; equals the
            reference), "float16" (half the weight memory traffic), "auto" (int8
            where this build's int8 products are measured faster than float32,
            see auto_precision, else float32) or "int8"
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
        kernel: an ISA level whose kernel to run (:func:`.loader.level_library`)
            instead of the one loaded for the process (benchmarks of several
            levels in one process).
    """

    kind = "fast"

    def __init__(
        self,
        net: WaveNet,
        dist: Distribution,
        threads: Optional[int] = None,
        precision: str = "float32",
        split: Optional[bool] = None,
        kernel: Optional[str] = None,
    ):
        if kernel is not None:
            self.lib, self.kernel = abi.load_level(kernel), kernel
        else:
            self.lib = abi.load()
            if self.lib is None:
                raise RuntimeError(f"compiled kernel unavailable: {loader.load_error()}")
            self.kernel = loader.kernel_kind()  # which build: an ISA level or "native"
        dist_code(dist)  # ValueError for a distribution the kernel lacks
        self.net = net.eval()
        self._params = tuple(net.parameters())  # see _weights_key
        self.dist = dist
        self.threads = threads or torch.get_num_threads()
        if precision not in abi.PRECISION_OPTIONS:
            raise ValueError(f"precision {precision!r} is not one of {abi.PRECISION_OPTIONS}")
        # avx512vnni, avx512bw, avxvnni, avx2: vector products; scalar only in the baseline build.
        self.int8_path = abi.INT8_PATHS[self.lib.wn_int8_path()]
        if precision == "auto":
            precision = auto_precision(self.int8_path)
            logging.info("precision auto: %s (int8 products: %s)", precision, self.int8_path)
        if precision == "int8" and self.int8_path == "scalar":
            logging.warning(
                "this build of the kernel (%s) has no vector int8 products: int8 runs a "
                "scalar loop, slower than float32 (about 4x with the baseline build, measured)",
                self.kernel,
            )
        self.precision = precision
        self.split = split
        self.last_split: Optional[bool] = None
        self._key = None
        self._packed: Optional[PackedNet] = None
        self._coef = SampleCoefficients(net.upsample) if net.upsample is not None else None

    def step_weight_bytes(self) -> int:
        """Weight bytes read per step at this precision (see PackedNet.step_bytes)."""
        return self._pack().step_bytes()

    # ------------------------------------------------------------- packing
    def _weights_key(self):
        # Over the parameters listed at construction (walking the module tree
        # took ~0.6 ms a call, a few calls per streaming push): in-place
        # updates (load_state_dict, an optimizer step) bump _version, ``.data =``
        # moves data_ptr; a module given a new Parameter object is not seen.
        return tuple((p.data_ptr(), p._version) for p in self._params)

    def _pack(self) -> PackedNet:
        """Pack the weights once (again only if the parameters changed)."""
        key = self._weights_key()
        if key != self._key:
            self._packed = pack(self.net, self.dist, self.precision, self.lib.wn_panel_rows())
            self._key = key
        return self._packed

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
        p = self._pack()
        d = p.dims
        offs, masks, off = [], [], 0
        for dil in p.tensors["dil"].tolist():
            slots = 1 << max(0, math.ceil(math.log2((d["K"] - 1) * dil + 1)))
            offs.append(off)
            masks.append(slots - 1)
            off += slots * d["Rp"]
        return dict(
            t=0,
            rings=torch.zeros(batch, off),
            ring_off=torch.tensor(offs, dtype=torch.int64),
            ring_mask=torch.tensor(masks, dtype=torch.int32),
            prev_cls=torch.full((batch,), p.first_cls, dtype=torch.int32),
            prev_x=torch.zeros(batch),
        )

    def _base_condition(self, batch: int, g: Optional[torch.Tensor],
                        p: Optional[PackedNet] = None) -> torch.Tensor:
        """Conv bias + speaker projection per stream: (B, L * 2 Hp) (``p``: the
        packing the caller just checked; each check costs ~0.1 ms)."""
        p = self._pack() if p is None else p
        base = p.bias.unsqueeze(0).expand(batch, -1).clone()
        gcond = self.net.global_condition(g)
        if gcond is not None and p.glob_w is not None:
            # Stream by stream: a batched matmul may round differently from a
            # single-row one, and a batch must equal its utterances one by one.
            for b in range(batch):
                base[b] += torch.mv(p.glob_w, gcond[b, :, 0].float())
        return base

    def _check(self, noise, out, logits) -> None:
        for name, x in (("noise", noise), ("out", out), ("logits", logits)):
            if x is not None and (x.dtype != torch.float32 or x.stride(-1) != 1):
                raise ValueError(f"{name} must be float32 with unit last stride")

    def _loop(self, state, n_steps, chunk, project, noise, out, sampling: Sampling, logits,
              forced=None):
        """Run the kernel chunk by chunk; ``project(s0, n)`` gives the chunk's
        conditioning as (call fields, tensors to keep alive).  ``forced``:
        (classes int32, values float32), both (B, >= n_steps): teacher forcing."""
        batch = state["rings"].shape[0]
        if sampling.tail > 0.0 and isinstance(self.dist, MuLawSoftmax):
            sampling.check_tail(self.dist.quantization_channels)
        # The projection of chunk k+1 runs on a helper thread while the kernel
        # generates chunk k (both release the GIL).
        starts = list(range(0, n_steps, chunk))
        pool = self._pool() if len(starts) > 1 else None
        split = int(self._may_pair())
        self.last_split = bool(split)  # what this call let the kernel do (benchmarks report it)
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
            call = abi.Call(
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
                temperature=float(sampling.temperature),
                log_scale_min=sampling.floor(self.dist),
                tail=float(sampling.tail),
                out=out[:, s0:].data_ptr(),
                out_bstride=out.stride(0),
                logits=lg.data_ptr() if lg is not None else None,
                logits_bstride=lg.stride(0) if lg is not None else 0,
                n_threads=self.threads,
                split=split,
                **fields,
            )
            rc = self.lib.wn_run(ctypes.byref(self._packed.model), ctypes.byref(call))
            if rc != 0:
                raise RuntimeError(f"compiled WaveNet kernel failed (code {rc})")
            state["t"] = t0 + n

    @torch.no_grad()
    def run(self, state: dict, c_up: Optional[torch.Tensor], n_steps: int, noise: torch.Tensor,
            out: torch.Tensor, g: Optional[torch.Tensor] = None,
            sampling: Sampling = DEFAULT_SAMPLING, logits: Optional[torch.Tensor] = None) -> None:
        """Advance ``state`` by ``n_steps`` samples.

        ``c_up`` (B, aux, >= n_steps), ``noise`` (B, >= n_steps, dim), ``out``
        (B, >= n_steps) and ``logits`` (B, >= n_steps, O, optional) all start at
        this call's first step.
        """
        p = self._pack()
        d = p.dims
        batch = state["rings"].shape[0]
        base = self._base_condition(batch, g, p)
        width = d["L"] * 2 * d["Hp"]
        aux = p.aux_w.shape[0] if p.aux_w is not None else 0
        chunk = max(16, min(n_steps, CHUNK, COND_BUDGET // max(1, batch * width)))
        self._check(noise, out, logits)

        def project(s0: int, n: int):
            """Conditioning of every layer for a chunk: (B, n, L * 2 Hp)."""
            if c_up is None or p.aux_w is None:
                cond, tstride = base.unsqueeze(1).contiguous(), 0  # constant over time
            else:
                cc = c_up[:, :, s0 : s0 + n].float().transpose(1, 2).reshape(-1, aux)
                cond = row_stable_mm(cc, p.aux_w).view(batch, n, width)
                cond += base.unsqueeze(1)
                tstride = width
            fields = dict(
                cond_mode=0, cond=cond.data_ptr(), cond_bstride=cond.stride(0),
                cond_tstride=tstride,
            )
            return fields, cond

        self._loop(state, n_steps, chunk, project, noise, out, sampling, logits)

    # ------------------------------------------- frame-rate conditioning
    # The aux projection runs at frame rate (hop times fewer rows) on the
    # context conv's output; the kernel forms each sample's conditioning from
    # the W projected frames it depends on (weights: SampleCoefficients).
    @torch.no_grad()
    def context_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(aux, T + 2 ctx) context-padded frames -> context conv output (aux, T)."""
        with one_torch_thread():
            return self.net.upsample.context(frames.detach().cpu().float().unsqueeze(0))[0]

    @torch.no_grad()
    def run_frames(self, state: dict, frames, frame_offset: int, n_steps: int,
                   noise: torch.Tensor, out: torch.Tensor, g: Optional[torch.Tensor] = None,
                   sampling: Sampling = DEFAULT_SAMPLING, logits: Optional[torch.Tensor] = None,
                   n_frames=None, forced=None) -> None:
        """Advance ``state`` by ``n_steps`` samples from frame-rate conditioning.

        ``frames``: per stream, context-conv output frames (aux, T_avail) (see
        :meth:`context_frames`) whose first column is frame ``frame_offset`` of
        the utterance; they must cover every frame the samples depend on.
        ``n_frames``: per stream, the utterance's total frames once known (None
        while streaming: then no sample may depend on the end).
        """
        p = self._pack()
        d = p.dims
        batch = state["rings"].shape[0]
        if len(frames) != batch:
            raise ValueError(f"{len(frames)} frame tensors for a batch of {batch}")
        self._check(noise, out, logits)
        width = self._coef.width
        base = self._base_condition(batch, g, p).contiguous()
        lw = d["L"] * 2 * d["Hp"]
        t_abs = state["t"]
        totals = list(n_frames) if n_frames is not None else [None] * batch

        def project(s0: int, n: int):
            """Projected frames [fa, fb) of every stream for steps [s0, s0 + n)."""
            steps = torch.arange(t_abs + s0, t_abs + s0 + n)
            f0 = self._coef.first_frame(steps)
            fa, fb = int(f0[0]), int(f0[-1]) + width
            proj = torch.zeros(batch, fb - fa, lw)
            coef = torch.empty(batch, n, width)
            for i, c in enumerate(frames):
                coef[i] = self._coef(steps, totals[i])
                # Stream by stream, and rows independent of the batch: a batch
                # rounds exactly like its utterances one by one.
                a = max(fa - frame_offset, 0)
                cc = c[:, a : fb - frame_offset].t()
                rows = cc.shape[0]
                if rows == 0:
                    continue
                r0 = a + frame_offset - fa
                proj[i, r0 : r0 + rows] = row_stable_mm(cc, p.aux_w)
            fidx = (f0 - fa).to(torch.int32).contiguous()
            fields = dict(
                cond_mode=1, n_coef=width, frames=proj.data_ptr(),
                frames_bstride=proj.stride(0), fidx=fidx.data_ptr(),
                coef=coef.data_ptr(), coef_bstride=coef.stride(0), base=base.data_ptr(),
            )
            return fields, (proj, fidx, coef)

        chunk = max(1, min(n_steps, self.frame_chunk(batch, p)))
        with one_torch_thread():
            self._loop(state, n_steps, chunk, project, noise, out, sampling, logits, forced)

    def frame_chunk(self, batch: int, p: Optional[PackedNet] = None) -> int:
        """Steps per kernel call from frame-rate conditioning: FRAME_CHUNK, or
        fewer if COND_BUDGET cannot hold them.  A chunk's projection is cheap
        but runs beside the kernel, whose two threads spin on two cores: one
        call per utterance measured 7% faster at batch 1 than calls of 2,048
        steps (int8, default config, 2 s); calls of 32,768 steps (1.5 s) keep
        that and bound the chunk buffers (the pending one's included): peak RSS
        +16 MB for a 30 s utterance (+3 MB with 2,048 steps, +104 MB in one
        call)."""
        d = (self._pack() if p is None else p).dims
        per_step = batch * (d["L"] * 2 * d["Hp"] / self.net.upsample.hop + self._coef.width)
        return max(16, min(FRAME_CHUNK, int(COND_BUDGET // per_step)))

    @torch.no_grad()
    def teacher_forced_logits(
        self, frames, x: torch.Tensor, g: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Logits (B, O, T) of the true waveforms ``x`` (B, T) in [-1, 1], each
        step fed the true previous sample, from context-padded ``frames`` (as in
        :meth:`generate_from_frames`): what the parallel forward pass computes,
        but through the kernel at this generator's precision (a quality check)."""
        if self.net.upsample is None or self._pack().aux_w is None:
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
        self, frames, length: int, noise: torch.Tensor, g: Optional[torch.Tensor] = None,
        sampling: Sampling = DEFAULT_SAMPLING, return_logits: bool = False,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Like :meth:`generate`, from frame-rate conditioning: ``frames`` is a list
        of (aux, T_i + 2 * aux_context_window) context-padded feature frames (what
        ``net.upsample`` takes), one per utterance; utterance i has conditioning
        for its first T_i * hop samples and none (zeros) after, like an
        upsampled, zero-padded batch.  Equal to :meth:`generate` on the
        upsampled conditioning up to float rounding (sums reassociated)."""
        if self.net.upsample is None or self._pack().aux_w is None:
            return self.generate(None, length, noise, g, sampling, return_logits)
        batch = noise.shape[0]
        if noise.shape[1] < length:
            raise ValueError(f"noise has {noise.shape[1]} steps, {length} needed")
        ctx = [self.context_frames(c) for c in frames]
        noise = noise.detach().cpu().float().contiguous()
        state = self.new_state(batch)
        out = torch.empty(batch, length)
        logits = torch.empty(batch, length, self.net.out_channels) if return_logits else None
        if length > 0:
            self.run_frames(state, ctx, 0, length, noise, out, g, sampling, logits,
                            n_frames=[c.shape[-1] for c in ctx])
        if logits is not None:
            logits = logits.transpose(1, 2).contiguous()
        return out, logits

    @torch.no_grad()
    def generate(self, c_up: Optional[torch.Tensor], length: int, noise: torch.Tensor,
                 g: Optional[torch.Tensor] = None, sampling: Sampling = DEFAULT_SAMPLING,
                 return_logits: bool = False) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``length`` samples through the kernel, the conditioning projected in
        chunks; arguments and result as :meth:`ReferenceGenerator.generate`."""
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
            self.run(state, c_up, length, noise, out, g, sampling, logits)
        if logits is not None:
            logits = logits.transpose(1, 2).contiguous()
        return out, logits
