"""The trained model the project ships: it loads, says what it is, and follows the mels."""

import re

import numpy as np
import torch

from conftest import MINI_DB, SHIPPED_MODEL, mini_ids
from espnet_wavenet.data.audio import read_audio
from espnet_wavenet.evaluation.logmel import LogMelDistance
from espnet_wavenet.features import DEFAULT_FEATS_CONF, extract_feats, feats_conf_mismatch
from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder
from nets import needs_fast


def test_pack_pairs_with_espnet_tts_and_its_card_matches_it():
    voc = WaveNetVocoder.from_pretrained(SHIPPED_MODEL)
    # ESPnet tts1's default features: any such TTS model pairs with it
    assert feats_conf_mismatch(voc.feats_conf, DEFAULT_FEATS_CONF) == {}
    assert voc.normalized and voc.shaping.enabled
    cost = voc.provenance
    assert cost["samples"] >= 1e8 and cost["epochs"] >= 1 and cost["train_hours"] > 0
    card = (SHIPPED_MODEL / "README.md").read_text()
    # the card states the samples seen of the weights it sits beside
    assert f"{cost['samples'] / 1e6:.1f}M samples" in card
    assert re.search(r"\| data \| Kathleen .*CC0", card)


@needs_fast
def test_follows_the_mels_of_held_out_speech():
    voc = WaveNetVocoder.from_pretrained(SHIPPED_MODEL)
    distance = LogMelDistance(voc.feats_conf)
    uttid = mini_ids("eval", 1)[0]  # in Kathleen's eval set: never trained on
    x, _ = read_audio(MINI_DB / "wav" / f"{uttid}.flac")
    mel = extract_feats(torch.from_numpy(x), voc.feats_conf)[:120]
    y = voc(mel).numpy()
    assert y.shape == (120 * voc.hop,) and np.abs(y).max() <= 1.0
    # measured 10.4 dB (8.8 on the next utterance); the same network with
    # random weights: 43 dB, white noise at speech level: 25 dB
    assert distance(x[: len(y)], y) < 13.0
