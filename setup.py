"""espnet_wavenet: a mel-conditioned WaveNet vocoder as an ESPnet plugin."""

import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

# The kernel's build rules live in the package; load that module alone (it
# imports only the standard library; the package itself needs torch).
_spec = importlib.util.spec_from_file_location(
    "_wn_kernel_build", Path(__file__).parent / "espnet_wavenet" / "generation" / "cpu" / "build.py"
)
kernel = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kernel)
KERNELS = {f"espnet_wavenet.generation.cpu.kernels.wavenet_{lv}": lv for lv in kernel.install_levels()}


class BuildKernels(build_ext):
    """Compile the generation kernel (a plain C ABI library loaded with ctypes,
    not a Python module) once per instruction-set level; the package picks the
    best one the CPU supports when it loads (generation/cpu/loader.py)."""

    def get_ext_filename(self, fullname: str) -> str:
        return fullname.replace(".", "/") + ".so"

    def build_extensions(self) -> None:
        outs = [Path(self.get_ext_fullpath(ext.name)) for ext in self.extensions]
        flags = [kernel.level_flags(KERNELS[ext.name]) for ext in self.extensions]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(kernel.compile_kernel, flags, outs))


setup(
    name="espnet_wavenet",
    version="0.1.0",
    description="Mel-conditioned WaveNet vocoder (van den Oord et al. 2016) for ESPnet",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.12.99",
    packages=find_packages(include=["espnet_wavenet", "espnet_wavenet.*"]),
    package_data={"espnet_wavenet": ["csrc/*.cpp", "csrc/*.h"]},
    ext_modules=[
        Extension(name, [str(kernel.SOURCE.relative_to(Path(__file__).resolve().parent))])
        for name in KERNELS
    ],
    cmdclass={"build_ext": BuildKernels},
    # Ranges for installing into an environment of one's own; `make venv`
    # installs the exact, tested versions of requirements/*.lock instead.
    install_requires=[
        # The 202511 line is the last that runs on Python 3.11 and keeps kaldiio.
        "espnet==202511",
        # torchaudio declares no torch requirement and its compiled library
        # loads only beside the torch it was built for: keep the tested pair
        # (requirements/*.lock). ESPnet's AbsTask imports torchaudio too.
        "torch>=2.1,<2.13",
        "torchaudio>=2.1,<2.12,!=2.11.1",
        "kaldiio>=2.18",
        "numpy>=2.0",  # train/checkpoint.py reads np._core
        "pyworld>=0.3.4",
        "pyyaml>=5.1",
        "scipy>=1.10",
        "soundfile>=0.12",
        "tqdm",
        # ESPnet's Trainer imports these at run time (ESPnet's own [train] extra).
        "tensorboard>=2.0",
        "matplotlib>=3.5",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-xdist>=3.5"],  # make test: a worker per core
        # speechmos ships the DNSMOS ONNX models in its wheel and declares no
        # requirements; it imports onnxruntime, librosa and requests.
        "eval": ["pesq>=0.0.4", "pystoi>=0.3", "pysptk>=0.2", "speechmos>=0.0.1.1",
                 "onnxruntime>=1.17", "librosa>=0.10", "requests"],
    },
    entry_points={
        # Any vocoder package can register itself under this group; see
        # espnet_wavenet.integration.registry.
        "espnet.vocoders": [
            "wavenet = espnet_wavenet.vocoder.wavenet_vocoder:WaveNetVocoder",
        ],
        "console_scripts": [
            "espnet-wavenet-train = espnet_wavenet.bin.train:main",
            "espnet-wavenet-decode = espnet_wavenet.bin.decode:main",
            "espnet-wavenet-pack = espnet_wavenet.bin.pack:main",
            "espnet-wavenet-extract-feats = espnet_wavenet.bin.extract_feats:main",
            "espnet-wavenet-evaluate = espnet_wavenet.bin.evaluate:main",
            "espnet-wavenet-benchmark = espnet_wavenet.bin.benchmark:main",
            "espnet-wavenet-tts-inference = espnet_wavenet.bin.tts_inference:main",
            "espnet-wavenet-align-gta = espnet_wavenet.bin.align_gta:main",
        ],
    },
)
