"""Evaluate a decoding directory against natural speech and write the report.

For every utterance in both wav.scp files: the generated wav, and (optionally)
a Griffin-Lim rendering of the same features, are scored against the natural
recording (:mod:`espnet_wavenet.evaluation.evaluator`); the model's held-out NLL
of the natural audio is added (:mod:`espnet_wavenet.evaluation.nll`). Writes
``metrics.csv``, ``summary.json``, ``summary.md`` and ``plots/*.png``.
"""

import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
from tqdm import tqdm

from espnet_wavenet.data.audio import read_audio, resample
from espnet_wavenet.data.scp import load_feats
from espnet_wavenet.evaluation.evaluator import (
    METRICS,
    SIGNAL_METRICS,
    SignalEvaluator,
    fit_length,
)
from espnet_wavenet.evaluation.gl_baseline import GriffinLimBaseline
from espnet_wavenet.evaluation.nll import nll_bits_per_sample
from espnet_wavenet.evaluation.plots import (
    plot_metric_distributions,
    plot_training_curves,
    plot_utterance,
)
from espnet_wavenet.evaluation.report import (
    read_decode_stats,
    summarize,
    write_csv,
    write_json,
    write_markdown,
)
from espnet_wavenet.evaluation.training_log import parse_train_log
from espnet_wavenet.evaluation.world import FRAME_PERIOD_MS, MCEP_ORDER, mcep_alpha
from espnet_wavenet.recipe.datadir import read_dict as read_scp

PathLike = Union[str, Path]


def load_wav(path: str, fs: int, uttid: str) -> np.ndarray:
    wav, rate = read_audio(path, uttid)
    if rate != fs:
        logging.debug("%s: resampling %s from %d to %d Hz", uttid, path, rate, fs)
        wav = resample(wav, rate, fs)
    return wav


