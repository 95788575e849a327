#!/usr/bin/env bash
# Stage -1 of vctk: VCTK-Corpus-0.92.zip (CSTR, CC BY 4.0) unpacked into --db_root
# (txt/, wav48_silence_trimmed/, speaker-info.txt); skipped when there.
set -euo pipefail
db_root=downloads/VCTK-Corpus-0.92
url=https://datashare.ed.ac.uk/bitstream/handle/10283/3443/VCTK-Corpus-0.92.zip
. utils/parse_options.sh

if [ -d "${db_root}/txt" ] && [ -d "${db_root}/wav48_silence_trimmed" ]; then
    echo "$0: ${db_root} already holds VCTK 0.92; download skipped"
    exit 0
fi
mkdir -p "${db_root}"
archive=${db_root}/VCTK-Corpus-0.92.zip
if [ ! -f "${archive}" ]; then
    wget --continue -O "${archive}.part" "${url}"
    mv "${archive}.part" "${archive}"
fi
unzip -q -o "${archive}" -d "${db_root}"
echo "$0: unpacked ${db_root}"
