"""Choose and load the compiled generation kernel.

At load the best installed level (:data:`.build.ISA_LEVELS`) this CPU supports
is picked, so machines that run it need no compiler and no writable cache.
``ESPNET_WAVENET_KERNEL`` overrides the choice:

- ``auto`` (default): the best installed level the CPU supports;
- a level name (``avx2``, ...): that installed level (to measure it on a CPU
  that has more), compiled with the level's flags at first use where it is
  missing or stale (:func:`level_library`);
- ``native``: compiled with ``-march=native`` at first use (development).

Without installed kernels (a source tree that was never installed), or when
the installed ones were built from other versions of the sources (any file
of ``csrc/``), it also compiles with ``-march=native`` at first use, cached under
``$ESPNET_WAVENET_CACHE`` (default ``~/.cache/espnet_wavenet``) by a hash of
sources, flags, compiler and CPU; concurrent first uses take a file lock and
install the result by atomic rename.

``ESPNET_WAVENET_NO_EXT=1`` disables the kernel (``generator="auto"`` then falls
back to the reference generator), which also serves to test that fallback.
"""

import ctypes
import hashlib
import logging
import os
import platform
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from espnet_wavenet.generation.cpu.build import (
    BASE_FLAGS,
    CSRC,
    ISA_LEVELS,
    SOURCE,
    abi_version,
    compile_kernel,
    compiler,
    install_levels,
    kernel_path,
    source_digest,
)
from espnet_wavenet.utils.cpu import cpu_flags, cpu_name

_lib: Optional[ctypes.CDLL] = None
_error: Optional[str] = None
_kind: Optional[str] = None  # which kernel was loaded: a level name or "native"
_profile_lib: Optional[Tuple[ctypes.CDLL, str]] = None  # and the level it was built for
_level_libs: Dict[str, ctypes.CDLL] = {}  # level_library's


def disabled() -> bool:
    return os.environ.get("ESPNET_WAVENET_NO_EXT", "0") not in ("", "0")


def cpu_levels() -> List[str]:
    """Installable levels this CPU can run, best first."""
    flags = cpu_flags()
    return [lv for lv in install_levels() if all(f in flags for f in ISA_LEVELS[lv][1])]


