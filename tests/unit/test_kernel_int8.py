"""int8 products on every instruction-set level: the same exact integer sums.

Each level's kernel (AVX-512 VNNI, AVX-512BW without VNNI, AVX-VNNI, AVX2, the
scalar baseline) is built as installed (or, when the installed one is stale,
compiled here with the install flags) and compared with the integer sums numpy
forms, with weights and activations at their extremes, where int16 pair sums
of the offset bytes would saturate and those of sign and magnitude (AVX-512BW
and AVX2 with one stream; AVX2 flips the weights by an xor) come closest. Builds of one vector width then
generate the same int8 samples.

Where the CPU has AVX-VNNI (Intel Alder Lake and later clients, Sapphire
Rapids and later Xeons) its real build runs here like every other level. QEMU's
TCG lacks AVX-VNNI (up to 10.0), so elsewhere, on a CPU with AVX-512 VNNI (e.g.
AMD Zen 4/5), its path runs as a stand-in build that issues the EVEX encoding of
the same vpdpbusd on ymm registers; the real build is always checked for what
it contains.
"""

import ctypes
import shutil
import subprocess

import numpy as np
import pytest
import torch

from nets import needs_fast, tiny
from espnet_wavenet.generation.cpu import abi, build, loader
from espnet_wavenet.generation.cpu.generator import CompiledGenerator
from espnet_wavenet.utils.cpu import cpu_flags

LEVELS = [lv for lv in build.install_levels() if lv in loader.cpu_levels()]
EVEX_STAND_IN = (
    "avxvnni" in build.install_levels() and "avxvnni" not in LEVELS
    and {"avx2", "avx512_vnni", "avx512vl"} <= cpu_flags()
)
if EVEX_STAND_IN:
    LEVELS.insert(LEVELS.index("avx2"), "avxvnni")


def level_library(level: str, directory) -> ctypes.CDLL:
    """The installed kernel of a level, or one compiled with its install flags."""
    try:
        return loader._open_installed(level)
    except (OSError, loader.StaleKernel):
        path = build.kernel_path(level, directory)
        build.compile_kernel(build.level_flags(level), path)
        return loader._open(path)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """The AVX-VNNI stand-in build (None where this CPU cannot run it)."""
    if not EVEX_STAND_IN:
        return None
    path = build.kernel_path("avxvnni_evex", tmp_path_factory.mktemp("evex"))
    build.compile_kernel(build.level_flags("avx2") + ["-DWN_AVXVNNI_AS_EVEX"], path)
    return loader._open(path)


@pytest.fixture(scope="module")
def level_libs(tmp_path_factory, stand_in):
    libs = {}
    for level in LEVELS:
        if level == "avxvnni" and stand_in is not None:
            libs[level] = abi.bind(stand_in)
        else:
            libs[level] = abi.bind(level_library(level, tmp_path_factory.mktemp(level)))
    return libs


