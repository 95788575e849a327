"""The CPU's name, to go with every speed figure."""

import platform
from pathlib import Path
from typing import Optional


def cpu_name() -> str:
    """``model name`` of /proc/cpuinfo (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def l2_cache_kb() -> Optional[int]:
    """Level-2 cache of the first core in KiB (Linux sysfs), or None."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(base.glob("index*")):
        try:
            if (index / "level").read_text().strip() != "2":
                continue
            size = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        scale = {"K": 1, "M": 1024}.get(size[-1:], None)
        return int(size[:-1]) * scale if scale else int(size) // 1024
    return None