def cache_dir() -> Path:
    root = os.environ.get("ESPNET_WAVENET_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "espnet_wavenet"


def _open(path: Path, lib: Optional[ctypes.CDLL] = None) -> ctypes.CDLL:
    lib = lib or ctypes.CDLL(str(path))
    if lib.wn_abi_version() != abi_version():
        raise RuntimeError(f"{path}: ABI version {lib.wn_abi_version()}, expected {abi_version()}")
    return lib


def _build_native(extra_flags: Sequence[str] = (), level: Optional[str] = None) -> ctypes.CDLL:
    """Compile at first use for this CPU (development; cached), or for ``level``'s
    flags instead of ``-march=native``."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler (g++) found")
    version = subprocess.run(
        [cxx, "--version"], stdout=subprocess.PIPE, text=True, check=False
    ).stdout
    source = source_digest().encode()
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    errors = []
    # Prefer code tuned for this CPU, falling back to the baseline ISA; or the level's flags.
    for extra in ([ISA_LEVELS[level][0]] if level else (["-march=native"], [])):
        flags = BASE_FLAGS + list(extra_flags) + extra
        # A -march=native binary fits this CPU only.
        cpu = platform.machine() + cpu_name() + " ".join(sorted(cpu_flags()))
        key = hashlib.sha256(
            source + repr(flags).encode() + version.encode() + cpu.encode()
        ).hexdigest()[:16]
        path = directory / f"wavenet_native-{key}.so"
        try:
            if not path.exists():
                import fcntl  # POSIX only, like the kernel itself

                with open(directory / f".{key}.lock", "w") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    if not path.exists():
                        logging.info("compiling %s -> %s", SOURCE.name, path)
                        compile_kernel(flags, path, cxx)
            return _open(path)
        except Exception as e:  # noqa: BLE001 - try the next flag set, report all
            errors.append(f"{' '.join(extra) or 'baseline'}: {e}")
    raise RuntimeError("; ".join(errors))


class StaleKernel(RuntimeError):
    """An installed kernel built from another source (an edited editable install)."""


def _open_installed(level: str) -> ctypes.CDLL:
    # Staleness first: an edited source may also have changed the ABI version.
    lib = ctypes.CDLL(str(kernel_path(level)))
    lib.wn_source_sha256.restype = ctypes.c_char_p
    if lib.wn_source_sha256().decode() != source_digest():
        raise StaleKernel(f"{kernel_path(level)} was built from other versions of {CSRC}")
    return _open(kernel_path(level), lib)


def check_level(level: str, what: str = "ESPNET_WAVENET_KERNEL", also: str = "") -> None:
    """RuntimeError unless ``level`` is a level of this machine's builds that this CPU
    runs (``also``: the other accepted values, for the message)."""
    if level not in install_levels():
        raise RuntimeError(f"{what}={level!r}: expected {also}one of {install_levels()}")
    if level not in cpu_levels():
        raise RuntimeError(f"{what}={level}: this CPU cannot run it")


def _choice() -> str:
    """``ESPNET_WAVENET_KERNEL``, checked: auto, native or a level this CPU runs."""
    choice = os.environ.get("ESPNET_WAVENET_KERNEL", "auto")
    if choice not in ("auto", "native"):
        check_level(choice, also="auto, native or ")
    return choice


def _load() -> Tuple[ctypes.CDLL, str]:
    choice = _choice()
    if choice == "native":
        return _build_native(), "native"
    if choice != "auto":
        return level_library(choice), choice
    levels = cpu_levels()
    if not any(kernel_path(lv).exists() for lv in levels):
        logging.info("no installed kernel; compiling for this CPU at first use")
        return _build_native(), "native"
    errors = []
    for level in levels:
        try:
            return _open_installed(level), level
        except StaleKernel as e:
            logging.info("%s; compiling for this CPU at first use", e)
            return _build_native(), "native"
        except Exception as e:  # noqa: BLE001 - try the next level, report all
            errors.append(f"{level}: {e}")
    raise RuntimeError("; ".join(errors))


def level_library(level: str) -> ctypes.CDLL:
    """The installed kernel of ``level`` (compiled with the level's flags at first
    use where it is missing or stale), whatever ESPNET_WAVENET_KERNEL says: for a
    benchmark that times several levels in one process."""
    check_level(level, "level")
    if level not in _level_libs:
        try:
            _level_libs[level] = _open_installed(level)
        except (StaleKernel, OSError) as e:
            logging.info("%s; compiling the %s level", e, level)
            _level_libs[level] = _build_native(level=level)
    return _level_libs[level]


def load_library() -> Optional[ctypes.CDLL]:
    """The compiled kernel, or None (with the reason in :func:`load_error`)."""
    global _lib, _error, _kind
    if disabled():
        return None
    if _lib is None and _error is None:
        try:
            _lib, _kind = _load()
            logging.info("compiled WaveNet kernel: %s", _kind)
        except Exception as e:  # noqa: BLE001 - any failure means "use the fallback"
            _error = str(e)
            logging.warning("compiled WaveNet kernel unavailable: %s", _error)
    return _lib


def kernel_kind() -> Optional[str]:
    """Which kernel :func:`load_library` loaded (a level of ISA_LEVELS or "native")."""
    return _kind if load_library() is not None else None


def load_profiling_library() -> Tuple[ctypes.CDLL, str]:
    """The kernel built with ``-DWN_PROFILE`` (cycle counters of the two-thread
    pipeline, see ``wn_profile``) for the level ``ESPNET_WAVENET_KERNEL`` names, or
    with ``-march=native``; and which ("native" or the level). For
    ``bin/benchmark.py --profile`` only."""
    global _profile_lib
    if _profile_lib is None:
        choice = _choice()
        level = None if choice in ("auto", "native") else choice
        _profile_lib = _build_native(["-DWN_PROFILE"], level), level or "native"
    return _profile_lib


def load_error() -> Optional[str]:
    if disabled():
        return "disabled by ESPNET_WAVENET_NO_EXT"
    return _error
