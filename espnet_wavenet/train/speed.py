"""Training speed: full steps of the real ESPnet model, and its peers in the same run.

A step is what ESPnet's Trainer does per batch: the model's forward (EMA
update, GlobalMVN normalization, teacher-forced NLL), backward, gradient
clipping and an Adam step. Kinds:

- ``model``: the network as it trains (``WaveNet.forward``: conditioning
  projected at frame rate);
- ``reference``: the same model computing ``WaveNet.forward_reference`` (the
  upsampled features projected in every layer, as before);
- ``r9y9``: r9y9's ``wavenet_vocoder`` WaveNet of the same size (one-hot input,
  its own upsampler, cross-entropy), when that package is installed.

Random data: speed does not depend on it. Medians over ``steps`` timed steps
after ``warmup`` steps; every kind in one run, so their ratios are like for like.
"""

import contextlib
import inspect
import logging
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from espnet2.layers.global_mvn import GlobalMVN

from espnet_wavenet.models.builder import build_wavenet
from espnet_wavenet.train.espnet_model import ESPnetWaveNetModel

KINDS = ("model", "reference", "r9y9")
AMP = ("none", "bf16", "fp16")


def autocast(device: str, amp: str):
    """bf16 autocast (CPU or GPU), fp16 (GPU, with a gradient scaler), or nothing."""
    if amp == "none":
        return contextlib.nullcontext()
    if amp == "fp16" and device != "cuda":
        raise ValueError("fp16 autocast needs a GPU; use bf16 on the CPU")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device, dtype=dtype)


def build_model(
    conf: Dict[str, Any], stats_dir: Path, compile: bool = False
) -> ESPnetWaveNetModel:
    """The ESPnet model of a config, normalized by statistics of random features."""
    n_mels = conf["feats_conf"]["n_mels"]
    stats_dir.mkdir(parents=True, exist_ok=True)
    stats = stats_dir / "feats_stats.npz"
    # means N(0, 1), variances 1: the normalized random features stay O(1) (variances
    # of 2 - mean^2, used before, fell to ESPnet's floor in bands where |mean| > 1.4)
    count, mean = 1000, np.random.default_rng(0).normal(size=n_mels)
    np.savez(stats, count=np.array(count), sum=mean * count,
             sum_square=(1.0 + mean**2) * count)
    net, dist = build_wavenet(
        conf["feats_conf"], conf["wavenet_conf"], conf.get("distribution", "mulaw"),
        conf.get("distribution_conf"),
    )
    return ESPnetWaveNetModel(net, dist, GlobalMVN(str(stats)),
                              ema_decay=float(conf.get("ema_decay", 0.9999)), compile=compile)


def build_r9y9(conf: Dict[str, Any]) -> torch.nn.Module:
    """r9y9's WaveNet (``wavenet_vocoder`` package) with this config's sizes."""
    from wavenet_vocoder import WaveNet as R9y9WaveNet

    wc = conf["wavenet_conf"]
    kw = dict(
        out_channels=256, layers=wc["layers"], stacks=wc["stacks"],
        residual_channels=wc["residual_channels"], gate_channels=wc["gate_channels"],
        skip_out_channels=wc["skip_channels"], kernel_size=wc["kernel_size"],
        cin_channels=conf["feats_conf"]["n_mels"], scalar_input=False,
        upsample_conditional_features=True, upsample_scales=wc["upsample_scales"],
    )
    params = inspect.signature(R9y9WaveNet.__init__).parameters
    if "cin_pad" in params:  # newer releases: context frames like ours
        kw["cin_pad"] = wc.get("aux_context_window", 0)
    return R9y9WaveNet(**{k: v for k, v in kw.items() if k in params})


class _Kind:
    """One kind's training step on its own data, ready to be timed."""

    def __init__(self, kind: str, step: Callable[[], None], losses: List[torch.Tensor],
                 parameters: int):
        self.kind, self.step, self.losses, self.parameters = kind, step, losses, parameters
        self.times: List[float] = []
        self.first = float("nan")


