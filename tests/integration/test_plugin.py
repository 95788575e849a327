"""The ESPnet plugin: entry points, the Text2Speech hook, the feature contract, the CLI.

Real ESPnet classes throughout (TTSTask, Tacotron2, FastSpeech2, Text2Speech);
tiny random models; no downloads.
"""

import json
import logging
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

import tiny_tts as T

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "egs" / "TEMPLATE" / "voc1" / "scripts"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """TTS stats and vocoder stats from different utterances (they must differ)."""
    from espnet_wavenet.integration import activate, deactivate

    root = tmp_path_factory.mktemp("plugin")
    tts_stats = T.write_stats(
        root / "tts_stats.npz", T.natural_feats(["arctic_a0001"], T.FEATS_CONF)
    )
    voc_stats = T.write_stats(
        root / "voc_stats.npz", T.natural_feats(["arctic_a0002"], T.FEATS_CONF)
    )
    out = dict(
        root=root,
        tts_stats=tts_stats,
        tacotron2=T.build_tts(root / "tacotron2", "tacotron2", tts_stats),
        fastspeech2=T.build_tts(root / "fastspeech2", "fastspeech2", tts_stats),
        pack=T.build_vocoder(root / "pack", voc_stats),
    )
    activate()
    yield out
    deactivate()


def text2speech(m, vocoder_file=None, **kw):
    from espnet2.bin.tts_inference import Text2Speech

    return Text2Speech(
        train_config=str(m["config"]), model_file=str(m["model_file"]),
        vocoder_file=None if vocoder_file is None else str(vocoder_file), **kw,
    )


# ------------------------------------------------------------------ registry
def test_entry_point_from_installed_distribution():
    from espnet_wavenet.integration import registry
    from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

    dist = metadata.distribution("espnet_wavenet")
    eps = [ep for ep in dist.entry_points if ep.group == registry.GROUP]
    assert [(ep.name, ep.value) for ep in eps] == [
        ("wavenet", "espnet_wavenet.vocoder.wavenet_vocoder:WaveNetVocoder")
    ]
    assert registry.list_vocoders()["wavenet"] == eps[0].value
    assert registry.get_vocoder_class("wavenet") is WaveNetVocoder
    with pytest.raises(KeyError, match="no vocoder named 'nope'.*wavenet"):
        registry.get_vocoder_class("nope")


def test_build_by_name_and_resolve(models):
    from espnet_wavenet.integration import registry

    pack = models["pack"]
    vocoder = registry.build_vocoder("wavenet", pack)
    assert vocoder.fs == 22050 and vocoder.hop == 256 and vocoder.normalized
    for path in (pack, pack / "model.pth", pack / "config.yaml", f"wavenet:{pack}"):
        assert registry.resolve(path) == ("wavenet", pack), path
    assert registry.resolve(models["root"] / "tts_stats.npz") is None
    assert registry.resolve("some/vocoder.pkl") is None
    (pack / "checkpoint.pkl").write_bytes(b"")  # a pkl next to a packed config
    assert registry.resolve(pack / "checkpoint.pkl") is None
    (pack / "checkpoint.pkl").unlink()


FAKE_MODULE = '''
import torch

class FakeVocoder(torch.nn.Module):
    """A second vocoder package: silence of the right length."""
    fs = 22050
    feats_conf = dict(fs=22050, n_fft=1024, hop_length=256, n_mels=80)

    @classmethod
    def from_pretrained(cls, path, device="cpu"):
        v = cls()
        v.path = path
        return v

    @classmethod
    def accepts(cls, path):
        import os
        return os.path.exists(os.path.join(path, "fake_vocoder.txt"))

    def forward(self, feats):
        return torch.zeros(feats.shape[0] * 256)
'''


def test_third_party_package_registers_without_touching_this_one(models, tmp_path, monkeypatch):
    """A second distribution on sys.path with its own entry point is found and used."""
    from espnet_wavenet.integration import registry

    site = tmp_path / "site"
    (site / "fake_vocoder_pkg-0.1.dist-info").mkdir(parents=True)
    (site / "fake_vocoder_pkg-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-vocoder-pkg\nVersion: 0.1\n"
    )
    (site / "fake_vocoder_pkg-0.1.dist-info" / "entry_points.txt").write_text(
        "[espnet.vocoders]\nfakevoc = fake_vocoder_mod:FakeVocoder\n"
    )
    (site / "fake_vocoder_mod.py").write_text(FAKE_MODULE)
    monkeypatch.syspath_prepend(str(site))

    names = registry.list_vocoders()
    assert names["fakevoc"] == "fake_vocoder_mod:FakeVocoder" and "wavenet" in names
    # Recognised by its own accepts(), by a vocoder_type field, or by name:path.
    d1 = tmp_path / "fake_pack"
    d1.mkdir()
    (d1 / "config.yaml").write_text("anything: 1\n")
    (d1 / "fake_vocoder.txt").write_text("")
    d2 = tmp_path / "typed_pack"
    d2.mkdir()
    (d2 / "config.yaml").write_text("vocoder_type: fakevoc\n")
    assert registry.resolve(d1) == ("fakevoc", d1)
    assert registry.resolve(d2) == ("fakevoc", d2)
    assert registry.resolve(f"fakevoc:{models['pack']}") == ("fakevoc", models["pack"])

    t2s = text2speech(models["fastspeech2"], d2)
    assert type(t2s.vocoder).__name__ == "FakeVocoder"
    out = t2s("ab")
    assert out["wav"].shape == (out["feat_gen"].shape[0] * 256,)


