"""Validation of a Kaldi data directory before feature extraction.

Checks, each failing with one message that names the file and line:

- ``wav.scp``, ``text``, ``utt2spk`` and ``spk2utt`` exist (``segments`` optional);
- every file is sorted in C byte order with no duplicate ids;
- every transcript is non-empty;
- ``wav.scp``, ``segments``, ``text`` and ``utt2spk`` name the same utterances,
  and ``spk2utt`` is the inverse of ``utt2spk``;
- every audio file exists, is readable, and has the expected sample rate:
  exactly ``fs`` when resampling is not allowed, otherwise one rate shared by
  the whole directory (feature extraction resamples it to ``fs``);
- segments lie inside their recordings.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

import soundfile as sf

from espnet_wavenet.data.datadir import (
    DataDirError,
    Entry,
    check_sorted_unique,
    read_entries,
)

REQUIRED_FILES = ("wav.scp", "text", "utt2spk", "spk2utt")


@dataclass
class DataDirSummary:
    """What a valid data directory holds."""

    utterances: int = 0
    speakers: int = 0
    seconds: float = 0.0
    sample_rates: List[int] = field(default_factory=list)


def _check_same_ids(
    name_a: Path, ids_a: Dict[str, int], name_b: Path, ids_b: Dict[str, int]
) -> None:
    """Both files must hold the same ids; the first difference is named."""
    for key, lineno in ids_a.items():
        if key not in ids_b:
            raise DataDirError(f"{name_a}:{lineno}: utterance '{key}' is missing from {name_b}")
    for key, lineno in ids_b.items():
        if key not in ids_a:
            raise DataDirError(f"{name_b}:{lineno}: utterance '{key}' is missing from {name_a}")


def validate_data_dir(
    data_dir: Union[str, Path],
    fs: Optional[int] = None,
    allow_resample: bool = True,
    check_audio: bool = True,
) -> DataDirSummary:
    """Validate ``data_dir``; raise :class:`DataDirError` naming file and line.

    Args:
        data_dir: a Kaldi data directory.
        fs: the sampling rate the recipe works at.
        allow_resample: audio at another (directory-wide) rate is accepted.
        check_audio: open every audio file's header (existence, rate, duration).
    """
    d = Path(data_dir)
    if not d.is_dir():
        raise DataDirError(f"{d}: no such data directory")
    for name in REQUIRED_FILES:
        if not (d / name).is_file():
            raise DataDirError(f"{d / name}: missing (a data directory needs {REQUIRED_FILES})")
    entries: Dict[str, List[Entry]] = {}
    for name in REQUIRED_FILES + ("segments",):
        if (d / name).is_file():
            entries[name] = read_entries(d / name)
            check_sorted_unique(d / name, entries[name])

    for e in entries["text"]:
        if not e.value.strip():
            raise DataDirError(f"{d / 'text'}:{e.lineno}: empty transcript for '{e.key}'")
    for name in ("wav.scp", "utt2spk"):
        for e in entries[name]:
            if not e.value.strip():
                raise DataDirError(f"{d / name}:{e.lineno}: '{e.key}' has no value")

    utt_file = d / ("segments" if "segments" in entries else "wav.scp")
    utt_ids = {e.key: e.lineno for e in entries[utt_file.name]}
    for name in ("text", "utt2spk"):
        _check_same_ids(utt_file, utt_ids, d / name, {e.key: e.lineno for e in entries[name]})

    # spk2utt must be the inverse of utt2spk.
    utt2spk = {e.key: e.value.split()[0] for e in entries["utt2spk"]}
    spk_utts: Dict[str, set] = {}
    for utt, spk in utt2spk.items():
        spk_utts.setdefault(spk, set()).add(utt)
    for e in entries["spk2utt"]:
        listed = set(e.value.split())
        if listed != spk_utts.get(e.key, set()):
            raise DataDirError(
                f"{d / 'spk2utt'}:{e.lineno}: speaker '{e.key}' does not match utt2spk "
                "(regenerate spk2utt from utt2spk)"
            )
    missing_spk = set(spk_utts) - {e.key for e in entries["spk2utt"]}
    if missing_spk:
        raise DataDirError(f"{d / 'spk2utt'}: speakers {sorted(missing_spk)[:5]} missing")

    summary = DataDirSummary(utterances=len(utt_ids), speakers=len(spk_utts))
    durations: Dict[str, float] = {}
    rates = set()
    first_rate: Optional[tuple] = None
    wav_scp = d / "wav.scp"
    for e in entries["wav.scp"]:
        path = e.value.strip()
        if path.endswith("|"):
            raise DataDirError(
                f"{wav_scp}:{e.lineno}: '{e.key}': piped commands are not supported; "
                "write audio files"
            )
        if not check_audio:
            continue
        if not Path(path).is_file():
            raise DataDirError(f"{wav_scp}:{e.lineno}: '{e.key}': audio file {path} not found")
        try:
            info = sf.info(path)
        except Exception as ex:  # noqa: BLE001 - re-raised with file and line
            raise DataDirError(
                f"{wav_scp}:{e.lineno}: '{e.key}': unreadable audio {path} ({ex})"
            ) from ex
        rate = int(info.samplerate)
        if fs is not None and not allow_resample and rate != fs:
            raise DataDirError(
                f"{wav_scp}:{e.lineno}: '{e.key}': {path} is {rate} Hz, expected {fs} Hz"
            )
        if first_rate is None:
            first_rate = (rate, e.lineno)
        elif rate != first_rate[0]:
            raise DataDirError(
                f"{wav_scp}:{e.lineno}: '{e.key}': {path} is {rate} Hz, but line "
                f"{first_rate[1]} and the lines before are {first_rate[0]} Hz "
                "(one sample rate per data directory)"
            )
        rates.add(rate)
        durations[e.key] = info.frames / rate
        if info.frames == 0:
            raise DataDirError(f"{wav_scp}:{e.lineno}: '{e.key}': {path} holds no samples")

    if "segments" in entries:
        for e in entries["segments"]:
            parts = e.value.split()
            try:
                reco, start, end = parts[0], float(parts[1]), float(parts[2])
            except (IndexError, ValueError):
                raise DataDirError(
                    f"{d / 'segments'}:{e.lineno}: expected 'utt reco start end'"
                ) from None
            if reco not in {w.key for w in entries["wav.scp"]}:
                raise DataDirError(
                    f"{d / 'segments'}:{e.lineno}: recording '{reco}' is not in {wav_scp}"
                )
            if not 0 <= start < end:
                raise DataDirError(f"{d / 'segments'}:{e.lineno}: bad times {start} {end}")
            if reco in durations and start >= durations[reco]:
                raise DataDirError(
                    f"{d / 'segments'}:{e.lineno}: starts at {start} s, after the end of "
                    f"'{reco}' ({durations[reco]:.3f} s)"
                )
            summary.seconds += end - start
    else:
        summary.seconds = sum(durations.values())
    summary.sample_rates = sorted(rates)
    logging.info(
        "%s: %d utterances, %d speakers, %.1f min, rates %s",
        d,
        summary.utterances,
        summary.speakers,
        summary.seconds / 60,
        summary.sample_rates,
    )
    return summary
