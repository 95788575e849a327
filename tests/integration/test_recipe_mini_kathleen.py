"""The mini_kathleen recipe end to end (stages 0-6), feature parity with ESPnet
TTS, and stage 0's validation of broken data directories.

The recipe runs in a copy under tmp (the repository stays clean) on a reduced
corpus (the shortest utterances) with a handful of training steps.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch

from recipe_copy import REPO, make_recipe_copy, make_small_db, run_recipe

FEATS = dict(fs=22050, n_fft=1024, n_shift=256, fmin=80, fmax=7600, n_mels=80)


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    """Stages 0-6 once; the tests below read what they left."""
    root = tmp_path_factory.mktemp("recipe")
    recipe = make_recipe_copy(root)
    db = make_small_db(root / "small_db")
    run_recipe(
        recipe, "--stage", "0", "--stop_stage", "6", "--db_root", str(db), "--nj", "2",
        "--train_args", "--num_iters_per_epoch 3 --batch_size 2",
        "--train_budget_samples", "20000", "--results_md", "RESULTS.md",
        "--decode_args", "--batch_size 4",
        "--eval_args", "--f0_method dio --griffin_lim_iters 2 --max_plots 1",
    )
    return recipe


def test_stages_0_to_6(recipe_run):
    r = recipe_run
    for s in ("train", "dev", "eval"):
        for f in ("wav.scp", "text", "utt2spk", "spk2utt"):
            assert (r / "data" / s / f).is_file()
        assert (r / "dump" / s / "feats.scp").is_file()
    assert (r / "exp" / "stats" / "train" / "feats_stats.npz").is_file()
    assert (r / "exp" / "tiny" / "checkpoint.pth").is_file()
    dec = r / "exp" / "tiny" / "decode_valid.loss.best"
    for s in ("dev", "eval"):
        wavs = sorted((dec / s / "wav").glob("*.wav"))
        assert len(wavs) == 2 and len((dec / s / "wav.scp").read_text().splitlines()) == 2
        assert (dec / s / "decode_stats.json").is_file()
        assert (dec / s / "eval" / "summary.md").is_file()
        assert list((dec / s / "eval").rglob("*.png"))
    from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

    voc = WaveNetVocoder.from_pretrained(r / "exp" / "tiny" / "pack")
    assert voc.fs == 22050 and voc.hop == 256 and voc.normalized
    # the budget: 20,000 samples at 3 x 2 segments of 8 x 256 an epoch -> 2 epochs
    rows = (r / "RESULTS.md").read_text().strip().splitlines()[-7:]
    assert [row.split("|")[1:3] for row in rows[:6]] == [
        [f" {name} ", f" {s} "] for s in ("dev", "eval")
        for name in ("tiny (valid.loss.best.pth)", "Griffin-Lim (2 iterations)", "natural speech")
    ]
    assert rows[0].split("|")[4] == f" {2 * 3 * 2 * 8 * 256} "
    # the shipped model on the same eval utterances, its cost from its pack
    shipped = WaveNetVocoder.from_pretrained(
        REPO / "egs" / "kathleen" / "voc1" / "pretrained" / "kathleen_wavenet")
    cells = [c.strip() for c in rows[6].split("|")[1:5]]
    # its NLL is of the LPC excitation, and the name says so
    assert cells == ["pretrained_kathleen_wavenet (NLL of the LPC excitation, order 24)",
                     "eval", "2", f"{shipped.provenance['samples'] / 1e6:.0f}M"]
    shipped_eval = r / "exp" / "pretrained_kathleen_wavenet" / "decode" / "eval" / "eval"
    assert (shipped_eval / "summary.md").is_file()
    # natural speech and Griffin-Lim of its 2 utterances: scored once, for the tiny model
    assert json.loads((shipped_eval / "summary.json").read_text())["settings"]["cached"] == 4
    assert json.loads((dec / "eval" / "eval" / "summary.json").read_text())["settings"][
        "cached"] == 0


def test_failed_evaluation_names_its_logs(recipe_run):
    dec = recipe_run / "exp" / "tiny" / "decode_valid.loss.best"
    before = (dec / "eval" / "eval" / "summary.md").read_text()
    proc = run_recipe(recipe_run, "--stage", "5", "--stop_stage", "5",
                      "--eval_args", "--f0_method yin", check=False)
    assert proc.returncode != 0
    logs = [f"exp/tiny/decode_valid.loss.best/{s}/eval/evaluate.log" for s in ("dev", "eval")]
    assert f"evaluation failed, see {logs[0]} {logs[1]}" in proc.stdout
    assert "invalid choice: 'yin'" in proc.stdout  # the log's tail is shown
    assert (dec / "eval" / "eval" / "summary.md").read_text() == before


def test_training_config_must_match_the_recipe_features(recipe_run):
    import yaml

    conf = yaml.safe_load((recipe_run / "conf" / "tiny.yaml").read_text())
    conf["feats_conf"]["fmax"] = 8000
    other = recipe_run / "conf_fmax8000.yaml"
    other.write_text(yaml.safe_dump(conf))
    proc = run_recipe(recipe_run, "--stage", "3", "--stop_stage", "3",
                      "--train_config", str(other), "--tag", "fmax8000", check=False)
    assert proc.returncode != 0
    assert f"{other}: feats_conf differs from the recipe's features" in proc.stdout
    assert "fmax: 8000 in the config, 7600 in the recipe" in proc.stdout
    assert not (recipe_run / "exp" / "fmax8000" / "checkpoint.pth").exists()


def test_rerun_of_decoding_skips_finished(recipe_run):
    proc = run_recipe(recipe_run, "--stage", "4", "--stop_stage", "4")
    # dev and eval of the tiny model, eval of the shipped one: 2 jobs each
    assert proc.stdout.count("(0 decoded, 1 skipped)") == 6, proc.stdout[-3000:]


def test_features_equal_espnet_tts_feats_extract(recipe_run, monkeypatch):
    """Stage 1 == the feats_extract ESPnet's TTSTask builds for the tts1 fbank config."""
    monkeypatch.chdir(recipe_run)  # scp files hold paths relative to the recipe
    from espnet2.tasks.tts import TTSTask

    args = TTSTask.get_parser().parse_args([
        "--feats_extract", "fbank", "--feats_extract_conf", f"fs={FEATS['fs']}",
        "--feats_extract_conf", f"n_fft={FEATS['n_fft']}",
        "--feats_extract_conf", f"hop_length={FEATS['n_shift']}",
        "--feats_extract_conf", "win_length=null",
        "--feats_extract_conf", f"fmin={FEATS['fmin']}",
        "--feats_extract_conf", f"fmax={FEATS['fmax']}",
        "--feats_extract_conf", f"n_mels={FEATS['n_mels']}",
    ])
    from espnet2.tasks.tts import feats_extractor_choices

    fe = feats_extractor_choices.get_class(args.feats_extract)(**args.feats_extract_conf).eval()
    n = 0
    for s in ("train", "dev"):
        wav_scp = dict(ln.split(maxsplit=1) for ln in (recipe_run / "dump" / s / "wav.scp").read_text().splitlines())
        for utt, ours in kaldiio.load_scp(str(recipe_run / "dump" / s / "feats.scp")).items():
            wav, fs = sf.read(wav_scp[utt], dtype="float32")
            assert fs == FEATS["fs"]
            with torch.no_grad():
                ref, _ = fe(torch.from_numpy(wav)[None], torch.tensor([len(wav)]))
            np.testing.assert_allclose(ours, ref[0].numpy(), atol=1e-5, rtol=0)
            n += 1
    assert n == 8


