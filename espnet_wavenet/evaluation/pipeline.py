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
    Reference,
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
from espnet_wavenet.evaluation.plots import preload_pyplot
from espnet_wavenet.evaluation.report import (
    read_decode_stats,
    summarize,
    write_csv,
    write_json,
    write_markdown,
)
from espnet_wavenet.evaluation.score_cache import ScoreCache
from espnet_wavenet.evaluation.training_log import parse_train_log
from espnet_wavenet.evaluation.world import (
    FRAME_PERIOD_MS,
    MCEP_ORDER,
    WorldFeatures,
    mcep_alpha,
)

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

    def __call__(self, i: int, utt: str) -> Tuple[List[Dict[str, Any]], Optional[str], int]:
        """Rows of one utterance (natural and every system), its plot if any, and
        how many of its model-independent parts came from the cache."""
        ev, fs, cache = self.evaluator, self.evaluator.fs, self.cache
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
        hits = cache.hits
        signals: Dict[str, np.ndarray] = OrderedDict()
        scores: Dict[str, Dict[str, Any]] = OrderedDict()
        ref = None
        if ref_wav is not None:
            signals["natural"] = ref_wav
            ref, scores["natural"] = self._natural(ref_wav)
        signals[self.gen_name] = fit_length(gen_wav, n)
        scores[self.gen_name] = self._score(ref, signals[self.gen_name])
        if self.gl is not None and feats is not None:
            signals["griffin_lim"], scores["griffin_lim"] = self._griffin_lim(feats, ref, n)
        rows = []
        for name, values in scores.items():
            row: Dict[str, Any] = dict(utt=utt, system=name, duration_s=round(n / fs, 4))
            row.update(values)
            if name == self.gen_name and self.nll and ref_wav is not None:
                row["nll_bits"] = nll_bits_per_sample(
                    self.vocoder, ref_wav, feats, self.sids.get(utt), chunk=self.nll_chunk,
                    uttid=utt,
                )
            rows.append(row)
        figure = None
        if i < self.max_plots:
            # the natural recording's log-mel is part of its (possibly cached) analyses
            logmels = OrderedDict(
                (k, ref.logmel_db if k == "natural" else ev.logmel.logmel_db(v))
                for k, v in signals.items())
            figure = str(plot_utterance(self.out / "plots" / f"{utt}.png", utt, fs,
                                        ev.logmel.conf["hop_length"], signals, logmels))
        return rows, figure, cache.hits - hits

    def _score(self, ref: Optional[Reference], wav: np.ndarray) -> Dict[str, Any]:
        """Every metric of one signal: against ``ref`` if given, and DNSMOS."""
        values: Dict[str, Any] = {}
        if ref is not None:
            values.update(self.evaluator.score(ref, wav))
        if self.dnsmos:
            values.update(dnsmos(wav, self.evaluator.fs))
        return values

    def _natural(self, wav: np.ndarray) -> Tuple[Reference, Dict[str, Any]]:
        """The natural recording's analyses and DNSMOS, from the cache when there."""
        key = self.cache.key("natural", wav)
        hit = self.cache.get(key)
        if hit is not None:
            a, values = hit
            world = WorldFeatures(f0=a["f0"], mcep=a["mcep"], alpha=values.pop("_alpha"),
                                  frame_period=values.pop("_frame_period"))
            return Reference(np.asarray(wav, dtype=np.float32), world, a["logmel_db"],
                             a["espnet_mcep"]), values
        ref = self.evaluator.reference(wav)
        values = self._score(None, wav)
        self.cache.put(
            key,
            dict(f0=ref.world.f0, mcep=ref.world.mcep, logmel_db=ref.logmel_db,
                 espnet_mcep=ref.espnet_mcep),
            dict(values, _alpha=ref.world.alpha, _frame_period=ref.world.frame_period),
        )
        return ref, values

    def _griffin_lim(
        self, feats: np.ndarray, ref: Optional[Reference], n: int
    ) -> Tuple[np.ndarray, Dict[str, Any]]:
        """Griffin-Lim of the features, ``n`` samples, and its scores (cached)."""
        ref_part = (ref.wav,) if ref is not None else ()
        key = self.cache.key("griffin_lim", np.asarray(feats), np.array(n), *ref_part)
        hit = self.cache.get(key)
        if hit is not None:
            return hit[0]["wav"], hit[1]
        wav = fit_length(self.gl(feats), n)
        values = self._score(ref, wav)
        self.cache.put(key, dict(wav=wav), values)
        return wav, values


