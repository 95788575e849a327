"""LJSpeech and VCTK preparation on small trees in their real layouts, built
from mini_kathleen audio (their downloads cannot run here)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from espnet_wavenet.data.audio import read_audio, resample
from espnet_wavenet.recipe.validate import validate_data_dir

REPO = Path(__file__).resolve().parents[2]
MINI_DB = REPO / "egs" / "mini_kathleen" / "db"
IDS = (MINI_DB / "splits" / "train").read_text().split()


def run_local(corpus: str, *args: str, script: str = "local/data.sh") -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run(
        ["bash", script, *args], cwd=REPO / "egs" / corpus / "voc1", env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout
    return proc


def ids(path: Path):
    return [ln.split()[0] for ln in path.read_text().splitlines()]


def test_ljspeech_layout(tmp_path):
    root = tmp_path / "db" / "LJSpeech-1.1"
    (root / "wavs").mkdir(parents=True)
    names = [f"LJ{1 + i // 4:03d}-{i % 4 + 1:04d}" for i in range(10)]
    lines = []
    for name, src in zip(names, IDS):
        wav, fs = read_audio(MINI_DB / "wav" / f"{src}.flac")
        sf.write(root / "wavs" / f"{name}.wav", wav, fs, subtype="PCM_16")
        lines.append(f"{name}|Raw text {name}.|Normalized text {name}.\n")
    (root / "metadata.csv").write_text("".join(reversed(lines)))  # order must not matter
    out = tmp_path / "data"
    run_local("ljspeech", "--db_root", str(tmp_path / "db"), "--datadir", str(out),
              "--n_dev", "2", "--n_eval", "3")
    # ESPnet's split: sorted ids, the last n_dev + n_eval held out, dev first.
    assert ids(out / "train" / "wav.scp") == names[:5]
    assert ids(out / "dev" / "wav.scp") == names[5:7]
    assert ids(out / "eval" / "wav.scp") == names[7:]
    assert (out / "dev" / "text").read_text().splitlines()[0] == f"{names[5]} Normalized text {names[5]}."
    assert set((out / "train" / "utt2spk").read_text().split()[1::2]) == {"LJ"}
    for s in ("train", "dev", "eval"):
        validate_data_dir(out / s, fs=22050, allow_resample=False)


def make_vctk(root: Path) -> None:
    """3 speakers x 5 utterances at 48 kHz mic1 FLAC, plus a mic2 file and an
    utterance without transcript (left out), as in VCTK 0.92."""
    k = 0
    for spk in ("p225", "p229", "p301"):
        for n in range(1, 6):
            utt = f"{spk}_{n:03d}"
            wav, fs = read_audio(MINI_DB / "wav" / f"{IDS[k % len(IDS)]}.flac")
            wav = resample(wav[: fs], fs, 48000)  # 1 s is enough
            k += 1
            d = root / "wav48_silence_trimmed" / spk
            d.mkdir(parents=True, exist_ok=True)
            sf.write(d / f"{utt}_mic1.flac", wav, 48000, subtype="PCM_16")
            sf.write(d / f"{utt}_mic2.flac", wav, 48000, subtype="PCM_16")
            if not (spk == "p301" and n == 5):
                t = root / "txt" / spk
                t.mkdir(parents=True, exist_ok=True)
                (t / f"{utt}.txt").write_text(f"Please call Stella {n}.\n")


def test_vctk_layout_sets_and_speaker_ids(tmp_path):
    db = tmp_path / "VCTK-Corpus-0.92"
    make_vctk(db)
    (tmp_path / "heldout").write_text("# unseen\np225\n")
    out = tmp_path / "data"
    run_local("vctk", "--db_root", str(db), "--datadir", str(out), "--n_dev", "1",
              "--n_eval", "1", "--heldout_speakers", str(tmp_path / "heldout"))
    assert ids(out / "eval_unseen" / "wav.scp") == [f"p225_{n:03d}" for n in range(1, 6)]
    assert ids(out / "eval" / "wav.scp") == ["p229_005", "p301_004"]  # p301_005: no text
    assert ids(out / "dev" / "wav.scp") == ["p229_004", "p301_003"]
    assert ids(out / "train" / "wav.scp") == ["p229_001", "p229_002", "p229_003", "p301_001", "p301_002"]
    assert (out / "train" / "wav.scp").read_text().split()[1].endswith("p229_001_mic1.flac")
    spk2utt = (out / "train" / "spk2utt").read_text().splitlines()
    assert spk2utt[0] == "p229 p229_001 p229_002 p229_003"
    for s in ("train", "dev", "eval", "eval_unseen"):
        validate_data_dir(out / s, fs=24000, allow_resample=True)

    # An explicit eval list replaces the per-speaker rule.
    (tmp_path / "eval_list").write_text("p229_002\np301_001\n")
    out2 = tmp_path / "data2"
    run_local("vctk", "--db_root", str(db), "--datadir", str(out2), "--n_dev", "1",
              "--eval_list", str(tmp_path / "eval_list"),
              "--heldout_speakers", str(tmp_path / "heldout"))
    assert ids(out2 / "eval" / "wav.scp") == ["p229_002", "p301_001"]


def test_vctk_stage1_resamples_and_writes_speaker_ids(tmp_path):
    """Stages 0-1 of the vctk recipe (use_sid, 48 kHz -> 24 kHz) in a tmp copy."""
    import shutil

    root = tmp_path / "root"
    shutil.copytree(REPO / "egs" / "TEMPLATE", root / "egs" / "TEMPLATE", symlinks=True)
    recipe = root / "egs" / "vctk" / "voc1"
    shutil.copytree(REPO / "egs" / "vctk" / "voc1", recipe, symlinks=True,
                    ignore=shutil.ignore_patterns("data", "dump", "exp", "downloads"))
    (root / "conf").symlink_to(REPO / "conf")
    db = tmp_path / "VCTK-Corpus-0.92"
    make_vctk(db)
    (tmp_path / "heldout").write_text("p225\n")
    run_local("vctk", "--stage", "0", "--stop_stage", "1", "--db_root", str(db), "--nj", "1",
              "--local_data_opts", f"--n_dev 1 --n_eval 1 --heldout_speakers {tmp_path / 'heldout'}",
              script=str(recipe / "run.sh"))
    dump = recipe / "dump"
    assert (dump / "train" / "spk2sid").read_text() == "<unk> 0\np229 1\np301 2\n"
    assert (dump / "train" / "utt2sid").read_text().splitlines()[0] == "p229_001 1"
    assert set((dump / "eval_unseen" / "utt2sid").read_text().split()[1::2]) == {"0"}
    wav_path = (dump / "dev" / "wav.scp").read_text().split()[1]
    assert sf.info(wav_path).samplerate == 24000
    import kaldiio

    feats = kaldiio.load_mat(os.path.join(recipe, (dump / "dev" / "feats.scp").read_text().split()[1]))
    assert feats.shape[1] == 80 and np.isfinite(feats).all()
    assert abs(feats.shape[0] - sf.info(wav_path).frames / 300) <= 1.5