# --------------------------------------------------------------- broken data
def _data_dir(tmp_path: Path) -> Path:
    db = make_small_db(tmp_path / "db", n_train=4, n_test=1)
    from espnet_wavenet.recipe.corpora import prepare_split_corpus

    prepare_split_corpus(db, tmp_path / "data", ["train"], speaker="kathleen")
    return tmp_path / "data" / "train"


def _validate(d: Path):
    return subprocess.run(
        [sys.executable, "-m", "espnet_wavenet.bin.validate_data_dir", "--fs", "22050", str(d)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
    )


def _lines(p: Path):
    return p.read_text().splitlines(keepends=True)


@pytest.mark.parametrize("breakage", ["missing_wav", "unsorted", "duplicate", "sample_rate", "empty_text"])
def test_broken_data_dir_is_named_with_file_and_line(tmp_path, breakage):
    d = _data_dir(tmp_path)
    wav_scp = d / "wav.scp"
    lines = _lines(wav_scp)
    if breakage == "missing_wav":
        utt, path = lines[2].split()
        lines[2] = f"{utt} {tmp_path / 'gone.flac'}\n"
        wav_scp.write_text("".join(lines))
        expect = [f"{wav_scp}:3", "not found", "gone.flac"]
    elif breakage == "unsorted":
        lines[1], lines[2] = lines[2], lines[1]
        wav_scp.write_text("".join(lines))
        expect = [f"{wav_scp}:3", "not sorted"]
    elif breakage == "duplicate":
        text = _lines(d / "text")
        text.insert(2, text[1])
        (d / "text").write_text("".join(text))
        expect = [f"{d / 'text'}:3", "duplicate", "line 2"]
    elif breakage == "sample_rate":
        utt, path = lines[3].split()
        wav, fs = sf.read(path)
        sf.write(tmp_path / "16k.wav", wav[::2], 11025)
        lines[3] = f"{utt} {tmp_path / '16k.wav'}\n"
        wav_scp.write_text("".join(lines))
        expect = [f"{wav_scp}:4", "11025 Hz", "22050 Hz"]
    else:
        text = _lines(d / "text")
        text[1] = text[1].split()[0] + "\n"
        (d / "text").write_text("".join(text))
        expect = [f"{d / 'text'}:2", "empty transcript"]
    proc = _validate(d)
    assert proc.returncode != 0
    for e in expect:
        assert e in proc.stdout, proc.stdout


def test_stage0_stops_on_missing_audio(tmp_path):
    recipe = make_recipe_copy(tmp_path / "root")
    db = make_small_db(tmp_path / "db", n_train=3, n_test=1)
    victim = sorted((db / "wav").iterdir())[1]
    victim.unlink()
    proc = run_recipe(recipe, "--stage", "0", "--stop_stage", "0", "--db_root", str(db), check=False)
    assert proc.returncode != 0
    assert "wav.scp:" in proc.stdout and victim.name in proc.stdout, proc.stdout[-3000:]
    assert "Stage 1" not in proc.stdout


def test_two_node_rendezvous_trains_as_one_process(recipe_run, tmp_path):
    """The recipe's multi-node option on plain hosts: two torchrun agents on
    127.0.0.1 (c10d rendezvous, gloo), one process each, write the checkpoint
    that one process with the same global batch writes."""
    import socket

    from espnet_wavenet.train.checkpoint import load_checkpoint

    recipe = make_recipe_copy(tmp_path)
    # stages 0-2 as the module's recipe run left them (Kaldi paths are relative)
    for d in ("data", "dump", "exp/stats"):
        shutil.copytree(recipe_run / d, recipe / d, symlinks=True)
    # float32 (--cpu_bf16 auto would pick bf16 on some CPUs): the two runs compare
    train = ["--stage", "3", "--stop_stage", "3", "--train_args",
             "--num_iters_per_epoch 3 --batch_size 2 --max_epoch 1 --cpu_bf16 false"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    agents = [
        subprocess.Popen(
            ["bash", "./run.sh", *train, "--tag", "two_nodes", "--num_nodes", "2",
             "--node_rank", str(rank), "--master_addr", f"127.0.0.1:{port}"],
            cwd=recipe, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for rank in (0, 1)
    ]
    outs = [a.communicate(timeout=600)[0] for a in agents]
    exp = recipe / "exp" / "two_nodes"
    logs = {n: (exp / n).read_text() for n in ("train.log", "train.node1.log")}
    for agent, out in zip(agents, outs):
        assert agent.returncode == 0, out[-3000:] + logs["train.log"][-3000:]
    # ESPnet tags its log lines [host:rank/world] and logs INFO from rank 0 only;
    # the rendezvous, not --node_rank, deals the ranks. Both agents ended well.
    ranks = {m for log in logs.values() for m in re.findall(r"\[\S+:(\d)/2\]", log)}
    assert "0" in ranks, logs
    assert all("# exit code 0" in log for log in logs.values()), logs
    run_recipe(recipe, *train, "--tag", "one_process")
    two = load_checkpoint(exp / "checkpoint.pth")["model"]
    one = load_checkpoint(recipe / "exp" / "one_process" / "checkpoint.pth")["model"]
    assert two.keys() == one.keys()
    for k in one:  # DDP averages the two ranks' gradients: the same up to rounding
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-6, msg=k)
