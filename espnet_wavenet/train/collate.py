"""Collate function: aligned random segments of audio and feature frames."""

import logging
import zlib
from typing import Collection, Dict, List, Tuple

import numpy as np
import torch

from espnet_wavenet.features import feats_problem
from espnet_wavenet.layers.upsample import pad_context


class SegmentCollateFn:
    """Crop aligned (audio, frames) segments and stack them into a batch.

    A segment of ``segment_frames`` frames covers ``segment_frames * hop`` samples;
    the frames come with ``context`` extra frames on each side for the
    upsampler (replicate-padded at the utterance edges). Utterances shorter than a
    segment are used whole and zero-padded; ``speech_lengths`` marks the real part.
    Audio is trimmed or zero-padded to ``n_frames * hop`` when it differs by at most
    ``length_tolerance`` frames (STFT framing with center=True gives one frame
    more than len // hop); larger disagreements are an error naming the utterance.

    Training crops at random positions; validation (``train=False``) crops the
    middle of each utterance, so validation losses are comparable across epochs.
    A training batch takes one number from numpy's global generator (which ESPnet
    seeds every epoch, alike in every rank) and each utterance's position comes
    from that number and its id: a batch split over ranks (ESPnet hands rank r
    ``batch[r::world_size]``) crops exactly what one process would.
    """

    def __init__(
        self,
        hop: int,
        segment_frames: int,
        context: int = 0,
        train: bool = True,
        length_tolerance: int = 2,
        n_mels: int = None,
    ):
        if hop <= 0 or segment_frames <= 0:
            raise ValueError(f"bad hop {hop} / segment_frames {segment_frames}")
        self.hop = int(hop)
        self.segment_frames = int(segment_frames)
        self.context = int(context)
        self.train = train
        self.length_tolerance = int(length_tolerance)
        self.n_mels = n_mels

    def align(self, uttid: str, speech: np.ndarray, feats: np.ndarray) -> np.ndarray:
        """Audio trimmed or padded to exactly len(feats) * hop samples."""
        if speech.ndim != 1:
            raise ValueError(f"{uttid}: expected mono audio, got shape {speech.shape}")
        problem = feats_problem(feats, self.n_mels, min_frames=0)
        if problem is not None:
            raise ValueError(f"{uttid}: {problem}")
        want = feats.shape[0] * self.hop
        if abs(len(speech) - want) > self.length_tolerance * self.hop:
            raise ValueError(
                f"{uttid}: audio has {len(speech)} samples but {feats.shape[0]} frames "
                f"x hop {self.hop} = {want}; they disagree by more than "
                f"{self.length_tolerance} frames"
            )
        if len(speech) >= want:
            return speech[:want]
        return np.pad(speech, (0, want - len(speech)))

    def __call__(
        self, data: Collection[Tuple[str, Dict[str, np.ndarray]]]
    ) -> Tuple[List[str], Dict[str, torch.Tensor]]:
        uttids, speeches, featss, lengths, sids = [], [], [], [], []
        seg, ctx, hop = self.segment_frames, self.context, self.hop
        skipped = []
        batch_seed = np.random.randint(0, 2**31 - 1) if self.train else 0
        for uttid, d in data:
            feats = np.asarray(d["feats"], dtype=np.float32)
            if feats.ndim == 2 and (feats.shape[0] == 0 or len(d["speech"]) < hop):
                logging.warning("%s: empty or shorter than one frame, skipped", uttid)
                skipped.append(uttid)
                continue
            speech = self.align(uttid, np.asarray(d["speech"], dtype=np.float32), feats)
            n = feats.shape[0]
            padded = pad_context(torch.from_numpy(feats.T[None]), ctx)[0].T.numpy()
            if n >= seg:
                if self.train:
                    rng = np.random.default_rng([batch_seed, zlib.crc32(uttid.encode())])
                    start = int(rng.integers(0, n - seg + 1))
                else:
                    start = (n - seg) // 2
                f = padded[start : start + seg + 2 * ctx]
                s = speech[start * hop : (start + seg) * hop]
                length = seg * hop
            else:
                f = np.pad(padded, ((0, seg - n), (0, 0)), mode="edge")
                s = np.pad(speech, (0, (seg - n) * hop))
                length = n * hop
            uttids.append(uttid)
            speeches.append(s)
            featss.append(f)
            lengths.append(length)
            if "sids" in d:
                sids.append(np.asarray(d["sids"]).reshape(-1)[:1])
        if not uttids:
            raise ValueError(f"every utterance of the batch is empty: {skipped}")
        batch = {
            "speech": torch.from_numpy(np.stack(speeches)),
            "speech_lengths": torch.tensor(lengths, dtype=torch.long),
            "feats": torch.from_numpy(np.stack(featss)),
            "feats_lengths": torch.full(
                (len(featss),), seg + 2 * ctx, dtype=torch.long
            ),
        }
        if sids:
            if len(sids) != len(uttids):
                raise ValueError("some utterances of the batch have no speaker id")
            batch["sids"] = torch.from_numpy(np.concatenate(sids).astype(np.int64))
        if self.train and min(lengths) < seg * hop:
            logging.debug("batch has utterances shorter than one segment")
        return uttids, batch
