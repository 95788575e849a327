#!/usr/bin/env bash
# Stage logic of every WaveNet vocoder recipe (egs/<corpus>/voc1/run.sh calls it).
#
#  -1 download the corpus (local/download.sh; skipped when --db_root holds it)
#   0 data preparation (local/data.sh) into data/<set> + validation
#   1 features: ESPnet LogMelFbank in --nj jobs -> dump/<set>/feats.scp
#   2 statistics: ESPnet collect_stats; feats_stats.npz of the training set
#   3 training with ESPnet's Trainer (GPU when --ngpu >= 1; rerun resumes)
#   4 decoding of the dev and eval sets in --nj jobs (the chosen checkpoint is
#     packed into <decode_dir>/model first: decoding and evaluation read it)
#   5 objective evaluation (python -m espnet_wavenet.bin.evaluate); the scores of
#     natural speech and Griffin-Lim, the same for every model, are kept in
#     dump/<set>/eval_cache and reused by later evaluations of the set
#   6 packing into exp/<tag>/pack (what WaveNetVocoder.from_pretrained and the
#     ESPnet TTS pairing read)
#   7 vocode ESPnet TTS output (scripts/tts_decode.sh, options via --tts_args)
#   8 GTA fine-tuning behind ESPnet TTS (scripts/gta_finetune.sh, --gta_args)
set -euo pipefail

log() {
    echo "$(date '+%Y-%m-%dT%H:%M:%S') (voc.sh:${BASH_LINENO[0]}) $*" >&2
}
SECONDS=0

# General
stage=-1
stop_stage=6
nj=4                    # parallel jobs of features, decoding and evaluation
decode_nj=              # default: --nj
ngpu=0                  # GPUs for training (0: CPU; >1: one process per GPU)
num_nodes=1             # nodes for training (>1: Slurm runs one task per node; on plain
                        # hosts run this stage on every host with --node_rank, --master_addr)
node_rank=0             # this host's rank (plain hosts; 0 is the one with --master_addr)
master_addr=            # host:port of node 0's rendezvous (plain hosts; e.g. node0:29500)
train_threads=          # intra-op threads of CPU training (default: all cores)
decode_ngpu=0           # GPUs per decoding job (the GPU generator is unverified: CPU by default)
python=python3
datadir=data
dumpdir=dump
expdir=exp

# Data
db_root=
train_set=train
dev_set=dev
eval_sets="eval"        # decoded and evaluated with the dev set
local_data_opts=
allow_resample=true     # audio at another rate is resampled to --fs in stage 1
use_sid=false           # speaker global conditioning from utt2spk

# Features (ESPnet tts1 definitions)
fs=22050
n_fft=1024
n_shift=256
win_length=null
window=hann
fmin=80
fmax=7600
n_mels=80

# Training
train_config=conf/train.yaml
tag=                    # default: the name of the training config
train_args=
stats_args=
model_args=             # model options for stages 2 and 3 (e.g. --wavenet_conf upsample_scales=[3,4,5,5])
train_budget_samples=   # train on this many samples (sets max_epoch; budgeted comparisons)

# Decoding and evaluation
decode_config=conf/decode.yaml
decode_args=
inference_model=valid.loss.best.pth
pretrained_model=       # a packed model dir: stages 4-5 decode and evaluate it (no training)
eval_args=
results_md=             # stage 5 appends a row per set to this table (e.g. RESULTS.md)

# ESPnet TTS pairing (stages 7, 8)
tts_args=
gta_args=

