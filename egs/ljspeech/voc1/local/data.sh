#!/usr/bin/env bash
# Kaldi data directories of LJSpeech-1.1 (<db_root>/LJSpeech-1.1/{metadata.csv,wavs/}).
set -euo pipefail
db_root=downloads
datadir=data
n_dev=250
n_eval=250
. utils/parse_options.sh
. ./path.sh

python3 local/prep_ljspeech.py --db_root "${db_root}" --out_dir "${datadir}" \
    --n_dev "${n_dev}" --n_eval "${n_eval}"
