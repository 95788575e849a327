"""Safe checkpoint I/O: atomic writes and ``weights_only`` loads."""

import datetime
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from espnet_wavenet.utils.atomic import atomic_open

# What ESPnet's checkpoint.pth holds beside tensors: the reporter's numpy
# scalars and timedeltas. Nothing here can run code when unpickled.
_SAFE_GLOBALS = [
    np._core.multiarray.scalar,
    np.dtype,
    datetime.timedelta,
    *(type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "bool")),
]


def load_checkpoint(path: Union[str, Path], map_location: Any = "cpu") -> Any:
    """``torch.load(weights_only=True)`` that accepts ESPnet checkpoints.

    A pickle that carries code (any global beyond tensors, containers and the
    few numpy types above) is refused. Errors name the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(
            f"{path}: corrupt, truncated or unsafe checkpoint ({type(e).__name__}: {e})"
        ) from e


def atomic_save(obj: Any, path: Union[str, Path], *args, **kwargs) -> None:
    """``torch.save`` through :func:`atomic_open`: never a partial checkpoint."""
    with atomic_open(path, "wb") as f:
        torch.save(obj, f, *args, **kwargs)
