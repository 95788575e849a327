"""Torch's intra-op threads around latency-critical code."""

from contextlib import contextmanager

import torch


@contextmanager
def one_torch_thread():
    """This thread's torch ops on one thread for the block: the OpenMP and MKL
    workers an op wakes spin on for milliseconds after it, on the cores that
    the generation kernel's two threads then need."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
