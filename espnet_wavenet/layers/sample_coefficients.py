"""The upsampler's stretch as per-sample weights of the frames a sample depends on.

The upsampler (context conv, then per scale a repeat and a 1-channel smoothing
conv shared by all channels) is linear and channel-independent, and so is any
projection of its output: they commute. A generator can therefore project at
frame rate and form each sample's conditioning as a weighted sum of the W
(3-4) projected frames the sample depends on. The weights depend only on the
sample's phase within the hop, except within a frame or two of either end
(zero padding of the smoothing convs): they are found by stretching W impulse
combs once, and near the end from the utterance's actual length.
"""

from typing import Optional, Tuple

import torch

from espnet_wavenet.layers.upsample import ConditioningUpsampler


class SampleCoefficients:
    """Per-sample frame weights of ``upsampler``'s stretch (cached tables,
    rebuilt when its parameters change)."""

    def __init__(self, upsampler: ConditioningUpsampler):
        self.up = upsampler
        self._key = None
        # Listed once (a module walk per lookup costs more than the lookup):
        # in-place updates bump _version, ``.data =`` moves data_ptr.
        self._params = tuple(upsampler.parameters())
        self._tab: dict = {}

    def first_frame(self, steps: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """First context-conv frame each sample depends on (clamped at 0)."""
        idx = self.up.first_frame(steps)
        return idx.clamp(min=0) if clamp else idx

    @property
    def width(self) -> int:
        """W: frames per sample, from :meth:`first_frame` on."""
        return self._tables()["width"]

    def _tables(self) -> dict:
        """Band width W and the coefficient tables of the interior and the start."""
        key = tuple((p.data_ptr(), p._version) for p in self._params)
        if self._key == key:
            return self._tab
        up, hop = self.up, self.up.hop
        probe = torch.arange(16 * hop, 17 * hop)  # shift invariant away from the ends
        width = int((up.last_frame(probe) - up.first_frame(probe)).max()) + 1
        m = 4 * width + 8  # frames of the probe comb; its middle frame is interior
        x = up.impulse_combs(m, width)
        j = m // 2
        n = torch.arange(j * hop, (j + 1) * hop)
        idx = (self.first_frame(n)[:, None] + torch.arange(width)) % width
        interior = x[n].gather(1, idx)
        n_start = int((self.first_frame(torch.arange(j * hop), False) < 0).sum())
        n = torch.arange(n_start)
        idx = (self.first_frame(n)[:, None] + torch.arange(width)) % width
        start = x[n].gather(1, idx)
        self._tab = dict(width=width, span=m, interior=interior, start=start, end={})
        self._key = key
        return self._tab

    def _end_table(self, n_frames: int) -> Tuple[int, torch.Tensor]:
        """Coefficients of the last ``span`` frames' samples of an utterance of
        ``n_frames`` context-conv frames: (first frame of the window, table)."""
        tab = self._tables()
        if n_frames not in tab["end"]:
            width, hop = tab["width"], self.up.hop
            ws = max(0, n_frames - tab["span"])
            x = self.up.impulse_combs(n_frames - ws, width)
            n = torch.arange(ws * hop, n_frames * hop)
            idx = (self.first_frame(n)[:, None] - ws + torch.arange(width)) % width
            if len(tab["end"]) > 64:
                tab["end"].clear()
            tab["end"][n_frames] = (ws, x[n - ws * hop].gather(1, idx))
        return tab["end"][n_frames]

    def __call__(self, steps: torch.Tensor, n_frames: Optional[int]) -> torch.Tensor:
        """(len(steps), W) weights of frames first_frame(n) + k for samples ``steps``
        of an utterance of ``n_frames`` context-conv frames (None: not known yet;
        then no sample asked for may depend on the end)."""
        tab = self._tables()
        hop = self.up.hop
        coef = tab["interior"][steps % hop]
        left = self.first_frame(steps, False) < 0
        if left.any():
            coef[left] = tab["start"][steps[left]]
        if n_frames is not None:
            right = self.up.last_frame(steps) > n_frames - 1
            if right.any():
                past = steps >= n_frames * hop  # batch padding: no conditioning
                near = right & ~past
                if near.any():
                    ws, end = self._end_table(n_frames)
                    coef[near] = end[steps[near] - ws * hop]
                coef[past] = 0.0
        return coef