help_message=$(cat << EOF2
Usage: $0 [options]   (run from egs/<corpus>/voc1 through run.sh)
  --stage / --stop_stage N   stages to run (-1 .. 8; default ${stage} .. ${stop_stage})
  --nj N                     parallel feature / decoding / evaluation jobs (${nj})
  --ngpu N / --num_nodes N   training GPUs per node / nodes (${ngpu} / ${num_nodes})
  --node_rank R --master_addr HOST:PORT   multi-node training on plain hosts: run stage 3
                             on every host (same exp dir on a shared disk), R = 0 .. N-1
  --decode_ngpu N            GPUs per decoding job (${decode_ngpu}: the GPU generator is unverified)
  --train_threads N          intra-op threads of CPU training (default: all cores)
  --train_config YAML        training config (${train_config})
  --decode_config YAML       decoding config (${decode_config})
  --tag NAME                 experiment name: exp/<tag> (default: config name)
  --db_root DIR              corpus location (downloaded there by stage -1)
  --fs --n_fft --n_shift --win_length --window --fmin --fmax --n_mels   features
  --train_set / --dev_set / --eval_sets   data set names
  --use_sid true|false       speaker conditioning (utt2sid from utt2spk)
  --train_args / --decode_args / --eval_args / --stats_args   extra options
  --model_args               model options given to stages 2 and 3
  --train_budget_samples N   train on N samples (e.g. 1.05e8), whole epochs
  --results_md FILE          stage 5 appends its rows (cost and metrics) to FILE
  --inference_model FILE     checkpoint to decode/pack (${inference_model})
  --pretrained_model DIR     decode and evaluate this packed model in stages 4-5 (exp/<tag>,
                             tag default: pretrained_<dir name>); stages 3 and 6 skip it
  --tts_args / --gta_args    options of scripts/tts_decode.sh / gta_finetune.sh
EOF2
)

