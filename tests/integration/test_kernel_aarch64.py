"""The kernel on aarch64 (NEON; sdot where the CPU has the dot-product
extension), built with Debian's cross compiler and run under qemu-user on the
same inputs as the x86-64 build here: teacher-forced logits of every precision,
and the exact int8 sums at the extremes. Speed on Arm cannot be measured here.
"""

import ctypes
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import debian_packages
from nets import needs_fast, tiny
from espnet_wavenet.distributions import DEFAULT_SAMPLING
from espnet_wavenet.generation.cpu import abi, build
from espnet_wavenet.generation.cpu.generator import CompiledGenerator
from espnet_wavenet.generation.cpu.packing import pack
from espnet_wavenet.utils.matmul import row_stable_mm

# Debian's cross compiler and qemu-user, installed when missing (debian_packages).
PACKAGES = ("g++-aarch64-linux-gnu", "qemu-user")
CXX, QEMU = "aarch64-linux-gnu-g++", "qemu-aarch64"
pytestmark = needs_fast
DRIVER = Path(__file__).with_name("kernel_driver.cpp")
# The installed aarch64 levels: ARMv8-A (NEON, scalar int8) and ARMv8.2-A with sdot.
ARM_BUILDS = {"armv8-a": build.ISA_LEVELS["baseline"][0],
              "dotprod": build.ISA_LEVELS["dotprod"][0]}


@pytest.fixture(scope="module")
def drivers(tmp_path_factory):
    reason = debian_packages.ensure(PACKAGES, (CXX, QEMU))
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("aarch64")
    flags = [f for f in build.BASE_FLAGS if f not in ("-shared", "-fPIC", "-fopenmp")]
    exes = {}
    for name, extra in ARM_BUILDS.items():
        exe = out / f"kernel_driver_{name}"
        subprocess.run([CXX, *flags, *extra, "-static", f"-I{build.CSRC}", str(DRIVER),
                        str(build.SOURCE), "-o", str(exe)], check=True, timeout=600)
        exes[name] = exe
    return exes


def qemu(exe: Path, *args: str) -> str:
    return subprocess.run([QEMU, str(exe), *args], check=True, capture_output=True,
                          text=True, timeout=600).stdout


def test_aarch64_installs_the_levels_tested_here():
    assert build.install_levels("aarch64") == ["dotprod", "baseline"]


def test_structs_and_paths_as_on_x86(drivers):
    for name, exe in drivers.items():
        model, call, vw, path = qemu(exe, "sizes").split()
        assert (int(model), int(call)) == (ctypes.sizeof(abi.Model), ctypes.sizeof(abi.Call))
        assert int(vw) == 4
        want = "neon_dotprod" if name == "dotprod" else "scalar"
        assert abi.INT8_PATHS[int(path)] == want


def teacher_forced(gen: CompiledGenerator, steps: int, panel: int = 0):
    """(model, call, arrays, logits) of one teacher-forced kernel call of 2
    streams, the weights packed for ``panel``-row panels (0: for ``gen``'s kernel)."""
    p = pack(gen.net, gen.dist, gen.precision, panel) if panel else gen._pack()
    net, dist = gen.net, gen.dist
    rng = torch.Generator().manual_seed(7)
    batch, width = 2, p.dims["L"] * 2 * p.dims["Hp"]
    state = gen.new_state(batch)
    base = gen._base_condition(batch, torch.tensor([1, 0]))
    c_up = torch.randn(batch * steps, net.aux_channels, generator=rng)
    cond = (row_stable_mm(c_up, p.aux_w).view(batch, steps, width) + base[:, None]).contiguous()
    x = (torch.rand(batch, steps, generator=rng) * 1.6 - 0.8).contiguous()
    a = dict(state, cond=cond, noise=torch.full((batch, steps, dist.noise_dim), 0.5),
             out=torch.zeros(batch, steps), logits=torch.zeros(batch, steps, net.out_channels),
             forced_cls=dist.encode_input(x).to(torch.int32).contiguous(), forced_x=x)
    del a["t"]
    call = abi.Call(
        B=batch, n_steps=steps, t0=0, ring_bstride=a["rings"].shape[1],
        cond_bstride=cond.stride(0), cond_tstride=width, cond_t0=0,
        noise_bstride=a["noise"].stride(0), noise_dim=dist.noise_dim, temperature=1.0,
        log_scale_min=DEFAULT_SAMPLING.floor(dist), out_bstride=steps,
        logits_bstride=a["logits"].stride(0), n_threads=1, cond_mode=0, split=0,
        forced_bstride=steps,
        **{k: v.data_ptr() for k, v in a.items()},
    )
    return p.model, call, [*p.tensors.values(), *a.values()], a["logits"]


