#!/usr/bin/env bash
# Local parallel job runner (the default backend of cmd.sh).
#
#   run_local.sh [options] [JOB=1:N] <log> <command> [args...]
#
# With JOB=1:N, N jobs run in parallel (at most --max_jobs_run at a time); the
# string JOB in <log> and in every argument is replaced by the job index.
# Each log starts with the command and ends with the exit status and elapsed
# time. The exit status is 0 only if every job succeeded; otherwise the failed
# logs are named.
# Options (accepted for compatibility with run_slurm.sh; locally only
# --num_threads and --max_jobs_run have an effect):
#   --gpu N  --mem SIZE  --time T  --num_nodes N  --num_threads N  --max_jobs_run N

set -u
# shellcheck source=utils/job_args.sh
. "$(dirname "${BASH_SOURCE[0]}")/job_args.sh"
[ "${first}" -le "${last}" ] || { echo "$0: empty job range ${first}:${last}" >&2; exit 1; }

run_one() {  # run_one <index>
    local i=$1 log cmd="" arg
    shift
    log=${log_pattern//JOB/${i}}
    for arg in "$@"; do
        ${has_array} && arg=${arg//JOB/${i}}
        cmd+="$(printf '%q' "${arg}") "
    done
    mkdir -p "$(dirname "${log}")"
    {
        echo "# ${cmd}"
        echo "# started at $(date) on $(hostname)"
    } > "${log}"
    local start=${SECONDS} rc=0
    if [ -n "${num_threads}" ]; then
        ( export OMP_NUM_THREADS=${num_threads} MKL_NUM_THREADS=${num_threads}; bash -c "${cmd}" ) >> "${log}" 2>&1 || rc=$?
    else
        bash -c "${cmd}" >> "${log}" 2>&1 || rc=$?
    fi
    echo "# exit code ${rc}, elapsed $(( SECONDS - start )) s, ended at $(date)" >> "${log}"
    return ${rc}
}

declare -A pids=()
for (( i = first; i <= last; i++ )); do
    if [ -n "${max_jobs_run}" ]; then
        while [ "$(jobs -rp | wc -l)" -ge "${max_jobs_run}" ]; do wait -n || true; done
    fi
    run_one "${i}" "$@" &
    pids[${i}]=$!
done

failed=()
for i in "${!pids[@]}"; do
    wait "${pids[${i}]}" || failed+=("${i}")
done
if [ ${#failed[@]} -gt 0 ]; then
    for i in "${failed[@]}"; do
        echo "$0: job ${i} failed; see ${log_pattern//JOB/${i}}" >&2
    done
    exit 1
fi
exit 0
