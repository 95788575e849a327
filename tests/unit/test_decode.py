"""decode.py: resumable, atomic, and one clear error per kind of bad input."""

import json
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import yaml

from espnet_wavenet.bin import decode as decode_bin
from espnet_wavenet.generation.cpu import loader
from espnet_wavenet.recipe import decode as decode_lib
from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

REPO = Path(__file__).resolve().parents[2]
HOP = 256
N_MELS = 80


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A packed tiny vocoder with random weights and unit statistics."""
    conf = yaml.safe_load((REPO / "conf" / "tiny.yaml").read_text())
    voc = WaveNetVocoder(
        conf["feats_conf"], conf["wavenet_conf"], conf["distribution"],
        conf["distribution_conf"], mean=np.zeros(N_MELS), std=np.ones(N_MELS),
    )
    return voc.save_pretrained(tmp_path_factory.mktemp("pack"))


def feats(n_frames: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(-2, 1, (n_frames, N_MELS)).astype(np.float32)


def write_ark(d: Path, utts: dict) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    with kaldiio.WriteHelper(f"ark,scp:{d / 'feats.ark'},{d / 'feats.scp'}") as w:
        for u, x in utts.items():
            w(u, x)
    return d / "feats.scp"


def write_npy(d: Path, utts: dict) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    for u, x in utts.items():
        np.save(d / f"{u}.npy", x)
        lines.append(f"{u} {d / (u + '.npy')}\n")
    (d / "feats.scp").write_text("".join(lines))
    return d / "feats.scp"


def run(model_dir: Path, scp: Path, out: Path, *extra: str) -> None:
    decode_bin.main([
        "--model_dir", str(model_dir), "--feats_scp", str(scp), "--out_dir", str(out),
        "--generator", "reference", "--batch_size", "4", *extra,
    ])


def test_ark_and_npy_decode_and_rerun_skips(model_dir, tmp_path):
    utts = {"a": feats(3, 1), "b": feats(4, 2), "c": feats(3, 3)}
    for kind, writer in (("ark", write_ark), ("npy", write_npy)):
        scp = writer(tmp_path / kind / "in", utts)
        out = tmp_path / kind / "out"
        run(model_dir, scp, out)
        for u, x in utts.items():
            info = sf.info(str(out / "wav" / f"{u}.wav"))
            assert info.frames == len(x) * HOP and info.samplerate == 22050
            assert info.subtype == "PCM_16"
        assert [ln.split()[0] for ln in (out / "wav.scp").read_text().splitlines()] == ["a", "b", "c"]
        stats = json.loads((out / "decode_stats.json").read_text())
        assert stats["decoded"] == 3 and stats["samples"] == 10 * HOP and stats["rtf"] > 0

    # Rerun: nothing regenerated, files untouched, the earlier stats kept.
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "wav").glob("*.wav")}
    run(model_dir, scp, out)
    assert {p: p.stat().st_mtime_ns for p in (out / "wav").glob("*.wav")} == mtimes
    # A missing and a truncated wav are regenerated; the others are skipped.
    (out / "wav" / "a.wav").unlink()
    sf.write(str(out / "wav" / "b.wav"), np.zeros(100), 22050, subtype="PCM_16")
    stats = decode_lib.decode_scp(
        WaveNetVocoder.from_pretrained(model_dir), scp, out, batch_size=2
    )
    assert (stats.decoded, stats.skipped) == (2, 1)
    assert sf.info(str(out / "wav" / "b.wav")).frames == 4 * HOP


def test_sampling_options_reach_the_generator(model_dir, tmp_path):
    scp = write_ark(tmp_path / "in", {"a": feats(3, 1)})
    wavs = []
    for seed in ("1", "2"):
        out = tmp_path / f"argmax{seed}"
        run(model_dir, scp, out, "--temperature", "0", "--tail", "0.002", "--seed", seed)
        stats = json.loads((out / "decode_stats.json").read_text())
        assert stats["sampling"] == dict(temperature=0.0, log_scale_min=None, tail=0.002)
        wavs.append(sf.read(str(out / "wav" / "a.wav"))[0])
    # argmax draws nothing at random: the seed cannot matter
    assert np.array_equal(wavs[0], wavs[1])
    run(model_dir, scp, tmp_path / "sampled", "--seed", "1")
    assert not np.array_equal(sf.read(str(tmp_path / "sampled" / "wav" / "a.wav"))[0], wavs[0])


@pytest.mark.skipif(loader.load_library() is None, reason="fast kernel not built")
def test_decode_precision_option(model_dir, tmp_path):
    # --precision reaches the fast generator and is recorded (that int8 really
    # computes in int8 is tested in test_precision.py).
    scp = write_ark(tmp_path / "in", {"a": feats(6, 1)})
    wavs = {}
    for precision in ("float32", "int8"):
        out = tmp_path / precision
        decode_bin.main([
            "--model_dir", str(model_dir), "--feats_scp", str(scp), "--out_dir", str(out),
            "--generator", "fast", "--precision", precision,
        ])
        stats = json.loads((out / "decode_stats.json").read_text())
        assert (stats["generator"], stats["precision"]) == ("fast", precision)
        assert stats["kernel"] == loader.kernel_kind()
        wavs[precision], _ = sf.read(str(out / "wav" / "a.wav"))
    assert len(wavs["int8"]) == len(wavs["float32"]) == 6 * HOP


def test_write_is_atomic(model_dir, tmp_path, monkeypatch):
    scp = write_ark(tmp_path / "in", {"a": feats(3), "b": feats(3, 5)})
    out = tmp_path / "out"
    run(model_dir, scp, out, "--batch_size", "1")
    good = (out / "wav" / "a.wav").read_bytes()
    (out / "wav" / "b.wav").unlink()
    (out / "wav" / ".b.wav.dead.tmp").write_bytes(b"RIFF partial")  # a killed run's leftover

    real_write = sf.write

    def dying_write(f, data, *a, **k):  # a kill in the middle of writing
        real_write(f, data[: len(data) // 2], *a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(decode_lib.sf, "write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        run(model_dir, scp, out)
    assert not (out / "wav" / "b.wav").exists()  # never a half-written wav
    assert list((out / "wav").glob(".*.tmp")) == []
    assert (out / "wav" / "a.wav").read_bytes() == good
    monkeypatch.setattr(decode_lib.sf, "write", real_write)
    run(model_dir, scp, out)
    assert sf.info(str(out / "wav" / "b.wav")).frames == 3 * HOP


@pytest.mark.parametrize(
    "name, bad, expected",
    [
        ("nan", "nan", "NaN"),
        ("inf", "inf", "Inf"),
        ("mels", "mels", "mel bins"),
        ("empty", "empty", "empty"),
        ("short", "short", "too short"),
    ],
)
def test_bad_features_name_the_utterance(model_dir, tmp_path, capsys, name, bad, expected):
    x = feats(4)
    if bad == "nan":
        x[2, 5] = np.nan
    elif bad == "inf":
        x[1, 0] = np.inf
    elif bad == "mels":
        x = feats(4)[:, :40].copy()
    elif bad == "empty":
        x = np.zeros((0, N_MELS), np.float32)
    elif bad == "short":
        x = feats(2)
    for kind, writer in (("ark", write_ark), ("npy", write_npy)):
        scp = writer(tmp_path / kind, {"good": feats(3), "utt_bad": x})
        out = tmp_path / f"out_{kind}"
        out.mkdir()
        (out / "keep.txt").write_text("earlier output")
        with pytest.raises(SystemExit) as e:
            run(model_dir, scp, out)
        msg = str(e.value)
        assert "utt_bad" in msg and str(scp) in msg and expected in msg, msg
        assert (out / "keep.txt").read_text() == "earlier output"
        assert not (out / "wav" / "good.wav").exists()  # checked before generating


def test_missing_or_unreadable_feature_files(model_dir, tmp_path):
    scp = write_ark(tmp_path / "ark", {"u1": feats(3)})
    (tmp_path / "ark" / "feats.ark").unlink()
    with pytest.raises(SystemExit) as e:
        run(model_dir, scp, tmp_path / "o1")
    assert "u1" in str(e.value) and "feats.ark" in str(e.value) and "not found" in str(e.value)

    scp = write_npy(tmp_path / "npy", {"u2": feats(3)})
    (tmp_path / "npy" / "u2.npy").write_bytes(b"not an npy file")
    with pytest.raises(SystemExit) as e:
        run(model_dir, scp, tmp_path / "o2")
    assert "u2" in str(e.value) and "u2.npy" in str(e.value)

    with pytest.raises(SystemExit) as e:
        run(model_dir, tmp_path / "nothing.scp", tmp_path / "o3")
    assert "nothing.scp" in str(e.value)


def test_jobs_merge(model_dir, tmp_path):
    scp1 = write_ark(tmp_path / "j1", {"a": feats(3)})
    scp2 = write_ark(tmp_path / "j2", {"b": feats(3, 1)})
    out = tmp_path / "out"
    run(model_dir, scp1, out, "--job_tag", "1")
    run(model_dir, scp2, out, "--job_tag", "2")
    decode_bin.main(["--out_dir", str(out), "--merge_jobs", "2"])
    assert [ln.split()[0] for ln in (out / "wav.scp").read_text().splitlines()] == ["a", "b"]
    stats = json.loads((out / "decode_stats.json").read_text())
    assert stats["utterances"] == 2 and stats["jobs"] == 2 and stats["rtf"] > 0