def evaluate_corpus(
    ref_wav_scp: PathLike,
    gen_wav_scp: PathLike,
    out_dir: PathLike,
    model_dir: Optional[PathLike] = None,
    feats_conf: Optional[Dict[str, Any]] = None,
    feats_scp: Optional[PathLike] = None,
    exp_dir: Optional[PathLike] = None,
    decode_dir: Optional[PathLike] = None,
    griffin_lim: bool = True,
    griffin_lim_iters: int = 32,
    nll: bool = True,
    max_plots: int = 3,
    f0_method: str = "harvest",
    gen_name: str = "wavenet",
    utt2sid: Optional[PathLike] = None,
    device: str = "cpu",
    nll_chunk: int = 16384,
) -> Dict[str, Any]:
    """Score every common utterance, write the report files, return the summary."""
    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    vocoder = None
    if model_dir is not None:
        from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

        vocoder = WaveNetVocoder.from_pretrained(model_dir, device=device)
        feats_conf = vocoder.feats_conf if feats_conf is None else feats_conf
    elif nll:
        logging.warning("no --model_dir: the NLL is skipped")
        nll = False
    if feats_conf is None:
        raise ValueError("a feature configuration is needed (give model_dir)")
    evaluator = SignalEvaluator(feats_conf, f0_method=f0_method)
    fs, hop = evaluator.fs, evaluator.logmel.conf["hop_length"]
    gl = GriffinLimBaseline(feats_conf, n_iter=griffin_lim_iters) if griffin_lim else None

    refs, gens = read_scp(ref_wav_scp), read_scp(gen_wav_scp)
    feats_index = read_scp(feats_scp) if feats_scp is not None else {}
    sids = {k: int(v) for k, v in read_scp(utt2sid).items()} if utt2sid else {}
    utts = [u for u in gens if u in refs]
    missing = [u for u in gens if u not in refs]
    if missing:
        logging.warning("%d generated utterances have no natural recording, e.g. %s",
                        len(missing), missing[:3])
    if len(utts) < len(refs):
        logging.warning("%d of %d natural utterances were not generated",
                        len(refs) - len(utts), len(refs))
    if not utts:
        raise ValueError(f"no utterance is in both {ref_wav_scp} and {gen_wav_scp}")
    if vocoder is not None and vocoder.net.n_speakers > 0 and nll and not sids:
        logging.warning("speaker-conditioned model and no --utt2sid: the NLL is skipped")
        nll = False

    rows: List[Dict[str, Any]] = []
    figures: List[str] = []
    start = time.perf_counter()
    for i, utt in enumerate(tqdm(utts, desc="evaluate", unit="utt")):
        ref_wav = load_wav(refs[utt], fs, utt)
        n = len(ref_wav)
        duration = n / fs
        need_feats = gl is not None or nll
        feats = None
        if need_feats:
            if utt in feats_index:
                feats = load_feats(feats_index[utt], utt)
            else:
                if feats_scp is not None:
                    logging.warning("%s: not in %s; features recomputed", utt, feats_scp)
                from espnet_wavenet.features import extract_feats

                feats = extract_feats(torch.from_numpy(ref_wav), feats_conf).numpy()
        ref = evaluator.reference(ref_wav)
        signals = OrderedDict(natural=ref_wav)
        signals[gen_name] = fit_length(load_wav(gens[utt], fs, utt), n)
        if gl is not None:
            signals["griffin_lim"] = fit_length(gl(feats), n)
        logmels = OrderedDict((k, evaluator.logmel.logmel_db(v)) for k, v in signals.items())
        for name in list(signals)[1:]:
            row: Dict[str, Any] = dict(utt=utt, system=name, duration_s=round(duration, 4))
            row.update(evaluator.score(ref, signals[name], logmels[name]))
            rows.append(row)
            if name == gen_name:
                gen_row = row
        if nll and vocoder is not None:
            gen_row["nll_bits"] = nll_bits_per_sample(
                vocoder, ref_wav, feats, sids.get(utt), chunk=nll_chunk, uttid=utt
            )
        if i < max_plots:
            figures.append(
                str(plot_utterance(out / "plots" / f"{utt}.png", utt, fs, hop, signals, logmels))
            )
    logging.info("scored %d utterances in %.1f s", len(utts), time.perf_counter() - start)

    dist_fig = plot_metric_distributions(
        out / "plots" / "metrics.png",
        rows,
        list(SIGNAL_METRICS) + ["nll_bits"],
        {k: v[0] for k, v in METRICS.items()},
    )
    if dist_fig is not None:
        figures.insert(0, str(dist_fig))
    if exp_dir is not None:
        log = Path(exp_dir) / "train.log"
        if not log.is_file():  # e.g. train.1.log of a multi-job launcher
            log = next(iter(sorted(Path(exp_dir).glob("train*.log"))), log)
        if log.is_file():
            fig = plot_training_curves(out / "plots" / "training_curves.png", parse_train_log(log))
            if fig is not None:
                figures.insert(0, str(fig))
        else:
            logging.warning("%s: no training log; no training curves", log)
        for name in ("loss.png", "nll_bits.png"):  # ESPnet's own plots of the two
            if (Path(exp_dir) / "images" / name).is_file():
                figures.append(str(Path(exp_dir) / "images" / name))
    if decode_dir is None:
        decode_dir = Path(gen_wav_scp).parent
    summary: Dict[str, Any] = dict(
        n_utterances=len(utts),
        systems=summarize(rows),
        rtf=read_decode_stats(decode_dir),
        definitions={k: v[2] for k, v in METRICS.items()},
        better={k: v[1] for k, v in METRICS.items()},
        settings=dict(
            fs=fs,
            f0_method=f0_method,
            frame_period_ms=FRAME_PERIOD_MS,
            mcep_order=MCEP_ORDER,
            mcep_alpha=mcep_alpha(fs),
            griffin_lim_iters=griffin_lim_iters if griffin_lim else None,
            pesq_fs=16000,
        ),
        inputs=dict(
            ref_wav_scp=str(ref_wav_scp),
            gen_wav_scp=str(gen_wav_scp),
            feats_scp=None if feats_scp is None else str(feats_scp),
            model_dir=None if model_dir is None else str(model_dir),
        ),
        figures=figures,
    )
    write_csv(out / "metrics.csv", rows)
    write_json(out / "summary.json", summary)
    write_markdown(out / "summary.md", summary)
    logging.info("wrote %s", out / "summary.md")
    return summary
