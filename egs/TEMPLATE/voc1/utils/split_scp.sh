#!/usr/bin/env bash
# split_scp.sh <scp> <nj> <out_pattern>
# Split a Kaldi scp into nj contiguous parts, keeping the order; the string JOB
# in <out_pattern> becomes 1..nj (e.g. dump/train/split4/JOB/wav.scp). When the
# file has fewer lines than nj, the last parts are empty.
set -euo pipefail
if [ $# -ne 3 ]; then
    echo "Usage: $0 <scp> <nj> <out_pattern with JOB>" >&2; exit 1
fi
scp=$1; nj=$2; pattern=$3
[ -f "${scp}" ] || { echo "$0: ${scp}: no such file" >&2; exit 1; }
[[ "${pattern}" == *JOB* ]] || { echo "$0: out_pattern must contain JOB" >&2; exit 1; }
n=$(wc -l < "${scp}")
for (( j = 1; j <= nj; j++ )); do
    out=${pattern//JOB/${j}}
    mkdir -p "$(dirname "${out}")"
    # Lines (j-1)*n/nj+1 .. j*n/nj.
    awk -v a=$(( (j - 1) * n / nj )) -v b=$(( j * n / nj )) 'NR > a && NR <= b' "${scp}" > "${out}"
done
