"""Build and load the compiled generation kernel (``csrc/wavenet_fast.cpp``).

The kernel is a plain C ABI shared library loaded with :mod:`ctypes`. It is
compiled with the system ``g++`` at first use, not by ``setup.py``: pip builds
packages in isolation without torch, and a CPU-tuned binary (``-march=native``)
must be built on the machine that runs it. The library is cached under
``$ESPNET_WAVENET_CACHE`` (default ``~/.cache/espnet_wavenet``) by a hash of
source, flags, compiler and CPU, so each machine compiles once (about 2 s);
concurrent first uses take a file lock and install the result by atomic rename.

``ESPNET_WAVENET_NO_EXT=1`` disables the extension (the package then falls back
to the reference generator), which also serves to test that fallback.
"""

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional

SOURCE = Path(__file__).resolve().parents[1] / "csrc" / "wavenet_fast.cpp"
ABI_VERSION = 8
# -ffast-math is avoided on purpose: it assumes no infinities, which the
# softmax uses; contraction (FMA) and no errno are enough for speed.
BASE_FLAGS = [
    "-O3",
    "-std=c++17",
    "-shared",
    "-fPIC",
    "-pthread",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-ffp-contract=fast",
]
_lib: Optional[ctypes.CDLL] = None
_error: Optional[str] = None
_profile_lib: Optional[ctypes.CDLL] = None


def disabled() -> bool:
    return os.environ.get("ESPNET_WAVENET_NO_EXT", "0") not in ("", "0")


def cache_dir() -> Path:
    root = os.environ.get("ESPNET_WAVENET_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "espnet_wavenet"


def _cpu_signature() -> str:
    """CPU model and flags: a -march=native binary is only valid on such a CPU."""
    sig = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("model name", "flags")):
                    sig += line
                if line.startswith("flags"):
                    break
    except OSError:
        pass
    return sig


def _compiler() -> Optional[str]:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def _compile(cxx: str, flags: List[str], out: Path) -> None:
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".so.tmp", delete=False) as f:
        tmp = Path(f.name)
    try:
        proc = subprocess.run(
            [cxx, *flags, str(SOURCE), "-o", str(tmp)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{cxx} {' '.join(flags)} failed:\n{proc.stdout[-3000:]}")
        os.replace(tmp, out)  # atomic: readers never see a half-written library
    finally:
        tmp.unlink(missing_ok=True)


def _build(extra_flags: List[str] = ()) -> ctypes.CDLL:
    cxx = _compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler (g++) found")
    version = subprocess.run(
        [cxx, "--version"], stdout=subprocess.PIPE, text=True, check=False
    ).stdout
    source = SOURCE.read_bytes()
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    errors = []
    # Prefer code tuned for this CPU; fall back to the baseline ISA.
    for extra in (["-march=native"], []):
        flags = BASE_FLAGS + list(extra_flags) + extra
        key = hashlib.sha256(
            source + repr(flags).encode() + version.encode() + _cpu_signature().encode()
        ).hexdigest()[:16]
        path = directory / f"wavenet_fast-{key}.so"
        try:
            if not path.exists():
                import fcntl  # POSIX only; the fast path is built for Linux/macOS

                with open(directory / f".{key}.lock", "w") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    if not path.exists():
                        logging.info("compiling %s -> %s", SOURCE.name, path)
                        _compile(cxx, flags, path)
            lib = ctypes.CDLL(str(path))
            if lib.wn_abi_version() != ABI_VERSION:
                raise RuntimeError(f"{path}: ABI version mismatch")
            return lib
        except Exception as e:  # noqa: BLE001 - try the next flag set, report all
            errors.append(f"{' '.join(extra) or 'baseline'}: {e}")
    raise RuntimeError("; ".join(errors))


def load_library() -> Optional[ctypes.CDLL]:
    """The compiled kernel, or None (with the reason in :func:`load_error`)."""
    global _lib, _error
    if disabled():
        return None
    if _lib is None and _error is None:
        try:
            _lib = _build()
        except Exception as e:  # noqa: BLE001 - any failure means "use the fallback"
            _error = str(e)
            logging.warning("fast WaveNet kernel unavailable: %s", _error)
    return _lib


def load_profiling_library() -> ctypes.CDLL:
    """The kernel built with ``-DWN_PROFILE`` (cycle counters of the two-thread
    pipeline, see ``wn_profile``); for ``bin/benchmark.py --profile`` only."""
    global _profile_lib
    if _profile_lib is None:
        _profile_lib = _build(["-DWN_PROFILE"])
    return _profile_lib


def load_error() -> Optional[str]:
    if disabled():
        return "disabled by ESPNET_WAVENET_NO_EXT"
    return _error
