"""Linear prediction from the log-mel features (the basis of LPC excitation)."""

import numpy as np
import pytest
import scipy.linalg
import torch

from conftest import MINI_DB, mini_ids
from espnet_wavenet.data import lpc
from espnet_wavenet.data.audio import read_audio
from espnet_wavenet.features import DEFAULT_FEATS_CONF, extract_feats

CONF = dict(DEFAULT_FEATS_CONF)
HOP = CONF["hop_length"]


@pytest.fixture(scope="module")
def speech():
    x, fs = read_audio(MINI_DB / "wav" / f"{mini_ids('eval', 1)[0]}.flac")
    assert fs == CONF["fs"]
    mel = extract_feats(torch.from_numpy(x), CONF).numpy()
    n = mel.shape[0] * HOP
    x = np.pad(x, (0, max(0, n - len(x))))[:n].astype(np.float64)
    return x, mel


def test_levinson_solves_the_normal_equations():
    rng = np.random.default_rng(0)
    sig = rng.standard_normal((3, 400))
    r = np.stack([np.correlate(s, s, "full")[399 : 399 + 17] for s in sig])
    a = lpc.levinson(r, 16)
    for i in range(3):
        want = scipy.linalg.solve_toeplitz(r[i, :16], r[i, 1:17])
        np.testing.assert_allclose(a[i], want, rtol=1e-8, atol=1e-10)


def test_excitation_and_synthesis_are_inverses(speech):
    x, mel = speech
    a = lpc.lpc_from_mels(mel, CONF, 16)
    e = lpc.excitation(x, a, HOP)
    np.testing.assert_allclose(lpc.synthesis(e, a, HOP), x, rtol=0, atol=1e-9)
    # In pieces, each carrying the previous piece's last samples: the same.
    cut = 37 * HOP
    e2 = lpc.excitation(x[cut:], a[37:], HOP, history=x[cut - 16 : cut])
    np.testing.assert_allclose(e2, e[cut:], rtol=0, atol=1e-12)
    y2 = lpc.synthesis(e[cut:], a[37:], HOP, history=x[cut - 16 : cut])
    np.testing.assert_allclose(y2, x[cut:], rtol=0, atol=1e-9)


def test_lpc_from_mels_approximates_lpc_from_the_waveform(speech):
    x, mel = speech
    t = mel.shape[0]
    a_mel = lpc.lpc_from_mels(mel, CONF, 16)
    a_wav = lpc.lpc_from_wav(x, CONF, 16)[:t]
    gain = {k: 10 * np.log10(np.mean(x**2) / np.mean(lpc.excitation(x, a, HOP) ** 2))
            for k, a in (("mel", a_mel), ("wav", a_wav))}
    # measured on this utterance: 12.9 dB from the mels, 13.7 dB from the STFT
    assert gain["mel"] > 10.0 and gain["mel"] > gain["wav"] - 2.0, gain
    energy = np.array([np.mean(x[i * HOP : (i + 1) * HOP] ** 2) for i in range(t)])
    speech_frames = 10 * np.log10(energy + 1e-12) > 10 * np.log10(energy.max()) - 40
    d = lpc.envelope_db(a_mel, 1024) - lpc.envelope_db(a_wav, 1024)
    d -= d.mean(axis=1, keepdims=True)  # gain is not LPC's business
    rms = np.sqrt(np.mean(d[speech_frames] ** 2))
    assert rms < 4.0, rms  # 2.6 dB measured on another mini_kathleen utterance


def test_predictors_from_mels_are_stable(speech):
    _, mel = speech
    a = lpc.lpc_from_mels(mel, CONF, 24)
    for frame in a[:: max(1, len(a) // 40)]:
        poles = np.roots(np.concatenate([[1.0], -frame]))
        assert np.abs(poles).max() < 1.0
