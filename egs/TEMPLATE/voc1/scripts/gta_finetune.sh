#!/usr/bin/env bash
# GTA fine-tuning of a packed WaveNet vocoder behind an ESPnet TTS model.
#
#  1. ESPnet's tts_inference with --use_teacher_forcing true over the vocoder's
#     training (and validation) set: ground-truth-aligned (GTA) features, i.e. what
#     the TTS model predicts when it is fed the natural features of the same audio.
#  2. Match every GTA utterance's frame count to its natural features (a Tacotron2
#     with reduction_factor r drops up to r-1 tail frames), so frames x hop = audio.
#  3. Fine-tune the vocoder on (audio, GTA features) from its packed weights, with
#     its own normalization statistics (python -m espnet_wavenet.bin.train
#     --init_param <pack>/model.pth::wavenet).
#  4. Pack the fine-tuned vocoder.
#
# Usage (paths are examples):
#   scripts/gta_finetune.sh --tts_config exp/tts_train/config.yaml \
#       --tts_model exp/tts_train/train.loss.ave.pth --vocoder_dir exp/voc_pack \
#       --train_config conf/tiny.yaml \
#       --train_dump dump/train --train_text data/train/text \
#       --valid_dump dump/dev --valid_text data/dev/text --outdir exp/voc_gta
# A dump dir is what espnet_wavenet.bin.extract_feats wrote (wav.scp, feats.scp).
# FastSpeech2 needs its durations under teacher forcing (the files of its tts1
# recipe, e.g. data/<set>/durations): --train_durations <f> --valid_durations <f>.
# Other tts_inference options: --inference_args "...".
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') ($(basename "$0")) $*" >&2; }

python=python3
stage=1
stop_stage=4
nj=1
ngpu=0
tts_config=
tts_model=
vocoder_dir=
train_config=
train_dump=
train_text=
valid_dump=
valid_text=
outdir=
inference_args=
train_durations=
valid_durations=
train_args=
max_diff=8
model_file_name=latest.pth

help_message="Usage: $0 --tts_config <yaml> --tts_model <pth> --vocoder_dir <pack> \
--train_config <yaml> --train_dump <dir> --train_text <text> --valid_dump <dir> \
--valid_text <text> --outdir <dir> [--stage 1] [--stop_stage 4] [--nj 1] [--ngpu 0] \
[--train_durations <f> --valid_durations <f>] [--inference_args '...'] [--train_args '...'] [--max_diff 8] [--python python3]"

