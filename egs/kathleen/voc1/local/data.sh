#!/usr/bin/env bash
# Kaldi data directories of the Kathleen corpus (--db_root: text, wav/, splits/).
set -euo pipefail
db_root=downloads/kathleen
datadir=data
. utils/parse_options.sh
. ./path.sh

python3 -m espnet_wavenet.bin.prepare_split_corpus --db_root "${db_root}" \
    --out_dir "${datadir}" --sets train dev eval --speaker kathleen
