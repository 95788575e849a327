"""What the fast generator's lower precisions cost on a model (ideally trained).

The float16 and int8 kernels are not exact. Two measures, each against the
float32 kernel (itself equal to the parallel forward pass, the control):

* teacher forcing (:meth:`CompiledGenerator.teacher_forced_logits`): the kernel fed
  the true previous sample at every step, so the NLL of real speech at each
  precision is what the precision costs the model, free of the feedback that
  makes free-running outputs drift apart;
* free running from the same noise, at temperature 1 and at argmax: how soon
  the samples leave the float32 ones. Divergence alone is no defect (another
  seed diverges at once); the step counts show how close the arithmetic is;
* with ``feats_conf``: whole utterances generated at temperature 1, their
  log-mel distance (dB) to the natural speech per precision, next to float32
  with other noise (the spread that sampling alone gives).

Random weights are a weak check (an untrained net's outputs are nearly
uniform and its activations unlike a trained one's): run it on a trained model
and real speech, e.g. ``bin/benchmark.py --quality_model DIR``.
"""

import logging
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from espnet_wavenet.data.audio import read_audio, resample
from espnet_wavenet.distributions import Distribution, MuLawSoftmax, Sampling
from espnet_wavenet.evaluation.logmel import LogMelDistance
from espnet_wavenet.features import extract_feats
from espnet_wavenet.generation.cpu.generator import CompiledGenerator
from espnet_wavenet.models.wavenet import WaveNet
from espnet_wavenet.train.collate import SegmentCollateFn

# (context-padded normalized frames (aux, T + 2 ctx), waveform (T * hop,) in [-1, 1])
Utterance = Tuple[torch.Tensor, torch.Tensor]
# Continuous outputs never match bit for bit across precisions: count samples
# within one 16-bit step as the same.
CONTINUOUS_TOLERANCE = 2.0**-15


def utterances_from_wavs(
    vocoder, wavs: Sequence[Union[str, Path]], max_seconds: Optional[float] = None
) -> List[Utterance]:
    """Audio files -> utterances conditioned as the vocoder decodes them.

    ESPnet's LogMelFbank with the vocoder's feature configuration, its global
    MVN statistics and context padding (:meth:`WaveNetVocoder.frames`); audio
    at another rate is resampled, cut to ``max_seconds`` before the features
    are computed (a self-consistent shorter utterance), then trimmed or padded
    to frames x hop as in training.
    """
    align = SegmentCollateFn(vocoder.hop, 1, n_mels=vocoder.n_mels).align
    utts = []
    for path in wavs:
        name = Path(path).stem
        wav, rate = read_audio(path, name)
        if rate != vocoder.fs:
            wav = resample(wav, rate, vocoder.fs)
        if max_seconds is not None:
            wav = wav[: max(vocoder.hop, int(max_seconds * vocoder.fs))]
        feats = extract_feats(torch.from_numpy(np.ascontiguousarray(wav)), vocoder.feats_conf)
        wav = align(name, np.asarray(wav, dtype=np.float32), feats.numpy())
        frames = vocoder.frames(feats.to(vocoder.mean.device))[0].detach().cpu().float()
        utts.append((frames, torch.from_numpy(np.ascontiguousarray(wav)).clamp(-1.0, 1.0)))
    return utts


def _bits(nats: float, n: int) -> float:
    """Nats summed over ``n`` samples -> bits per sample, rounded (no -0.0)."""
    return round(nats / max(n, 1) / math.log(2.0), 6) + 0.0


def _agreement(a: torch.Tensor, b: torch.Tensor, tol: float) -> Tuple[int, int]:
    """(first step where the samples differ (len if never), identical samples)."""
    same = (a - b).abs() <= tol
    diff = (~same).nonzero()
    return (int(diff[0]) if len(diff) else len(a)), int(same.sum())


