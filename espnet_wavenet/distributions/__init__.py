"""Output distributions: each has its loss (NLL) and its sampling."""

from typing import Any, Dict

from espnet_wavenet.distributions.base import Distribution
from espnet_wavenet.distributions.gaussian import Gaussian
from espnet_wavenet.distributions.mixture_logistics import MixtureOfLogistics
from espnet_wavenet.distributions.mulaw import MuLawSoftmax
from espnet_wavenet.distributions.sampling import DEFAULT_SAMPLING, Sampling

DISTRIBUTIONS = {
    "mulaw": MuLawSoftmax,
    "mol": MixtureOfLogistics,
    "gaussian": Gaussian,
}


def build_distribution(name: str, conf: Dict[str, Any] = None) -> Distribution:
    """Build a distribution by name ("mulaw", "mol" or "gaussian")."""
    if name not in DISTRIBUTIONS:
        raise ValueError(
            f"unknown output distribution {name!r}; choose from {sorted(DISTRIBUTIONS)}"
        )
    return DISTRIBUTIONS[name](**(conf or {}))


__all__ = [
    "Distribution",
    "MuLawSoftmax",
    "MixtureOfLogistics",
    "Gaussian",
    "build_distribution",
    "Sampling",
    "DEFAULT_SAMPLING",
]
