"""Held-out negative log-likelihood of natural audio under the model (teacher forcing).

One number per utterance: the mean over all its samples of -log2 p(x_t | x_<t, c),
in bits per sample, where the input at step t is sample t-1 (0.0 before the first
one) and c is the normalized log-mel conditioning, exactly as in training
(:class:`espnet_wavenet.train.espnet_model.ESPnetWaveNetModel`). The audio is
trimmed or zero-padded to ``T_feats * hop`` samples as in training's collate.
The whole utterance is scored in chunks: each chunk carries receptive-field - 1
samples of left context and the conditioning is upsampled once for the whole
utterance, so the result equals one unchunked pass.

For the mu-law softmax the unit is bits per 8-bit mu-law class (a discrete
entropy, >= 0); for the mixture of logistics it is a discretized 16-bit
likelihood; for the Gaussian a continuous density (can be negative), so values
are comparable only between models with the same output distribution. A model
trained with noise shaping is scored on the pre-emphasized audio it models, so its
NLL is comparable only with models of the same noise shaping.
"""

import math
from typing import Optional

import numpy as np
import torch

from espnet_wavenet.train.collate import SegmentCollateFn


@torch.no_grad()
def nll_bits_per_sample(
    vocoder,
    wav: np.ndarray,
    feats: np.ndarray,
    sid: Optional[int] = None,
    chunk: int = 16384,
    uttid: str = "",
) -> float:
    """Mean teacher-forced NLL (bits/sample) of ``wav`` given denormalized ``feats``."""
    net, dist = vocoder.net, vocoder.dist
    device = vocoder.mean.device
    feats = np.array(feats, dtype=np.float32)  # writable copy
    speech = SegmentCollateFn(vocoder.hop, 1).align(
        uttid, vocoder.shaping.analysis(np.asarray(wav, dtype=np.float32), feats), feats
    )
    x = torch.from_numpy(np.ascontiguousarray(speech)).to(device).unsqueeze(0)
    c_up = vocoder.conditioning(torch.from_numpy(feats).to(device))
    g = None
    if sid is not None:
        g = net.global_condition(torch.tensor([int(sid)], device=device))
    x_in = dist.teacher_forced_input(x)
    total, ctx = 0.0, net.receptive_field - 1
    n = x.shape[1]
    for start in range(0, n, chunk):
        end = min(start + chunk, n)
        left = max(0, start - ctx)
        c = c_up[..., left:end] if c_up is not None else None
        logits = net.forward_upsampled(x_in[:, left:end], c, g)[..., start - left :]
        total += float(dist.nll(logits, x[:, start:end]).double().sum())
    return total / n / math.log(2.0)
