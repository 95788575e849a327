"""What the vocoder, streaming and the benchmark may ask of a generator.

Every generator (reference, fast, GPU) is a :class:`Generator`. One that can
take frame-rate conditioning (and upsample it itself, after projecting) is a
:class:`FrameGenerator`; one that also keeps its state between calls, so that
audio can be made chunk by chunk, is an :class:`IncrementalGenerator` (today the
compiled CPU generator only).
"""

from typing import List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import torch

from espnet_wavenet.distributions.sampling import DEFAULT_SAMPLING, Sampling
from espnet_wavenet.models.wavenet import WaveNet


@runtime_checkable
class Generator(Protocol):
    net: WaveNet
    #: "reference", "fast" or "gpu"; and the weights' precision
    kind: str
    precision: str

    def generate(self, c_up: Optional[torch.Tensor], length: int, noise: torch.Tensor,
                 g: Optional[torch.Tensor] = None, sampling: Sampling = DEFAULT_SAMPLING,
                 return_logits: bool = False) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Upsampled conditioning (B, aux, >= length) -> (samples (B, length), logits)."""


@runtime_checkable
class FrameGenerator(Generator, Protocol):
    def generate_from_frames(
        self, frames: Sequence[torch.Tensor], length: int, noise: torch.Tensor,
        g: Optional[torch.Tensor] = None, sampling: Sampling = DEFAULT_SAMPLING,
        return_logits: bool = False,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Context-padded frames per utterance, (aux, T_i + 2 w) -> as :meth:`generate`."""


@runtime_checkable
class IncrementalGenerator(FrameGenerator, Protocol):
    def new_state(self, batch: int):
        """A fresh generation state for ``batch`` streams."""

    def context_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Context-padded frames (aux, T + 2 w) -> context-conv output (aux, T)."""

    def run_frames(self, state, frames: List[torch.Tensor], frame_offset: int, n_steps: int,
                   noise: torch.Tensor, out: torch.Tensor, g: Optional[torch.Tensor] = None,
                   sampling: Sampling = DEFAULT_SAMPLING, logits: Optional[torch.Tensor] = None,
                   n_frames: Optional[List[int]] = None) -> None:
        """Advance ``state`` by ``n_steps`` samples into ``out`` (B, n_steps) from
        context-conv output frames whose first column is frame ``frame_offset``."""
