"""Generation speed benchmark; prints JSON.

    python -m espnet_wavenet.bin.benchmark --config conf/default.yaml conf/quality.yaml \
        --kinds fast fast_fp16 fast_int8 reference \
        --quality_model exp/<name>/pack --quality_wavs a.flac b.flac

Kinds: fast (float32 kernel, exact), fast_fp16 / fast_int8 (float16 / int8
weights, not exact), reference, gpu. Random weights (speed does not depend on
them); wall-clock medians over ``--repeats`` rounds, each timing every kind
once in turn (the machine's drift then affects the kinds alike), plus the
process CPU time (on a shared machine wall time also counts other people's work). The
fast/reference ratio is measured in the same rounds; the reference is timed on a
short stretch only (``--reference_seconds``: it is slow). ``--isa`` with several
ISA levels times every fast kind at each level in the same rounds, so that the
levels' rows compare runs of the same minutes.

What the lower precisions cost is measured with ``--quality_model`` on a
trained packed model and real speech (``precision_quality``: teacher-forced
NLL per precision, free-running agreement with the float32 kernel and the
generated audio's log-mel distance to the natural speech; see
:mod:`espnet_wavenet.evaluation.precision`). The timing and profiling live in
:mod:`espnet_wavenet.evaluation.generation_speed`.
"""

import argparse
import json
import logging
import os
import resource
from pathlib import Path
from typing import List, Optional

import torch

from espnet_wavenet.evaluation.generation_speed import KINDS, SPLIT_OPTIONS, bench_config, machine
from espnet_wavenet.generation.cpu import loader


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", nargs="+", default=["conf/default.yaml"])
    p.add_argument("--seconds", type=float, default=2.0, help="audio per stream (fast kinds)")
    p.add_argument("--reference_seconds", type=float, default=0.05)
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 16])
    p.add_argument("--kinds", nargs="+", choices=KINDS,
                   default=["fast", "fast_fp16", "fast_int8", "reference"],
                   help="fast: float32 kernel (exact); fast_fp16, fast_int8: float16 / int8 "
                   "weights (faster, not exact); reference; gpu")
    p.add_argument("--threads", type=int, default=None, help="default: torch threads")
    p.add_argument("--isa", nargs="+", default=None,
                   help="kernel to load: auto, native or an ISA level (baseline, avx2, avxvnni, "
                   "avx512, avx512vnni): measure a lower level on a CPU that has a higher one "
                   "(sets ESPNET_WAVENET_KERNEL); several levels: every fast kind at each, "
                   "timed in the same rounds (each timing's 'kernel' says which; the first "
                   "is the one --profile and --streaming_frames use)")
    p.add_argument("--split", choices=sorted(SPLIT_OPTIONS), default="auto",
                   help="batch 1 on two threads: the two-thread pipeline as the generator "
                   "decides (auto: only when a probe spin exchange is cheap), or forced on / "
                   "off; each timing's 'pipeline' says what ran")
    p.add_argument("--profile", action="store_true",
                   help="instead of timings: cycles per sample of each part of the two-thread "
                   "pipeline (one utterance), from a -DWN_PROFILE build of the kernel")
    p.add_argument("--streaming_frames", type=int, default=0,
                   help="also stream each fast kind's utterance (--seconds) through "
                   "StreamingVocoder, this many mel frames a push, against offline "
                   "generation; 0: off")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--reference_threads", type=int, default=1)
    q = p.add_argument_group("precision quality on a trained model")
    q.add_argument("--quality_model", default=None,
                   help="packed model directory (config.yaml, model.pth, feats_stats.npz)")
    q.add_argument("--quality_wavs", nargs="+", default=None,
                   help="audio files of real speech (needed with --quality_model; e.g. "
                   "egs/mini_kathleen/db/wav/*.flac in a source checkout)")
    q.add_argument("--quality_seconds", type=float, default=1.0,
                   help="audio per utterance (cut before feature extraction)")
    q.add_argument("--quality_precisions", nargs="+", choices=["float16", "int8"],
                   default=["float16", "int8"], help="compared with the float32 kernel")
    q.add_argument("--quality_free_run_steps", type=int, default=4000,
                   help="free-running samples per utterance")
    q.add_argument("--quality_sid", type=int, default=None,
                   help="speaker id (speaker-conditioned models)")
    return p


def main(argv: Optional[List[str]] = None) -> None:
    parser = get_parser()
    args = parser.parse_args(argv)
    # Fail before the (long) timings, not after them.
    if args.quality_model is not None:
        if not Path(args.quality_model, "config.yaml").is_file():
            parser.error(f"--quality_model {args.quality_model}: no packed model (config.yaml)")
        if not args.quality_wavs:
            parser.error("--quality_model needs --quality_wavs (real speech)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.isa is not None:
        # The first level is the process's kernel (the machine report, --profile,
        # --streaming_frames); set before the kernel is first loaded.
        os.environ["ESPNET_WAVENET_KERNEL"] = args.isa[0]
        for level in args.isa[1:]:  # fail before the timings
            try:
                loader.check_level(level, "--isa")
            except RuntimeError as e:
                parser.error(str(e))
    args.threads = args.threads or torch.get_num_threads()
    report = machine(args.threads, "gpu" in args.kinds and torch.cuda.is_available())
    report["configs"] = [bench_config(c, args) for c in args.config]
    if args.quality_model is not None:
        from espnet_wavenet.evaluation.precision import precision_quality_of_model

        report["precision_quality"] = precision_quality_of_model(
            args.quality_model, args.quality_wavs, args.quality_seconds,
            args.quality_precisions, args.threads, args.quality_free_run_steps,
            args.quality_sid,
        )
    report.update(
        load_average_at_end=os.getloadavg(),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
