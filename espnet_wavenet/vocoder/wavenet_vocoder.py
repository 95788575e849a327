"""WaveNet vocoder: feature configuration + normalization statistics + network."""

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import yaml

from espnet_wavenet.data.shaping import build_shaping
from espnet_wavenet.distributions import Sampling
from espnet_wavenet.features import check_feats_conf, feats_problem
from espnet_wavenet.generation import build_generator
from espnet_wavenet.generation.interface import FrameGenerator
from espnet_wavenet.layers.upsample import pad_context
from espnet_wavenet.models.builder import build_wavenet
from espnet_wavenet.utils.atomic import atomic_open, atomic_write_bytes

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "model.pth"
STATS_NAME = "feats_stats.npz"
REQUIRED_FIELDS = ("feats_conf", "wavenet_conf", "distribution")


def load_stats(path: Union[str, Path]) -> Dict[str, np.ndarray]:
    """ESPnet ``feats_stats.npz`` (count, sum, sum_square) -> mean and std.

    Same definition as ``espnet2.layers.global_mvn.GlobalMVN``.
    """
    try:
        stats = np.load(path)
        count, s1, s2 = stats["count"], stats["sum"], stats["sum_square"]
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{path}: not a readable ESPnet feats_stats.npz ({e})") from e
    mean = s1 / count
    var = s2 / count - mean * mean
    std = np.sqrt(np.maximum(var, 1.0e-20))
    return {"mean": mean.astype(np.float32), "std": std.astype(np.float32)}


