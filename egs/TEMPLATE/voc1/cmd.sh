# Job backends of the recipe stages (sourced by voc.sh).
#   local (default): utils/run_local.sh runs the jobs on this machine in parallel.
#   slurm:           utils/run_slurm.sh submits job arrays with sbatch and waits;
#                    set the partition / account below or in the environment.
# Select with:  export VOC_BACKEND=slurm   (or edit the default here)
cmd_backend=${VOC_BACKEND:-local}

case "${cmd_backend}" in
    local)
        feats_cmd="utils/run_local.sh"
        train_cmd="utils/run_local.sh"
        cuda_cmd="utils/run_local.sh"
        decode_cmd="utils/run_local.sh"
        ;;
    slurm)
        # export SLURM_PARTITION=gpu SLURM_ACCOUNT=myproject
        # export SBATCH_EXTRA_OPTS="--qos=normal"
        feats_cmd="utils/run_slurm.sh --mem 4G --time 4:00:00"
        train_cmd="utils/run_slurm.sh --mem 8G --time 12:00:00"
        cuda_cmd="utils/run_slurm.sh --mem 32G --time 7-00:00:00"
        decode_cmd="utils/run_slurm.sh --mem 8G --time 1-00:00:00"
        ;;
    *)
        echo "cmd.sh: unknown backend '${cmd_backend}' (local or slurm)" >&2
        return 1
        ;;
esac