@torch.no_grad()
def precision_quality(
    net: WaveNet,
    dist: Distribution,
    utterances: Sequence[Utterance],
    sids: Optional[Sequence[int]] = None,
    precisions: Sequence[str] = ("float16", "int8"),
    threads: Optional[int] = None,
    free_run_steps: int = 4000,
    seed: int = 0,
    feats_conf: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Teacher-forced NLL and free-running agreement of each precision (JSON-able).

    Args:
        net, dist: a mel-conditioned WaveNet on the CPU and its distribution.
        utterances: (frames (aux, T + 2 ctx), waveform (T * hop,)) pairs.
        sids: speaker id per utterance (speaker-conditioned nets).
        precisions: kernel precisions compared with the float32 kernel (which is
            always run: it is the control, equal to the parallel forward).
        threads: kernel threads (default: torch's).
        free_run_steps: samples generated per utterance (0: skip free running).
        seed: noise of utterance i is seeded with ``seed + i``.
        feats_conf: the model's features: adds ``free_running_logmel_db``.
    """
    net.eval()
    if sids is not None and len(sids) != len(utterances):
        raise ValueError(f"{len(sids)} speaker ids for {len(utterances)} utterances")
    precisions = ["float32"] + [p for p in dict.fromkeys(precisions) if p != "float32"]
    gens = {p: CompiledGenerator(net, dist, threads=threads, precision=p) for p in precisions}
    ctx, hop = net.aux_context_window, net.hop
    tol = 0.0 if isinstance(dist, MuLawSoftmax) else CONTINUOUS_TOLERANCE
    # Only the mu-law softmax has a temperature; 0 there means argmax.
    temperatures = (1.0, 0.0) if isinstance(dist, MuLawSoftmax) else (1.0,)

    n_total = 0
    nats = dict.fromkeys(["parallel_forward", *precisions], 0.0)
    err = dict.fromkeys(precisions, 0.0)  # vs the parallel forward
    err32 = dict.fromkeys(precisions, 0.0)  # vs the float32 kernel
    secs = dict.fromkeys(precisions, 0.0)
    logit_range = 0.0
    free = {t: {p: dict(first=[], same=0) for p in precisions[1:]} for t in temperatures}
    distinct = {t: [] for t in temperatures}  # of the float32 samples, per utterance
    free_steps = []
    logmel = LogMelDistance(feats_conf) if feats_conf is not None else None
    mel_db: Dict[str, List[float]] = {p: [] for p in [*precisions, "float32_other_noise"]}
    for i, (frames, wav) in enumerate(utterances):
        frames = frames.detach().cpu().float()
        x = wav.detach().cpu().float().reshape(1, -1)
        if x.shape[1] != (frames.shape[-1] - 2 * ctx) * hop:
            raise ValueError(
                f"utterance {i}: {x.shape[1]} samples, frames give "
                f"{(frames.shape[-1] - 2 * ctx) * hop}"
            )
        g = torch.tensor([int(sids[i])]) if sids is not None else None
        n_total += x.shape[1]
        # Training's teacher forcing: the input at step t is sample t - 1.
        x_in = dist.teacher_forced_input(x)
        ref = net(x_in, frames[None], g)
        nats["parallel_forward"] += float(dist.nll(ref, x).double().sum())
        logit_range = max(logit_range, float(ref.abs().max()))
        lg32 = None
        for p, gen in gens.items():  # float32 first: the others are compared with it
            t0 = time.perf_counter()
            lg = gen.teacher_forced_logits([frames], x, g)
            secs[p] += time.perf_counter() - t0
            nats[p] += float(dist.nll(lg, x).double().sum())
            err[p] = max(err[p], float((lg - ref).abs().max()))
            if p == "float32":
                lg32 = lg
            err32[p] = max(err32[p], float((lg - lg32).abs().max()))
        del ref, lg32

        if logmel is not None:
            n = x.shape[1]
            runs = [(p, seed + i) for p in precisions] + [("float32_other_noise", seed + i + 7919)]
            for name, s in runs:
                noise = dist.noise(1, n, torch.Generator().manual_seed(s))
                gen = gens["float32" if name == "float32_other_noise" else name]
                out, _ = gen.generate_from_frames([frames], n, noise, g)
                mel_db[name].append(logmel(x[0].numpy(), out[0].numpy()))

        steps = min(free_run_steps, x.shape[1])
        free_steps.append(steps)
        if steps == 0 or len(precisions) == 1:
            continue
        noise = dist.noise(1, steps, torch.Generator().manual_seed(seed + i))
        for t in temperatures:
            base, _ = gens["float32"].generate_from_frames([frames], steps, noise, g, Sampling(t))
            # A trained model's argmax run often settles on one value (silence),
            # which every precision then matches: agreement there means little.
            distinct[t].append(int(base.unique().numel()))
            for p in precisions[1:]:
                out, _ = gens[p].generate_from_frames([frames], steps, noise, g, Sampling(t))
                first, same = _agreement(base[0], out[0], tol)
                free[t][p]["first"].append(first)
                free[t][p]["same"] += same

    teacher = {
        "parallel_forward": dict(
            nll_bits=_bits(nats["parallel_forward"], n_total),
            logit_range=round(logit_range, 3),
        )
    }
    for p in precisions:
        teacher[p] = dict(
            nll_bits=_bits(nats[p], n_total),
            delta_nll_bits_vs_float32=_bits(nats[p] - nats["float32"], n_total),
            delta_nll_bits_vs_forward=_bits(nats[p] - nats["parallel_forward"], n_total),
            max_abs_logit_err=float(f"{err[p]:.3e}"),
            max_abs_logit_err_vs_float32=float(f"{err32[p]:.3e}"),
            seconds=round(secs[p], 3),
        )
        logging.info("teacher-forced %s: %s", p, teacher[p])
    free_running: Dict[str, Any] = dict(steps_per_utterance=free_steps, sample_tolerance=tol)
    for t in temperatures:
        key = "argmax" if t == 0.0 else f"temperature_{t:g}"
        row: Dict[str, Any] = {"float32_distinct_values": distinct[t]}
        for p, v in free[t].items():
            row[p] = dict(
                first_divergence=v["first"],
                identical_fraction=round(v["same"] / max(sum(free_steps), 1), 4),
            )
        free_running[key] = row
    logging.info("free running vs float32: %s", free_running)
    extra: Dict[str, Any] = {}
    if logmel is not None:
        extra["free_running_logmel_db"] = {
            k: round(float(np.mean(v)), 3) for k, v in mel_db.items() if v
        }
        logging.info("log-mel distance to the natural speech: %s", extra["free_running_logmel_db"])
    return dict(
        distribution=type(dist).__name__,
        utterances=len(utterances),
        samples=n_total,
        threads=gens["float32"].threads,
        teacher_forced=teacher,
        free_running=free_running,
        **extra,
        note=(
            "teacher_forced: the kernel fed the true previous sample; NLL in bits per "
            "sample over all utterances; float32 is the control (equals the parallel "
            "forward). free_running: same noise as the float32 kernel; first step where "
            "the samples differ, per utterance, and the fraction of identical samples "
            "(divergence by itself is expected: sampling amplifies any difference; "
            "float32_distinct_values 1: the run settled on a constant, agreement is moot). "
            "free_running_logmel_db: whole utterances at temperature 1, mean log-mel RMSE "
            "to the natural speech (dB); float32_other_noise: the same with other noise, "
            "the spread sampling alone gives"
        ),
    )


def precision_quality_of_model(
    model_dir: str,
    wavs: Sequence[str],
    seconds: float,
    precisions: Sequence[str],
    threads: int,
    free_run_steps: int,
    sid: Optional[int] = None,
) -> Dict[str, Any]:
    """:func:`precision_quality` of a packed model on the audio files ``wavs``
    (each cut to ``seconds``); ``sid`` for a speaker-conditioned model."""
    from espnet_wavenet.generation.cpu.generator import compiled_available
    from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

    vocoder = WaveNetVocoder.from_pretrained(model_dir)
    if not compiled_available(vocoder.net):
        logging.warning("compiled kernel unavailable: no precision quality")
        return dict(model=str(model_dir), skipped="compiled kernel unavailable")
    if vocoder.net.n_speakers > 0 and sid is None:
        raise ValueError(f"{model_dir}: speaker-conditioned; pass a speaker id")
    utts = utterances_from_wavs(vocoder, wavs, seconds)
    sids = [sid] * len(utts) if vocoder.net.n_speakers > 0 else None
    out: Dict[str, Any] = dict(
        model=str(model_dir),
        wavs=[str(w) for w in wavs],
        seconds_per_utterance=seconds,
        parameters=sum(p.numel() for p in vocoder.net.parameters()),
    )
    out.update(
        precision_quality(vocoder.net, vocoder.dist, utts, sids, precisions, threads,
                          free_run_steps, feats_conf=vocoder.feats_conf)
    )
    return out
