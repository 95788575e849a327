"""The vocoder module: ESPnet's call convention, packing, loading, bad input."""

import numpy as np
import pytest
import torch
import yaml

from nets import FEATS, NET
from espnet_wavenet.train.checkpoint import load_checkpoint
from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder


def tiny_vocoder(dist="mulaw", **kw):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    return WaveNetVocoder(
        FEATS, NET, dist, mean=rng.normal(size=10), std=rng.uniform(0.5, 2, size=10),
        generator="reference", **kw,
    ).eval()


@pytest.mark.parametrize("dist", ["mulaw", "mol", "gaussian"])
def test_call_returns_waveform_of_frames_times_hop(dist):
    voc = tiny_vocoder(dist)
    assert voc.fs == 16000
    feats = torch.randn(7, 10)
    wav = voc(feats)
    assert wav.dim() == 1 and wav.shape[0] == 7 * 16
    assert wav.dtype == torch.float32
    assert wav.abs().max() <= 1.0
    assert torch.equal(voc(feats), wav)  # seeded: reproducible


def test_normalization_uses_the_packed_statistics():
    voc = tiny_vocoder()
    feats = torch.randn(5, 10)
    denorm = feats * voc.std + voc.mean
    a = voc.generate([denorm], seed=3)[0]
    b = voc.generate([feats], normalized=True, seed=3)[0]
    assert torch.equal(a, b)


def test_pack_round_trip(tmp_path):
    voc = tiny_vocoder("mol", temperature=1.0)
    voc.save_pretrained(tmp_path / "pack")
    assert {p.name for p in (tmp_path / "pack").iterdir()} == {
        "config.yaml", "model.pth", "feats_stats.npz"
    }
    loaded = WaveNetVocoder.from_pretrained(tmp_path / "pack", generator="reference")
    assert loaded.feats_conf == voc.feats_conf
    torch.testing.assert_close(loaded.mean, voc.mean)
    torch.testing.assert_close(loaded.std, voc.std, rtol=1e-5, atol=1e-6)
    feats = torch.randn(4, 10)
    torch.testing.assert_close(loaded(feats), voc(feats), rtol=0, atol=1e-5)
    # The fast generator's precision travels with the pack (TTS has no option).
    voc.precision = "int8"
    voc.save_pretrained(tmp_path / "pack8")
    assert WaveNetVocoder.from_pretrained(tmp_path / "pack8").precision == "int8"
    assert loaded.precision == "float32"


def test_bad_features_are_refused():
    voc = tiny_vocoder()
    with pytest.raises(ValueError, match="utt7: 12 mel bins, the model's n_mels is 10"):
        voc.generate([torch.randn(5, 12)], names=["utt7"])
    bad = torch.randn(5, 10)
    bad[2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"utt8: features contain NaN \(first at frame 2\)"):
        voc.generate([bad], names=["utt8"])
    with pytest.raises(ValueError, match=r"utterance 0: empty \(0 frames"):
        voc(torch.zeros(0, 10))


def test_packed_model_errors_name_the_file(tmp_path):
    voc = tiny_vocoder()
    pack = voc.save_pretrained(tmp_path / "pack")
    conf = yaml.safe_load((pack / "config.yaml").read_text())
    del conf["wavenet_conf"]
    (pack / "config.yaml").write_text(yaml.safe_dump(conf))
    with pytest.raises(ValueError, match=r"config.yaml: missing fields \['wavenet_conf'\]"):
        WaveNetVocoder.from_pretrained(pack)

    pack = voc.save_pretrained(tmp_path / "pack2")
    data = (pack / "model.pth").read_bytes()
    (pack / "model.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.pth: cannot load weights safely"):
        WaveNetVocoder.from_pretrained(pack)


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_with_code_payload_is_refused(tmp_path):
    voc = tiny_vocoder()
    pack = voc.save_pretrained(tmp_path / "pack")
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        torch.save({"x": torch.zeros(1), "payload": _Payload()}, f)
    (pack / "model.pth").write_bytes(evil.read_bytes())
    with pytest.raises(ValueError, match="cannot load weights safely"):
        WaveNetVocoder.from_pretrained(pack)
    with pytest.raises(ValueError, match="unsafe checkpoint"):
        load_checkpoint(evil)

