"""The kernel's C ABI as ctypes objects, read from ``csrc/wavenet_abi.h``.

The header is the one description of the structs and codes that cross the
ctypes boundary: this module parses it instead of mirroring it by hand, and
:func:`bind` checks the result against the ``sizeof`` the compiled library
reports. Only the declaration forms the header uses are understood
(``type name[, name ...];`` with ``int32_t``, ``int64_t``, ``float`` or any
pointer; ``enum Name { A, B, ... };``); anything else is an error, not a guess.
"""

import ctypes
import re
from typing import Dict, List, Optional, Tuple

from espnet_wavenet.generation.cpu import loader
from espnet_wavenet.generation.cpu.build import ABI_HEADER

_SCALARS = {"int32_t": ctypes.c_int32, "int64_t": ctypes.c_int64, "float": ctypes.c_float}


def _text() -> str:
    """The header without comments."""
    text = ABI_HEADER.read_text()
    return re.sub(r"//[^\n]*", "", text)


def _struct_fields(name: str) -> List[Tuple[str, type]]:
    m = re.search(r"\bstruct\s+%s\s*\{(.*?)\};" % name, _text(), re.DOTALL)
    if m is None:
        raise RuntimeError(f"{ABI_HEADER}: no struct {name}")
    fields = []
    for decl in filter(None, (d.strip() for d in m.group(1).split(";"))):
        d = re.fullmatch(r"(?:const\s+)?(\w+)\s*(\*?)\s*(\w+(?:\s*,\s*\w+)*)", " ".join(decl.split()))
        if d is None or (not d.group(2) and d.group(1) not in _SCALARS):
            raise RuntimeError(f"{ABI_HEADER}: struct {name}: cannot read {decl!r}")
        ctype = ctypes.c_void_p if d.group(2) else _SCALARS[d.group(1)]
        fields += [(n.strip(), ctype) for n in d.group(3).split(",")]
    return fields


def enum_names(name: str, prefix: str) -> Tuple[str, ...]:
    """Lower-cased names of enum ``name`` in code order, without ``prefix``."""
    m = re.search(r"\benum\s+%s\s*\{(.*?)\};" % name, _text(), re.DOTALL)
    if m is None:
        raise RuntimeError(f"{ABI_HEADER}: no enum {name}")
    names = [n.strip() for n in m.group(1).split(",") if n.strip()]
    if any("=" in n or not n.startswith(prefix) for n in names):
        raise RuntimeError(f"{ABI_HEADER}: enum {name}: expected plain {prefix}* names")
    return tuple(n[len(prefix):].lower() for n in names)


class Model(ctypes.Structure):
    """``WnModel``: the network's sizes, codes and packed weights."""

    _fields_ = _struct_fields("WnModel")


class Call(ctypes.Structure):
    """``WnCall``: one call's batch, state, conditioning, noise and outputs."""

    _fields_ = _struct_fields("WnCall")


class Stack(ctypes.Structure):
    """``WnStack``: one training call of the residual stack (train/residual_stack.py)."""

    _fields_ = _struct_fields("WnStack")


# Codes of WnModel.prec / .dist / .input_type: the index in these tuples.
PRECISIONS = enum_names("WnPrecision", "WN_PREC_")
DISTRIBUTIONS = enum_names("WnDist", "WN_DIST_")
INPUT_TYPES = enum_names("WnInput", "WN_INPUT_")
# How a build forms int8 products: wn_int8_path() indexes this.
INT8_PATHS = enum_names("WnInt8Path", "WN_INT8_")
# What a generator's ``precision`` may say: the kernel's, or "auto" (see
# generator.auto_precision).
PRECISION_OPTIONS = (*PRECISIONS, "auto")
# wn_profile's counters, in slot order (the last, "n", is the count).
PROFILE_SLOTS = enum_names("WnProfileSlot", "WN_P_")[:-1]

_SIGNATURES: Dict[str, Tuple[type, list]] = {
    "wn_run": (ctypes.c_int, [ctypes.POINTER(Model), ctypes.POINTER(Call)]),
    "wn_struct_size": (ctypes.c_int64, [ctypes.c_int]),
    "wn_int8_path": (ctypes.c_int, []),
    "wn_int8_matvec": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                      ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]),
    "wn_panel_rows": (ctypes.c_int, []),
    "wn_barrier_bench": (ctypes.c_double, [ctypes.c_int64]),
    "wn_read_bench": (ctypes.c_double, [ctypes.c_int64, ctypes.c_int, ctypes.c_int]),
    "wn_profile": (ctypes.c_int, [ctypes.POINTER(ctypes.c_uint64)]),
    "wn_stack_forward": (ctypes.c_int, [ctypes.POINTER(Stack)]),
    "wn_stack_backward": (ctypes.c_int, [ctypes.POINTER(Stack)]),
}


def bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Declare the entry points' types on ``lib`` and check that the structs
    parsed from the header have the library's sizes."""
    for fn, (res, args) in _SIGNATURES.items():
        getattr(lib, fn).restype = res
        getattr(lib, fn).argtypes = args
    for which, struct in enumerate((Model, Call, Stack)):
        size = lib.wn_struct_size(which)
        if size != ctypes.sizeof(struct):
            raise RuntimeError(
                f"{struct.__name__}: {ctypes.sizeof(struct)} bytes as read from {ABI_HEADER.name}, "
                f"{size} in the compiled kernel"
            )
    return lib


def load() -> Optional[ctypes.CDLL]:
    """The kernel (:func:`.loader.load_library`), bound; None when unavailable."""
    lib = loader.load_library()
    return bind(lib) if lib is not None else None


def load_level(level: str) -> ctypes.CDLL:
    """The kernel of one ISA level (:func:`.loader.level_library`), bound."""
    return bind(loader.level_library(level))