def _prepare(
    conf: Dict[str, Any], kind: str, batch_size: int, segment_frames: int, device: str,
    amp: str, grad_clip: Optional[float], seed: int, compile: bool, accum_grad: int,
    tmp: Path,
) -> _Kind:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    autocast(device, amp)  # refuses fp16 on the CPU (our kinds never enter it there)
    if accum_grad < 1 or batch_size % accum_grad != 0:
        raise ValueError(f"batch_size {batch_size} is not a multiple of accum_grad {accum_grad}")
    torch.manual_seed(seed)
    hop = int(np.prod(conf["wavenet_conf"]["upsample_scales"]))
    ctx = int(conf["wavenet_conf"].get("aux_context_window", 0))
    n_mels = conf["feats_conf"]["n_mels"]
    length = segment_frames * hop
    clip = float(conf.get("grad_clip", 10.0) if grad_clip is None else grad_clip)
    lr = float(conf.get("optim_conf", {}).get("lr", 1e-3))
    speech = (torch.rand(batch_size, length) * 2 - 1).to(device)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    if kind == "r9y9":
        net = build_r9y9(conf).to(device).train()
        x = torch.nn.functional.one_hot(
            torch.randint(0, 256, (batch_size, length)), 256
        ).transpose(1, 2).float().to(device)
        c = torch.randn(batch_size, n_mels, segment_frames + 2 * ctx, device=device)
        if "cin_pad" not in inspect.signature(type(net).__init__).parameters:
            c = c[:, :, ctx : ctx + segment_frames]  # no context frames in 0.1.x
        target = torch.randint(0, 256, (batch_size, length), device=device)
        params = list(net.parameters())

        def loss_fn(i):
            return torch.nn.functional.cross_entropy(net(x[i], c=c[i]), target[i])

    else:
        model = build_model(conf, tmp, compile=compile).to(device).train()
        # bf16 on the CPU as the Trainer runs it (--cpu_bf16): the network
        # under autocast, the normalization, NLL and EMA in float32.
        model.cpu_bf16 = device == "cpu" and amp == "bf16"
        if kind == "reference":
            model.wavenet.forward = model.wavenet.forward_reference
        batch = dict(
            speech=speech,
            speech_lengths=torch.full((batch_size,), length, device=device),
            feats=torch.randn(batch_size, segment_frames + 2 * ctx, n_mels, device=device),
            feats_lengths=torch.full((batch_size,), segment_frames + 2 * ctx,
                                     device=device),
        )
        if model.wavenet.n_speakers > 0:
            batch["sids"] = torch.zeros(batch_size, dtype=torch.long, device=device)
        params = list(model.wavenet.parameters())

        def loss_fn(i):
            return model(**{k: v[i] for k, v in batch.items()})[0]

    optim = torch.optim.Adam(params, lr=lr)
    # autocast around the whole forward: r9y9's net, and ESPnet's --use_amp on GPUs
    outer_amp = kind == "r9y9" or device != "cpu"
    losses: List[torch.Tensor] = []
    micro = batch_size // accum_grad
    parts = [slice(j * micro, (j + 1) * micro) for j in range(accum_grad)]

    def step() -> None:
        for part in parts:
            with autocast(device, amp) if outer_amp else contextlib.nullcontext():
                loss = loss_fn(part) / accum_grad
            losses.append(loss.detach())
            (loss if scaler is None else scaler.scale(loss)).backward()
        if scaler is not None:
            scaler.unscale_(optim)
        torch.nn.utils.clip_grad_norm_(params, clip)
        if scaler is not None:
            scaler.step(optim)
            scaler.update()
        else:
            optim.step()
        optim.zero_grad(set_to_none=True)

    return _Kind(kind, step, losses, sum(p.numel() for p in params))


def _time(k: _Kind, steps: int, device: str) -> List[float]:
    times = []
    for _ in range(steps):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        k.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def benchmark_kinds(
    conf: Dict[str, Any],
    kinds: Sequence[str],
    batch_size: int,
    segment_frames: int,
    device: str = "cpu",
    amp: str = "none",
    steps: int = 5,
    warmup: int = 2,
    grad_clip: Optional[float] = None,
    seed: int = 0,
    compile: bool = False,
    accum_grad: int = 1,
    rounds: int = 1,
) -> List[Dict[str, Any]]:
    """Time training steps of several kinds; a dict of figures (JSON-ready) each.

    ``accum_grad``: a step runs the batch as this many equal micro-batches,
    forward and backward each, as ESPnet's ``--accum_grad`` does (the gradient
    of the whole batch's mean loss), then one clip and optimizer step.

    ``rounds``: the kinds take turns, ``steps`` timed steps each per round, so
    a shared machine's slow spells fall on all of them alike; medians over all
    rounds. Each kind's ``warmup`` steps run once, before its first round.

    ``compile``: our kinds' network through ``torch.compile``, as ``--compile``
    trains it (r9y9's runs as its package ships it); the compilation is timed
    apart (``first_step_seconds``), not in the median."""
    if rounds < 1 or steps < 1:
        raise ValueError(f"rounds ({rounds}) and steps ({steps}) must be positive")
    with tempfile.TemporaryDirectory() as tmp:
        prepared = [
            _prepare(conf, kind, batch_size, segment_frames, device, amp, grad_clip, seed,
                     compile, accum_grad, Path(tmp) / kind)
            for kind in kinds
        ]
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for r in range(rounds):
            for k in prepared:
                if r == 0:
                    warm = _time(k, max(warmup, 1), device)
                    k.first = warm[0]
                    if warmup == 0:
                        k.times += warm
                k.times += _time(k, steps, device)
    length = segment_frames * int(np.prod(conf["wavenet_conf"]["upsample_scales"]))
    out = []
    for k in prepared:
        res = {"step_seconds": statistics.median(k.times), "step_seconds_min": min(k.times),
               "first_step_seconds": k.first, "timed_steps": len(k.times)}
        # a step whose loss is not finite times NaN arithmetic, not training
        res["losses_finite"] = bool(torch.isfinite(torch.stack(k.losses).float()).all())
        if not res["losses_finite"]:
            logging.warning("%s: non-finite losses: its timing is not a training step's",
                            k.kind)
        res.update(
            kind=k.kind,
            batch_size=batch_size,
            accum_grad=accum_grad,
            segment_samples=length,
            samples_per_second=round(batch_size * length / res["step_seconds"], 1),
            device=device,
            amp=amp,
            compiled=compile and k.kind != "r9y9",
            threads=torch.get_num_threads(),
            parameters=k.parameters,
            # the process's peak: with several kinds, the largest of them and before
            peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        )
        if device == "cuda":
            res["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        logging.info("%s: %.0f samples/s", k.kind, res["samples_per_second"])
        out.append(res)
    return out


def benchmark_training(conf: Dict[str, Any], kind: str, batch_size: int,
                       segment_frames: int, **kwargs) -> Dict[str, Any]:
    """:func:`benchmark_kinds` for one kind."""
    return benchmark_kinds(conf, [kind], batch_size, segment_frames, **kwargs)[0]


def r9y9_available() -> bool:
    try:
        import wavenet_vocoder  # noqa: F401
    except ImportError:
        return False
    return True
