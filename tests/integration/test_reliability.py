"""Kill -9 at random moments: training always resumes and finishes."""

import random
import shutil
import subprocess
import sys
import time

import torch

from conftest import run_py
from espnet_wavenet.train.checkpoint import load_checkpoint
from conftest import train_cmd


def test_training_survives_random_kills(mini_dump, tmp_path):
    out = tmp_path / "exp"
    cmd = train_cmd(mini_dump, out, "--max_epoch", "4", "--num_iters_per_epoch", "4",
                    "--resume", "true", "--use_tensorboard", "false",
                    "--use_matplotlib", "false")
    rng = random.Random(0)
    kills = 0
    epochs_seen = []
    while kills < 5:
        proc = subprocess.Popen([sys.executable, *cmd], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # ESPnet's start-up takes seconds; kill anywhere from start-up to the
        # end of training (inside steps, validation, checkpoint writes)
        time.sleep(rng.uniform(2.0, 14.0))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait()
        if (out / "checkpoint.pth").exists():
            state = load_checkpoint(out / "checkpoint.pth")  # never partial
            epochs_seen.append(state["reporter"]["epoch"])
        if proc.returncode == 0:  # finished before the kill: start over
            shutil.rmtree(out)
            epochs_seen.clear()
    had_checkpoint = (out / "checkpoint.pth").exists()
    final = run_py(cmd, cwd=tmp_path)
    state = load_checkpoint(out / "checkpoint.pth")
    assert state["reporter"]["epoch"] == 4
    # every completed epoch's 4 updates, none lost or doubled by the kills
    assert state["model"]["ema.num_updates"].item() == 16
    assert not list(out.glob(".*.tmp"))
    assert epochs_seen == sorted(epochs_seen)
    assert ("The training was resumed" in final.stdout) == had_checkpoint


def test_kill_between_checkpoint_and_epoch_file(mini_dump, tmp_path):
    """ESPnet writes checkpoint.pth, then {epoch}epoch.pth: a kill in between."""
    out = tmp_path / "exp"
    opts = ["--max_epoch", "2", "--num_iters_per_epoch", "2", "--resume", "true",
            "--use_tensorboard", "false", "--use_matplotlib", "false"]
    cmd = train_cmd(mini_dump, out, *opts)
    run_py(cmd, cwd=tmp_path)
    for name in ("2epoch.pth", "latest.pth", "valid.loss.best.pth"):
        (out / name).unlink(missing_ok=True)
    for averaged in out.glob("*ave*.pth"):
        averaged.unlink()
    # nothing left to train: the resumed run goes straight to n-best averaging
    final = run_py(cmd, cwd=tmp_path)
    assert "2epoch.pth: missing after an interrupted epoch end" in final.stdout
    state = load_checkpoint(out / "checkpoint.pth")
    written = load_checkpoint(out / "2epoch.pth")
    assert written.keys() == state["model"].keys()
    assert all(torch.equal(written[k], state["model"][k]) for k in written)
    assert (out / "latest.pth").resolve() == (out / "2epoch.pth").resolve()
    assert (out / "valid.loss.ave.pth").exists()

    # A kept training state is checkpoint.pth alone (egs/*/voc1/state): resumed in a
    # fresh folder, the n-best averaging cannot find the earlier epochs' files.
    fresh = tmp_path / "resumed"
    fresh.mkdir()
    shutil.copy(out / "checkpoint.pth", fresh / "checkpoint.pth")
    final = run_py(train_cmd(mini_dump, fresh, *opts, "--keep_nbest_models", "2"), cwd=tmp_path)
    assert "epochs [1] have no model file" in final.stdout
    assert (fresh / "valid.loss.ave.pth").resolve() == (fresh / "2epoch.pth").resolve()


def test_corrupt_checkpoint_is_named_on_resume(mini_dump, tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "checkpoint.pth").write_bytes(b"PK\x03\x04 truncated")
    proc = run_py(train_cmd(mini_dump, out, "--max_epoch", "1", "--resume", "true",
                            "--use_tensorboard", "false"), cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert f"{out / 'checkpoint.pth'}: corrupt, truncated or unsafe checkpoint" in proc.stdout


def test_safe_io_is_scoped_and_fits_this_espnet():
    # The trainer's patch assumes ESPnet saves and loads through the module-level
    # ``torch`` of these modules and resumes through cls.resume; a release that
    # changes that fails here.
    import inspect

    import espnet2.torch_utils.load_pretrained_model as pretrained
    import espnet2.train.trainer as espnet_trainer

    from espnet_wavenet.train.trainer import (PATCHES, _SafeTorch, average_present_nbest_models,
                                              safe_io)

    run_src = inspect.getsource(espnet_trainer.Trainer.run)
    assert "cls.resume(" in run_src and "torch.save(" in run_src
    assert "torch.load(" in inspect.getsource(espnet_trainer.Trainer.resume)
    assert "torch.load(" in inspect.getsource(pretrained.load_pretrained_model)
    assert isinstance(inspect.getattr_static(espnet_trainer.Trainer, "resume"), staticmethod)
    assert "average_nbest_models(" in run_src
    modules = {m for m, name, _ in PATCHES if name == "torch"}
    assert modules == {espnet_trainer, pretrained}
    original = espnet_trainer.average_nbest_models
    assert all(m.torch is torch for m in modules)
    with safe_io():
        assert all(isinstance(m.torch, _SafeTorch) for m in modules)
        assert espnet_trainer.average_nbest_models is average_present_nbest_models
    assert all(m.torch is torch for m in modules)  # undone on exit
    assert espnet_trainer.average_nbest_models is original
