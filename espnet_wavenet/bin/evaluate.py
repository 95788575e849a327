#!/usr/bin/env python3
"""Objective evaluation of generated speech against natural recordings.

Writes ``<out_dir>/metrics.csv`` (per utterance and system), ``summary.json`` and
``summary.md`` (mean with 95% confidence interval, decoding RTF) and
``plots/*.png``. Without ``--ref_wav_scp`` (TTS output) only the non-intrusive
DNSMOS estimates are computed. See :mod:`espnet_wavenet.evaluation` for the metric definitions.
"""

import argparse
import logging

from espnet_wavenet.evaluation.pipeline import evaluate_corpus


def str2bool(value: str) -> bool:
    v = str(value).lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {value!r}")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--ref_wav_scp", default=None,
                   help="natural audio: uttid path (none, e.g. for TTS output: DNSMOS only)")
    p.add_argument("--gen_wav_scp", required=True, help="generated audio: uttid path")
    p.add_argument("--out_dir", required=True, help="where the report goes")
    p.add_argument("--model_dir", default=None, help="packed vocoder (features, NLL)")
    p.add_argument(
        "--feats_scp",
        default=None,
        help="features the audio was generated from (Kaldi ark or .npy); "
        "recomputed from the natural audio when absent",
    )
    p.add_argument("--exp_dir", default=None, help="exp/<tag> with train.log, images/")
    p.add_argument(
        "--decode_dir",
        default=None,
        help="dir with decode_stats*.json (default: the folder of --gen_wav_scp)",
    )
    p.add_argument("--griffin_lim", type=str2bool, default=True, help="score a GL floor")
    p.add_argument("--griffin_lim_iters", type=int, default=32)
    p.add_argument("--nll", type=str2bool, default=True, help="held-out NLL (needs model)")
    p.add_argument("--max_plots", type=int, default=3, help="utterances to plot")
    p.add_argument("--f0_method", choices=("harvest", "dio"), default="harvest")
    p.add_argument("--gen_name", default="wavenet", help="system name in the report")
    p.add_argument("--dnsmos", type=str2bool, default=True,
                   help="non-intrusive DNSMOS P.835 / P.808 of every signal (speechmos)")
    p.add_argument("--nj", type=int, default=1, help="utterances scored in parallel processes")
    p.add_argument("--cache_dir", default=None,
                   help="reuse the natural-speech and Griffin-Lim scores of earlier "
                   "evaluations of the same data (content-addressed)")
    p.add_argument("--utt2sid", default=None, help="uttid -> speaker id, for the NLL")
    p.add_argument("--device", default="cpu", help="device for the NLL")
    p.add_argument("--log_level", default="INFO")
    return p


def main(cmd=None) -> None:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s (%(module)s) %(levelname)s: %(message)s"
    )
    evaluate_corpus(
        ref_wav_scp=args.ref_wav_scp,
        gen_wav_scp=args.gen_wav_scp,
        out_dir=args.out_dir,
        model_dir=args.model_dir,
        feats_scp=args.feats_scp,
        exp_dir=args.exp_dir,
        decode_dir=args.decode_dir,
        griffin_lim=args.griffin_lim,
        griffin_lim_iters=args.griffin_lim_iters,
        nll=args.nll,
        max_plots=args.max_plots,
        f0_method=args.f0_method,
        gen_name=args.gen_name,
        utt2sid=args.utt2sid,
        device=args.device,
        use_dnsmos=args.dnsmos,
        nj=args.nj,
        cache_dir=args.cache_dir,
    )


if __name__ == "__main__":
    main()
