# Sourced by run_local.sh and run_slurm.sh (not run): their common options and
# the optional JOB=a:b range, read from (and shifted off) the caller's "$@".
# Sets gpu, mem, time_limit, num_nodes, num_threads, max_jobs_run, first, last,
# has_array and log_pattern; leaves <command> [args...] in "$@".

gpu=0; mem=; time_limit=; num_nodes=1; num_threads=; max_jobs_run=
while [ $# -gt 0 ]; do
    case "$1" in
        --gpu) gpu=$2; shift 2 ;;
        --mem) mem=$2; shift 2 ;;
        --time) time_limit=$2; shift 2 ;;
        --num_nodes) num_nodes=$2; shift 2 ;;
        --num_threads) num_threads=$2; shift 2 ;;
        --max_jobs_run) max_jobs_run=$2; shift 2 ;;
        --*) echo "$0: unknown option $1" >&2; exit 1 ;;
        *) break ;;
    esac
done

first=1; last=1; has_array=false
if [[ "${1:-}" =~ ^JOB=([0-9]+):([0-9]+)$ ]]; then
    first=${BASH_REMATCH[1]}; last=${BASH_REMATCH[2]}; has_array=true
    shift
fi
if [ $# -lt 2 ]; then
    echo "Usage: $0 [options] [JOB=1:N] <log> <command> [args...]" >&2
    exit 1
fi
log_pattern=$1; shift