_SCORER: Optional[_Scorer] = None


def _init_worker() -> None:
    torch.set_num_threads(1)  # --nj processes share the cores


def _score_in_worker(args: Tuple[int, str]):
    return args[0], _SCORER(*args)


def _audio_frames(path: str) -> int:
    """Length of an audio file in samples (0 when unreadable: it fails later, named)."""
    import soundfile as sf

    try:
        return sf.info(path).frames
    except Exception:  # noqa: BLE001 - only an ordering hint
        return 0


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
    cache_dir: Optional[PathLike] = None,
) -> Dict[str, Any]:
    """Score every common utterance, write the report files, return the summary.

    Without ``ref_wav_scp`` (e.g. TTS output, which has no aligned recording)
    only the non-intrusive DNSMOS estimates are computed, of the generated
    audio and, given ``feats_scp``, of Griffin-Lim on the same features.
    ``nj`` > 1 scores utterances in that many processes (one thread each),
    longest first. With ``cache_dir``, the scores that do not depend on the
    model (natural speech, Griffin-Lim) are reused across evaluations of the
    same data (:mod:`espnet_wavenet.evaluation.score_cache`).
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

    settings = dict(
        fs=fs,
        f0_method=f0_method,
        frame_period_ms=FRAME_PERIOD_MS,
        mcep_order=MCEP_ORDER,
        mcep_alpha=mcep_alpha(fs),
        griffin_lim_iters=griffin_lim_iters if griffin_lim else None,
        pesq_fs=16000,
        dnsmos=use_dnsmos,
    )
    cache = ScoreCache(cache_dir, dict(settings, feats_conf=evaluator.logmel.conf,
                                       band=evaluator.band, gl_seed=None if gl is None else gl.seed))
    global _SCORER
    _SCORER = _Scorer(
        evaluator=evaluator, gl=gl, vocoder=vocoder, refs=refs, gens=gens,
        feats_index=feats_index, sids=sids, nll=nll, dnsmos=use_dnsmos, gen_name=gen_name,
        nll_chunk=nll_chunk, max_plots=max_plots, out=out, cache=cache,
    )
    start = time.perf_counter()
    jobs = list(enumerate(utts))
    bar = dict(total=len(utts), desc="evaluate", unit="utt")
    if nj > 1:
        if max_plots > 0:
            preload_pyplot()  # once here, not once per forked job
        # longest first, so no job is left with a long utterance at the end
        jobs.sort(key=lambda job: -_audio_frames(gens[job[1]]))
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(min(nj, len(utts)), initializer=_init_worker) as pool:
            done = list(tqdm(pool.imap_unordered(_score_in_worker, jobs), **bar))
        results = [r for _, r in sorted(done, key=lambda d: d[0])]
    else:
        results = [_SCORER(i, u) for i, u in tqdm(jobs, **bar)]
    rows = [r for utt_rows, _, _ in results for r in utt_rows]
    figures = [f for _, f, _ in results if f is not None]
    cached = sum(h for _, _, h in results)
    logging.info("scored %d utterances in %.1f s (%d jobs; %d of their natural-speech and "
                 "Griffin-Lim scores from the cache)", len(utts),
                 time.perf_counter() - start, nj, cached)

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
        settings=dict(settings, jobs=nj, cache_dir=None if cache_dir is None else str(cache_dir),
                      cached=cached),
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
