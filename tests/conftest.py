"""Shared fixtures: real speech from the repository's mini_kathleen subset.

``unit/`` holds in-process tests; ``integration/`` the ones that run ESPnet,
recipes or builds in subprocesses, all marked ``slow``: ``pytest -m "not slow"``
is the fast loop, ``make test`` (the README's command) runs everything."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MINI_DB = REPO / "egs" / "mini_kathleen" / "db"
# the trained model the project ships (packed, with its model card)
SHIPPED_MODEL = REPO / "egs" / "kathleen" / "voc1" / "pretrained" / "kathleen_wavenet"
CONF = REPO / "conf"

# Offline machines: keep ESPnet's optional nltk downloads quiet and fast.
os.environ.setdefault("NLTK_DATA", str(REPO / ".nltk_data_absent"))
# One intra-op thread: the per-sample loops are tiny ops, and several test
# processes share two cores; oversubscribed OpenMP spins cost 100x here.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def mini_ids(split: str, n: int = None) -> List[str]:
    ids = (MINI_DB / "splits" / split).read_text().split()
    return ids[:n] if n else ids


def write_wav_scp(path: Path, ids: List[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{u} {MINI_DB / 'wav' / (u + '.flac')}\n" for u in ids))
    return path


def run_py(args: List[str], cwd: Path, check: bool = True, timeout: int = 600, env=None):
    """Run ``python -m ...`` of this venv; on failure show the output."""
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{proc.stdout[-6000:]}")
    return proc


def data_options(dump: Path, stats: Path = None) -> List[str]:
    opts = []
    for phase, name in (("train", "train"), ("valid", "dev")):
        opts += [
            f"--{phase}_data_path_and_name_and_type",
            f"{dump / name / 'wav.scp'},speech,sound",
            f"--{phase}_data_path_and_name_and_type",
            f"{dump / name / 'feats.scp'},feats,kaldi_ark",
            f"--{phase}_shape_file",
            str(stats / phase / "feats_shape") if stats else str(dump / name / "feats.scp"),
        ]
    return opts


@pytest.fixture(scope="session")
def mini_dump(tmp_path_factory) -> Dict[str, Path]:
    """Features (ESPnet LogMelFbank, tiny config) and ESPnet stats for 8+2 utterances."""
    root = tmp_path_factory.mktemp("mini_dump")
    for name, ids in (("train", mini_ids("train", 8)), ("dev", mini_ids("dev", 2))):
        scp = write_wav_scp(root / "data" / name / "wav.scp", ids)
        run_py(
            ["-m", "espnet_wavenet.bin.extract_feats", "--config", str(CONF / "tiny.yaml"),
             "--wav_scp", str(scp), "--out_dir", str(root / "dump" / name)],
            cwd=root,
        )
    run_py(
        ["-m", "espnet_wavenet.bin.train", "--config", str(CONF / "tiny.yaml"),
         "--collect_stats", "true", "--use_tensorboard", "false", "--ngpu", "0",
         "--batch_size", "2", "--output_dir", str(root / "stats"),
         *data_options(root / "dump")],
        cwd=root,
    )
    return {
        "root": root,
        "dump": root / "dump",
        "stats": root / "stats",
        "stats_file": root / "stats" / "train" / "feats_stats.npz",
    }


def train_cmd(mini_dump, out, *extra):
    return [
        "-m", "espnet_wavenet.bin.train", "--config", str(CONF / "tiny.yaml"),
        "--normalize_conf", f"stats_file={mini_dump['stats_file']}",
        "--output_dir", str(out), "--ngpu", "0", "--num_iters_per_epoch", "5",
        "--batch_size", "2", "--use_tensorboard", "true",
        *data_options(mini_dump["dump"], mini_dump["stats"]), *extra,
    ]


def inductor_toolchain_missing() -> str:
    """Why torch.compile cannot build CPU kernels here ('' when it can): TorchInductor
    compiles C++ that includes Python.h (Debian: python3.11-dev) with a C++ compiler."""
    import shutil
    import sysconfig

    if not (shutil.which("g++") or shutil.which("c++")):
        return "torch.compile on the CPU needs a C++ compiler (g++)"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return "torch.compile on the CPU needs Python's headers (python3.11-dev)"
    return ""


needs_inductor = pytest.mark.skipif(bool(inductor_toolchain_missing()),
                                    reason=inductor_toolchain_missing() or "available")


def checkpoint_state(path):
    from espnet_wavenet.train.checkpoint import load_checkpoint

    return load_checkpoint(path)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: runs ESPnet, a recipe or a build in subprocesses")


def pytest_collection_modifyitems(config, items):
    integration = Path(__file__).resolve().parent / "integration"
    for item in items:
        if integration in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.slow)
