"""How a sample is drawn from the predicted distribution: settings of generation, not training."""

import math
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Sampling:
    """Sampling controls, the same in every generator (reference, compiled, GPU).

    Args:
        temperature: mu-law softmax: the logits are divided by it; 0 takes the
            argmax. The continuous distributions ignore it.
        log_scale_min: MoL / Gaussian: floor of the predicted log-scales (None:
            the distribution's own).
        tail: mu-law softmax: this probability is taken from every class and
            the rest renormalized, so the classes below it are never drawn
            (LPCNet removes 0.002 of 256); 0 keeps the distribution as it is.
    """

    temperature: float = 1.0
    log_scale_min: Optional[float] = None
    tail: float = 0.0

    def __post_init__(self):
        if not self.temperature >= 0.0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0.0 <= self.tail < 1.0:
            raise ValueError(f"tail must be in [0, 1), got {self.tail}")

    def floor(self, dist) -> float:
        """The log-scale floor for ``dist`` (-inf where it has none)."""
        floor = self.log_scale_min
        if floor is None:
            floor = getattr(dist, "log_scale_min", None)
        return float(floor) if floor is not None else -math.inf

    def check_tail(self, n_classes: int) -> None:
        """Every class below the tail: nothing left to draw. The largest
        probability is at least 1 / n, so a tail under that always leaves one."""
        if self.tail >= 1.0 / n_classes:
            raise ValueError(f"tail {self.tail} must be below 1 / {n_classes} classes")


DEFAULT_SAMPLING = Sampling()