class WaveNetVocoder(torch.nn.Module):
    """Call ``vocoder(feats)`` with denormalized log-mel ``(T_feats, n_mels)``;
    get a 1-D waveform of ``T_feats * hop`` samples in [-1, 1] at ``vocoder.fs``.
    """

    def __init__(
        self,
        feats_conf: Dict[str, Any],
        wavenet_conf: Dict[str, Any],
        distribution: str = "mulaw",
        distribution_conf: Optional[Dict[str, Any]] = None,
        mean: Optional[np.ndarray] = None,
        std: Optional[np.ndarray] = None,
        generator: str = "auto",
        precision: str = "float32",
        temperature: float = 1.0,
        log_scale_min: Optional[float] = None,
        tail: float = 0.0,
        seed: int = 0,
        noise_shaping_conf: Optional[Dict[str, Any]] = None,
    ):
        super().__init__()
        self.feats_conf = check_feats_conf(feats_conf)
        self.wavenet_conf = dict(wavenet_conf)
        self.distribution_name = distribution
        self.distribution_conf = dict(distribution_conf or {})
        self.net, self.dist = build_wavenet(
            self.feats_conf, self.wavenet_conf, distribution, self.distribution_conf
        )
        self.fs = self.feats_conf["fs"]
        self.shaping = build_shaping(noise_shaping_conf, self.feats_conf)
        self.hop = self.feats_conf["hop_length"]
        self.n_mels = self.feats_conf["n_mels"]
        self.normalized = mean is not None
        if mean is None:
            mean, std = np.zeros(self.n_mels), np.ones(self.n_mels)
        for name, v in (("mean", mean), ("std", std)):
            v = np.asarray(v, dtype=np.float32).reshape(-1)
            if v.shape[0] != self.n_mels:
                raise ValueError(f"{name} has {v.shape[0]} dims, n_mels is {self.n_mels}")
            self.register_buffer(name, torch.from_numpy(v.copy()))
        self.generator_kind = generator
        self.precision = precision
        self.sampling = Sampling(temperature, log_scale_min, tail)
        self.seed = seed
        self._generator = None
        # what training cost (epochs, samples, train_hours), when packed from a checkpoint
        self.provenance: Optional[Dict[str, Any]] = None

    # ---------------------------------------------------------------- features
    def check_feats(self, feats: torch.Tensor, name: str = "feats") -> torch.Tensor:
        problem = feats_problem(feats, self.n_mels)
        if problem is not None:
            raise ValueError(f"{name}: {problem}")
        if not isinstance(feats, torch.Tensor):
            feats = torch.as_tensor(np.asarray(feats))
        return feats.float()

    def normalize(self, feats: torch.Tensor) -> torch.Tensor:
        """Denormalized (T, n_mels) -> what the network was trained on."""
        return (feats - self.mean.to(feats.device)) / self.std.to(feats.device)

    def logmel(self, feats: torch.Tensor, normalized: bool = False) -> np.ndarray:
        """(T, n_mels) as given -> denormalized log-mel, float64 (for LPC shaping)."""
        feats = feats.detach().cpu().double()
        if normalized:
            feats = feats * self.std.cpu().double() + self.mean.cpu().double()
        return feats.numpy()

    def frames(self, feats: torch.Tensor, normalized: bool = False) -> torch.Tensor:
        """(T, n_mels) -> normalized frames with context, (1, n_mels, T + 2 ctx)."""
        feats = feats.to(self.mean.device)
        if not normalized:
            feats = self.normalize(feats)
        return pad_context(feats.t().unsqueeze(0), self.net.aux_context_window)

    @torch.no_grad()
    def conditioning(self, feats: torch.Tensor, normalized: bool = False) -> torch.Tensor:
        """(T, n_mels) -> upsampled conditioning (1, n_mels, T * hop)."""
        return self.net.upsample_conditioning(self.frames(feats, normalized))

    # -------------------------------------------------------------- generation
    @property
    def generator(self):
        if self._generator is None:
            self._generator = build_generator(
                self.net, self.dist, self.generator_kind, self.precision
            )
        return self._generator

    def set_generator(self, kind: str, precision: Optional[str] = None) -> None:
        """Choose the generator (see build_generator) and the fast one's precision."""
        self.generator_kind = kind
        if precision is not None:
            self.precision = precision
        self._generator = None

    @torch.no_grad()
    def generate(
        self,
        feats_list: Sequence[torch.Tensor],
        sids: Optional[Sequence[int]] = None,
        normalized: bool = False,
        seed: Optional[int] = None,
        names: Optional[Sequence[str]] = None,
        shaped: bool = False,
    ) -> List[torch.Tensor]:
        """Generate a batch of utterances of any lengths in one call.

        Utterance i draws its random numbers from a generator seeded with
        ``seed + i``, so a batch equals the same utterances one by one with those
        seeds. Each output is exactly ``T_feats * hop`` samples, de-emphasized
        when the model was trained with noise shaping (``shaped``: the samples
        the network drew, before that).
        """
        wavs = self._generate_shaped(feats_list, sids, normalized, seed, names)
        if shaped:
            return wavs
        return [self.unshape(w, f, normalized) for w, f in zip(wavs, feats_list)]

    def unshape(self, wav: torch.Tensor, feats: torch.Tensor,
                normalized: bool = False) -> torch.Tensor:
        """The network's (noise-shaped) output for ``feats`` -> the waveform."""
        if not self.shaping.enabled:
            return wav
        logmel = self.logmel(self.check_feats(feats), normalized)
        return torch.from_numpy(self.shaping.synthesis(wav.cpu().numpy(), None, logmel)[0])

    def _generate_shaped(self, feats_list, sids, normalized, seed, names) -> List[torch.Tensor]:
        """:meth:`generate` before de-emphasis: the samples the network drew."""
        seed = self.seed if seed is None else seed
        names = names or [f"utterance {i}" for i in range(len(feats_list))]
        feats_list = [self.check_feats(f, n) for f, n in zip(feats_list, names)]
        lengths = [f.shape[0] * self.hop for f in feats_list]
        longest = max(lengths)
        noise = torch.cat(
            [
                self.dist.noise(1, longest, torch.Generator().manual_seed(seed + i))
                for i in range(len(feats_list))
            ]
        )
        g = torch.as_tensor(list(sids), dtype=torch.long) if sids is not None else None
        gen = self.generator
        if isinstance(gen, FrameGenerator) and self.net.upsample is not None:
            # Frame-rate conditioning: the generator upsamples (after projecting).
            frames = [self.frames(f, normalized)[0] for f in feats_list]
            wav, _ = gen.generate_from_frames(
                frames, longest, noise, g, self.sampling
            )
            return [wav[i, : lengths[i]].cpu() for i in range(len(feats_list))]
        # Upsample each utterance alone: padding never reaches the conditioning.
        # on the generator's device (a network on a GPU is decoded by CPU generators)
        device = next(gen.net.parameters()).device
        c_up = torch.zeros(len(feats_list), self.n_mels, longest, device=device)
        for i, f in enumerate(feats_list):
            c_up[i, :, : lengths[i]] = self.conditioning(f, normalized)[0].to(device)
        wav, _ = gen.generate(c_up, longest, noise, g, self.sampling)
        return [wav[i, : lengths[i]].cpu() for i in range(len(feats_list))]

    @torch.no_grad()
    def forward(self, feats: torch.Tensor, sid: Optional[int] = None) -> torch.Tensor:
        """ESPnet's vocoder call: denormalized (T_feats, n_mels) -> (T_feats * hop,)."""
        sids = None if sid is None else [int(sid)]
        return self.generate([feats], sids=sids)[0]

    # ------------------------------------------------------------- packing
    def config(self) -> Dict[str, Any]:
        return dict(
            feats_conf=dict(self.feats_conf),
            wavenet_conf=dict(self.wavenet_conf),
            distribution=self.distribution_name,
            distribution_conf=dict(self.distribution_conf),
            noise_shaping_conf=self.shaping.conf() if self.shaping.enabled else {},
            normalize="global_mvn" if self.normalized else None,
            generation=dict(
                precision=self.precision,
                temperature=self.sampling.temperature,
                log_scale_min=self.sampling.log_scale_min,
                tail=self.sampling.tail,
                seed=self.seed,
            ),
            **({"provenance": dict(self.provenance)} if self.provenance else {}),
        )

    def save_pretrained(
        self, out_dir: Union[str, Path], stats_file: Optional[Union[str, Path]] = None
    ) -> Path:
        """Write config.yaml, model.pth (network weights) and feats_stats.npz."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / CONFIG_NAME, yaml.safe_dump(self.config()).encode())
        with atomic_open(out / WEIGHTS_NAME, "wb") as f:
            torch.save(self.net.state_dict(), f)
        if self.normalized:
            if stats_file is not None:
                data = Path(stats_file).read_bytes()
                atomic_write_bytes(out / STATS_NAME, data)
            else:
                # count 1: mean = sum, var = sum_square - mean^2 = std^2.
                mean = self.mean.cpu().numpy().astype(np.float64)
                std = self.std.cpu().numpy().astype(np.float64)
                with atomic_open(out / STATS_NAME, "wb") as f:
                    np.savez(f, count=np.array(1), sum=mean, sum_square=std**2 + mean**2)
        return out

    @classmethod
    def from_pretrained(
        cls, model_dir: Union[str, Path], device: Union[str, torch.device] = "cpu", **kw
    ) -> "WaveNetVocoder":
        """Load a packed model directory (config.yaml, model.pth, feats_stats.npz)."""
        d = Path(model_dir)
        conf_path = d / CONFIG_NAME
        if not conf_path.is_file():
            raise FileNotFoundError(f"{conf_path}: no packed WaveNet config")
        with open(conf_path, encoding="utf-8") as f:
            conf = yaml.safe_load(f)
        if not isinstance(conf, dict):
            raise ValueError(f"{conf_path}: not a mapping")
        missing = [k for k in REQUIRED_FIELDS if k not in conf]
        if missing:
            raise ValueError(f"{conf_path}: missing fields {missing}")
        stats = {"mean": None, "std": None}
        if conf.get("normalize"):
            stats = load_stats(d / STATS_NAME)
        gen = dict(conf.get("generation") or {})
        gen.update(kw)
        vocoder = cls(
            conf["feats_conf"],
            conf["wavenet_conf"],
            conf["distribution"],
            conf.get("distribution_conf"),
            stats["mean"],
            stats["std"],
            noise_shaping_conf=conf.get("noise_shaping_conf"),
            **gen,
        )
        state = load_weights(d / WEIGHTS_NAME)
        try:
            vocoder.net.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"{d / WEIGHTS_NAME}: weights do not fit {conf_path}: {e}") from e
        vocoder.provenance = conf.get("provenance")
        logging.info("loaded WaveNet vocoder from %s (fs=%d)", d, vocoder.fs)
        return vocoder.to(device).eval()


def load_weights(path: Union[str, Path]) -> Dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` with an error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{path}: cannot load weights safely ({type(e).__name__}: {e})") from e


