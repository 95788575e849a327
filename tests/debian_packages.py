"""Debian packages that some tests need beyond the lock (Slurm, the aarch64
cross compiler and qemu-user): installed when missing, so that ``make test`` on
a fresh machine runs those tests instead of skipping them."""

import os
import shutil
import subprocess
from typing import Optional, Sequence


def ensure(packages: Sequence[str], binaries: Sequence[str]) -> Optional[str]:
    """Install ``packages`` where one of ``binaries`` is missing and this may
    (root, apt-get); the reason they cannot be had otherwise (None: ready)."""
    missing = lambda: [b for b in binaries if shutil.which(b) is None]  # noqa: E731
    if not missing():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{', '.join(missing())} missing, and installing {' '.join(packages)} " \
               "needs root and apt-get"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # The other pytest-xdist worker may be installing too: wait for dpkg's lock.
    install = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=900", *packages]
    for cmd in (install, ["apt-get", "update", "-q"], install):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
        if cmd is install and proc.returncode == 0 and not missing():
            return None
    return f"apt-get install {' '.join(packages)} failed: {proc.stderr[-500:]}"
