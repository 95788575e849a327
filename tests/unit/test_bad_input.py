"""Bad training input: one clear error naming the utterance, or a warned skip."""

import logging

import numpy as np
import pytest

from espnet_wavenet.train.collate import SegmentCollateFn

HOP = 16


def item(uttid, frames, samples=None, n_mels=4):
    samples = frames * HOP if samples is None else samples
    rng = np.random.default_rng(0)
    return uttid, {
        "speech": rng.uniform(-0.5, 0.5, samples).astype(np.float32),
        "feats": rng.normal(size=(frames, n_mels)).astype(np.float32),
    }


def test_segments_are_aligned_and_shaped():
    collate = SegmentCollateFn(HOP, segment_frames=4, context=2, train=True)
    ids, batch = collate([item("a", 10), item("b", 6, samples=6 * HOP - 5), item("c", 3)])
    assert ids == ["a", "b", "c"]
    assert batch["speech"].shape == (3, 4 * HOP)
    assert batch["feats"].shape == (3, 4 + 4, 4)
    # the short utterance is used whole, and only its real part counts
    assert batch["speech_lengths"].tolist() == [4 * HOP, 4 * HOP, 3 * HOP]


def test_crop_keeps_audio_and_frames_aligned():
    uttid, d = item("a", 20)
    d["feats"][:, 0] = np.arange(20)  # frame index in channel 0
    d["speech"] = np.repeat(np.arange(20), HOP).astype(np.float32)  # frame index per sample
    collate = SegmentCollateFn(HOP, segment_frames=5, context=1, train=True)
    for _ in range(10):
        _, b = collate([(uttid, d)])
        first_frame = b["speech"][0, 0].item()
        assert b["speech"][0, ::HOP].tolist() == [first_frame + i for i in range(5)]
        # feats carry one context frame on each side of the segment
        assert b["feats"][0, 1:-1, 0].tolist() == [first_frame + i for i in range(5)]


def test_length_disagreement_names_utterance():
    collate = SegmentCollateFn(HOP, segment_frames=4, length_tolerance=2)
    with pytest.raises(ValueError, match=r"utt_long: audio has 320 samples but 10 frames"):
        collate([item("utt_long", 10, samples=20 * HOP)])


def test_nan_features_name_utterance():
    uttid, d = item("utt_nan", 8)
    d["feats"][3, 1] = np.inf
    with pytest.raises(ValueError, match=r"utt_nan: features contain Inf \(first at frame 3\)"):
        SegmentCollateFn(HOP, 4)([(uttid, d)])


def test_empty_utterance_skipped_with_warning(caplog):
    collate = SegmentCollateFn(HOP, 4)
    with caplog.at_level(logging.WARNING):
        ids, batch = collate([item("ok", 8), item("empty", 0, samples=0)])
    assert ids == ["ok"]
    assert "empty: empty or shorter than one frame, skipped" in caplog.text
    with pytest.raises(ValueError, match=r"every utterance of the batch is empty: \['e1'\]"):
        collate([item("e1", 0, samples=3)])


def test_wrong_feature_rank_names_utterance():
    uttid, d = item("utt_1d", 8)
    d["feats"] = d["feats"].reshape(-1)
    with pytest.raises(ValueError, match=r"utt_1d: expected \(T_feats, n_mels\) log-mel features"):
        SegmentCollateFn(HOP, 4)([(uttid, d)])


def test_wrong_n_mels_names_utterance():
    with pytest.raises(ValueError, match="utt_80: 4 mel bins, the model's n_mels is 80"):
        SegmentCollateFn(HOP, 4, n_mels=80)([item("utt_80", 8)])
