"""Streaming generation: mel frames in as they arrive, audio chunks out.

The concatenated chunks equal ``vocoder.generate([all frames], seed=seed)``
exactly. Two things make that possible:

* conditioning: the upsampler is local in time, so the samples of frame ``j``
  depend on frames up to ``j + lookahead_frames`` only (the context conv sees
  ``aux_context_window`` frames ahead, each smoothing conv of scale ``s`` about
  one of its input positions ahead). Samples are emitted as soon as every frame
  they depend on has arrived; their conditioning is computed on a window of
  frames that contains their whole dependency cone, starting at the true first
  frame when the cone reaches it, so it equals the offline computation;
* noise: every distribution's noise is a serial stream of uniforms, so drawing
  it chunk by chunk from one seeded generator gives the offline numbers.

With the default configuration (``aux_context_window`` 2, scales 4x4x4x4) the
look-ahead is 4 frames: 1024 samples, 46 ms at 22.05 kHz, plus compute time.
"""

import logging
from typing import Optional

import numpy as np
import torch

from espnet_wavenet.generation.interface import IncrementalGenerator
from espnet_wavenet.layers.upsample import ConditioningUpsampler, pad_context
from espnet_wavenet.utils.threads import one_torch_thread


def frame_needed(n: int, upsampler: Optional[ConditioningUpsampler]) -> int:
    """Index of the last input frame that sample ``n`` depends on."""
    if upsampler is None:
        return n  # no conditioning: nothing to wait for but the sample itself
    return upsampler.last_input_frame(n)