log "$0 $*"
. utils/parse_options.sh
if [ $# -ne 0 ]; then
    log "unexpected arguments: $*"; echo "${help_message}" >&2; exit 2
fi
. ./path.sh
. ./cmd.sh

decode_nj=${decode_nj:-${nj}}
if [ -z "${tag}" ] && [ -n "${pretrained_model}" ]; then
    tag=pretrained_$(basename "${pretrained_model}")
elif [ -z "${tag}" ]; then
    tag=$(basename "${train_config}" .yaml)
fi
exp=${expdir}/${tag}
stats_dir=${expdir}/stats
decode_dir=${exp}/decode_${inference_model%.pth}
model_dir=${decode_dir}/model   # the packed model stages 4-5 use
pack_dir=${exp}/pack            # the one stages 7-8 use
if [ -n "${pretrained_model}" ]; then
    [ -f "${pretrained_model}/config.yaml" ] || { log "ERROR: ${pretrained_model}/config.yaml not found (--pretrained_model wants a packed model dir)"; exit 1; }
    decode_dir=${exp}/decode
    model_dir=${pretrained_model}
    pack_dir=${pretrained_model}
fi
test_sets="${dev_set} ${eval_sets}"
all_sets="${train_set} ${test_sets}"

# The recipe's feature options define the features (stage 1 writes them to
# ${dumpdir}/feats_conf.yaml); a training config whose feats_conf differs is an error.
check_feats_conf() {
    [ -f "${dumpdir}/feats_conf.yaml" ] || { log "ERROR: ${dumpdir}/feats_conf.yaml not found: run stage 1"; exit 1; }
    ${python} -m espnet_wavenet.bin.check_feats_conf --config "${train_config}" \
        --recipe_feats_conf "${dumpdir}/feats_conf.yaml" || exit 1
}

data_opts() {  # data_opts <train|valid> <set>
    echo "--$1_data_path_and_name_and_type ${dumpdir}/$2/wav.scp,speech,sound" \
         "--$1_data_path_and_name_and_type ${dumpdir}/$2/feats.scp,feats,kaldi_ark"
    if "${use_sid}"; then
        echo "--$1_data_path_and_name_and_type ${dumpdir}/$2/utt2sid,sids,text_int"
    fi
}

extract_set() {  # extract_set <set>: stage 1 of one data set, in ${nj} jobs
    local dset=$1 src dst split seg_opt wav_scp f j
    src=${datadir}/${dset}
    dst=${dumpdir}/${dset}
    split=${dst}/split${nj}
    rm -rf "${split}"
    if [ -f "${src}/segments" ]; then
        utils/split_scp.sh "${src}/segments" "${nj}" "${split}/JOB/segments"
        seg_opt="--segments ${split}/JOB/segments"; wav_scp=${src}/wav.scp
    else
        utils/split_scp.sh "${src}/wav.scp" "${nj}" "${split}/JOB/wav.scp"
        seg_opt=""; wav_scp=${split}/JOB/wav.scp
    fi
    # shellcheck disable=SC2086
    ${feats_cmd} --num_threads 1 JOB=1:"${nj}" "${dst}/log/feats.JOB.log" \
        ${python} -m espnet_wavenet.bin.extract_feats --config "${dumpdir}/feats_conf.yaml" \
            --wav_scp "${wav_scp}" ${seg_opt} --out_dir "${split}/JOB" || return 1
    for f in feats.scp wav.scp; do
        for (( j = 1; j <= nj; j++ )); do cat "${split}/${j}/${f}"; done > "${dst}/${f}"
    done
    for f in text utt2spk; do
        utils/filter_scp.sh "${dst}/feats.scp" "${src}/${f}" > "${dst}/${f}"
    done
    log "${dst}: $(wc -l < "${dst}/feats.scp") of $(wc -l < "${src}/utt2spk") utterances"
}

if [ ${stage} -le -1 ] && [ ${stop_stage} -ge -1 ]; then
    log "Stage -1: download"
    if [ -x local/download.sh ]; then
        local/download.sh --db_root "${db_root}"
    else
        log "no local/download.sh: the corpus is embedded or prepared by hand"
    fi
fi

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
    log "Stage 0: data preparation -> ${datadir}/{${all_sets// /,}}"
    # shellcheck disable=SC2086
    local/data.sh --db_root "${db_root}" --datadir "${datadir}" ${local_data_opts}
    for dset in ${all_sets}; do
        ${python} -m espnet_wavenet.bin.validate_data_dir --fs "${fs}" \
            --allow_resample "${allow_resample}" "${datadir}/${dset}"
    done
fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    log "Stage 1: features (ESPnet LogMelFbank, fs=${fs}, n_fft=${n_fft}, n_shift=${n_shift}, n_mels=${n_mels}, ${fmin}-${fmax} Hz) in ${nj} jobs"
    mkdir -p "${dumpdir}"
    cat > "${dumpdir}/feats_conf.yaml" << EOF2
feats_conf:
    fs: ${fs}
    n_fft: ${n_fft}
    win_length: ${win_length}
    hop_length: ${n_shift}
    window: ${window}
    n_mels: ${n_mels}
    fmin: ${fmin}
    fmax: ${fmax}
    htk: false
    log_base: 10.0
EOF2
    check_feats_conf
    # All sets at once: the jobs of a set run in parallel, and the sets too.
    pids=()
    for dset in ${all_sets}; do
        extract_set "${dset}" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "${pid}" || { log "ERROR: feature extraction failed (see ${dumpdir}/<set>/log/feats.*.log)"; exit 1; }
    done
    if "${use_sid}"; then
        # Speaker ids as ESPnet's tts.sh numbers them: 0 is kept for unknown speakers.
        { echo "<unk> 0"; cut -d " " -f 2 "${dumpdir}/${train_set}/utt2spk" | sort -u | awk '{ print $1, NR }'; } \
            > "${dumpdir}/${train_set}/spk2sid"
        for dset in ${all_sets}; do
            awk 'NR == FNR { sid[$1] = $2; next } { print $1, (($2 in sid) ? sid[$2] : 0) }' \
                "${dumpdir}/${train_set}/spk2sid" "${dumpdir}/${dset}/utt2spk" > "${dumpdir}/${dset}/utt2sid"
        done
        log "${dumpdir}/${train_set}/spk2sid: $(( $(wc -l < "${dumpdir}/${train_set}/spk2sid") - 1 )) speakers"
    fi
fi

sid_opts=""
if "${use_sid}"; then
    sid_opts="--wavenet_conf n_speakers=$(wc -l < "${dumpdir}/${train_set}/spk2sid")"
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    log "Stage 2: statistics of ${train_set} -> ${stats_dir}/train/feats_stats.npz"
    check_feats_conf
    # shellcheck disable=SC2046,SC2086
    ${train_cmd} "${stats_dir}/stats.log" \
        ${python} -m espnet_wavenet.bin.train \
            --config "${train_config}" --collect_stats true --ngpu 0 \
            --use_tensorboard false --use_matplotlib false --num_workers 0 \
            $(data_opts train "${train_set}") $(data_opts valid "${dev_set}") \
            --train_shape_file "${dumpdir}/${train_set}/feats.scp" \
            --valid_shape_file "${dumpdir}/${dev_set}/feats.scp" \
            --output_dir "${stats_dir}" ${sid_opts} ${model_args} ${stats_args}
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ] && [ -n "${pretrained_model}" ]; then
    log "Stage 3: skipped (--pretrained_model ${pretrained_model})"
