#!/usr/bin/env bash
# Slurm backend with the interface of run_local.sh:
#
#   run_slurm.sh [options] [JOB=1:N] <log> <command> [args...]
#
# Submits one job array (sbatch --wait), so the call returns when every task
# has finished, with a non-zero status if one failed. JOB in <log> and in the
# arguments becomes the array index.
# Options:
#   --gpu N          --gres=gpu:N per node
#   --mem SIZE       --mem (e.g. 8G)
#   --time T         --time (e.g. 2-00:00:00)
#   --num_threads N  --cpus-per-task
#   --num_nodes N    N nodes, one task per node started with srun (multi-node
#                    training: ESPnet's --dist_launcher slurm reads the ranks)
#   --max_jobs_run N array throttle (%N)
# Site settings: SLURM_PARTITION, SLURM_ACCOUNT and SBATCH_EXTRA_OPTS (free text
# added to the sbatch command line), e.g. set in cmd.sh.

set -u
# shellcheck source=utils/job_args.sh
. "$(dirname "${BASH_SOURCE[0]}")/job_args.sh"
command -v sbatch > /dev/null || { echo "$0: sbatch not found (is this a Slurm cluster?)" >&2; exit 1; }

logdir=$(dirname "${log_pattern}")
mkdir -p "${logdir}/slurm"
name=$(basename "${log_pattern}" .log); name=${name//JOB/array}
script="${logdir}/slurm/${name}.sh"

# The batch script: one branch per array index, each with JOB substituted.
{
    echo "#!/usr/bin/env bash"
    echo "cd $(printf '%q' "${PWD}")"
    [ -n "${num_threads}" ] && echo "export OMP_NUM_THREADS=${num_threads} MKL_NUM_THREADS=${num_threads}"
    echo 'i=${SLURM_ARRAY_TASK_ID:-1}'
    echo 'case "${i}" in'
    for (( i = first; i <= last; i++ )); do
        cmd=""
        for arg in "$@"; do
            ${has_array} && arg=${arg//JOB/${i}}
            cmd+="$(printf '%q' "${arg}") "
        done
        [ "${num_nodes}" -gt 1 ] && cmd="srun --ntasks-per-node=1 ${cmd}"
        log=${log_pattern//JOB/${i}}
        echo "  ${i})"
        echo "    log=$(printf '%q' "${log}")"
        echo "    echo \"# ${cmd//\"/\\\"}\" > \"\${log}\""
        echo "    echo \"# started at \$(date) on \$(hostname)\" >> \"\${log}\""
        echo "    start=\${SECONDS}"
        echo "    ${cmd} >> \"\${log}\" 2>&1; rc=\$?"
        echo "    echo \"# exit code \${rc}, elapsed \$(( SECONDS - start )) s\" >> \"\${log}\""
        echo "    exit \${rc} ;;"
    done
    echo "esac"
} > "${script}"

opts=(--parsable --wait --job-name "${name}" --array "${first}-${last}${max_jobs_run:+%${max_jobs_run}}"
      --output "${logdir}/slurm/${name}.%a.out" --nodes "${num_nodes}" --ntasks-per-node 1)
[ "${gpu}" -gt 0 ] && opts+=(--gres "gpu:${gpu}")
[ -n "${mem}" ] && opts+=(--mem "${mem}")
[ -n "${time_limit}" ] && opts+=(--time "${time_limit}")
[ -n "${num_threads}" ] && opts+=(--cpus-per-task "${num_threads}")
[ -n "${SLURM_PARTITION:-}" ] && opts+=(--partition "${SLURM_PARTITION}")
[ -n "${SLURM_ACCOUNT:-}" ] && opts+=(--account "${SLURM_ACCOUNT}")
# shellcheck disable=SC2086
if ! sbatch "${opts[@]}" ${SBATCH_EXTRA_OPTS:-} "${script}" > "${logdir}/slurm/${name}.id"; then
    # Name the logs of the tasks that did not end well (a task killed by Slurm
    # never writes its exit code; sbatch's own error goes to its .out file).
    failed=""
    for (( i = first; i <= last; i++ )); do
        log=${log_pattern//JOB/${i}}
        grep -q "^# exit code 0," "${log}" 2> /dev/null || failed+=" ${log}"
    done
    echo "$0: job array ${name} ($(cat "${logdir}/slurm/${name}.id" 2> /dev/null)) failed; see${failed:- ${logdir}/slurm/${name}.*.out}" >&2
    exit 1
fi
exit 0
