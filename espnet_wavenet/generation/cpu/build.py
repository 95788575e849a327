"""Build rules of the compiled generation kernel (``csrc/wavenet_kernel.cpp``).

The kernel is a plain C ABI shared library, loaded with :mod:`ctypes`. Installing
the package (``setup.py``'s ``build_ext``) compiles it once per instruction-set
level of :data:`ISA_LEVELS` into ``generation/cpu/kernels/``; each build records
the SHA-256 of the sources it was built from. :mod:`.loader` picks and loads one.

This module imports only the standard library: ``setup.py`` loads it by path.
"""

import hashlib
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
    # the training stack's threads (csrc/train_stack.h); generation uses its own
    "-fopenmp",
]
_AVX512 = ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")
_AVX2 = ("avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "abm", "movbe")
# Levels, best first: compiler flags and the /proc/cpuinfo flags they need.
ISA_LEVELS: Dict[str, Tuple[List[str], Tuple[str, ...]]] = {
    # x86-64
    "avx512vnni": (["-march=x86-64-v4", "-mavx512vnni"], _AVX512 + ("avx512_vnni",)),
    "avx512": (["-march=x86-64-v4"], _AVX512),
    # AVX2 with the 256-bit VNNI of Alder Lake and later (int8 by vpdpbusd)
    "avxvnni": (["-march=x86-64-v3", "-mavxvnni"], _AVX2 + ("avx_vnni",)),
    "avx2": (["-march=x86-64-v3"], _AVX2),
    # aarch64: ARMv8.2-A with the dot-product extension (sdot for int8)
    "dotprod": (["-march=armv8.2-a+dotprod"], ("asimd", "asimddp")),
    # the architecture's default target (x86-64: SSE2; aarch64: ARMv8-A NEON)
    "baseline": ([], ()),
}
_MACHINE_LEVELS = {
    "x86_64": ["avx512vnni", "avx512", "avxvnni", "avx2", "baseline"],
    "AMD64": ["avx512vnni", "avx512", "avxvnni", "avx2", "baseline"],
    "aarch64": ["dotprod", "baseline"],
    "arm64": ["dotprod", "baseline"],
}


def install_levels(machine: Optional[str] = None) -> List[str]:
    """The levels ``setup.py`` builds for a machine architecture, best first."""
    return list(_MACHINE_LEVELS.get(machine or platform.machine(), ["baseline"]))


def _sources() -> List[Path]:
    """The kernel source and every header it includes (``#include "..."``, transitively):
    what the build reads, whatever else lies in the folder (e.g. an old build's copy)."""
    seen, todo = [], [SOURCE]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        todo += [CSRC / name for name in re.findall(r'^#include "([^"]+)"', path.read_text(), re.M)]
    return sorted(seen)


def source_digest() -> str:
    """SHA-256 over the kernel's source files (names and contents)."""
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


def compiler() -> Optional[str]:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def compile_kernel(flags: Sequence[str], out: Path, cxx: Optional[str] = None) -> None:
    """Compile the kernel with ``flags`` into ``out`` (atomically: readers never
    see a half-written library)."""
    cxx = cxx or compiler()
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
