"""Decode a feature list (Kaldi ark scp or npy scp) into wav files, resumably.

Every wav is written atomically (temporary file, fsync, rename), so a file on
disk is always complete; a rerun skips utterances whose wav is already there
with the expected length. All features are read and checked before anything is
generated, so bad input stops the job with one message naming the utterance and
file, and nothing already written is touched.
"""

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from espnet_wavenet.data import scp as data_scp
from espnet_wavenet.data.datadir import DataDirError, read_unique_entries, read_utt2sid, sort_key
from espnet_wavenet.features import feats_problem
from espnet_wavenet.utils.atomic import atomic_open, atomic_write_text

PathLike = Union[str, Path]


class DecodeInputError(ValueError):
    """Bad decoding input; the message names the utterance and file."""


@dataclass
class FeatsEntry:
    """One line of a feats.scp and its loaded features."""

    utt: str
    location: str
    lineno: int
    feats: Optional[np.ndarray] = None


@dataclass
class DecodeStats:
    """What one decoding job did (written as ``decode_stats[.JOB].json``)."""

    utterances: int = 0
    decoded: int = 0
    skipped: int = 0
    samples: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    rtf: Optional[float] = None
    samples_per_second: Optional[float] = None
    generator: str = ""  # which ran: fast, reference or gpu
    precision: str = ""  # of the generator's weights
    kernel: Optional[str] = None  # the fast generator's build: ISA level or "native"
    sampling: Dict = field(default_factory=dict)  # temperature, log_scale_min, tail
    batch_size: int = 1
    device: str = "cpu"
    fs: int = 0
    jobs: int = 1
    per_job: List[Dict] = field(default_factory=list)


def read_feats_scp(path: PathLike) -> List[FeatsEntry]:
    """Lines of a feats.scp (``utt ark:offset`` or ``utt file.npy``)."""
    path = Path(path)
    if not path.is_file():
        raise DecodeInputError(f"{path}: feats scp not found")
    try:
        entries = read_unique_entries(path)
    except DataDirError as e:
        raise DecodeInputError(str(e)) from None
    if not entries:
        raise DecodeInputError(f"{path}: no utterances")
    return [FeatsEntry(e.key, e.value, e.lineno) for e in entries]


def read_entry_feats(entry: FeatsEntry, scp: PathLike) -> np.ndarray:
    """Read one utterance's (T, n_mels) features from an ark offset or an npy file."""
    try:
        return data_scp.load_feats(entry.location, f"{scp}:{entry.lineno}: utterance '{entry.utt}'")
    except ValueError as e:
        raise DecodeInputError(str(e)) from e


def check_feats(feats: np.ndarray, n_mels: int, min_frames: int, where: str) -> np.ndarray:
    """Shape (T, n_mels), at least ``min_frames`` frames, all finite."""
    if feats.ndim == 3 and feats.shape[0] == 1:
        feats = feats[0]
    problem = feats_problem(feats, n_mels, min_frames)
    if problem is not None:
        raise DecodeInputError(f"{where}: {problem}")
    return np.array(feats, dtype=np.float32)  # a writable copy for torch


def write_wav_atomic(path: Path, wav: np.ndarray, fs: int) -> None:
    """16-bit wav written atomically (never a partial file under its name)."""
    with atomic_open(path, "wb") as f:
        sf.write(f, np.clip(wav, -1.0, 1.0), fs, subtype="PCM_16", format="WAV")


def is_finished(path: Path, n_samples: int, fs: int) -> bool:
    """A complete wav of the expected length and rate is already on disk."""
    if not path.is_file():
        return False
    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001 - an unreadable file is regenerated
        return False
    return info.frames == n_samples and int(info.samplerate) == fs


