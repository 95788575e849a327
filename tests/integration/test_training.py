"""Training: overfitting real speech, the ESPnet CLI with resume, DDP, EMA,
packing, unsafe checkpoints, noise shaping with a sample budget."""

import os
import pickle
import re

import numpy as np
import pytest
import torch
import yaml

from conftest import MINI_DB, checkpoint_state, mini_ids, run_py, train_cmd
from espnet_wavenet.data.audio import read_audio
from espnet_wavenet.features import check_feats_conf, extract_feats
from espnet_wavenet.models.builder import build_wavenet
from espnet_wavenet.train.checkpoint import load_checkpoint
from espnet_wavenet.train.espnet_model import ESPnetWaveNetModel
from espnet_wavenet.vocoder.pack import vocoder_from_experiment
from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder, load_weights


def test_overfits_one_real_utterance():
    """A few hundred CPU steps on one utterance cut its NLL far down."""
    conf = check_feats_conf(dict(hop_length=256))
    uttid = mini_ids("train", 1)[0]
    wav, fs = read_audio(MINI_DB / "wav" / f"{uttid}.flac", uttid)
    assert fs == conf["fs"]
    wav = torch.from_numpy(wav)
    feats = extract_feats(wav, conf)  # ESPnet LogMelFbank, (T, 80)
    feats = (feats - feats.mean(0)) / feats.std(0).clamp(min=1e-3)
    frames = 8
    start = feats.shape[0] // 2 - frames // 2  # a voiced stretch mid-utterance
    c = torch.nn.functional.pad(feats.t()[None], (2, 2), mode="replicate")
    c = c[:, :, start : start + frames + 4]
    x = wav[start * 256 : (start + frames) * 256][None]
    torch.manual_seed(0)
    net, dist = build_wavenet(
        conf,
        dict(layers=6, stacks=2, residual_channels=32, gate_channels=64,
             skip_channels=32, upsample_scales=[4, 4, 4, 4]),
    )
    model = ESPnetWaveNetModel(net, dist, ema_decay=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    lengths = torch.tensor([x.shape[1]])
    flen = torch.tensor([c.shape[2]])
    losses = []
    for _ in range(300):
        loss, stats, _ = model(x, lengths, c.transpose(1, 2), flen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(stats["nll_bits"].item())
    assert losses[0] > 7.0  # ~8 bits: uniform over 256 classes
    assert np.mean(losses[-10:]) < 0.6 * losses[0], losses[::50]


def test_ema_tracks_and_warms_up():
    from espnet_wavenet.train.ema import ExponentialMovingAverage

    lin = torch.nn.Linear(2, 2)
    ema = ExponentialMovingAverage(lin, decay=0.9)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    ema.update(lin)  # the first update copies (fine-tuning starts from init_param)
    assert ema.num_updates.item() == 1
    assert torch.all(ema.shadow_state_dict()["weight"] == 1.0)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    ema.update(lin)  # warm-up decay (1 + 1) / 11: mostly the new value
    w = ema.shadow_state_dict()["weight"]
    assert torch.allclose(w, torch.full_like(w, 2.0 / 11.0))
    # a forward of --accum_grad that follows no optimizer step: no update
    ema.update(lin)
    assert ema.num_updates.item() == 2
    assert torch.equal(ema.shadow_state_dict()["weight"], w)
    for p in lin.parameters():
        p.grad = torch.ones_like(p)
    torch.optim.SGD(lin.parameters(), lr=1.0).step()
    ema.update(lin)
    assert ema.num_updates.item() == 3
    assert "ema.weight" not in dict(lin.named_parameters())
    assert set(k for k in ema.state_dict()) == {"weight", "bias", "num_updates"}


def test_cli_trains_writes_experiment_and_resumes(mini_dump, tmp_path):
    out = tmp_path / "exp"
    # batches of 4 on the CPU: 2 micro-batches of 2 (--cpu_micro_batch 2, the default)
    # --num_workers 2 (as the GPU configs say): --cpu_num_workers 0, the default, runs
    first = run_py(train_cmd(mini_dump, out, "--max_epoch", "1", "--batch_size", "4",
                             "--num_workers", "2"), cwd=tmp_path)
    assert "1epoch results" in first.stdout
    # the reported train loss is the NLL, not the loss ESPnet divided by --accum_grad
    train = re.search(r"1epoch results: \[train\].*?loss=([\d.]+), nll_bits=([\d.]+)",
                      first.stdout)
    assert train, first.stdout[-3000:]
    assert float(train[1]) == pytest.approx(float(train[2]) * np.log(2.0), abs=2e-3)
    for name in ("checkpoint.pth", "1epoch.pth", "latest.pth", "valid.loss.best.pth",
                 "config.yaml"):
        assert (out / name).exists(), name
    assert any((out / "images").glob("*.png"))
    assert any((out / "tensorboard").rglob("events.*"))
    conf = yaml.safe_load((out / "config.yaml").read_text())
    assert (conf["batch_size"], conf["accum_grad"], conf["num_iters_per_epoch"]) == (2, 2, 10)
    assert conf["valid_batch_size"] == 4
    assert conf["num_workers"] == 0
    state = checkpoint_state(out / "checkpoint.pth")
    # 5 optimizer steps of 2 forwards each: the average moved once per step
    assert state["model"]["ema.num_updates"].item() == 5
    ema1 = state["model"]["ema.out2__weight"].clone()

    log = run_py(
        train_cmd(mini_dump, out, "--max_epoch", "2", "--resume", "true", "--batch_size", "4"),
        cwd=tmp_path
    ).stdout
    assert "The training was resumed using" in log
    assert "2epoch results" in log and "1epoch results" not in log
    state2 = checkpoint_state(out / "checkpoint.pth")
    # step count and EMA carry on from the first run
    assert state2["model"]["ema.num_updates"].item() == 10
    assert len(state2["optimizers"][0]["state"]) > 0
    assert not torch.equal(state2["model"]["ema.out2__weight"], ema1)
    assert (out / "2epoch.pth").exists()
    weights = load_weights(out / "2epoch.pth")
    assert "wavenet.out2.weight" in weights


def test_ddp_two_cpu_processes(mini_dump, tmp_path):
    out = tmp_path / "exp_ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = run_py(
        ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         *train_cmd(mini_dump, out, "--max_epoch", "1", "--dist_backend", "gloo",
                    "--use_tensorboard", "false")[0:0],
         "-m", "espnet_wavenet.bin.train",
         *train_cmd(mini_dump, out, "--max_epoch", "1", "--dist_backend", "gloo",
                    "--use_tensorboard", "false")[2:]],
        cwd=tmp_path, env=env, timeout=300,
    )
    assert (out / "checkpoint.pth").exists(), proc.stdout[-3000:]
    log = proc.stdout
    # ESPnet prefixes log lines with [host:rank/world_size]
    assert re.search(r"\[\S+:0/2\]", log), log[-3000:]
    assert "1epoch results" in log


