"""Build, choose and load the compiled generation kernel (``csrc/wavenet_kernel.cpp``).

The kernel is a plain C ABI shared library loaded with :mod:`ctypes`. Installing
the package (``setup.py``'s ``build_ext``) compiles it once per instruction-set
level of :data:`ISA_LEVELS` into ``generation/kernels/``; at load the best level
this CPU supports is picked, so machines that run it need no compiler and no
writable cache. ``ESPNET_WAVENET_KERNEL`` overrides the choice:

- ``auto`` (default): the best installed level the CPU supports;
- a level name (``avx2``, ...): that installed level (to measure it on a CPU
  that has more);
- ``native``: compiled with ``-march=native`` at first use (development).

Without installed kernels (a source tree that was never installed), or when
the installed ones were built from other versions of the sources (any file
of ``csrc/``), it also compiles with ``-march=native`` at first use, cached under
``$ESPNET_WAVENET_CACHE`` (default ``~/.cache/espnet_wavenet``) by a hash of
source, flags, compiler and CPU; concurrent first uses take a file lock and
install the result by atomic rename.

``ESPNET_WAVENET_NO_EXT=1`` disables the kernel (``generator="auto"`` then falls
back to the reference generator), which also serves to test that fallback.

This module imports only the standard library: ``setup.py`` loads it by path.
"""

import ctypes
import hashlib
import logging
import os
import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

CSRC = Path(__file__).resolve().parents[2] / "csrc"
SOURCE = CSRC / "wavenet_kernel.cpp"  # one translation unit; includes the headers
ABI_HEADER = CSRC / "wavenet_abi.h"
KERNEL_DIR = Path(__file__).resolve().parent / "kernels"
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
_AVX512 = ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")
# x86-64 levels, best first: compiler flags and the /proc/cpuinfo flags they need.
ISA_LEVELS: Dict[str, Tuple[List[str], Tuple[str, ...]]] = {
    "avx512vnni": (["-march=x86-64-v4", "-mavx512vnni"], _AVX512 + ("avx512_vnni",)),
    "avx512": (["-march=x86-64-v4"], _AVX512),
    "avx2": (
        ["-march=x86-64-v3"],
        ("avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "abm", "movbe"),
    ),
    "baseline": ([], ()),
}

_lib: Optional[ctypes.CDLL] = None
_error: Optional[str] = None
_kind: Optional[str] = None  # which kernel was loaded: a level name or "native"
_profile_lib: Optional[ctypes.CDLL] = None


def disabled() -> bool:
    return os.environ.get("ESPNET_WAVENET_NO_EXT", "0") not in ("", "0")


def install_levels(machine: Optional[str] = None) -> List[str]:
    """The levels ``setup.py`` builds for a machine architecture."""
    machine = machine or platform.machine()
    return list(ISA_LEVELS) if machine in ("x86_64", "AMD64") else ["baseline"]


def _cpuinfo() -> str:
    """The first CPU's ``model name`` and ``flags`` lines of /proc/cpuinfo."""
    lines = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("model name", "flags")):
                    lines += line
                if line.startswith("flags"):
                    break
    except OSError:
        pass
    return lines


def cpu_levels() -> List[str]:
    """Installable levels this CPU can run, best first."""
    flags = set()
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    return [lv for lv in install_levels() if all(f in flags for f in ISA_LEVELS[lv][1])]


def _sources() -> List[Path]:
    return sorted(p for p in CSRC.iterdir() if p.suffix in (".cpp", ".h"))


def source_digest() -> str:
    """SHA-256 over every kernel source file (names and contents)."""
    h = hashlib.sha256()
    for path in _sources():
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def abi_version() -> int:
    """``WN_ABI_VERSION`` of ``csrc/wavenet_abi.h``."""
    m = re.search(r"^#define WN_ABI_VERSION (\d+)$", ABI_HEADER.read_text(), re.MULTILINE)
    if m is None:
        raise RuntimeError(f"{ABI_HEADER}: no WN_ABI_VERSION")
    return int(m.group(1))


def level_flags(level: str) -> List[str]:
    """Flags of an installed kernel; it records which source it was built from."""
    return BASE_FLAGS + ISA_LEVELS[level][0] + [f'-DWN_SOURCE_SHA256="{source_digest()}"']


def kernel_path(level: str, directory: Path = KERNEL_DIR) -> Path:
    return directory / f"wavenet_{level}.so"


def cache_dir() -> Path:
    root = os.environ.get("ESPNET_WAVENET_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "espnet_wavenet"


def _compiler() -> Optional[str]:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def compile_kernel(flags: Sequence[str], out: Path, cxx: Optional[str] = None) -> None:
    """Compile the kernel with ``flags`` into ``out`` (atomically: readers never
    see a half-written library)."""
    cxx = cxx or _compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler (g++) found")
    out.parent.mkdir(parents=True, exist_ok=True)
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
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _open(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    if lib.wn_abi_version() != abi_version():
        raise RuntimeError(f"{path}: ABI version {lib.wn_abi_version()}, expected {abi_version()}")
    return lib


def _build_native(extra_flags: Sequence[str] = ()) -> ctypes.CDLL:
    """Compile at first use for this CPU (development; cached)."""
    cxx = _compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler (g++) found")
    version = subprocess.run(
        [cxx, "--version"], stdout=subprocess.PIPE, text=True, check=False
    ).stdout
    source = source_digest().encode()
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    errors = []
    # Prefer code tuned for this CPU; fall back to the baseline ISA.
    for extra in (["-march=native"], []):
        flags = BASE_FLAGS + list(extra_flags) + extra
        cpu = platform.machine() + _cpuinfo()  # a -march=native binary fits this CPU only
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
    lib = _open(kernel_path(level))
    lib.wn_source_sha256.restype = ctypes.c_char_p
    if lib.wn_source_sha256().decode() != source_digest():
        raise StaleKernel(f"{kernel_path(level)} was built from other versions of {CSRC}")
    return lib


def _load() -> Tuple[ctypes.CDLL, str]:
    choice = os.environ.get("ESPNET_WAVENET_KERNEL", "auto")
    if choice == "native":
        return _build_native(), "native"
    if choice != "auto":
        if choice not in install_levels():
            raise RuntimeError(
                f"ESPNET_WAVENET_KERNEL={choice!r}: expected auto, native or one of "
                f"{install_levels()}"
            )
        if choice not in cpu_levels():
            raise RuntimeError(f"ESPNET_WAVENET_KERNEL={choice}: this CPU cannot run it")
        return _open_installed(choice), choice
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


def load_profiling_library() -> ctypes.CDLL:
    """The kernel built with ``-DWN_PROFILE`` (cycle counters of the two-thread
    pipeline, see ``wn_profile``); for ``bin/benchmark.py --profile`` only."""
    global _profile_lib
    if _profile_lib is None:
        _profile_lib = _build_native(["-DWN_PROFILE"])
    return _profile_lib


def load_error() -> Optional[str]:
    if disabled():
        return "disabled by ESPNET_WAVENET_NO_EXT"
    return _error
