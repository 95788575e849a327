#!/usr/bin/env bash
# LJSpeech-1.1: 13,100 utterances of one speaker, 22,050 Hz. Features identical
# to ESPnet's egs2/ljspeech/tts1 (fs 22050, n_fft 1024, n_shift 256, win_length
# null, fmin 80, fmax 7600, n_mels 80), so the vocoder pairs with its models.
# Split as ESPnet's recipe: ids sorted, the last 500 held out (dev: first 250
# of them, eval: last 250), train: the other 12,600.
#   ./run.sh --ngpu 1
set -euo pipefail
cd "$(dirname "$0")"

./voc.sh \
    --db_root downloads \
    --train_set train --dev_set dev --eval_sets eval \
    --fs 22050 --n_fft 1024 --n_shift 256 --win_length null \
    --fmin 80 --fmax 7600 --n_mels 80 \
    --allow_resample false \
    --nj 8 \
    --train_config conf/train.yaml \
    --decode_config conf/decode.yaml \
    "$@"
