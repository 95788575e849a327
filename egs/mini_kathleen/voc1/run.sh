#!/usr/bin/env bash
# mini_kathleen: 50 utterances of the Kathleen corpus shipped in ../db, so every
# stage runs offline. On CPU with the tiny config, all stages take a few minutes.
#   ./run.sh                       # stages -1..6
#   ./run.sh --stage 4 --stop_stage 5
set -euo pipefail
cd "$(dirname "$0")"

# stage 5: F0 by DIO, ~10x faster than Harvest (the demo's F0 figures orient only)
./voc.sh \
    --db_root ../db \
    --train_set train --dev_set dev --eval_sets eval \
    --fs 22050 --n_fft 1024 --n_shift 256 --win_length null \
    --fmin 80 --fmax 7600 --n_mels 80 \
    --nj 2 --ngpu 0 \
    --train_config conf/tiny.yaml \
    --decode_config conf/decode.yaml \
    --eval_args "--f0_method dio" \
    "$@"