# ---------------------------------------------------------------- the hook
@pytest.mark.parametrize("tts", ["tacotron2", "fastspeech2"])
def test_text2speech_uses_wavenet(models, tts):
    from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

    t2s = text2speech(models[tts], models["pack"], maxlenratio=2.0)
    vocoder = t2s.vocoder
    assert isinstance(vocoder, WaveNetVocoder)
    seen = []
    handle = vocoder.register_forward_pre_hook(lambda mod, args: seen.append(args))
    out = t2s("ab")
    handle.remove()
    n_frames = out["feat_gen"].shape[0]
    assert n_frames > 0
    assert out["wav"].shape == (n_frames * vocoder.hop,)
    assert t2s.fs == vocoder.fs == 22050
    assert float(out["wav"].abs().max()) <= 1.0
    # ESPnet hands over denormalized features and nothing else.
    assert len(seen) == 1 and len(seen[0]) == 1
    fed = seen[0][0]
    torch.testing.assert_close(fed, out["feat_gen_denorm"])
    # Normalization is converted: TTS stats undone by ESPnet, vocoder stats applied.
    tts_norm = t2s.model.normalize
    assert not torch.allclose(tts_norm.mean, vocoder.mean)
    expected = (out["feat_gen"] * tts_norm.std + tts_norm.mean - vocoder.mean) / vocoder.std
    torch.testing.assert_close(vocoder.normalize(fed), expected, rtol=1e-4, atol=1e-4)


def test_text2speech_loads_the_shipped_model_by_path(models):
    from conftest import SHIPPED_MODEL
    from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

    t2s = text2speech(models["fastspeech2"], SHIPPED_MODEL)
    assert isinstance(t2s.vocoder, WaveNetVocoder)
    assert t2s.vocoder.provenance["samples"] >= 1e8  # the trained weights, not a fresh net
    out = t2s("ab")
    assert out["wav"].shape == (out["feat_gen"].shape[0] * 256,)
    assert torch.isfinite(out["wav"]).all() and float(out["wav"].abs().max()) <= 1.0


def test_prefer_normalized_feats_is_converted(models):
    from espnet_wavenet.integration.espnet_tts import NormalizedInputVocoder

    t2s = text2speech(models["tacotron2"], models["pack"], prefer_normalized_feats=True)
    assert isinstance(t2s.vocoder, NormalizedInputVocoder) and t2s.fs == 22050
    seen = []
    t2s.vocoder.vocoder.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    out = t2s("ab")
    torch.testing.assert_close(seen[0], out["feat_gen_denorm"], rtol=1e-5, atol=1e-5)
    assert out["wav"].shape == (out["feat_gen"].shape[0] * 256,)


@pytest.mark.parametrize("name", ["model.pth", "config.yaml"])
def test_file_inside_pack_builds_it(models, name):
    from espnet2.tasks.tts import TTSTask

    from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

    model, _ = TTSTask.build_model_from_file(
        models["tacotron2"]["config"], models["tacotron2"]["model_file"]
    )
    v = TTSTask.build_vocoder_from_file(None, str(models["pack"] / name), model, "cpu")
    assert isinstance(v, WaveNetVocoder)
    # A packed config given as --vocoder_config alone builds it too.
    v = TTSTask.build_vocoder_from_file(str(models["pack"] / "config.yaml"), None, model)
    assert isinstance(v, WaveNetVocoder)


def _outcome(fn):
    try:
        return type(fn()).__name__
    except Exception as e:  # noqa: BLE001 - comparing behaviours
        return f"{type(e).__name__}: {e}"


