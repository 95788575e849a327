"""espnet_wavenet: a mel-conditioned WaveNet vocoder as an ESPnet plugin."""

from setuptools import find_packages, setup

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
    install_requires=[
        # The 202511 line is the last that runs on Python 3.11 and keeps kaldiio.
        "espnet==202511",
        "torch>=2.1",
        "torchaudio>=2.1",
        "kaldiio>=2.18",
        "numpy>=1.24",
        "pyyaml>=5.1",
        "soundfile>=0.12",
        "tqdm",
        # ESPnet's Trainer imports these at run time (ESPnet's own [train] extra).
        "tensorboard>=2.0",
        "matplotlib>=3.5",
    ],
    extras_require={
        "test": ["pytest>=7"],
        "eval": ["pesq>=0.0.4", "pystoi>=0.3", "pysptk>=0.2"],
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
