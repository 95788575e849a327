#!/usr/bin/env bash
# filter_scp.sh <id_file> <scp>: the lines of <scp> whose first field is the
# first field of a line of <id_file>, in the order of <scp>.
set -euo pipefail
[ $# -eq 2 ] || { echo "Usage: $0 <id_file> <scp>" >&2; exit 1; }
awk 'NR == FNR { keep[$1] = 1; next } ($1 in keep)' "$1" "$2"
