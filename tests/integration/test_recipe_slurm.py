"""The mini_kathleen recipe's stages through a real two-node Slurm (job arrays,
srun training on both nodes), and a failed job stopping its stage.

Its own file, so that pytest-xdist runs it beside the other recipe tests."""

import re

import pytest
import torch

from recipe_copy import make_recipe_copy, make_small_db, run_recipe


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A two-node Slurm on this machine from Debian's packages (installed here when
    missing): two slurmd, one CPU each."""
    import slurm_cluster

    reason = slurm_cluster.ensure_installed()
    if reason:
        pytest.skip(reason)
    with slurm_cluster.SlurmCluster(tmp_path_factory.mktemp("slurm"), nodes=2) as cluster:
        yield cluster


def test_stages_run_through_a_real_slurm(slurm, tmp_path):
    from espnet_wavenet.train.checkpoint import load_checkpoint

    recipe = make_recipe_copy(tmp_path)
    db = make_small_db(tmp_path / "small_db")
    env = dict(slurm.env, VOC_BACKEND="slurm")
    train = ["--train_args", "--num_iters_per_epoch 3 --batch_size 2 --max_epoch 1 "
             "--cpu_bf16 false", "--train_threads", "1"]
    # training on both nodes: one task per node (srun), ranks from Slurm
    run_recipe(recipe, "--stage", "0", "--stop_stage", "4", "--db_root", str(db), "--nj", "2",
               *train, "--num_nodes", "2", "--tag", "two_nodes",
               "--decode_args", "--batch_size 4", env=env)
    # every stage's jobs went to Slurm as job arrays (sbatch --wait) ...
    ids = {p.name: p.read_text().strip() for p in recipe.rglob("slurm/*.id")}
    assert {"feats.array.id", "train.id", "decode.array.id"} <= set(ids), ids
    done = re.findall(r"_job_complete: JobId=(\d+)\S* done", slurm.log())
    for name, job in ids.items():
        assert job.split(";")[0] in done, (name, job)
    # ... with their logs where the local backend writes them
    exp = recipe / "exp" / "two_nodes"
    for log in [recipe / "dump" / s / "log" / f"feats.{j}.log" for s in ("train", "eval") for j in (1, 2)] \
            + [exp / "train.log"]:
        assert "# exit code 0," in log.read_text(), log
    train_log = (exp / "train.log").read_text()
    assert "srun --ntasks-per-node=1" in train_log.splitlines()[0]
    assert re.search(r"\[\S+:0/2\]", train_log), train_log[-3000:]  # ESPnet's rank 0 of 2
    assert len(list((exp / "decode_valid.loss.best" / "eval" / "wav").glob("*.wav"))) == 2
    # the two nodes wrote what one process with the same global batch writes
    run_recipe(recipe, "--stage", "3", "--stop_stage", "3", *train, "--tag", "one_process")
    two = load_checkpoint(exp / "checkpoint.pth")["model"]
    one = load_checkpoint(recipe / "exp" / "one_process" / "checkpoint.pth")["model"]
    assert two.keys() == one.keys()
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-6, msg=k)

    # A failed job stops its stage, naming its log.
    wav_scp = recipe / "data" / "dev" / "wav.scp"
    lines = wav_scp.read_text().splitlines()
    utt = lines[1].split()[0]
    lines[1] = f"{utt} {tmp_path / 'gone.flac'}"
    wav_scp.write_text("\n".join(lines) + "\n")
    proc = run_recipe(recipe, "--stage", "1", "--stop_stage", "2", "--nj", "2", env=env,
                      check=False)
    assert proc.returncode != 0
    failed = recipe / "dump" / "dev" / "log" / "feats.2.log"
    assert "failed; see dump/dev/log/feats.2.log" in proc.stdout, proc.stdout[-3000:]
    assert "gone.flac" in failed.read_text()
    assert "Stage 2" not in proc.stdout
