"""Reading and writing Kaldi-style data directory files (``key value`` lines).

Every reader keeps the line number of each entry so that errors can name the
file and line, the way a person fixes them.
"""

from pathlib import Path
from typing import Dict, Iterable, Iterator, List, NamedTuple, Tuple, Union

from espnet_wavenet.utils.atomic import atomic_write_text

PathLike = Union[str, Path]


class DataDirError(ValueError):
    """A broken data directory; the message names the file and line."""


class Entry(NamedTuple):
    """One ``key value`` line of a Kaldi file."""

    key: str
    value: str
    lineno: int


def read_entries(path: PathLike, allow_empty_value: bool = True) -> List[Entry]:
    """All ``key value`` lines of ``path`` in file order (blank lines are errors).

    Args:
        path: a Kaldi ``wav.scp``, ``text``, ``utt2spk``, ``segments``, ... file.
        allow_empty_value: accept a line holding only a key.
    """
    path = Path(path)
    if not path.is_file():
        raise DataDirError(f"{path}: no such file")
    entries = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                raise DataDirError(f"{path}:{lineno}: empty line")
            parts = line.strip().split(maxsplit=1)
            value = parts[1] if len(parts) > 1 else ""
            if not value and not allow_empty_value:
                raise DataDirError(f"{path}:{lineno}: '{parts[0]}' has no value")
            entries.append(Entry(parts[0], value, lineno))
    return entries


def read_unique_entries(path: PathLike, allow_empty_value: bool = False) -> List[Entry]:
    """:func:`read_entries`, with a repeated key an error naming both lines."""
    entries = read_entries(path, allow_empty_value)
    first: Dict[str, int] = {}
    for e in entries:
        if e.key in first:
            raise DataDirError(
                f"{path}:{e.lineno}: duplicate id '{e.key}' (first on line {first[e.key]})"
            )
        first[e.key] = e.lineno
    return entries


def read_dict(path: PathLike, allow_empty_value: bool = False) -> Dict[str, str]:
    """``{key: value}`` of a Kaldi file in file order; duplicate keys are errors."""
    return {e.key: e.value for e in read_unique_entries(path, allow_empty_value)}


def check_sorted_unique(path: PathLike, entries: Iterable[Entry]) -> None:
    """Kaldi order: keys strictly increasing in byte order (``LC_ALL=C sort``)."""
    prev = None
    seen: Dict[str, int] = {}
    for e in entries:
        if e.key in seen:
            raise DataDirError(
                f"{path}:{e.lineno}: duplicate id '{e.key}' (first on line {seen[e.key]})"
            )
        if prev is not None and e.key.encode() < prev.key.encode():
            raise DataDirError(
                f"{path}:{e.lineno}: not sorted: '{e.key}' comes after '{prev.key}' "
                f"(line {prev.lineno}); sort with LC_ALL=C sort"
            )
        seen[e.key] = e.lineno
        prev = e


def sort_key(key: str) -> bytes:
    """The order of ``LC_ALL=C sort``."""
    return key.encode()


def write_lines(path: PathLike, pairs: Iterable[Tuple[str, str]], sort: bool = True) -> None:
    """Write ``key value`` lines atomically, sorted by key (C order) by default."""
    pairs = list(pairs)
    if sort:
        pairs.sort(key=lambda kv: sort_key(kv[0]))
    text = "".join(f"{k} {v}\n" if v != "" else f"{k}\n" for k, v in pairs)
    atomic_write_text(path, text)


def write_data_dir(
    out_dir: PathLike,
    wav: Dict[str, str],
    text: Dict[str, str],
    utt2spk: Dict[str, str],
    segments: Dict[str, Tuple[str, float, float]] = None,
) -> None:
    """Write ``wav.scp``, ``text``, ``utt2spk``, ``spk2utt`` (and ``segments``).

    With ``segments`` the keys of ``wav`` are recording ids.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_lines(out / "wav.scp", wav.items())
    write_lines(out / "text", text.items())
    write_lines(out / "utt2spk", utt2spk.items())
    spk2utt: Dict[str, List[str]] = {}
    for utt in sorted(utt2spk, key=sort_key):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    write_lines(out / "spk2utt", ((s, " ".join(u)) for s, u in spk2utt.items()))
    if segments:
        write_lines(
            out / "segments",
            ((u, f"{r} {b:.3f} {e:.3f}") for u, (r, b, e) in segments.items()),
        )
    elif (out / "segments").exists():
        (out / "segments").unlink()



def iter_ids(path: PathLike) -> Iterator[str]:
    """The ids of a list file (one id per line, comments with #)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                yield line.split()[0]


def read_utt2sid(path: PathLike) -> Dict[str, int]:
    """``utt -> speaker id`` of an ESPnet utt2sid file; errors name file and line."""
    out = {}
    for e in read_unique_entries(path):
        try:
            out[e.key] = int(e.value)
        except ValueError:
            raise DataDirError(f"{path}:{e.lineno}: expected 'utt int', got '{e.value}'") from None
    return out
