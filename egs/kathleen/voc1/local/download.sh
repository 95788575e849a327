#!/usr/bin/env bash
# Stage -1 of kathleen: fetch the 48 kHz originals from the public source and
# convert them into the corpus layout under --db_root (text, wav/UTTID.flac at
# --fs, splits/{train,dev,eval}). Skipped when --db_root already holds it.
set -euo pipefail
db_root=downloads/kathleen
fs=22050
repo=rhasspy/dataset-voice-cathy
commit=c51cb971036a127359b43c621f26ca5081eab13e
. utils/parse_options.sh
. ./path.sh

if [ -f "${db_root}/text" ] && [ -d "${db_root}/wav" ] && [ -d "${db_root}/splits" ]; then
    echo "$0: ${db_root} already holds the corpus; download skipped"
    exit 0
fi
archive=downloads/dataset-voice-cathy-${commit}.tar.gz
src=downloads/dataset-voice-cathy-${commit}
mkdir -p downloads
if [ ! -d "${src}/data" ]; then
    if [ ! -f "${archive}" ]; then
        echo "$0: downloading https://github.com/${repo} (commit ${commit})"
        wget --continue -O "${archive}.part" "https://github.com/${repo}/archive/${commit}.tar.gz"
        mv "${archive}.part" "${archive}"
    fi
    tar -xzf "${archive}" -C downloads
fi
python3 local/convert_source.py --src "${src}/data" --db_root "${db_root}" --fs "${fs}"