class StreamingVocoder:
    """Feed ``push(frames)``; get audio chunks; ``flush()`` at the end.

    Args:
        vocoder: a :class:`WaveNetVocoder` (its generator must be stateful, i.e.
            the fast generator; otherwise all audio comes at :meth:`flush`).
        sid: speaker id for speaker-conditioned models.
        seed: the seed an offline ``vocoder.generate(..., seed=seed)`` would use.
        normalized: frames are already normalized (as in ``generate``).
    """

    def __init__(
        self,
        vocoder,
        sid: Optional[int] = None,
        seed: Optional[int] = None,
        normalized: bool = False,
    ):
        self.vocoder = vocoder
        self.net = vocoder.net
        self.upsampler = self.net.upsample
        self.hop = vocoder.hop
        self.normalized = normalized
        self.seed = vocoder.seed if seed is None else seed
        self.sid = sid
        self.g = torch.tensor([int(sid)]) if sid is not None else None
        self.gen = vocoder.generator
        self.incremental = isinstance(self.gen, IncrementalGenerator)
        if not self.incremental:
            logging.warning(
                "%s cannot generate incrementally: audio will come at flush()",
                type(self.gen).__name__,
            )
        self.state = self.gen.new_state(1) if self.incremental else None
        self.noise_gen = torch.Generator().manual_seed(self.seed)
        # Only the frames later samples can still depend on are kept (a push
        # costs the same at the end of a long utterance as at its start).
        self.frames = None  # normalized (T, n_mels), frames [kept, n_frames)
        self.kept = 0
        self.logmel = None  # for LPC shaping, frames [logmel_from, n_frames)
        self.logmel_from = 0
        self.raw = []  # as given, for the non-incremental fallback only
        self.n_frames = 0
        self.emitted = 0
        self.finished = False
        self.shaping_state = None  # de-emphasis / LPC synthesis state across chunks

    @property
    def lookahead_frames(self) -> int:
        return self.upsampler.lookahead_frames() if self.upsampler is not None else 0

    def ready_samples(self) -> int:
        """Samples whose every input frame has arrived (before the end is known)."""
        lo, hi = self.emitted, self.n_frames * self.hop
        while lo < hi:  # last n with frame_needed(n) <= n_frames - 1, plus one
            mid = (lo + hi + 1) // 2
            if frame_needed(mid - 1, self.upsampler) <= self.n_frames - 1:
                lo = mid
            else:
                hi = mid - 1
        return lo

    @torch.no_grad()
    def push(self, frames: torch.Tensor) -> torch.Tensor:
        """Add (T, n_mels) frames; return the audio that became computable (1-D)."""
        if self.finished:
            raise RuntimeError("push() after flush()")
        if len(frames) == 0:
            return torch.zeros(0)
        # A push's tensors are small; torch's worker threads, once woken (by
        # the padding and concatenation, say), spin on through the kernel call
        # on the cores it needs (4 frames per push: 1.3x the time).
        with one_torch_thread():
            feats = self.vocoder.check_feats(frames)
            self.n_frames += feats.shape[0]
            if not self.incremental:
                self.raw.append(feats)
                return torch.zeros(0)
            norm = feats if self.normalized else self.vocoder.normalize(feats)
            self.frames = norm if self.frames is None else torch.cat([self.frames, norm])
            if self.vocoder.shaping.enabled:
                lm = self.vocoder.logmel(feats, self.normalized)  # row by row
                self.logmel = lm if self.logmel is None else np.concatenate([self.logmel, lm])
            return self._emit(self.ready_samples(), final=False)

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """The end of the utterance: return the remaining audio."""
        if self.finished:
            return torch.zeros(0)
        self.finished = True
        if self.n_frames == 0:
            return torch.zeros(0)
        if not self.incremental:
            sids = [self.sid] if self.sid is not None else None
            feats = torch.cat(self.raw)
            return self.vocoder.generate(
                [feats], sids=sids, normalized=self.normalized, seed=self.seed
            )[0]
        with one_torch_thread():
            return self._emit(self.n_frames * self.hop, final=True)

    def _context_frames(self, n0: int, final: bool):
        """Context-conv output frames from the first one sample n0 uses: (frames, offset)."""
        up = self.upsampler
        w = up.aux_context_window
        # Start at the first frame of the cone of n0 (or the true start, so that
        # the smoothing convs' zero padding there matches the offline pass); the
        # window ends at the last computable frame, past the cone of the last
        # sample. Offline pads w frames on each side, so index a of the padded
        # frames is frame a - w: earlier frames are never needed again.
        a = max(0, up.first_frame(n0) - 1)
        drop = max(0, a - w) - self.kept
        if drop > 0:
            self.frames, self.kept = self.frames[drop:], self.kept + drop
        feats = self.frames.t().unsqueeze(0).to(self.vocoder.mean.device)  # (1, n_mels, T)
        # Replicate padding as offline: on the left while the first frame is
        # kept, on the right only once the end is known.
        padded = pad_context(feats, w, right=final, left=self.kept == 0)
        start = a if self.kept == 0 else 0  # index a of the offline padding (kept = a - w)
        return self.gen.context_frames(padded[0, :, start:]), a

    def _emit(self, n1: int, final: bool) -> torch.Tensor:
        n0 = self.emitted
        if n1 <= n0:
            return torch.zeros(0)
        n = n1 - n0
        voc = self.vocoder
        noise = voc.dist.noise(1, n, self.noise_gen).contiguous()
        out = torch.empty(1, n)
        # Frame-rate conditioning, as in the generator's offline path.
        ctx, a = self._context_frames(n0, final)
        total = [self.n_frames] if final else None
        self.gen.run_frames(
            self.state, [ctx], a, n, noise, out, self.g, voc.sampling,
            n_frames=total,
        )
        self.emitted = n1
        if not voc.shaping.enabled:
            return out[0]
        wav, self.shaping_state = voc.shaping.synthesis(
            out[0].numpy(), self.shaping_state, self.logmel, first_frame=self.logmel_from
        )
        # The next chunk starts in frame n1 // hop.
        drop = n1 // self.hop - self.logmel_from
        if 0 < drop < len(self.logmel):
            self.logmel, self.logmel_from = self.logmel[drop:], self.logmel_from + drop
        return torch.from_numpy(wav)