def test_espnet_behaviour_unchanged_otherwise(models, tmp_path):
    """Griffin-Lim, *.pkl and unknown files behave exactly as without the plugin."""
    from espnet2.tasks.tts import TTSTask

    from espnet_wavenet.integration import activate, deactivate, is_active

    model, _ = TTSTask.build_model_from_file(
        models["tacotron2"]["config"], models["tacotron2"]["model_file"]
    )
    (tmp_path / "vocoder.pkl").write_bytes(b"not a real checkpoint")
    (tmp_path / "other.pth").write_bytes(b"")
    cases = [
        (None, None),
        (None, str(tmp_path / "vocoder.pkl")),
        (None, str(tmp_path / "other.pth")),
        (None, str(tmp_path)),  # a directory without a packed config
    ]
    assert is_active()
    hooked = [_outcome(lambda c=c: TTSTask.build_vocoder_from_file(*c, model)) for c in cases]
    deactivate()
    try:
        assert not is_active()
        plain = [_outcome(lambda c=c: TTSTask.build_vocoder_from_file(*c, model)) for c in cases]
    finally:
        activate()
    assert hooked == plain
    assert hooked[0] == "Spectrogram2Waveform"
    t2s = text2speech(models["tacotron2"])
    assert type(t2s.vocoder).__name__ == "Spectrogram2Waveform"
    out = t2s("ab")
    assert out["wav"].ndim == 1 and t2s.fs == 22050


def test_activation_is_idempotent(models):
    from espnet2.tasks.tts import TTSTask

    from espnet_wavenet.integration import activate, is_active
    from espnet_wavenet.integration.espnet_tts import _state

    first = TTSTask.__dict__["build_vocoder_from_file"]
    activate()
    activate()
    assert is_active() and TTSTask.__dict__["build_vocoder_from_file"] is first
    original = _state["original"].__func__
    assert not getattr(original, "_espnet_wavenet_hook", False)
    assert first.__func__.__wrapped__ is original


def test_hooks_are_undone_and_fit_this_espnet(models):
    # What the two wrappers assume of ESPnet; a release that changes it fails here.
    import inspect

    from espnet2.bin.tts_inference import Text2Speech
    from espnet2.tasks.tts import TTSTask

    from espnet_wavenet.integration import activate, deactivate, is_active
    from espnet_wavenet.integration.espnet_tts import _PREFER_NORMALIZED

    assert isinstance(TTSTask.__dict__["build_vocoder_from_file"], classmethod)
    params = list(inspect.signature(TTSTask.build_vocoder_from_file).parameters)
    assert params == ["vocoder_config_file", "vocoder_file", "model", "device"]
    init_src = inspect.getsource(inspect.unwrap(Text2Speech.__init__))
    assert "TTSTask.build_vocoder_from_file(" in init_src
    assert init_src.index("prefer_normalized_feats = prefer") < init_src.index(
        "TTSTask.build_vocoder_from_file("
    )
    assert is_active() and getattr(Text2Speech.__init__, "_espnet_wavenet_hook", False)
    deactivate()
    try:
        assert not is_active()
        assert not getattr(Text2Speech.__init__, "_espnet_wavenet_hook", False)
        assert "prefer_normalized_feats" in inspect.signature(Text2Speech.__init__).parameters
    finally:
        activate()
    assert _PREFER_NORMALIZED.get() is None  # set only while a Text2Speech is built


# ------------------------------------------------------- the feature contract
def test_mismatched_features_are_refused_naming_fields(models, monkeypatch, caplog):
    from espnet_wavenet.integration.feats_contract import ENV_ALLOW, FeatsMismatchError

    other = dict(T.FEATS_CONF, n_fft=2048, fmin=0, fmax=None)
    m = T.build_tts(models["root"] / "mismatch", "fastspeech2", models["tts_stats"], other)
    monkeypatch.delenv(ENV_ALLOW, raising=False)
    with pytest.raises(FeatsMismatchError) as err:
        text2speech(m, models["pack"])
    msg = str(err.value)
    for line in ("n_fft: vocoder=1024 tts=2048", "win_length: vocoder=1024 tts=2048",
                 "fmin: vocoder=80 tts=0", "fmax: vocoder=7600 tts=11025.0"):
        assert line in msg, msg
    assert {x.field for x in err.value.mismatches} == {"n_fft", "win_length", "fmin", "fmax"}
    # The explicit override lets it through with a warning.
    monkeypatch.setenv(ENV_ALLOW, "1")
    with caplog.at_level(logging.WARNING):
        t2s = text2speech(m, models["pack"])
    assert type(t2s.vocoder).__name__ == "WaveNetVocoder"
    assert "allowed by request" in caplog.text and "n_fft" in caplog.text


