#!/usr/bin/env bash
# Vocode the features an ESPnet tts1 experiment generated, with a packed WaveNet.
#
# ESPnet's tts_inference writes <decode_dir>/denorm/feats.scp (npy files,
# denormalized log-mel, what the vocoder takes); a TTS model without a normalizer
# writes norm/ only, which is then raw log-mel. The wav files go to <out_dir>/wav
# with <out_dir>/wav.scp.
#
# Usage:
#   scripts/tts_decode.sh --model_dir exp/voc_pack \
#       --decode_dir exp/tts_train/decode_train.loss.ave/eval --out_dir exp/voc_tts/eval
#   (or --feats_scp <scp> instead of --decode_dir)
# Extra options of espnet_wavenet.bin.decode: --decode_args "...".
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') ($(basename "$0")) $*" >&2; }

python=python3
model_dir=
decode_dir=
feats_scp=
out_dir=
decode_args=
evaluate=true     # DNSMOS of the vocoded speech and of Griffin-Lim on the same features
eval_args=

help_message="Usage: $0 --model_dir <packed vocoder> (--decode_dir <tts decode dir> | \
--feats_scp <scp>) --out_dir <dir> [--decode_args '...'] [--evaluate true|false] \
[--eval_args '...'] [--python python3]"

. "$(dirname "$0")/../utils/parse_options.sh"
if [ $# -ne 0 ]; then
    echo "$0: unexpected arguments: $*" >&2; echo "${help_message}" >&2; exit 1
fi

[ -n "${model_dir}" ] || { echo "$0: --model_dir is required" >&2; exit 1; }
[ -f "${model_dir}/config.yaml" ] || { echo "$0: ${model_dir}: not a packed vocoder (no config.yaml)" >&2; exit 1; }
if [ -z "${feats_scp}" ]; then
    [ -n "${decode_dir}" ] || { echo "$0: --decode_dir or --feats_scp is required" >&2; exit 1; }
    if [ -f "${decode_dir}/denorm/feats.scp" ]; then
        feats_scp="${decode_dir}/denorm/feats.scp"
    elif [ -f "${decode_dir}/norm/feats.scp" ]; then
        log "${decode_dir} has no denorm/ (TTS without normalizer): using norm/feats.scp"
        feats_scp="${decode_dir}/norm/feats.scp"
    else
        echo "$0: ${decode_dir}: no denorm/feats.scp or norm/feats.scp" >&2; exit 1
    fi
fi
[ -f "${feats_scp}" ] || { echo "$0: ${feats_scp}: no such file" >&2; exit 1; }
[ -n "${out_dir}" ] || out_dir="${decode_dir:-$(dirname "${feats_scp}")}/wavenet"
mkdir -p "${out_dir}"

log "vocoding ${feats_scp} with ${model_dir} -> ${out_dir}"
if ${python} -c "import importlib.util, sys; \
sys.exit(importlib.util.find_spec('espnet_wavenet.bin.decode') is None)" 2>/dev/null; then
    # shellcheck disable=SC2086
    ${python} -m espnet_wavenet.bin.decode \
        --model_dir "${model_dir}" --feats_scp "${feats_scp}" --out_dir "${out_dir}" ${decode_args}
else
    # Fallback while espnet_wavenet.bin.decode is absent: the vocoder's own API.
    log "espnet_wavenet.bin.decode not found: using WaveNetVocoder directly (--decode_args ignored)"
    ${python} - "${model_dir}" "${feats_scp}" "${out_dir}" <<'EOF'
import logging, os, sys
from pathlib import Path
import numpy as np, soundfile as sf, torch
from espnet_wavenet.integration.gta import load_feats, read_scp
from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
model_dir, feats_scp, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
(out / "wav").mkdir(parents=True, exist_ok=True)
vocoder = WaveNetVocoder.from_pretrained(model_dir)
lines = []
for uttid, loc in read_scp(feats_scp).items():
    path = (out / "wav" / f"{uttid}.wav").resolve()
    if not path.exists():  # a rerun skips finished utterances
        wav = vocoder(torch.from_numpy(load_feats(loc, uttid))).numpy()
        tmp = path.with_suffix(".tmp.wav")
        sf.write(str(tmp), np.clip(wav, -1.0, 1.0), vocoder.fs, subtype="PCM_16")
        os.replace(tmp, path)
        logging.info("%s: %d samples", uttid, len(wav))
    lines.append(f"{uttid} {path}\n")
(out / "wav.scp").write_text("".join(lines))
EOF
fi
if [ "${evaluate}" = true ]; then
    # No natural recording exists for TTS output: non-intrusive DNSMOS only, of the
    # WaveNet output and of Griffin-Lim on the same generated features.
    log "evaluating ${out_dir}/wav.scp (DNSMOS) -> ${out_dir}/eval"
    # shellcheck disable=SC2086
    ${python} -m espnet_wavenet.bin.evaluate --gen_wav_scp "${out_dir}/wav.scp" \
        --feats_scp "${feats_scp}" --model_dir "${model_dir}" --nll false \
        --out_dir "${out_dir}/eval" ${eval_args}
fi
log "done: ${out_dir}"