def decode_scp(
    vocoder,
    feats_scp: PathLike,
    out_dir: PathLike,
    utt2sid: Optional[PathLike] = None,
    normalized: bool = False,
    batch_size: int = 1,
    seed: int = 0,
    min_frames: int = 3,
    job_tag: Optional[str] = None,
    device: str = "cpu",
) -> DecodeStats:
    """Generate every utterance of ``feats_scp`` into ``<out_dir>/wav/<utt>.wav``.

    Writes ``<out_dir>/wav[.JOB].scp`` and ``<out_dir>/decode_stats[.JOB].json``.
    Batches hold utterances of similar length (longest first); utterance ``i``
    of a batch starting at position ``k`` of that order uses seed ``seed+k+i``.
    """
    out = Path(out_dir)
    wav_dir = out / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    suffix = f".{job_tag}" if job_tag else ""
    entries = read_feats_scp(feats_scp)
    try:
        sids: Optional[Dict[str, int]] = read_utt2sid(utt2sid) if utt2sid else None
    except DataDirError as e:
        raise DecodeInputError(str(e)) from None
    n_speakers = int(getattr(vocoder.net, "n_speakers", 0) or 0)
    if n_speakers > 0 and sids is None:
        raise DecodeInputError(
            f"the vocoder is conditioned on {n_speakers} speakers: give --utt2sid"
        )
    if n_speakers == 0 and sids is not None:
        logging.warning("the vocoder has no speaker conditioning; %s is ignored", utt2sid)
        sids = None

    # Read and check everything first: bad input stops before any generation.
    for e in entries:
        where = f"{feats_scp}:{e.lineno}: utterance '{e.utt}'"
        e.feats = check_feats(read_entry_feats(e, feats_scp), vocoder.n_mels, min_frames, where)
        if sids is not None:
            if e.utt not in sids:
                raise DecodeInputError(f"{where}: no speaker id in {utt2sid}")
            if not 0 <= sids[e.utt] < n_speakers:
                raise DecodeInputError(
                    f"{where}: speaker id {sids[e.utt]} outside [0, {n_speakers}) in {utt2sid}"
                )

    hop, fs = vocoder.hop, vocoder.fs
    wav_path = {e.utt: (wav_dir / f"{e.utt}.wav") for e in entries}
    for e in entries:  # temporary files of an earlier killed run of this job
        for stale in wav_dir.glob(f".{e.utt}.wav.*.tmp"):
            stale.unlink()
    todo = [e for e in entries if not is_finished(wav_path[e.utt], len(e.feats) * hop, fs)]
    stats = DecodeStats(
        utterances=len(entries),
        skipped=len(entries) - len(todo),
        generator=vocoder.generator.kind,
        precision=vocoder.generator.precision,
        kernel=vocoder.generator.kernel,
        sampling=asdict(vocoder.sampling),
        batch_size=batch_size,
        device=device,
        fs=fs,
    )
    if stats.skipped:
        logging.info("%d of %d utterances already decoded; skipped", stats.skipped, len(entries))

    def write_scp() -> None:
        done = [e.utt for e in entries if wav_path[e.utt].is_file()]
        atomic_write_text(
            out / f"wav{suffix}.scp",
            "".join(f"{u} {wav_path[u].resolve()}\n" for u in sorted(done, key=sort_key)),
        )

    todo.sort(key=lambda e: -len(e.feats))
    total = sum(len(e.feats) * hop for e in todo)
    bar = tqdm(total=total, unit="sample", unit_scale=True, desc=f"decode{suffix}", smoothing=0)
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        t0 = time.perf_counter()
        wavs = vocoder.generate(
            [torch.from_numpy(e.feats) for e in batch],
            sids=[sids[e.utt] for e in batch] if sids is not None else None,
            normalized=normalized,
            seed=seed + start,
            names=[f"{feats_scp}: utterance '{e.utt}'" for e in batch],
        )
        if vocoder.mean.device.type == "cuda":
            torch.cuda.synchronize()
        stats.wall_seconds += time.perf_counter() - t0
        for e, w in zip(batch, wavs):
            write_wav_atomic(wav_path[e.utt], w.numpy(), fs)
            stats.decoded += 1
            stats.samples += int(w.numel())
        stats.audio_seconds = stats.samples / fs
        bar.update(sum(int(w.numel()) for w in wavs))
        bar.set_postfix(rtf=f"{stats.wall_seconds / max(stats.audio_seconds, 1e-9):.2f}")
        write_scp()
    bar.close()
    write_scp()
    if stats.samples:
        stats.rtf = stats.wall_seconds / stats.audio_seconds
        stats.samples_per_second = stats.samples / stats.wall_seconds
    stats_path = out / f"decode_stats{suffix}.json"
    if stats.decoded == 0 and stats_path.is_file():
        logging.info("nothing new decoded; %s of the earlier run kept", stats_path)
    else:
        atomic_write_text(stats_path, json.dumps(asdict(stats), indent=2))
    logging.info(
        "decode%s: %d utterances (%d decoded, %d skipped), %.1f s of audio in %.1f s, "
        "RTF %s, %s samples/s, generator %s (%s%s), batch %d, %s",
        suffix,
        stats.utterances,
        stats.decoded,
        stats.skipped,
        stats.audio_seconds,
        stats.wall_seconds,
        f"{stats.rtf:.3f}" if stats.rtf is not None else "n/a",
        f"{stats.samples_per_second:.0f}" if stats.samples_per_second else "n/a",
        stats.generator,
        stats.precision,
        f", kernel {stats.kernel}" if stats.kernel else "",
        batch_size,
        device,
    )
    return stats


def merge_jobs(out_dir: PathLike, job_tags: Sequence[str]) -> DecodeStats:
    """Join ``wav.JOB.scp`` and ``decode_stats.JOB.json`` into ``wav.scp`` and
    ``decode_stats.json``; ``rtf`` is total generation time over total audio."""
    out = Path(out_dir)
    lines: List[str] = []
    merged = DecodeStats(jobs=len(job_tags))
    for tag in job_tags:
        scp, js = out / f"wav.{tag}.scp", out / f"decode_stats.{tag}.json"
        if not scp.is_file() or not js.is_file():
            raise FileNotFoundError(f"{scp} or {js} missing: did decoding job {tag} finish?")
        lines += scp.read_text(encoding="utf-8").splitlines(keepends=True)
        job = json.loads(js.read_text(encoding="utf-8"))
        merged.per_job.append(job)
        for key in ("utterances", "decoded", "skipped", "samples"):
            setattr(merged, key, getattr(merged, key) + int(job[key]))
        merged.wall_seconds += float(job["wall_seconds"])
        for key in ("generator", "precision", "kernel", "sampling", "batch_size"):
            setattr(merged, key, job.get(key, getattr(merged, key)))
        merged.device, merged.fs = job["device"], job["fs"]
    lines.sort(key=lambda s: sort_key(s.split(maxsplit=1)[0]))
    atomic_write_text(out / "wav.scp", "".join(lines))
    if merged.fs:
        merged.audio_seconds = merged.samples / merged.fs
    if merged.samples and merged.wall_seconds > 0:
        merged.rtf = merged.wall_seconds / merged.audio_seconds
        merged.samples_per_second = merged.samples / merged.wall_seconds
    atomic_write_text(out / "decode_stats.json", json.dumps(asdict(merged), indent=2))
    logging.info(
        "%s: %d utterances, %.1f s of audio, RTF %s over %d jobs",
        out,
        merged.utterances,
        merged.audio_seconds,
        f"{merged.rtf:.3f}" if merged.rtf is not None else "n/a",
        len(job_tags),
    )
    return merged