elif [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
    log "Stage 3: training ${exp} (${train_config}, ngpu=${ngpu}, num_nodes=${num_nodes})"
    check_feats_conf
    mkdir -p "${exp}"
    dist_opts=""
    launcher="${python}"
    train_log=${exp}/train.log
    if [ "${num_nodes}" -gt 1 ] && [ "${cmd_backend}" = slurm ]; then
        # One task per node (srun); ranks come from Slurm.
        dist_opts="--multiprocessing_distributed true --dist_launcher slurm"
        dist_opts+=" --dist_init_method file://$(pwd)/${exp}/.dist_init_$$"
        # ESPnet's default backend is nccl, which needs GPUs: gloo on CPU nodes
        dist_opts+=" --dist_backend $([ "${ngpu}" -gt 0 ] && echo nccl || echo gloo)"
    elif [ "${num_nodes}" -gt 1 ]; then
        # Plain hosts: torchrun on each, meeting at node 0 (c10d rendezvous).
        [ -n "${master_addr}" ] || { log "ERROR: --num_nodes ${num_nodes} without Slurm needs --master_addr host:port"; exit 1; }
        nproc=$(( ngpu > 0 ? ngpu : 1 ))
        launcher="${python} -m torch.distributed.run --nnodes ${num_nodes} --node_rank ${node_rank}"
        launcher+=" --nproc_per_node ${nproc} --rdzv_backend c10d --rdzv_endpoint ${master_addr}"
        launcher+=" --rdzv_id $(basename "${exp}")"
        dist_opts="--dist_backend $([ "${ngpu}" -gt 0 ] && echo nccl || echo gloo)"
        [ "${node_rank}" -gt 0 ] && train_log=${exp}/train.node${node_rank}.log
    elif [ "${ngpu}" -gt 1 ]; then
        dist_opts="--multiprocessing_distributed true"
    fi
    # Keep the log of an earlier (resumed) run.
    if [ -f "${train_log}" ]; then
        n=1; while [ -f "${train_log}.${n}" ]; do n=$(( n + 1 )); done
        mv "${train_log}" "${train_log}.${n}"
    fi
    log "log: ${train_log} (rerunning this stage resumes from ${exp}/checkpoint.pth)"
    # path.sh gives data jobs one thread each; one CPU training process takes
    # every core (one thread ran it at half the speed on 2 cores).
    budget_opts=""
    [ -n "${train_budget_samples}" ] && budget_opts="--train_budget_samples ${train_budget_samples}"
    # GPU jobs get cmd.sh's GPU resources; CPU training its CPU ones (a Slurm
    # CPU node has no use for the GPU job's memory and week-long limit)
    thread_opts="" job_cmd=${cuda_cmd}
    if [ "${ngpu}" -eq 0 ]; then
        thread_opts="--num_threads ${train_threads:-$(env -u OMP_NUM_THREADS nproc)}"
        job_cmd=${train_cmd}
    fi
    # shellcheck disable=SC2046,SC2086
    ${job_cmd} --gpu "${ngpu}" --num_nodes "${num_nodes}" ${thread_opts} "${train_log}" \
        ${launcher} -m espnet_wavenet.bin.train \
            --config "${train_config}" --ngpu "${ngpu}" --resume true \
            --normalize_conf "stats_file=${stats_dir}/train/feats_stats.npz" \
            $(data_opts train "${train_set}") $(data_opts valid "${dev_set}") \
            --train_shape_file "${stats_dir}/train/feats_shape" \
            --valid_shape_file "${stats_dir}/valid/feats_shape" \
            --output_dir "${exp}" ${dist_opts} ${sid_opts} ${model_args} \
            ${budget_opts} ${train_args}
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
    if [ -n "${pretrained_model}" ]; then
        log "Stage 4: decoding {${test_sets// /,}} with ${pretrained_model} -> ${decode_dir}"
    else
        log "Stage 4: decoding {${test_sets// /,}} with ${exp}/${inference_model} -> ${decode_dir}"
        [ -e "${exp}/${inference_model}" ] || { log "ERROR: ${exp}/${inference_model} not found: did stage 3 finish?"; exit 1; }
        ${python} -m espnet_wavenet.bin.pack --config "${exp}/config.yaml" \
            --model_file "${exp}/${inference_model}" --out_dir "${model_dir}"
    fi
    sid_decode=""
    for dset in ${test_sets}; do
        out=${decode_dir}/${dset}
        _nj=$(( decode_nj < $(wc -l < "${dumpdir}/${dset}/feats.scp") ? decode_nj : $(wc -l < "${dumpdir}/${dset}/feats.scp") ))
        utils/split_scp.sh "${dumpdir}/${dset}/feats.scp" "${_nj}" "${out}/split${_nj}/JOB/feats.scp"
        "${use_sid}" && sid_decode="--utt2sid ${dumpdir}/${dset}/utt2sid"
        # shellcheck disable=SC2086
        ${decode_cmd} --gpu "${decode_ngpu}" --num_threads 1 JOB=1:"${_nj}" "${out}/log/decode.JOB.log" \
            ${python} -m espnet_wavenet.bin.decode \
                --model_dir "${model_dir}" --feats_scp "${out}/split${_nj}/JOB/feats.scp" \
                --out_dir "${out}" --job_tag JOB --decode_config "${decode_config}" \
                --ngpu "${decode_ngpu}" ${sid_decode} ${decode_args}
        ${python} -m espnet_wavenet.bin.decode --out_dir "${out}" --merge_jobs "${_nj}"
        grep -h "RTF" "${out}"/log/decode.*.log | grep -v "^#" | sed "s|^|    ${dset}: |" >&2 || true
    done
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
    log "Stage 5: evaluation against natural speech -> ${decode_dir}/<set>/eval"
    # the training curves and cost: from exp/<tag>, or the packed model's provenance
    exp_opt="--exp_dir ${exp}"
    [ -z "${pretrained_model}" ] || exp_opt=""
    # the sets are scored side by side, each with its share of --nj: their start-ups
    # overlap and no job idles at the end of a set
    read -r -a sets <<< "${test_sets}"
    eval_nj=$(( nj / ${#sets[@]} )); [ "${eval_nj}" -ge 1 ] || eval_nj=1
    pids=()
    for dset in "${sets[@]}"; do
        sid_eval=""
        "${use_sid}" && sid_eval="--utt2sid ${dumpdir}/${dset}/utt2sid"
        mkdir -p "${decode_dir}/${dset}/eval"
        log "log: ${decode_dir}/${dset}/eval/evaluate.log (${eval_nj} jobs)"
        # shellcheck disable=SC2086
        ${python} -m espnet_wavenet.bin.evaluate \
            --ref_wav_scp "${dumpdir}/${dset}/wav.scp" \
            --gen_wav_scp "${decode_dir}/${dset}/wav.scp" \
            --feats_scp "${dumpdir}/${dset}/feats.scp" \
            --model_dir "${model_dir}" ${exp_opt} \
            --decode_dir "${decode_dir}/${dset}" --out_dir "${decode_dir}/${dset}/eval" \
            --cache_dir "${dumpdir}/${dset}/eval_cache" --nj "${eval_nj}" ${sid_eval} ${eval_args} \
            > "${decode_dir}/${dset}/eval/evaluate.log" 2>&1 &
        pids+=($!)
    done
    failed=""
    for i in "${!sets[@]}"; do
        wait "${pids[${i}]}" || failed+=" ${decode_dir}/${sets[${i}]}/eval/evaluate.log"
    done
    for dset in "${sets[@]}"; do
        for f in "${decode_dir}/${dset}"/eval/*.md; do
            [ -f "${f}" ] && { echo "== ${f}" >&2; cat "${f}" >&2; }
        done
    done
    if [ -n "${failed}" ]; then
        for f in ${failed}; do echo "== ${f}" >&2; tail -n 20 "${f}" >&2; done
        log "Error: evaluation failed, see${failed}"
        exit 1
    fi
    if [ -n "${results_md}" ]; then
        eval_dirs=""
        for dset in ${test_sets}; do eval_dirs+=" --eval_dir ${dset}=${decode_dir}/${dset}/eval"; done
        name="${tag} (${inference_model})" cost_opt="--exp_dir ${exp}"
        [ -z "${pretrained_model}" ] || { name=${tag}; cost_opt="--model_dir ${model_dir}"; }
        # shellcheck disable=SC2086
        ${python} -m espnet_wavenet.bin.results_row --results "${results_md}" \
            --name "${name}" ${cost_opt} ${eval_dirs}
    fi
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ] && [ -n "${pretrained_model}" ]; then
    log "Stage 6: skipped (--pretrained_model: already packed)"
elif [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    log "Stage 6: packing ${exp}/${inference_model} -> ${exp}/pack"
    ${python} -m espnet_wavenet.bin.pack --config "${exp}/config.yaml" \
        --model_file "${exp}/${inference_model}" --out_dir "${exp}/pack"
    log "packed: WaveNetVocoder.from_pretrained('${exp}/pack'); files: $(ls "${exp}/pack" | tr '\n' ' ')"
fi

if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ]; then
    log "Stage 7: vocoding ESPnet TTS output"
    if [ -x scripts/tts_decode.sh ]; then
        # shellcheck disable=SC2086
        scripts/tts_decode.sh --python "${python}" --model_dir "${pack_dir}" ${tts_args}
    else
        log "scripts/tts_decode.sh not found; skipped"
    fi
fi

if [ ${stage} -le 8 ] && [ ${stop_stage} -ge 8 ]; then
    log "Stage 8: GTA fine-tuning behind ESPnet TTS"
    if [ -x scripts/gta_finetune.sh ]; then
        # shellcheck disable=SC2086
        scripts/gta_finetune.sh --python "${python}" --vocoder_dir "${pack_dir}" \
            --train_config "${train_config}" --nj "${nj}" --ngpu "${ngpu}" \
            --train_dump "${dumpdir}/${train_set}" --train_text "${datadir}/${train_set}/text" \
            --valid_dump "${dumpdir}/${dev_set}" --valid_text "${datadir}/${dev_set}/text" \
            --outdir "${exp}_gta" ${gta_args}
    else
        log "scripts/gta_finetune.sh not found; skipped"
    fi
fi

log "Successfully finished stages ${stage}..${stop_stage} [elapsed=${SECONDS}s]"
