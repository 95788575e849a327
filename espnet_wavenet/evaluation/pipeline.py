"""Evaluate a decoding directory against natural speech and write the report.

For every utterance in both wav.scp files: the generated wav, and (optionally)
a Griffin-Lim rendering of the same features, are scored against the natural
recording (:mod:`espnet_wavenet.evaluation.evaluator`); the model's held-out NLL
of the natural audio is added (:mod:`espnet_wavenet.evaluation.nll`); the
natural recording and every system get the non-intrusive DNSMOS estimates
(:mod:`espnet_wavenet.evaluation.dnsmos`), which are all there is for audio
with no natural recording (TTS output). Writes
``metrics.csv``, ``summary.json``, ``summary.md`` and ``plots/*.png``.
"""

import logging
import multiprocessing
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from tqdm import tqdm

from espnet_wavenet.data.audio import read_audio, resample
from espnet_wavenet.data.datadir import read_dict as read_scp
from espnet_wavenet.data.datadir import read_utt2sid
from espnet_wavenet.data.scp import load_feats
from espnet_wavenet.evaluation.evaluator import (
    METRICS,
    SIGNAL_METRICS,
    SignalEvaluator,
    fit_length,
)
from espnet_wavenet.evaluation.dnsmos import DNSMOS_METRICS, dnsmos, dnsmos_available
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

PathLike = Union[str, Path]


def load_wav(path: str, fs: int, uttid: str) -> np.ndarray:
    wav, rate = read_audio(path, uttid)
    if rate != fs:
        logging.debug("%s: resampling %s from %d to %d Hz", uttid, path, rate, fs)
        wav = resample(wav, rate, fs)
    return wav


class _Scorer:
    """What scoring one utterance needs; shared with worker processes by fork."""

    def __init__(self, **kw: Any):
        self.__dict__.update(kw)

    def __call__(self, i: int, utt: str) -> Tuple[List[Dict[str, Any]], Optional[str]]:
        """Rows of one utterance (natural and every system) and its plot, if any."""
        ev, fs = self.evaluator, self.evaluator.fs
        gen_wav = load_wav(self.gens[utt], fs, utt)
        ref_wav = load_wav(self.refs[utt], fs, utt) if self.refs is not None else None
        n = len(ref_wav) if ref_wav is not None else len(gen_wav)
        feats = None
        if self.gl is not None or self.nll:
            if utt in self.feats_index:
                feats = load_feats(self.feats_index[utt], utt)
            elif ref_wav is not None:
                if self.feats_index:
                    logging.warning("%s: not in the features scp; features recomputed", utt)
                from espnet_wavenet.features import extract_feats

                feats = extract_feats(torch.from_numpy(ref_wav), ev.logmel.conf).numpy()
        signals: Dict[str, np.ndarray] = OrderedDict()
        if ref_wav is not None:
            signals["natural"] = ref_wav
        signals[self.gen_name] = fit_length(gen_wav, n)
        if self.gl is not None and feats is not None:
            signals["griffin_lim"] = fit_length(self.gl(feats), n)
        logmels = OrderedDict((k, ev.logmel.logmel_db(v)) for k, v in signals.items())
        ref = ev.reference(ref_wav) if ref_wav is not None else None
        rows = []
        for name, wav in signals.items():
            row: Dict[str, Any] = dict(utt=utt, system=name, duration_s=round(n / fs, 4))
            if ref is not None and name != "natural":
                row.update(ev.score(ref, wav, logmels[name]))
            if self.dnsmos:
                row.update(dnsmos(wav, fs))
            if name == self.gen_name and self.nll and ref_wav is not None:
                row["nll_bits"] = nll_bits_per_sample(
                    self.vocoder, ref_wav, feats, self.sids.get(utt), chunk=self.nll_chunk,
                    uttid=utt,
                )
            rows.append(row)
        figure = None
        if i < self.max_plots:
            figure = str(plot_utterance(self.out / "plots" / f"{utt}.png", utt, fs,
                                        ev.logmel.conf["hop_length"], signals, logmels))
        return rows, figure


_SCORER: Optional[_Scorer] = None


def _init_worker() -> None:
    torch.set_num_threads(1)  # --nj processes share the cores


def _score_in_worker(args: Tuple[int, str]):
    return _SCORER(*args)


def evaluate_corpus(
    ref_wav_scp: Optional[PathLike],
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
    use_dnsmos: bool = True,
    nj: int = 1,
) -> Dict[str, Any]:
    """Score every common utterance, write the report files, return the summary.

    Without ``ref_wav_scp`` (e.g. TTS output, which has no aligned recording)
    only the non-intrusive DNSMOS estimates are computed, of the generated
    audio and, given ``feats_scp``, of Griffin-Lim on the same features.
    ``nj`` > 1 scores utterances in that many processes (one thread each).
    """
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
    if use_dnsmos and not dnsmos_available():
        raise ImportError("DNSMOS needs speechmos and onnxruntime "
                          "(pip install 'espnet_wavenet[eval]'), or pass --dnsmos false")
    if ref_wav_scp is None:
        if not use_dnsmos:
            raise ValueError("no natural recordings and no DNSMOS: nothing to measure")
        nll = False  # needs the natural audio
    evaluator = SignalEvaluator(feats_conf, f0_method=f0_method)
    fs = evaluator.fs
    gl = None
    if griffin_lim and (ref_wav_scp is not None or feats_scp is not None):
        gl = GriffinLimBaseline(feats_conf, n_iter=griffin_lim_iters)

    gens = read_scp(gen_wav_scp)
    refs = read_scp(ref_wav_scp) if ref_wav_scp is not None else None
    feats_index = read_scp(feats_scp) if feats_scp is not None else {}
    sids = read_utt2sid(utt2sid) if utt2sid else {}
    utts = list(gens) if refs is None else [u for u in gens if u in refs]
    if refs is not None:
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

    global _SCORER
    _SCORER = _Scorer(
        evaluator=evaluator, gl=gl, vocoder=vocoder, refs=refs, gens=gens,
        feats_index=feats_index, sids=sids, nll=nll, dnsmos=use_dnsmos, gen_name=gen_name,
        nll_chunk=nll_chunk, max_plots=max_plots, out=out,
    )
    start = time.perf_counter()
    jobs = list(enumerate(utts))
    bar = dict(total=len(utts), desc="evaluate", unit="utt")
    if nj > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(min(nj, len(utts)), initializer=_init_worker) as pool:
            results = list(tqdm(pool.imap(_score_in_worker, jobs), **bar))
    else:
        results = [_SCORER(i, u) for i, u in tqdm(jobs, **bar)]
    rows = [r for utt_rows, _ in results for r in utt_rows]
    figures = [f for _, f in results if f is not None]
    logging.info("scored %d utterances in %.1f s (%d jobs)", len(utts),
                 time.perf_counter() - start, nj)

    dist_fig = plot_metric_distributions(
        out / "plots" / "metrics.png",
        rows,
        list(SIGNAL_METRICS) + list(DNSMOS_METRICS) + ["nll_bits"],
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
        reference=ref_wav_scp is not None,
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
            dnsmos=use_dnsmos,
            jobs=nj,
        ),
        inputs=dict(
            ref_wav_scp=None if ref_wav_scp is None else str(ref_wav_scp),
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
