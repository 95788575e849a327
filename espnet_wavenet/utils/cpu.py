"""What the CPU is: its name (to go with every speed figure), its instruction
set flags (to pick a kernel) and its cache sizes. The one reader of /proc/cpuinfo."""

import functools
import platform
from pathlib import Path
from typing import Dict, FrozenSet, Optional


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> Dict[str, str]:
    """The first CPU's fields of /proc/cpuinfo (Linux; empty elsewhere)."""
    fields: Dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block ends
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_name() -> str:
    """``model name`` of /proc/cpuinfo (Linux), else what platform knows."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_flags() -> FrozenSet[str]:
    """Instruction-set flags of /proc/cpuinfo (x86 ``flags``, Arm ``Features``;
    empty when unknown)."""
    info = _cpuinfo()
    return frozenset((info.get("flags") or info.get("Features") or "").split())


def has_bf16_products() -> bool:
    """The CPU multiplies bf16 natively (x86 AVX512_BF16 or AMX-BF16, Arm BF16): there
    bf16 autocast speeds training up; elsewhere it emulates and slows down."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16", "bf16"})


def cache_kb(level: int) -> Optional[int]:
    """Cache of ``level`` seen by the first core in KiB (Linux sysfs), or None."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(base.glob("index*")):
        try:
            if (index / "level").read_text().strip() != str(level):
                continue
            size = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        scale = {"K": 1, "M": 1024}.get(size[-1:], None)
        return int(size[:-1]) * scale if scale else int(size) // 1024
    return None


def l2_cache_kb() -> Optional[int]:
    """Level-2 cache of the first core in KiB, or None."""
    return cache_kb(2)


def l3_cache_kb() -> Optional[int]:
    """Level-3 cache the first core shares in KiB, or None."""
    return cache_kb(3)