def test_entry_point_found_after_installation():
    from importlib.metadata import entry_points

    eps = {ep.name: ep for ep in entry_points(group="espnet.vocoders")}
    assert "wavenet" in eps
    from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

    assert eps["wavenet"].load() is WaveNetVocoder


def test_nonfinite_losses_are_counted_then_stop_training():
    net, dist = build_wavenet(
        check_feats_conf(dict(hop_length=16, n_mels=4, n_fft=64)),
        dict(layers=2, stacks=1, residual_channels=4, gate_channels=8, skip_channels=4,
             aux_context_window=0, upsample_scales=[16]),
        "gaussian",
    )
    model = ESPnetWaveNetModel(net, dist, ema_decay=0.0, max_nonfinite_steps=3)
    model.train()
    x = torch.zeros(1, 32)
    c = torch.zeros(1, 2, 4)
    c[0, 0, 0] = float("nan")
    lens, flens = torch.tensor([32]), torch.tensor([2])
    _, stats, _ = model(x, lens, torch.zeros(1, 2, 4), flens, utt_id=["ok"])
    assert stats["nonfinite"].item() == 0
    for _ in range(2):
        _, stats, _ = model(x, lens, c, flens, utt_id=["bad_utt"])
        assert stats["nonfinite"].item() == 1
    with pytest.raises(RuntimeError, match=r"3 non-finite losses in a row.*bad_utt"):
        model(x, lens, c, flens, utt_id=["bad_utt"])


def test_cpu_bf16_through_espnet_trainer(mini_dump, tmp_path):
    # --cpu_bf16: the network runs under bf16 autocast in training steps only
    # (validation stays float32), through ESPnet's own Trainer.
    out = tmp_path / "exp"
    log = run_py(train_cmd(mini_dump, out, "--max_epoch", "1", "--cpu_bf16", "true"),
                 cwd=tmp_path).stdout
    assert "1epoch results" in log
    train_loss = float(re.search(r"\[train\][^\n]*?loss=([0-9.]+)", log).group(1))
    assert 0 < train_loss < 10
    state = checkpoint_state(out / "checkpoint.pth")
    assert all(torch.isfinite(v).all() for k, v in state["model"].items() if v.is_floating_point())

    conf = check_feats_conf({})
    net, dist = build_wavenet(conf, {"layers": 2, "stacks": 1, "residual_channels": 8,
                                     "gate_channels": 8, "skip_channels": 8})
    model = ESPnetWaveNetModel(net, dist, ema_decay=0, cpu_bf16=True)
    seen = []
    net.register_forward_hook(lambda m, i, o: seen.append(o.dtype))  # the logits
    speech = torch.rand(1, 2 * net.hop) - 0.5
    feats = torch.randn(1, 2 + 2 * net.aux_context_window, 80)
    for training in (True, False):
        model.train(training)
        model(speech, torch.tensor([2 * net.hop]), feats, torch.tensor([feats.shape[1]]))
    assert seen == [torch.bfloat16, torch.float32]