def test_compare_feats_field_by_field():
    from espnet2.tts.feats_extract.linear_spectrogram import LinearSpectrogram
    from espnet2.tts.feats_extract.log_mel_fbank import LogMelFbank

    from espnet_wavenet.integration.feats_contract import compare_feats

    def tts(**kw):
        return SimpleNamespace(feats_extract=LogMelFbank(**dict(T.FEATS_CONF, **kw)))

    assert compare_feats(T.FEATS_CONF, tts()) == []
    # Implicit values are made explicit: win_length None == n_fft.
    assert compare_feats(T.FEATS_CONF, tts(win_length=1024)) == []
    cases = dict(fs=24000, hop_length=300, window="hamming", n_mels=64, htk=True,
                 log_base=None, fmax=8000)
    for field, value in cases.items():
        diff = compare_feats(T.FEATS_CONF, tts(**{field: value}))
        assert [d.field for d in diff] == [field], (field, diff)
        assert diff[0].tts == value and diff[0].vocoder == T.FEATS_CONF[field]
    lin = SimpleNamespace(feats_extract=LinearSpectrogram(n_fft=1024))
    assert [d.field for d in compare_feats(T.FEATS_CONF, lin)] == ["feats_extract"]
    raw = SimpleNamespace(feats_extract=None, tts=SimpleNamespace(odim=80))
    assert [d.field for d in compare_feats(T.FEATS_CONF, raw)] == ["feats_extract"]


# ------------------------------------------------------------------- the CLI
def test_drop_in_parser_accepts_all_espnet_options():
    from espnet2.bin.tts_inference import get_parser

    from espnet_wavenet.bin.tts_inference import get_parser as ours

    def options(p):
        return {s for a in p._actions for s in a.option_strings}

    assert options(get_parser()) <= options(ours())
    assert {"--allow_feats_mismatch", "--skip_vocoder"} <= options(ours())


def test_drop_in_cli_writes_wavs_then_tts_decode_script(models, tmp_path):
    m = models["fastspeech2"]
    text = tmp_path / "text"
    text.write_text("utt1 a\nutt2 bc\n")
    out = tmp_path / "decode"
    proc = subprocess.run(
        [sys.executable, "-m", "espnet_wavenet.bin.tts_inference",
         "--output_dir", str(out), "--num_workers", "0",
         "--data_path_and_name_and_type", f"{text},text,text",
         "--train_config", str(m["config"]), "--model_file", str(m["model_file"]),
         "--vocoder_file", str(models["pack"])],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    for utt in ("utt1", "utt2"):
        frames = np.load(out / "norm" / f"{utt}.npy").shape[0]
        wav, fs = sf.read(str(out / "wav" / f"{utt}.wav"))
        assert fs == 22050 and len(wav) == frames * 256 > 0
    assert (out / "denorm" / "feats.scp").is_file()

    # Recipe stage: vocode the denorm/feats.scp of that decode dir.
    voc = tmp_path / "vocoded"
    proc = subprocess.run(
        ["bash", str(SCRIPTS / "tts_decode.sh"), "--python", sys.executable,
         "--model_dir", str(models["pack"]), "--decode_dir", str(out), "--out_dir", str(voc)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    wavs = {p.stem: p for p in voc.rglob("*.wav")}
    assert set(wavs) == {"utt1", "utt2"}, proc.stdout[-2000:]
    for utt, path in wavs.items():
        frames = np.load(out / "denorm" / f"{utt}.npy").shape[0]
        assert sf.info(str(path)).frames == frames * 256
    # and judged with no natural recording: DNSMOS of the output and of Griffin-Lim
    summary = json.loads((voc / "eval" / "summary.json").read_text())
    assert summary["reference"] is False
    assert sorted(summary["systems"]) == ["griffin_lim", "wavenet"]
    assert summary["systems"]["wavenet"]["dnsmos_ovrl"]["n"] == 2


def test_drop_in_cli_refuses_mismatch(models, tmp_path):
    """Same entry point as ``python -m``, in-process (saves ESPnet's import time)."""
    from espnet_wavenet.bin.tts_inference import main
    from espnet_wavenet.integration.feats_contract import FeatsMismatchError

    other = dict(T.FEATS_CONF, hop_length=200)
    m = T.build_tts(models["root"] / "mismatch_cli", "fastspeech2", models["tts_stats"], other)
    text = tmp_path / "text"
    text.write_text("utt1 a\n")
    cmd = ["--output_dir", str(tmp_path / "out"), "--num_workers", "0",
           "--data_path_and_name_and_type", f"{text},text,text",
           "--train_config", str(m["config"]), "--model_file", str(m["model_file"]),
           "--vocoder_file", str(models["pack"])]
    with pytest.raises(FeatsMismatchError, match="hop_length: vocoder=256 tts=200"):
        main(cmd)
    main(cmd + ["--allow_feats_mismatch", "true"])
    assert sf.info(str(tmp_path / "out" / "wav" / "utt1.wav")).samplerate == 22050
