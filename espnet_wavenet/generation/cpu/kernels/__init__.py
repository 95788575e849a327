"""The compiled generation kernels, ``wavenet_<level>.so``, one per instruction-set
level of :data:`espnet_wavenet.generation.cpu.build.ISA_LEVELS`, built when the
package is installed (``setup.py``); loaded by ``generation/cpu/build.py``."""