. "$(dirname "$0")/../utils/parse_options.sh"
if [ $# -ne 0 ]; then
    echo "$0: unexpected arguments: $*" >&2; echo "${help_message}" >&2; exit 1
fi

for v in tts_config tts_model vocoder_dir train_config train_dump train_text \
         valid_dump valid_text outdir; do
    [ -n "${!v}" ] || { echo "$0: --${v} is required" >&2; echo "${help_message}" >&2; exit 1; }
done
for f in "${tts_config}" "${tts_model}" "${vocoder_dir}/config.yaml" "${vocoder_dir}/model.pth" \
         "${train_config}" "${train_dump}/wav.scp" "${train_dump}/feats.scp" "${train_text}" \
         "${valid_dump}/wav.scp" "${valid_dump}/feats.scp" "${valid_text}"; do
    [ -f "${f}" ] || { echo "$0: ${f}: no such file" >&2; exit 1; }
done
mkdir -p "${outdir}"

# Stage 1: teacher-forced inference (features only: no vocoder, no Griffin-Lim),
# training and validation sets in one run (ESPnet loads once).
if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
    dir="${outdir}/tts_gta"
    rm -rf "${dir}"; mkdir -p "${dir}/all" "${dir}/logdir"
    for set in train valid; do
        dump_var="${set}_dump"; text_var="${set}_text"
        dump="${!dump_var}"; text="${!text_var}"
        mkdir -p "${dir}/${set}"
        # Only utterances with both text and audio.
        awk 'NR==FNR {t[$1]=1; next} ($1 in t) {print $1}' "${text}" "${dump}/wav.scp" \
            > "${dir}/${set}/keys"
        [ -s "${dir}/${set}/keys" ] || { echo "$0: no utterance of ${dump}/wav.scp has text in ${text}" >&2; exit 1; }
        cat "${text}" >> "${dir}/all/text"
        cat "${dump}/wav.scp" >> "${dir}/all/wav.scp"
        if [ -n "${train_durations}${valid_durations}" ]; then
            dur_var="${set}_durations"
            [ -f "${!dur_var}" ] || { echo "$0: --${set}_durations: no such file '${!dur_var}'" >&2; exit 1; }
            cat "${!dur_var}" >> "${dir}/all/durations"
        fi
    done
    cat "${dir}/train/keys" "${dir}/valid/keys" > "${dir}/all/keys"
    dup=$(sort "${dir}/all/keys" | uniq -d | head -n 3)
    [ -z "${dup}" ] || { echo "$0: utterance ids in both sets: ${dup}" >&2; exit 1; }
    n=$(wc -l < "${dir}/all/keys")
    _nj=$(( nj < n ? nj : n ))
    data_opts=(--data_path_and_name_and_type "${dir}/all/text,text,text"
               --data_path_and_name_and_type "${dir}/all/wav.scp,speech,sound")
    [ -f "${dir}/all/durations" ] && \
        data_opts+=(--data_path_and_name_and_type "${dir}/all/durations,durations,text_int")
    log "stage 1: teacher-forced inference over ${n} utterances (${_nj} jobs)"
    split -n "l/${_nj}" -d -a 3 "${dir}/all/keys" "${dir}/logdir/keys."
    pids=()
    for keys in "${dir}"/logdir/keys.*; do
        job="${keys##*.}"
        # shellcheck disable=SC2086
        ${python} -m espnet_wavenet.bin.tts_inference \
            --ngpu "${ngpu}" \
            --num_workers 0 \
            --skip_vocoder true \
            --use_teacher_forcing true \
            --train_config "${tts_config}" \
            --model_file "${tts_model}" \
            --key_file "${keys}" \
            "${data_opts[@]}" \
            --output_dir "${dir}/logdir/output.${job}" \
            ${inference_args} > "${dir}/logdir/tts_inference.${job}.log" 2>&1 &
        pids+=($!)
    done
    failed=0
    for pid in "${pids[@]}"; do wait "${pid}" || failed=1; done
    if [ "${failed}" -ne 0 ]; then
        echo "$0: teacher-forced inference failed; see ${dir}/logdir/tts_inference.*.log" >&2
        tail -n 20 "${dir}"/logdir/tts_inference.*.log >&2 || true
        exit 1
    fi
    # A TTS model without a normalizer writes norm/ only (its output is raw).
    for job_dir in "${dir}"/logdir/output.*; do
        if [ -f "${job_dir}/denorm/feats.scp" ]; then
            cat "${job_dir}/denorm/feats.scp"
        else
            cat "${job_dir}/norm/feats.scp"
        fi
    done > "${dir}/all/feats.scp"
    for set in train valid; do
        awk 'NR==FNR {k[$1]=1; next} ($1 in k)' "${dir}/${set}/keys" "${dir}/all/feats.scp" \
            > "${dir}/${set}/feats.scp"
        log "stage 1: ${set}: $(wc -l < "${dir}/${set}/feats.scp") GTA utterances in ${dir}/${set}/feats.scp"
    done
fi

# Stage 2: GTA frame counts = natural frame counts (= audio / hop).
if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
    for set in train valid; do
        dump_var="${set}_dump"; dump="${!dump_var}"
        log "stage 2: aligning ${set} GTA features to ${dump}/feats.scp"
        ${python} -m espnet_wavenet.bin.align_gta \
            --gta_scp "${outdir}/tts_gta/${set}/feats.scp" \
            --natural_scp "${dump}/feats.scp" \
            --wav_scp "${dump}/wav.scp" \
            --max_diff "${max_diff}" \
            --out_dir "${outdir}/gta/${set}"
    done
fi

# Stage 3: fine-tune from the packed weights, with the pack's own statistics.
if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ]; then
    norm_opts=(--normalize none)
    if [ -f "${vocoder_dir}/feats_stats.npz" ]; then
        norm_opts=(--normalize global_mvn --normalize_conf "stats_file=${vocoder_dir}/feats_stats.npz")
    fi
    # The training config must describe the packed network, and the packed weights
    # must load with torch.load(weights_only=True): ESPnet's --init_param loads
    # them with a full unpickler, so only a file proven safe is handed to it.
    ${python} - "${vocoder_dir}/config.yaml" "${train_config}" <<'EOF'
import os, sys, yaml
pack, train = (yaml.safe_load(open(p, encoding="utf-8")) or {} for p in sys.argv[1:3])
from espnet_wavenet.features import check_feats_conf
from espnet_wavenet.vocoder.wavenet_vocoder import load_weights
load_weights(os.path.join(os.path.dirname(sys.argv[1]), "model.pth"))
bad = [k for k in ("wavenet_conf", "distribution", "distribution_conf")
       if (pack.get(k) or None) != (train.get(k) or None)]
if check_feats_conf(pack.get("feats_conf")) != check_feats_conf(train.get("feats_conf")):
    bad.append("feats_conf")
if bad:
    sys.exit(f"{sys.argv[2]} differs from the packed vocoder {sys.argv[1]} in {bad}")
EOF
    log "stage 3: fine-tuning ${vocoder_dir} on GTA features -> ${outdir}/train"
    # shellcheck disable=SC2086
    ${python} -m espnet_wavenet.bin.train \
        --config "${train_config}" \
        --ngpu "${ngpu}" \
        --use_tensorboard false \
        "${norm_opts[@]}" \
        --init_param "${vocoder_dir}/model.pth::wavenet" \
        --train_data_path_and_name_and_type "${outdir}/gta/train/wav.scp,speech,sound" \
        --train_data_path_and_name_and_type "${outdir}/gta/train/feats.scp,feats,npy" \
        --valid_data_path_and_name_and_type "${outdir}/gta/valid/wav.scp,speech,sound" \
        --valid_data_path_and_name_and_type "${outdir}/gta/valid/feats.scp,feats,npy" \
        --train_shape_file "${outdir}/gta/train/feats_shape" \
        --valid_shape_file "${outdir}/gta/valid/feats_shape" \
        --output_dir "${outdir}/train" \
        ${train_args}
fi

# Stage 4: pack the fine-tuned vocoder.
if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ]; then
    log "stage 4: packing ${outdir}/train/${model_file_name} -> ${outdir}/pack"
    stats_opts=()
    [ -f "${vocoder_dir}/feats_stats.npz" ] && stats_opts=(--stats_file "${vocoder_dir}/feats_stats.npz")
    ${python} -m espnet_wavenet.bin.pack \
        --config "${outdir}/train/config.yaml" \
        --model_file "${outdir}/train/${model_file_name}" \
        "${stats_opts[@]}" \
        --out_dir "${outdir}/pack"
fi
log "done: ${outdir}"
