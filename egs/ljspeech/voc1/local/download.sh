#!/usr/bin/env bash
# Stage -1 of ljspeech: LJSpeech-1.1 into <db_root>/LJSpeech-1.1 (skipped when there).
set -euo pipefail
db_root=downloads
url=https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2
. utils/parse_options.sh

if [ -f "${db_root}/LJSpeech-1.1/metadata.csv" ] && [ -d "${db_root}/LJSpeech-1.1/wavs" ]; then
    echo "$0: ${db_root}/LJSpeech-1.1 already there; download skipped"
    exit 0
fi
mkdir -p "${db_root}"
archive=${db_root}/LJSpeech-1.1.tar.bz2
if [ ! -f "${archive}" ]; then
    wget --continue -O "${archive}.part" "${url}"
    mv "${archive}.part" "${archive}"
fi
tar -xjf "${archive}" -C "${db_root}"
echo "$0: extracted ${db_root}/LJSpeech-1.1"
