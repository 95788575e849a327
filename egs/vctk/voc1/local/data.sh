#!/usr/bin/env bash
# Kaldi data directories of VCTK 0.92 (--db_root: txt/, wav48_silence_trimmed/).
set -euo pipefail
db_root=downloads/VCTK-Corpus-0.92
datadir=data
mic=mic1
n_dev=5                                   # held-out utterances per training speaker
n_eval=5
eval_list=                                # or an explicit list of eval utterance ids
heldout_speakers=local/heldout_speakers   # speakers never seen in training
. utils/parse_options.sh
. ./path.sh

python3 local/prep_vctk.py --db_root "${db_root}" --out_dir "${datadir}" --mic "${mic}" \
    --n_dev "${n_dev}" --n_eval "${n_eval}" --heldout_speakers "${heldout_speakers}" \
    ${eval_list:+--eval_list "${eval_list}"}
