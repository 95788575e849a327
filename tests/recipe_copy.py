"""The mini_kathleen recipe in a copy under tmp (the repository stays clean), on a
reduced corpus: what the recipe tests share."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
MINI_DB = REPO / "egs" / "mini_kathleen" / "db"


def make_recipe_copy(root: Path) -> Path:
    """``root`` mirrors the repository: egs/TEMPLATE, egs/mini_kathleen/voc1, conf."""
    shutil.copytree(REPO / "egs" / "TEMPLATE", root / "egs" / "TEMPLATE", symlinks=True)
    recipe = root / "egs" / "mini_kathleen" / "voc1"
    shutil.copytree(
        REPO / "egs" / "mini_kathleen" / "voc1", recipe, symlinks=True,
        ignore=shutil.ignore_patterns("data", "dump", "exp", "downloads"),
    )
    (root / "conf").symlink_to(REPO / "conf")
    # the shipped model, which the demo's stages 4-5 decode beside its own
    shipped = root / "egs" / "kathleen" / "voc1" / "pretrained"
    shipped.parent.mkdir(parents=True)
    shipped.symlink_to(REPO / "egs" / "kathleen" / "voc1" / "pretrained")
    if (REPO / ".venv").exists():
        (root / ".venv").symlink_to(REPO / ".venv")
    return recipe


def make_small_db(db: Path, n_train: int = 6, n_test: int = 2) -> Path:
    """The shortest utterances of mini_kathleen in its layout (audio linked)."""
    splits = {s: (MINI_DB / "splits" / s).read_text().split() for s in ("train", "dev", "eval")}
    dur = lambda u: sf.info(str(MINI_DB / "wav" / f"{u}.flac")).frames  # noqa: E731
    keep = {
        "train": sorted(sorted(splits["train"], key=dur)[:n_train]),
        "dev": sorted(sorted(splits["dev"], key=dur)[:n_test]),
        "eval": sorted(sorted(splits["eval"], key=dur)[:n_test]),
    }
    (db / "wav").mkdir(parents=True)
    (db / "splits").mkdir()
    text = dict(ln.split(maxsplit=1) for ln in (MINI_DB / "text").read_text().splitlines())
    ids = sorted(u for v in keep.values() for u in v)
    (db / "text").write_text("".join(f"{u} {text[u]}\n" for u in ids))
    for s, v in keep.items():
        (db / "splits" / s).write_text("".join(f"{u}\n" for u in v))
    for u in ids:
        (db / "wav" / f"{u}.flac").symlink_to(MINI_DB / "wav" / f"{u}.flac")
    return db


def run_recipe(recipe: Path, *args: str, check: bool = True, timeout: int = 600,
               env: dict = None):
    env = dict(env or os.environ, OMP_NUM_THREADS="1",
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run(
        ["bash", "./run.sh", *args], cwd=recipe, env=env, timeout=timeout,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    if check and proc.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in recipe.rglob("*.log"))
        raise AssertionError(f"run.sh {' '.join(args)} failed:\n{proc.stdout[-6000:]}\n{logs[-8000:]}")
    return proc