def int8_products(lib, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """x W^T for the streams x (streams, cols) through the kernel's panels (packed
    as packing.quantize lays them out) and its register blocks of streams."""
    vw = lib.wn_panel_rows()
    rows, cols = w.shape
    packed = np.ascontiguousarray(
        w.reshape(rows // vw, vw, cols // 4, 4).transpose(0, 2, 1, 3)
    ).reshape(-1)
    x = np.ascontiguousarray(x)
    y = np.zeros((len(x), rows), np.float32)
    assert lib.wn_int8_matvec(packed.ctypes.data, rows // vw, cols, len(x), x.ctypes.data,
                              y.ctypes.data) == 0
    return y.astype(np.int64)


def cases(rows: int, cols: int):
    rng = np.random.default_rng(0)
    odd = np.arange(cols) % 2 == 1
    yield np.full((rows, cols), 127, np.int8), np.full(cols, 255, np.uint8)
    yield np.full((rows, cols), -127, np.int8), np.full(cols, 255, np.uint8)
    # offset byte 0: q = -128, whose magnitude 128 only fits unsigned (the widened
    # levels' one-stream products: 2 * 128 * 127 per vpmaddubsw pair)
    yield np.full((rows, cols), -127, np.int8), np.zeros(cols, np.uint8)
    # AVX2's one stream flips the weights by an xor where q < 0 (127 -> -128):
    # pair sums of 2 * 128 * -128, the int16 minimum
    yield np.full((rows, cols), 127, np.int8), np.zeros(cols, np.uint8)
    yield (np.tile(np.where(odd, 127, -127).astype(np.int8), (rows, 1)),
           np.where(odd, 255, 0).astype(np.uint8))
    yield (rng.integers(-127, 128, (rows, cols)).astype(np.int8),
           rng.integers(0, 256, cols).astype(np.uint8))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("cols", [4, 64, 256])
@pytest.mark.parametrize("streams", [1, 5, 11])
def test_int8_products_are_exact_at_the_extremes(level_libs, level, cols, streams):
    # Several streams run in register blocks of up to 8 (AVX-512) or 4 streams,
    # whose widened paths widen the activations once per product, not per group.
    lib = level_libs[level]
    rows = 3 * lib.wn_panel_rows()
    for w, x in cases(rows, cols):
        xs = np.stack([np.roll(x, s) if s % 2 else x for s in range(streams)])
        # 256 columns of 255 * 127: 8.3e6, exact in the kernel's float32 output
        want = xs.astype(np.int64) @ w.astype(np.int64).T
        np.testing.assert_array_equal(int8_products(lib, w, xs), want)


def test_each_level_has_its_int8_path(level_libs):
    expected = {"avx512vnni": "avx512vnni", "avx512": "avx512bw", "avxvnni": "avxvnni",
                "avx2": "avx2", "dotprod": "neon_dotprod", "baseline": "scalar"}
    for level, lib in level_libs.items():
        assert abi.INT8_PATHS[lib.wn_int8_path()] == expected[level], level


def disassembly(lib) -> str:
    return subprocess.run(["objdump", "-d", lib._name], stdout=subprocess.PIPE, text=True,
                          check=True).stdout


@pytest.mark.skipif(shutil.which("objdump") is None or "avxvnni" not in build.install_levels()
                    or "avx2" not in cpu_flags(),  # it loads the build (AVX2 code) to find it
                    reason="needs objdump and an x86-64 CPU with AVX2")
def test_avxvnni_build_uses_vex_vpdpbusd_and_no_avx512(tmp_path, stand_in):
    # What a CPU with AVX-VNNI but no AVX-512 (Alder Lake) loads: the VEX form
    # (prefix c4) of the product, and not one 512-bit register or EVEX form.
    code = disassembly(level_library("avxvnni", tmp_path))
    dp = [line for line in code.splitlines() if "vpdpbusd" in line]
    assert dp and all("{vex}" in line for line in dp)
    assert "zmm" not in code
    if stand_in is not None:  # the stand-in runs the same loop, only the encoding differs
        evex = [ln for ln in disassembly(stand_in).splitlines() if "vpdpbusd" in ln]
        assert len(evex) == len(dp) and not any("{vex}" in ln for ln in evex)


@needs_fast
@pytest.mark.parametrize("pair", [("avx512vnni", "avx512"), ("avxvnni", "avx2")])
def test_int8_samples_equal_across_paths_of_one_width(level_libs, monkeypatch, pair):
    # Widened products and vpdpbusd builds of one vector width (16 or 8 lanes)
    # form the same integer sums and round alike around them: same samples.
    if not set(pair) <= set(level_libs):
        pytest.skip(f"this CPU cannot run both of {pair}")
    _, net, d = tiny("mulaw", 2)
    frames = [torch.randn(net.aux_channels, n + 2 * net.upsample.aux_context_window,
                          generator=torch.Generator().manual_seed(n)) for n in (5, 7)]
    noise = d.noise(2, 7 * net.hop, torch.Generator().manual_seed(3))
    out = {}
    for level in pair:
        monkeypatch.setattr(loader, "_lib", level_libs[level])
        monkeypatch.setattr(loader, "_kind", level)
        gen = CompiledGenerator(net, d, threads=2, precision="int8", split=False)
        out[level], _ = gen.generate_from_frames(frames, 7 * net.hop, noise,
                                                 g=torch.tensor([1, 0]))
    assert torch.equal(out[pair[0]], out[pair[1]])
