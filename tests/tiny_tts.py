"""Tiny random ESPnet TTS models (Tacotron2, FastSpeech2) and a tiny packed WaveNet.

Built with ESPnet's own TTSTask, saved as ``config.yaml`` + ``model.pth`` the way
ESPnet's trainer writes them, so ``Text2Speech`` loads them like real models.
"""

import math
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import soundfile as sf
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
MINI_DB = REPO / "egs" / "mini_kathleen" / "db"

# The tiny config's features (conf/tiny.yaml): ESPnet tts1's LJSpeech settings.
FEATS_CONF = dict(
    fs=22050, n_fft=1024, win_length=None, hop_length=256, window="hann",
    n_mels=80, fmin=80, fmax=7600, htk=False, log_base=10.0,
)
TINY_WAVENET = dict(
    layers=2, stacks=1, kernel_size=2, residual_channels=4, gate_channels=8,
    skip_channels=4, aux_context_window=0, upsample_scales=[4, 4, 4, 4],
)
TOKENS = ["<blank>", "<unk>", " ", *"abcdefghijklmnopqrstuvwxyz'.,?!", "<sos/eos>"]

TTS_CONF = {
    "tacotron2": dict(
        embed_dim=8, elayers=1, eunits=8, econv_layers=1, econv_chans=8,
        econv_filts=3, atype="location", adim=8, aconv_chans=4, aconv_filts=3,
        dlayers=1, dunits=8, prenet_layers=1, prenet_units=8, postnet_layers=1,
        postnet_chans=8, postnet_filts=3, reduction_factor=2, dropout_rate=0.0,
        zoneout_rate=0.0,
    ),
    "fastspeech2": dict(
        adim=8, aheads=2, elayers=1, eunits=8, dlayers=1, dunits=8,
        postnet_layers=0, duration_predictor_layers=1, duration_predictor_chans=8,
        energy_predictor_layers=1, energy_predictor_chans=8,
        pitch_predictor_layers=1, pitch_predictor_chans=8,
        energy_embed_kernel_size=1, pitch_embed_kernel_size=1, reduction_factor=1,
    ),
}


def espnet_feats_conf(feats_conf: Dict) -> Dict:
    """LogMelFbank arguments (ESPnet's feats_extract_conf) from a vocoder feats_conf."""
    return dict(feats_conf)


def write_stats(path: Path, feats: np.ndarray) -> Path:
    """ESPnet feats_stats.npz (count, sum, sum_square) of (T, D) features."""
    path.parent.mkdir(parents=True, exist_ok=True)
    feats = feats.astype(np.float64)
    np.savez(path, count=np.array(len(feats)), sum=feats.sum(0),
             sum_square=(feats**2).sum(0))
    return path


def natural_feats(ids: List[str], feats_conf: Dict) -> np.ndarray:
    from espnet_wavenet.data.audio import read_audio
    from espnet_wavenet.features import extract_feats

    out = []
    for u in ids:
        wav, _ = read_audio(str(MINI_DB / "wav" / f"{u}.flac"), u)
        out.append(extract_feats(torch.from_numpy(wav), feats_conf).numpy())
    return np.concatenate(out)


def build_tts(
    out_dir: Path,
    tts: str,
    stats_file: Path,
    feats_conf: Optional[Dict] = None,
    seed: int = 0,
) -> Dict[str, Path]:
    """A random ESPnet TTS model with fbank features; returns config and model paths."""
    from espnet2.tasks.tts import TTSTask
    from espnet2.utils.yaml_no_alias_safe_dump import yaml_no_alias_safe_dump

    out_dir.mkdir(parents=True, exist_ok=True)
    token_list = out_dir / "tokens.txt"
    token_list.write_text("".join(t + "\n" for t in TOKENS))
    conf = dict(
        token_type="char",
        token_list=str(token_list),
        cleaner=None,
        g2p=None,
        feats_extract="fbank",
        feats_extract_conf=espnet_feats_conf(feats_conf or FEATS_CONF),
        normalize="global_mvn",
        normalize_conf=dict(stats_file=str(stats_file)),
        tts=tts,
        tts_conf=TTS_CONF[tts],
        pitch_extract=None,
        energy_extract=None,
        pitch_normalize=None,
        energy_normalize=None,
    )
    conf_in = out_dir / "tts_conf.yaml"
    conf_in.write_text(yaml.safe_dump(conf))
    args = TTSTask.get_parser().parse_args(
        ["--config", str(conf_in), "--output_dir", str(out_dir)]
    )
    torch.manual_seed(seed)
    model = TTSTask.build_model(args)
    with torch.no_grad():
        if tts == "fastspeech2":
            # Random duration predictors give 0 frames; make every token 2 frames.
            lin = model.tts.duration_predictor.linear
            lin.weight.zero_()
            lin.bias.fill_(math.log(3.0))
        if tts == "tacotron2":
            # Stop as soon as allowed (minlenratio sets the length).
            lin = model.tts.dec.prob_out
            lin.weight.zero_()
            lin.bias.fill_(10.0)
    config = out_dir / "config.yaml"
    with open(config, "w", encoding="utf-8") as f:
        yaml_no_alias_safe_dump(vars(args), f, indent=4, sort_keys=False)
    model_file = out_dir / "model.pth"
    torch.save(model.state_dict(), model_file)
    return dict(config=config, model_file=model_file)


def build_vocoder(out_dir: Path, stats_file: Optional[Path], feats_conf: Optional[Dict] = None,
                  seed: int = 0) -> Path:
    """A random tiny WaveNet vocoder packed with ``save_pretrained``."""
    from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder, load_stats

    torch.manual_seed(seed)
    stats = load_stats(stats_file) if stats_file else {"mean": None, "std": None}
    vocoder = WaveNetVocoder(
        feats_conf or FEATS_CONF, TINY_WAVENET, "mulaw",
        dict(quantization_channels=256), stats["mean"], stats["std"],
    )
    # The default generator ("auto"): the compiled one where it builds, as users get.
    return vocoder.save_pretrained(out_dir, stats_file=stats_file)


def write_data_dir(out_dir: Path, ids: List[str], texts: Optional[Dict[str, str]] = None,
                   max_seconds: Optional[float] = None) -> Path:
    """Kaldi data dir (wav.scp, text) for mini_kathleen utterances.

    ``max_seconds`` writes shortened copies of the audio (fast tests).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    all_text = dict(
        line.split(maxsplit=1) for line in (MINI_DB / "text").read_text().splitlines() if line
    )
    wav_lines, text_lines = [], []
    for u in ids:
        path = MINI_DB / "wav" / f"{u}.flac"
        if max_seconds is not None:
            wav, fs = sf.read(str(path), dtype="float32")
            path = out_dir / "wav" / f"{u}.wav"
            path.parent.mkdir(exist_ok=True)
            sf.write(str(path), wav[: int(max_seconds * fs)], fs, subtype="PCM_16")
        wav_lines.append(f"{u} {path}\n")
        text = (texts or {}).get(u, all_text[u])
        text_lines.append(f"{u} {text.lower()}\n")
    (out_dir / "wav.scp").write_text("".join(wav_lines))
    (out_dir / "text").write_text("".join(text_lines))
    return out_dir
