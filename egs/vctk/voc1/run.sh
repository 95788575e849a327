#!/usr/bin/env bash
# VCTK 0.92: 110 speakers, 48 kHz FLAC (wav48_silence_trimmed, mic1), resampled
# to 24 kHz in stage 1. Features identical to ESPnet's egs2/vctk/tts1 (fs 24000,
# n_fft 2048, n_shift 300, win_length 1200, fmin 80, fmax 7600, n_mels 80).
# Speaker global conditioning: utt2spk -> utt2sid (ESPnet numbering, 0 = unknown).
# Sets: train; dev and eval = held-out utterances of the training speakers
# (local/data.sh --n_dev/--n_eval per speaker, or --eval_list FILE);
# eval_unseen = every utterance of the speakers in local/heldout_speakers.
#   ./run.sh --ngpu 1
set -euo pipefail
cd "$(dirname "$0")"

./voc.sh \
    --db_root downloads/VCTK-Corpus-0.92 \
    --train_set train --dev_set dev --eval_sets "eval eval_unseen" \
    --fs 24000 --n_fft 2048 --n_shift 300 --win_length 1200 \
    --fmin 80 --fmax 7600 --n_mels 80 \
    --use_sid true \
    --nj 8 \
    --train_config conf/train.yaml \
    --decode_config conf/decode.yaml \
    "$@"
