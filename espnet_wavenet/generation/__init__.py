"""Autoregressive generation: the reference oracle and faster generators.

Every generator has ``generate(c_up, length, noise, g=None, sampling=DEFAULT_SAMPLING,
return_logits=False)`` returning ``(samples, logits)`` (see ``generation/interface.py``).
"""

import copy
import logging

from espnet_wavenet.distributions import Distribution
from espnet_wavenet.generation.cpu.abi import PRECISION_OPTIONS  # noqa: F401 - the compiled one's
from espnet_wavenet.generation.reference import ReferenceGenerator
from espnet_wavenet.models.wavenet import WaveNet

# "fast" names the compiled CPU generator (CompiledGenerator): the option value
# users and configs already pass.
GENERATORS = ("auto", "fast", "gpu", "reference")
# Compiled (float32) over reference speed, default config, one stream (README: 186x).
REFERENCE_SLOWDOWN = 200


def build_generator(
    net: WaveNet, dist: Distribution, kind: str = "auto", precision: str = "float32"
):
    """``auto``: the compiled CPU generator (``fast``) when it can be built, else
    the reference; a network on a GPU is copied to the CPU for them (see below).
    ``gpu``: the CUDA-graph generator, by name only. The others run on the CPU.
    ``precision``: the compiled generator's weights (float32, float16, int8 or
    auto; see CompiledGenerator); the other generators compute in float32
    whatever it says.

    The GPU generator has only run on the CPU (its eager mode, in the tests),
    never on a GPU: until it has, with figures in the README, ``auto`` does not
    pick it, and asking for it by name warns.
    """
    if kind not in GENERATORS:
        raise ValueError(f"generator must be one of {GENERATORS}, got {kind!r}")
    if kind == "gpu":
        from espnet_wavenet.generation.gpu import GpuGenerator, gpu_available

        if not gpu_available(net):
            raise RuntimeError("the gpu generator needs the network on a CUDA device")
        logging.warning("the GPU generator is unverified: it has never run on a GPU in this "
                        "project's tests; generator='auto' decodes on the CPU")
        return GpuGenerator(net, dist)
    if _on_gpu(net):
        logging.info("network on %s: decoding with the CPU generators on a CPU copy of the "
                     "weights (the GPU generator is unverified; generator='gpu' to use it)",
                     next(net.parameters()).device)
        net = copy.deepcopy(net).cpu()
    if kind == "reference":
        return ReferenceGenerator(net, dist)
    from espnet_wavenet.generation.cpu import loader
    from espnet_wavenet.generation.cpu.generator import CompiledGenerator, compiled_available

    if compiled_available(net):
        return CompiledGenerator(net, dist, precision=precision)
    why = loader.load_error() or "the network is not a CPU WaveNet it can run"
    if kind == "fast":
        raise RuntimeError(f"the fast generator cannot run here: {why}")
    logging.warning(
        "fast generator unavailable (%s): falling back to the reference generator, "
        "about %dx slower (README: real-time factor ~60 instead of ~0.3 for the default "
        "config). Reinstall the package to build the kernels, or ask for "
        "generator='reference' to silence this.",
        why,
        REFERENCE_SLOWDOWN,
    )
    return ReferenceGenerator(net, dist)


def _on_gpu(net: WaveNet) -> bool:
    try:
        return next(net.parameters()).device.type != "cpu"
    except StopIteration:
        return False
