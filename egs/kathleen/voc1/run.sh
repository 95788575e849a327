#!/usr/bin/env bash
# Kathleen: 1,132 utterances (57.6 min) of one U.S. English female speaker
# reading the CMU ARCTIC prompts, CC0 (rhasspy/dataset-voice-cathy).
#   ./run.sh                                   # download to downloads/kathleen, all stages
#   ./run.sh --db_root /path/to/kathleen       # a local copy (text, wav/, splits/)
#   ./run.sh --ngpu 1 --stage 3                # train on a GPU
set -euo pipefail
cd "$(dirname "$0")"

# training: the LPC-excitation WaveNet, the winner of RESULTS.md's equal-budget
# comparison (conf/train.yaml is the plain mu-law WaveNet of the paper);
# stage 5: F0 by DIO, ~10x faster than Harvest, as in RESULTS.md
./voc.sh \
    --db_root downloads/kathleen \
    --train_set train --dev_set dev --eval_sets eval \
    --fs 22050 --n_fft 1024 --n_shift 256 --win_length null \
    --fmin 80 --fmax 7600 --n_mels 80 \
    --nj 4 \
    --train_config conf/tuning/train_lpc.yaml \
    --decode_config conf/decode.yaml \
    --eval_args "--f0_method dio" \
    "$@"