def run_on_aarch64(exe: Path, model, call, arrays, logits, tmp: Path) -> torch.Tensor:
    """The same call through the Arm build: structs relocated into one blob."""
    where, blob = {}, bytearray()
    for t in arrays:
        blob += bytes(-len(blob) % 64)
        where[t.data_ptr()] = len(blob)
        blob += t.detach().contiguous().numpy().tobytes()
    structs = bytearray(bytes(model) + bytes(call))
    ptrs = []
    for base, struct in ((0, abi.Model), (ctypes.sizeof(abi.Model), abi.Call)):
        for name, ctype in struct._fields_:
            if ctype is ctypes.c_void_p:
                off = base + getattr(struct, name).offset
                ptr = int.from_bytes(structs[off : off + 8], "little")
                structs[off : off + 8] = ((where[ptr] + 1) if ptr else 0).to_bytes(8, "little")
                ptrs.append(off)
    (tmp / "in").write_bytes(structs + np.array([len(ptrs), *ptrs], np.int64).tobytes()
                             + np.int64(len(blob)).tobytes() + bytes(blob))
    qemu(exe, "run", str(tmp / "in"), str(tmp / "out"))
    out = (tmp / "out").read_bytes()
    assert int.from_bytes(out[:4], "little") == 0
    start = 4 + where[logits.data_ptr()]
    got = np.frombuffer(out[start : start + logits.numel() * 4], np.float32)
    return torch.from_numpy(got.copy()).view_as(logits)


@pytest.mark.parametrize("precision", ["float32", "float16", "int8"])
def test_teacher_forced_logits_equal_x86(drivers, tmp_path, precision):
    _, net, d = tiny("mulaw", 2)
    gen = CompiledGenerator(net, d, threads=1, precision=precision, split=False)
    steps = 300
    model, call, arrays, logits = teacher_forced(gen, steps)
    assert gen.lib.wn_run(ctypes.byref(model), ctypes.byref(call)) == 0
    x86 = logits.clone()
    arm = {}
    for name, exe in drivers.items():
        # fresh state, weights in the Arm build's 4-row panels
        model, call, arrays, logits = teacher_forced(gen, steps, panel=4)
        arm[name] = run_on_aarch64(exe, model, call, arrays, logits, tmp_path)
    # Both Arm builds share the vector width: sdot forms the scalar loop's sums.
    assert torch.equal(arm["armv8-a"], arm["dotprod"])
    # Against x86 (16 lanes, other sum order): float rounding; int8 also
    # requantizes activations that differ in the last bits.
    scale = x86.abs().max()
    tol = {"float32": 1e-5, "float16": 1e-5, "int8": 2e-2}[precision]
    assert (arm["dotprod"] - x86).abs().max() <= tol * scale


def test_int8_sums_exact_at_the_extremes(drivers, tmp_path):
    rows, cols = 12, 256
    rng = np.random.default_rng(0)
    cases = [(np.full((rows, cols), 127, np.int8), np.full(cols, 255, np.uint8)),
             (np.full((rows, cols), -127, np.int8), np.full(cols, 255, np.uint8)),
             (rng.integers(-127, 128, (rows, cols)).astype(np.int8),
              rng.integers(0, 256, cols).astype(np.uint8))]
    for name, exe in drivers.items():
        for w, x in cases:
            packed = w.reshape(rows // 4, 4, cols // 4, 4).transpose(0, 2, 1, 3).tobytes()
            (tmp_path / "in").write_bytes(
                np.array([rows // 4, cols], np.int32).tobytes()
                + np.int64(len(packed)).tobytes() + packed
                + np.int64(cols).tobytes() + x.tobytes())
            qemu(exe, "int8", str(tmp_path / "in"), str(tmp_path / "out"))
            out = (tmp_path / "out").read_bytes()
            assert int.from_bytes(out[:4], "little") == 0, name
            y = np.frombuffer(out[4:], np.float32).astype(np.int64)
            np.testing.assert_array_equal(y, w.astype(np.int64) @ x.astype(np.int64), name)
