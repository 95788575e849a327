"""The kernel's C ABI is declared once (csrc/wavenet_abi.h); the ctypes side is
read from it. These tests check the reading against a C++ compiler's view."""

import ctypes
import shutil
import subprocess

import pytest

from espnet_wavenet.generation.cpu import abi, build, loader


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_ctypes_layout_equals_the_compilers(tmp_path):
    lines = []
    for struct, cname in ((abi.Model, "WnModel"), (abi.Call, "WnCall")):
        lines.append(f'printf("{cname} %zu\\n", sizeof({cname}));')
        for name, _ in struct._fields_:
            lines.append(f'printf("{cname}.{name} %zu\\n", offsetof({cname}, {name}));')
    for enum, prefix, names in (
        ("WnPrecision", "WN_PREC_", abi.PRECISIONS),
        ("WnDist", "WN_DIST_", abi.DISTRIBUTIONS),
        ("WnInput", "WN_INPUT_", abi.INPUT_TYPES),
        ("WnProfileSlot", "WN_P_", abi.PROFILE_SLOTS),
        ("WnInt8Path", "WN_INT8_", abi.INT8_PATHS),
    ):
        for name in names:
            lines.append(f'printf("{enum}.{name} %d\\n", (int){prefix}{name.upper()});')
    src = tmp_path / "layout.cpp"
    src.write_text(
        f'#include <cstddef>\n#include <cstdio>\n#include "{build.ABI_HEADER}"\n'
        "int main() {\n" + "\n".join(lines) + "\nreturn 0;\n}\n"
    )
    exe = tmp_path / "layout"
    subprocess.run(["g++", "-std=c++17", str(src), "-o", str(exe)], check=True)
    got = dict(line.split() for line in subprocess.check_output([str(exe)], text=True).splitlines())
    want = {}
    for struct, cname in ((abi.Model, "WnModel"), (abi.Call, "WnCall")):
        want[cname] = str(ctypes.sizeof(struct))
        for name, _ in struct._fields_:
            want[f"{cname}.{name}"] = str(getattr(struct, name).offset)
    for enum, names in (("WnPrecision", abi.PRECISIONS), ("WnDist", abi.DISTRIBUTIONS),
                        ("WnInput", abi.INPUT_TYPES), ("WnProfileSlot", abi.PROFILE_SLOTS),
                        ("WnInt8Path", abi.INT8_PATHS)):
        want.update({f"{enum}.{n}": str(i) for i, n in enumerate(names)})
    assert got == want
    assert abi.PRECISIONS == ("float32", "float16", "int8")
    assert abi.INPUT_TYPES == ("categorical", "continuous")


def test_loaded_kernel_has_the_headers_struct_sizes():
    lib = abi.load()
    if lib is None:
        pytest.skip(f"no kernel: {loader.load_error()}")
    assert lib.wn_struct_size(0) == ctypes.sizeof(abi.Model)
    assert lib.wn_struct_size(1) == ctypes.sizeof(abi.Call)
    assert lib.wn_abi_version() == build.abi_version()


def test_unreadable_declaration_is_an_error(tmp_path, monkeypatch):
    header = tmp_path / "wavenet_abi.h"
    header.write_text(
        build.ABI_HEADER.read_text().replace("int32_t B, n_steps;", "double B; int32_t n_steps;")
    )
    monkeypatch.setattr(abi, "ABI_HEADER", header)
    with pytest.raises(RuntimeError, match=r"struct WnCall: cannot read 'double B'"):
        abi._struct_fields("WnCall")
    assert [n for n, _ in abi._struct_fields("WnModel")] == [n for n, _ in abi.Model._fields_]


def test_source_digest_covers_what_the_build_reads(tmp_path, monkeypatch):
    # A stale file beside the sources (an old build's copy in a wheel) does not make
    # the installed kernels stale; a change to any included header does.
    import shutil

    csrc = tmp_path / "csrc"
    shutil.copytree(build.CSRC, csrc)
    monkeypatch.setattr(build, "CSRC", csrc)
    monkeypatch.setattr(build, "SOURCE", csrc / build.SOURCE.name)
    digest = build.source_digest()
    (csrc / "wavenet_fast.cpp").write_text("// an older kernel\n")
    assert build.source_digest() == digest
    (csrc / "vec.h").write_text((csrc / "vec.h").read_text() + "\n// edited\n")
    assert build.source_digest() != digest
