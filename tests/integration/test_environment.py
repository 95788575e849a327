"""The set-up: the project's environment is its lock's, and the kernels built at
install time load without a compiler and pick the CPU's best level."""

import importlib.metadata
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import torch

from espnet_wavenet.generation.cpu import build, loader

ROOT = Path(__file__).resolve().parents[2]
in_project_venv = pytest.mark.skipif(
    Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(),
    reason="not the project's environment (made by `make venv` from the lock)",
)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict:
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if m:
            pins[_norm(m.group(1))] = m.group(2)
    return pins


@in_project_venv
def test_installed_versions_are_the_locks():
    lock = ROOT / "requirements" / "py311-linux-x86_64.lock"
    pins = read_lock(lock)
    assert "torch" in pins and "espnet" in pins and len(pins) > 50
    # Only the venv's own packages: setuptools puts its vendored copies
    # (packaging, typeguard, ...) on sys.path once imported.
    site = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    installed = {
        _norm(d.metadata["Name"]): d.version
        for d in importlib.metadata.distributions(path=sorted(site))
    }
    drift = [
        f"{name}: installed {installed.get(name, 'nothing')}, {lock.name} has {version}"
        for name, version in sorted(pins.items())
        if installed.get(name) != version
    ]
    assert not drift, "environment differs from the lock (rerun `make venv`):\n" + "\n".join(drift)


def test_torchaudio_library_loads_beside_torch():
    # A torchaudio built for another torch dies on import with an undefined
    # symbol (2.11.1 beside torch 2.12.1): here, not in a recipe stage.
    import torchaudio
    from torchaudio._extension import _IS_TORCHAUDIO_EXT_AVAILABLE

    assert _IS_TORCHAUDIO_EXT_AVAILABLE, "libtorchaudio not loaded"
    x = torch.sin(torch.arange(1600.0) * 0.1).unsqueeze(0)
    y = torchaudio.functional.resample(x, 16000, 8000)
    assert y.shape == (1, 800) and torch.isfinite(y).all()


@in_project_venv
def test_installed_kernels_are_current_and_best_for_this_cpu():
    assert loader.load_library() is not None, loader.load_error()
    levels = loader.cpu_levels()
    assert loader.kernel_kind() == levels[0], "fell back to a build at first use"
    for level in build.install_levels():
        assert build.kernel_path(level).is_file(), f"{level} kernel not built at install"


def test_kernel_choice_is_checked(monkeypatch):
    monkeypatch.setenv("ESPNET_WAVENET_KERNEL", "avx1024")
    with pytest.raises(RuntimeError, match="avx1024.*expected auto, native or one of"):
        loader._load()


def test_wheel_carries_kernels_that_need_no_compiler(tmp_path):
    # What a compute node gets: a platform wheel with every level's kernel,
    # usable with no compiler on PATH and no writable cache.
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("espnet_wavenet-*.whl")
    assert not wheel.name.endswith("-none-any.whl")  # a binary, platform wheel
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(site)
    for level in build.install_levels():
        assert f"espnet_wavenet/generation/cpu/kernels/wavenet_{level}.so" in names
    probe = (
        f"import sys; sys.path.insert(0, {str(site)!r})\n"
        "from espnet_wavenet.generation.cpu import loader as m\n"
        f"assert m.__file__.startswith({str(site)!r}), m.__file__\n"
        "assert m.load_library() is not None, m.load_error()\n"
        "print(m.kernel_kind(), m.load_library()._name)\n"
    )
    env = {"PATH": "", "CXX": "/nonexistent/g++", "HOME": str(tmp_path / "ro"),
           "ESPNET_WAVENET_CACHE": "/nonexistent/cache"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    kind, path = out.stdout.split()
    assert kind == loader.cpu_levels()[0]
    assert path.startswith(str(site))
