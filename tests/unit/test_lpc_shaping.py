"""LPC excitation as the training target: analysis, synthesis, and the vocoder around it."""

import argparse

import numpy as np
import pytest
import torch
from scipy import signal

from conftest import MINI_DB, mini_ids
from espnet_wavenet.data import lpc
from espnet_wavenet.data.audio import read_audio
from espnet_wavenet.data.lpc_shaping import LPCShaping
from espnet_wavenet.data.shaping import build_shaping
from espnet_wavenet.features import DEFAULT_FEATS_CONF, extract_feats
from espnet_wavenet.tasks.vocoder import WaveNetVocoderTask

CONF = dict(DEFAULT_FEATS_CONF)
FS, HOP = CONF["fs"], CONF["hop_length"]


@pytest.fixture(scope="module")
def speech():
    x, fs = read_audio(MINI_DB / "wav" / f"{mini_ids('eval', 1)[0]}.flac")
    assert fs == FS
    mel = extract_feats(torch.from_numpy(x), CONF).numpy()
    n = mel.shape[0] * HOP
    return np.pad(x, (0, max(0, n - len(x))))[:n].astype(np.float32), mel


def band_levels_db(x: np.ndarray, edges) -> np.ndarray:
    f, p = signal.welch(x, FS, nperseg=1024)
    return np.array([10 * np.log10(p[(f >= lo) & (f < hi)].mean())  # density
                     for lo, hi in zip(edges[:-1], edges[1:])])


def test_synthesis_inverts_analysis_up_to_the_highpass(speech):
    x, mel = speech
    sh = LPCShaping(CONF, lpc_order=24, highpass_hz=70.0)
    e = sh.analysis(x, mel)
    assert e.dtype == np.float32 and np.abs(e).max() <= 1.0
    # the excitation is what LPC removes the envelope from: much less energy
    gain_db = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(e.astype(np.float64) ** 2))
    assert gain_db > 8.0, gain_db
    back, _ = sh.synthesis(e, None, mel)
    b, a = signal.butter(2, 70.0, "highpass", fs=FS)
    expected = signal.lfilter(b, a, signal.lfilter(b, a, x.astype(np.float64)))
    # float32 rounding of the excitation, amplified by the all-pole filter's gain
    err = back - expected
    snr = 10 * np.log10(np.sum(expected**2) / np.sum(err**2))
    assert snr > 60.0, snr


def test_noise_in_the_excitation_comes_out_under_the_envelope(speech):
    x, mel = speech
    sh = LPCShaping(CONF, lpc_order=24)
    noise = np.random.default_rng(0).normal(scale=1e-3, size=len(x)).astype(np.float32)
    out, _ = sh.synthesis(noise, None, mel)
    edges = [150, 300, 600, 1200, 2400, 4800, 7600]
    shaped, flat, speech_db = (band_levels_db(s, edges) for s in (out, noise, x))
    # white noise in, noise with the speech's long-term spectral shape out
    corr_out = np.corrcoef(shaped, speech_db)[0, 1]
    # 0.85 measured: pauses, where the noise stays and speech does not, weigh in
    assert corr_out > 0.8, (shaped - shaped.mean(), speech_db - speech_db.mean())
    assert np.ptp(shaped) > np.ptp(flat) + 15.0


def test_synthesis_in_chunks_equals_one_pass(speech):
    x, mel = speech
    sh = LPCShaping(CONF, lpc_order=16)
    e = sh.analysis(x, mel)
    n = 20 * HOP
    whole, _ = sh.synthesis(e[:n], None, mel[:20])
    parts, state = [], None
    # cuts inside frames, on frame edges, a single sample, several frames at once
    for a, b in ((0, 1), (1, 300), (300, 512), (512, 513), (513, 3000), (3000, n)):
        # streaming passes the frames that have arrived so far
        y, state = sh.synthesis(e[a:b], state, mel[: min(20, b // HOP + 2)])
        parts.append(y)
    assert np.array_equal(np.concatenate(parts), whole)
    # or only the frames from the chunk's first one on (a long stream drops the rest)
    parts, state = [], None
    for a, b in ((0, 1), (1, 300), (300, 512), (512, 513), (513, 3000), (3000, n)):
        f0 = a // HOP
        y, state = sh.synthesis(e[a:b], state, mel[f0 : min(20, b // HOP + 2)], first_frame=f0)
        parts.append(y)
    assert np.array_equal(np.concatenate(parts), whole)
    with pytest.raises(ValueError, match="from frame 3: the chunk needs frame 2"):
        sh.synthesis(e[600:700], sh.synthesis(e[:600], None, mel)[1], mel[3:], first_frame=3)


def test_settings_and_missing_features_are_named(speech):
    x, _ = speech
    sh = build_shaping(dict(lpc_order=24), CONF)
    assert isinstance(sh, LPCShaping) and sh.conf() == dict(lpc_order=24, highpass_hz=70.0)
    assert not build_shaping(dict(lpc_order=0), CONF).enabled
    with pytest.raises(ValueError, match="pre_emphasis.*choose one"):
        build_shaping(dict(lpc_order=24, pre_emphasis=0.85), CONF)
    with pytest.raises(ValueError, match="lpc_order"):
        build_shaping(dict(lpc_order=200), CONF)
    with pytest.raises(ValueError, match="log-mel"):
        sh.analysis(x)


def test_task_preprocessing_gives_the_excitation_of_each_utterance(speech):
    x, mel = speech
    args = argparse.Namespace(feats_conf=CONF, noise_shaping_conf=dict(lpc_order=24))
    prep = WaveNetVocoderTask.build_preprocess_fn(args, train=True)
    out = prep("utt", dict(speech=x.astype(np.float64), feats=mel))
    np.testing.assert_array_equal(out["speech"], LPCShaping(CONF, 24).analysis(x, mel))
    assert out["feats"] is mel
    with pytest.raises(ValueError, match="utterance utt7:.*log-mel"):
        prep("utt7", dict(speech=x))


def test_vocoder_filters_what_the_network_draws(tmp_path):
    from nets import FEATS, NET
    from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

    torch.manual_seed(0)
    conf = dict(lpc_order=8, highpass_hz=50.0)
    voc = WaveNetVocoder(FEATS, NET, generator="reference", noise_shaping_conf=conf,
                         mean=np.full(10, -2.0), std=np.full(10, 0.5)).eval()
    f = torch.randn(6, 10) * 0.5 - 2.0
    drawn = voc.generate([f], seed=2, shaped=True)[0]
    wav = voc.generate([f], seed=2)[0]
    expected, _ = LPCShaping(FEATS, 8, 50.0).synthesis(drawn.numpy(), None, f.double().numpy())
    assert torch.equal(wav, torch.from_numpy(expected))
    # normalized input: the predictors come from the denormalized frames
    normed = voc.generate([(f - voc.mean) / voc.std], seed=2, normalized=True)[0]
    torch.testing.assert_close(normed, wav, rtol=0, atol=1e-5)
    voc.save_pretrained(tmp_path / "pack")
    loaded = WaveNetVocoder.from_pretrained(tmp_path / "pack", generator="reference")
    assert loaded.shaping.conf() == conf
    assert torch.equal(loaded.generate([f], seed=2)[0], wav)
