"""Atomic file writes: a kill at any moment leaves the old file or the new one."""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Optional, Union


@contextmanager
def atomic_open(
    path: Union[str, Path], mode: str = "wb", encoding: Optional[str] = None
) -> Iterator[IO]:
    """Write ``.<name>.<random>.tmp`` beside ``path``, fsync, rename over ``path``.

    Never a partial file under the final name; on an error the temporary file
    is removed and nothing is renamed.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)  # the rename itself survives a power cut
        finally:
            os.close(dfd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Union[str, Path], data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: Union[str, Path], text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)
