"""Autoregressive generation: the reference oracle and faster generators.

Every generator has ``generate(c_up, length, noise, g=None, temperature=1.0,
log_scale_min=None, return_logits=False)`` returning ``(samples, logits)``.
"""

import logging

from espnet_wavenet.distributions import Distribution
from espnet_wavenet.generation.extension import PRECISIONS  # noqa: F401 - of the fast generator
from espnet_wavenet.generation.reference import ReferenceGenerator
from espnet_wavenet.models.wavenet import WaveNet

GENERATORS = ("auto", "fast", "gpu", "reference")
# Fast (float32) over reference speed, default config, one stream (README: 186x).
REFERENCE_SLOWDOWN = 200


def build_generator(
    net: WaveNet, dist: Distribution, kind: str = "auto", precision: str = "float32"
):
    """``auto``: CUDA-graph generator for a net on a GPU, else the fast compiled
    generator when it can be built, else the reference.  ``precision``: the
    fast generator's weights (float32, float16 or int8; see FastGenerator);
    the other generators compute in float32 whatever it says."""
    if kind not in GENERATORS:
        raise ValueError(f"generator must be one of {GENERATORS}, got {kind!r}")
    if kind == "reference":
        return ReferenceGenerator(net, dist)
    if kind in ("auto", "gpu"):
        from espnet_wavenet.generation.gpu import GpuGenerator, gpu_available

        if gpu_available(net):
            return GpuGenerator(net, dist)
        if kind == "gpu":
            raise RuntimeError("the gpu generator needs the network on a CUDA device")
    try:
        from espnet_wavenet.generation.fast import FastGenerator, fast_available
    except ImportError:  # the fast generator is not part of this build
        fast_available = None
    if fast_available is not None and fast_available(net):
        return FastGenerator(net, dist, precision=precision)
    from espnet_wavenet.generation import extension

    why = extension.load_error() or "the network is not a CPU WaveNet it can run"
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
