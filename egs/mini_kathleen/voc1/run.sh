#!/usr/bin/env bash
# mini_kathleen: 50 utterances of the Kathleen corpus shipped in ../db, so every
# stage runs offline. On CPU with the tiny config, all stages take a few minutes.
#   ./run.sh                       # stages -1..6
#   ./run.sh --stage 4 --stop_stage 5
# Stages 4-5 also decode the eval set with the model this project ships
# (../../kathleen/voc1/pretrained/kathleen_wavenet, trained on full Kathleen;
# these 5 utterances are in its held-out eval set), and exp/RESULTS.md puts
# both models beside Griffin-Lim and natural speech.
set -euo pipefail
cd "$(dirname "$0")"

# stage 5: F0 by DIO, ~10x faster than Harvest (the demo's F0 figures orient only)
common=(
    --db_root ../db
    --train_set train --dev_set dev --eval_sets eval
    --fs 22050 --n_fft 1024 --n_shift 256 --win_length null
    --fmin 80 --fmax 7600 --n_mels 80
    --nj 2 --ngpu 0
    --train_config conf/tiny.yaml
    --decode_config conf/decode.yaml
    --eval_args "--f0_method dio"
    --results_md exp/RESULTS.md
)
./voc.sh "${common[@]}" "$@"

# The same stage range decides whether the shipped model is decoded (stages 4-5).
stage=-1 stop_stage=6
args=("$@")
for ((i = 0; i + 1 < ${#args[@]}; i++)); do
    case "${args[i]}" in
        --stage) stage=${args[i + 1]} ;;
        --stop_stage) stop_stage=${args[i + 1]} ;;
    esac
done
if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 4 ]; then
    ./voc.sh "${common[@]}" "$@" \
        --pretrained_model ../../kathleen/voc1/pretrained/kathleen_wavenet \
        --tag pretrained_kathleen_wavenet --dev_set "" \
        --stage "$(( stage > 4 ? stage : 4 ))" --stop_stage "$(( stop_stage < 5 ? stop_stage : 5 ))"
fi
[ ! -f exp/RESULTS.md ] || { echo "== exp/RESULTS.md" >&2; cat exp/RESULTS.md >&2; }