def test_cpu_bf16_auto_follows_the_cpu():
    from espnet_wavenet.tasks.vocoder import cpu_bf16_enabled
    from espnet_wavenet.utils.cpu import has_bf16_products

    assert cpu_bf16_enabled("auto") == has_bf16_products()
    assert cpu_bf16_enabled("AUTO") == has_bf16_products()
    for value, expected in ((True, True), (False, False), ("true", True), ("false", False)):
        assert cpu_bf16_enabled(value) is expected
    with pytest.raises(ValueError):
        cpu_bf16_enabled("sometimes")


def test_pack_from_experiment_uses_ema(mini_dump, tmp_path):
    out = tmp_path / "exp"
    run_py(train_cmd(mini_dump, out, "--max_epoch", "1", "--use_tensorboard", "false"),
           cwd=tmp_path)
    run_py(["-m", "espnet_wavenet.bin.pack", "--config", str(out / "config.yaml"),
            "--model_file", str(out / "latest.pth"), "--out_dir", str(tmp_path / "pack")],
           cwd=tmp_path)
    voc = WaveNetVocoder.from_pretrained(tmp_path / "pack", generator="reference")
    state = load_checkpoint(out / "latest.pth")
    torch.testing.assert_close(voc.net.out2.weight, state["ema.out2__weight"])
    assert not torch.equal(state["ema.out2__weight"], state["wavenet.out2.weight"])
    raw = vocoder_from_experiment(out / "config.yaml", out / "latest.pth", use_ema=False)
    torch.testing.assert_close(raw.net.out2.weight, state["wavenet.out2.weight"])
    wav = voc(torch.randn(3, 80) * 2 - 5)
    assert wav.shape == (3 * 256,)


def test_training_refuses_unsafe_init_param(mini_dump, tmp_path):
    evil = tmp_path / "evil.pth"
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    with open(evil, "wb") as f:
        pickle.dump({"wavenet.out2.weight": Payload()}, f)
    proc = run_py(
        train_cmd(mini_dump, tmp_path / "exp", "--max_epoch", "1",
                  "--init_param", str(evil), "--use_tensorboard", "false"),
        cwd=tmp_path, check=False,
    )
    assert proc.returncode != 0
    assert "unsafe checkpoint" in proc.stdout
    assert not marker.exists()


def test_trained_with_noise_shaping_and_a_sample_budget(mini_dump, tmp_path):
    out = tmp_path / "exp"
    cfg = yaml.safe_load(open(train_cmd(mini_dump, out)[3]))
    per_step = 2 * cfg["segment_frames"] * cfg["feats_conf"]["hop_length"]  # batch 2
    # 7 steps' worth at 3 steps an epoch: 3 epochs (rounded up)
    proc = run_py(train_cmd(mini_dump, out, "--num_iters_per_epoch", "3",
                            "--train_budget_samples", str(7 * per_step), "--max_epoch", "50",
                            "--noise_shaping_conf", "pre_emphasis=0.85",
                            "--use_tensorboard", "false"), cwd=tmp_path)
    # ESPnet's own INFO lines still come (logging is configured by ESPnet)
    assert f"--train_budget_samples {7 * per_step:.4g}: --max_epoch 3" in proc.stdout
    assert "3epoch results" in proc.stdout
    conf = yaml.safe_load(open(out / "config.yaml"))
    assert conf["max_epoch"] == 3
    assert conf["noise_shaping_conf"] == dict(pre_emphasis=0.85)
    assert int(load_checkpoint(out / "checkpoint.pth")["model"]["ema.num_updates"]) == 9
    from espnet_wavenet.train.cost import training_cost
    cost = training_cost(out)
    assert cost["epochs"] == 3 and cost["samples"] == 9 * per_step
    assert 0 < cost["train_hours"] < 0.1
    assert cost["noise_shaping"] == dict(pre_emphasis=0.85)
    run_py(["-m", "espnet_wavenet.bin.pack", "--config", str(out / "config.yaml"),
            "--model_file", str(out / "checkpoint.pth"), "--out_dir", str(tmp_path / "pack")],
           cwd=tmp_path)
    voc = WaveNetVocoder.from_pretrained(tmp_path / "pack", generator="reference")
    assert voc.shaping.conf() == dict(pre_emphasis=0.85, highpass_hz=70.0)
    # the pack says what training cost (the recipes' results rows read it)
    assert voc.provenance["samples"] == 9 * per_step and voc.provenance["epochs"] == 3
