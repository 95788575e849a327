"""int8 products on every instruction-set level: the same exact integer sums.

Each level's kernel (AVX-512 VNNI, AVX-512BW without VNNI, AVX2, the scalar
baseline) is built as installed (or, when the installed one is stale, compiled
here with the install flags) and compared with the integer sums numpy forms,
with weights and activations at their extremes, where int16 pair sums would
saturate. Builds of one vector width then generate the same int8 samples.
"""

import numpy as np
import pytest
import torch

from nets import needs_fast, tiny
from espnet_wavenet.generation.cpu import abi, build, loader
from espnet_wavenet.generation.cpu.generator import CompiledGenerator

LEVELS = [lv for lv in build.install_levels() if lv in loader.cpu_levels()]


@pytest.fixture(scope="module")
def level_libs(tmp_path_factory):
    libs = {}
    for level in LEVELS:
        try:
            lib = loader._open_installed(level)
        except (OSError, loader.StaleKernel):
            path = build.kernel_path(level, tmp_path_factory.mktemp(level))
            build.compile_kernel(build.level_flags(level), path)
            lib = loader._open(path)
        libs[level] = abi.bind(lib)
    return libs


def int8_products(lib, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """W x through the kernel's panels (packed as packing.quantize lays them out)."""
    vw = lib.wn_panel_rows()
    rows, cols = w.shape
    packed = np.ascontiguousarray(
        w.reshape(rows // vw, vw, cols // 4, 4).transpose(0, 2, 1, 3)
    ).reshape(-1)
    y = np.zeros(rows, np.float32)
    assert lib.wn_int8_matvec(packed.ctypes.data, rows // vw, cols, x.ctypes.data,
                              y.ctypes.data) == 0
    return y.astype(np.int64)


def cases(rows: int, cols: int):
    rng = np.random.default_rng(0)
    odd = np.arange(cols) % 2 == 1
    yield np.full((rows, cols), 127, np.int8), np.full(cols, 255, np.uint8)
    yield np.full((rows, cols), -127, np.int8), np.full(cols, 255, np.uint8)
    yield (np.tile(np.where(odd, 127, -127).astype(np.int8), (rows, 1)),
           np.where(odd, 255, 0).astype(np.uint8))
    yield (rng.integers(-127, 128, (rows, cols)).astype(np.int8),
           rng.integers(0, 256, cols).astype(np.uint8))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("cols", [4, 64, 256])
def test_int8_products_are_exact_at_the_extremes(level_libs, level, cols):
    lib = level_libs[level]
    rows = 3 * lib.wn_panel_rows()
    for w, x in cases(rows, cols):
        # 256 columns of 255 * 127: 8.3e6, exact in the kernel's float32 output
        want = w.astype(np.int64) @ x.astype(np.int64)
        np.testing.assert_array_equal(int8_products(lib, w, x), want)


def test_each_level_has_its_int8_path(level_libs):
    expected = {"avx512vnni": "avx512vnni", "avx512": "avx512bw", "avx2": "avx2",
                "dotprod": "neon_dotprod", "baseline": "scalar"}
    for level, lib in level_libs.items():
        assert abi.INT8_PATHS[lib.wn_int8_path()] == expected[level], level


@needs_fast
def test_int8_samples_equal_across_paths_of_one_width(level_libs, monkeypatch):
    # avx512 (widened products) and avx512vnni (vpdpbusd) share the vector width,
    # so everything around the exact integer sums rounds alike: same samples.
    wide = [lv for lv in ("avx512vnni", "avx512") if lv in level_libs]
    if len(wide) < 2:
        pytest.skip("needs a CPU with AVX-512 VNNI to run both 16-lane builds")
    _, net, d = tiny("mulaw", 2)
    frames = [torch.randn(net.aux_channels, n + 2 * net.upsample.aux_context_window,
                          generator=torch.Generator().manual_seed(n)) for n in (5, 7)]
    noise = d.noise(2, 7 * net.hop, torch.Generator().manual_seed(3))
    out = {}
    for level in wide:
        monkeypatch.setattr(loader, "_lib", level_libs[level])
        monkeypatch.setattr(loader, "_kind", level)
        gen = CompiledGenerator(net, d, threads=2, precision="int8", split=False)
        out[level], _ = gen.generate_from_frames(frames, 7 * net.hop, noise,
                                                 g=torch.tensor([1, 0]))
    assert torch.equal(out["avx512vnni"], out["avx512"])
