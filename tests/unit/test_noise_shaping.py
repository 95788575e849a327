"""Noise shaping: pre-emphasized training target, de-emphasized output."""

import argparse

import numpy as np
import pytest
import torch
from scipy import signal

from conftest import MINI_DB, mini_ids
from espnet_wavenet.data.audio import read_audio
from espnet_wavenet.data.noise_shaping import NoiseShaping
from espnet_wavenet.features import DEFAULT_FEATS_CONF
from espnet_wavenet.tasks.vocoder import WaveNetVocoderTask

FS = 22050


def speech() -> np.ndarray:
    wav, fs = read_audio(MINI_DB / "wav" / f"{mini_ids('eval', 1)[0]}.flac")
    assert fs == FS
    return wav


def band_energy(x: np.ndarray, lo: float, hi: float) -> float:
    f, p = signal.welch(x, FS, nperseg=1024)
    return float(p[(f >= lo) & (f < hi)].sum())


def test_synthesis_inverts_analysis_up_to_the_highpass():
    ns = NoiseShaping(FS, pre_emphasis=0.85, highpass_hz=70.0)
    x = speech()
    shaped = ns.analysis(x)
    assert shaped.dtype == np.float32 and np.abs(shaped).max() <= 1.0
    back, _ = ns.synthesis(shaped)
    b, a = signal.butter(2, 70.0, "highpass", fs=FS)
    expected = signal.lfilter(b, a, signal.lfilter(b, a, x))
    np.testing.assert_allclose(back, expected, atol=2e-5)
    # and in the band the features describe, that is the speech's spectrum
    # (the causal high-pass shifts the phase near its cut-off, not the level)
    edges = [150, 300, 600, 1200, 2400, 4800, 7600]
    for lo, hi in zip(edges[:-1], edges[1:]):
        ratio_db = 10 * np.log10(band_energy(back, lo, hi) / band_energy(x, lo, hi))
        assert abs(ratio_db) < 0.5, (lo, hi, ratio_db)


def test_noise_added_to_the_target_comes_out_tilted_down():
    # the point of it: flat noise in the modelled signal ends up low where
    # speech is weak (high frequencies) after de-emphasis
    ns = NoiseShaping(FS, pre_emphasis=0.85)
    noise = np.random.default_rng(0).normal(scale=0.01, size=FS * 2)
    out, _ = ns.synthesis(noise)
    tilt_in = band_energy(noise, 4000, 8000) / band_energy(noise, 200, 1000)
    tilt_out = band_energy(out, 4000, 8000) / band_energy(out, 200, 1000)
    # |1 / (1 - 0.85 z^-1)|^2 is ~ 15 dB lower at 4-8 kHz than at 0.2-1 kHz
    assert 10 * np.log10(tilt_in / tilt_out) > 12


def test_synthesis_in_chunks_equals_at_once():
    ns = NoiseShaping(FS, pre_emphasis=0.85)
    x = np.random.default_rng(1).uniform(-0.2, 0.2, size=5000).astype(np.float32)
    whole, _ = ns.synthesis(x)
    parts, state = [], None
    for a, b in ((0, 1), (1, 700), (700, 701), (701, 5000)):
        y, state = ns.synthesis(x[a:b], state)
        parts.append(y)
    assert np.array_equal(np.concatenate(parts), whole)


def test_off_is_the_identity_and_bad_settings_are_named():
    x = speech()
    off = NoiseShaping.from_conf({}, FS)
    assert not off.enabled and off.analysis(x) is x and off.synthesis(x)[0] is x
    with pytest.raises(ValueError, match="pre_emphasis"):
        NoiseShaping(FS, pre_emphasis=1.0)
    with pytest.raises(ValueError, match="unknown keys.*'alpha'"):
        NoiseShaping.from_conf(dict(alpha=0.9), FS)


def test_task_preprocessing_shapes_the_speech_of_each_utterance():
    args = argparse.Namespace(feats_conf=dict(DEFAULT_FEATS_CONF),
                              noise_shaping_conf=dict(pre_emphasis=0.85))
    prep = WaveNetVocoderTask.build_preprocess_fn(args, train=True)
    x = speech().astype(np.float64)  # ESPnet's sound reader gives float64
    feats = np.zeros((3, 80), dtype=np.float32)
    out = prep("utt", dict(speech=x, feats=feats))
    np.testing.assert_array_equal(out["speech"], NoiseShaping(FS, 0.85).analysis(x))
    assert out["feats"] is feats
    args.noise_shaping_conf = {}
    assert WaveNetVocoderTask.build_preprocess_fn(args, train=True) is None


def test_vocoder_de_emphasizes_what_the_network_draws(tmp_path):
    from nets import FEATS, NET
    from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

    torch.manual_seed(0)
    voc = WaveNetVocoder(FEATS, NET, generator="reference",
                         noise_shaping_conf=dict(pre_emphasis=0.85, highpass_hz=50.0)).eval()
    f = torch.randn(6, 10)
    drawn = voc.generate([f], seed=2, shaped=True)[0]
    wav = voc.generate([f], seed=2)[0]
    expected, _ = NoiseShaping(16000, 0.85, 50.0).synthesis(drawn.numpy())
    assert torch.equal(wav, torch.from_numpy(expected))
    voc.save_pretrained(tmp_path / "pack")
    loaded = WaveNetVocoder.from_pretrained(tmp_path / "pack", generator="reference")
    assert loaded.shaping.conf() == dict(pre_emphasis=0.85, highpass_hz=50.0)
    assert torch.equal(loaded.generate([f], seed=2)[0], wav)

