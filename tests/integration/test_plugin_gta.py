"""GTA fine-tuning: ESPnet teacher-forced inference -> aligned features -> training."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tiny_tts as T
import torch
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "egs" / "TEMPLATE" / "voc1" / "scripts" / "gta_finetune.sh"


def test_align_gta_feats_pads_trims_and_refuses(tmp_path):
    from espnet_wavenet.integration.gta import align_gta_feats

    rng = np.random.default_rng(0)
    nat = {u: rng.standard_normal((n, 4)).astype(np.float32)
           for u, n in (("a", 10), ("b", 11), ("c", 9))}
    gta = {"a": nat["a"] + 1, "b": nat["b"][:10] + 1, "c": np.zeros((10, 4), np.float32)}
    for name, feats in (("nat", nat), ("gta", gta)):
        d = tmp_path / name
        d.mkdir()
        lines = []
        for u, f in feats.items():
            np.save(d / f"{u}.npy", f)
            lines.append(f"{u} {d / (u + '.npy')}\n")
        (d / "feats.scp").write_text("".join(lines))
    counts = align_gta_feats(tmp_path / "gta/feats.scp", tmp_path / "nat/feats.scp",
                             tmp_path / "out")
    assert counts == dict(utterances=3, padded=1, trimmed=1, missing=0)
    b = np.load(tmp_path / "out/data/b.npy")
    assert b.shape == (11, 4)
    np.testing.assert_array_equal(b[:10], nat["b"][:10] + 1)
    np.testing.assert_array_equal(b[10:], nat["b"][10:])  # natural tail frame
    assert np.load(tmp_path / "out/data/c.npy").shape == (9, 4)
    assert (tmp_path / "out/feats_shape").read_text().splitlines()[1] == "b 11,4"
    np.save(tmp_path / "gta/a.npy", nat["a"][:2])
    with pytest.raises(ValueError, match="a: GTA features have 2 frames.*10"):
        align_gta_feats(tmp_path / "gta/feats.scp", tmp_path / "nat/feats.scp",
                        tmp_path / "out2", max_diff=4)


def test_gta_finetune_script(tmp_path):
    """Tacotron2 (reduction_factor 2) GTA features fine-tune a packed vocoder."""
    from espnet_wavenet.bin.extract_feats import main as extract_feats
    from espnet_wavenet.vocoder.wavenet_vocoder import load_weights

    ids = T.MINI_DB.joinpath("splits", "train").read_text().split()[:3]
    valid_ids = T.MINI_DB.joinpath("splits", "dev").read_text().split()[:1]
    feats_yaml = tmp_path / "feats.yaml"
    feats_yaml.write_text(yaml.safe_dump(dict(feats_conf=T.FEATS_CONF)))
    for name, utts in (("train", ids), ("dev", valid_ids)):
        # 0.4 s each: 35 frames, odd, so Tacotron2 with r=2 drops one.
        data = T.write_data_dir(tmp_path / "data" / name, utts, max_seconds=0.4)
        extract_feats(["--config", str(feats_yaml), "--wav_scp", str(data / "wav.scp"),
                       "--out_dir", str(tmp_path / "dump" / name)])
    nat = T.natural_feats(ids[:1], T.FEATS_CONF)
    voc_stats = T.write_stats(tmp_path / "voc_stats.npz", nat)
    tts_stats = T.write_stats(tmp_path / "tts_stats.npz", nat[::2] * 1.1)
    pack = T.build_vocoder(tmp_path / "pack", voc_stats)
    taco = T.build_tts(tmp_path / "tts", "tacotron2", tts_stats)

    conf = yaml.safe_load((REPO / "conf" / "tiny.yaml").read_text())
    conf.update(wavenet_conf=T.TINY_WAVENET, max_epoch=1, num_iters_per_epoch=3,
                batch_size=2, num_att_plot=0)
    train_config = tmp_path / "train.yaml"
    train_config.write_text(yaml.safe_dump(conf))

    out = tmp_path / "exp"
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--python", sys.executable,
         "--tts_config", str(taco["config"]), "--tts_model", str(taco["model_file"]),
         "--vocoder_dir", str(pack), "--train_config", str(train_config),
         "--train_dump", str(tmp_path / "dump/train"),
         "--train_text", str(tmp_path / "data/train/text"),
         "--valid_dump", str(tmp_path / "dump/dev"),
         "--valid_text", str(tmp_path / "data/dev/text"),
         "--outdir", str(out), "--nj", "1",
         "--train_args", "--use_matplotlib false"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-6000:]
    print("\n".join(l for l in proc.stdout.splitlines() if "gta_finetune.sh)" in l))

    # Stage 1: ESPnet wrote teacher-forced features, one frame short (r=2).
    raw = dict(l.split() for l in (out / "tts_gta/train/feats.scp").read_text().splitlines())
    assert sorted(raw) == sorted(ids)
    for u in ids:
        assert np.load(raw[u]).shape == (34, 80)
    # Stage 2: aligned to the audio's 35 frames; the TTS output, not the natural mel.
    from espnet_wavenet.data.scp import load_feats
    from espnet_wavenet.data.datadir import read_dict as read_scp

    dump_scp = read_scp(tmp_path / "dump/train/feats.scp")
    natural = {u: load_feats(loc, u) for u, loc in dump_scp.items()}
    scp = dict(l.split() for l in (out / "gta/train/feats.scp").read_text().splitlines())
    for u in ids:
        g = np.load(scp[u])
        assert g.shape == natural[u].shape == (35, 80)
        np.testing.assert_array_equal(g[:34], np.load(raw[u]))
        assert not np.allclose(g[:34], natural[u][:34], atol=0.1)
    assert len((out / "gta/valid/wav.scp").read_text().splitlines()) == 1
    # Stage 3/4: fine-tuned from the pack with the pack's statistics, packed again.
    args = yaml.safe_load((out / "train/config.yaml").read_text())
    assert args["normalize_conf"]["stats_file"] == str(pack / "feats_stats.npz")
    assert args["init_param"] == [f"{pack}/model.pth::wavenet"]
    before = load_weights(pack / "model.pth")
    after = load_weights(out / "pack/model.pth")
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "fine-tuning changed no weight"
    for k in before:  # a few steps from the packed weights, not from scratch
        assert torch.allclose(before[k], after[k], atol=0.1), k
    # The fine-tuned pack (written by bin.pack) pairs with the TTS model.
    from espnet2.tasks.tts import TTSTask

    from espnet_wavenet.integration import activate, deactivate
    from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

    model, _ = TTSTask.build_model_from_file(taco["config"], taco["model_file"])
    activate()
    try:
        v = TTSTask.build_vocoder_from_file(None, str(out / "pack"), model, "cpu")
    finally:
        deactivate()
    assert isinstance(v, WaveNetVocoder)
    torch.testing.assert_close(v.mean, torch.from_numpy(np.load(pack / "feats_stats.npz")[
        "sum"]).float() / float(np.load(pack / "feats_stats.npz")["count"]))


class _Payload:
    """Unpickling this runs code: it must never reach ESPnet's --init_param."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_gta_script_refuses_unsafe_pack_before_espnet_loads_it(tmp_path):
    pack = T.build_vocoder(tmp_path / "pack", None)
    marker = tmp_path / "payload_ran"
    torch.save({"x": _Payload(str(marker))}, pack / "model.pth")
    files = {}
    for name in ("tts.yaml", "tts.pth", "train.yaml", "text", "dump/wav.scp",
                 "dump/feats.scp"):
        files[name] = tmp_path / name
        files[name].parent.mkdir(parents=True, exist_ok=True)
        files[name].write_text("")
    files["train.yaml"].write_text(yaml.safe_dump(
        yaml.safe_load((pack / "config.yaml").read_text())))
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--python", sys.executable, "--stage", "3", "--stop_stage", "3",
         "--tts_config", str(files["tts.yaml"]), "--tts_model", str(files["tts.pth"]),
         "--vocoder_dir", str(pack), "--train_config", str(files["train.yaml"]),
         "--train_dump", str(tmp_path / "dump"), "--train_text", str(files["text"]),
         "--valid_dump", str(tmp_path / "dump"), "--valid_text", str(files["text"]),
         "--outdir", str(tmp_path / "exp")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "cannot load weights safely" in proc.stdout, proc.stdout[-3000:]
    assert not marker.exists()
    assert not (tmp_path / "exp" / "train").exists()
