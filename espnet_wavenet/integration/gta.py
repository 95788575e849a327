"""Ground-truth-aligned (GTA) features from ESPnet teacher-forced TTS inference.

``tts_inference --use_teacher_forcing true`` writes one npy per utterance
(``denorm/feats.scp``). Their frame counts normally equal the natural features'
(ESPnet feeds the TTS model the features of the same audio), but a Tacotron2 with
``reduction_factor`` r > 1 drops the last ``T mod r`` frames. The vocoder trains
on ``frames * hop`` samples, so :func:`align_gta_feats` makes every GTA utterance
exactly as long as its natural features: missing tail frames are taken from the
natural features, extra frames are cut, and a difference larger than
``max_diff`` frames is an error naming the utterance (wrong audio or model).
"""

import logging
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np

from espnet_wavenet.data.scp import load_feats
from espnet_wavenet.data.datadir import read_dict as read_scp


def align_gta_feats(
    gta_scp: Union[str, Path],
    natural_scp: Union[str, Path],
    out_dir: Union[str, Path],
    max_diff: int = 8,
    wav_scp: Optional[Union[str, Path]] = None,
) -> Dict[str, int]:
    """Write GTA features matched in length to the natural ones.

    Writes ``<out_dir>/data/<uttid>.npy``, ``<out_dir>/feats.scp`` and
    ``<out_dir>/feats_shape`` (ESPnet shape file), and with ``wav_scp`` a
    ``<out_dir>/wav.scp`` of the same utterances (ESPnet wants equal key sets).
    Utterances without GTA features are left out with a warning. Returns counts
    of what was done.
    """
    gta, natural = read_scp(gta_scp), read_scp(natural_scp)
    out = Path(out_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    counts = dict(utterances=0, padded=0, trimmed=0, missing=0)
    missing = [u for u in natural if u not in gta]
    if missing:
        counts["missing"] = len(missing)
        logging.warning(
            "%d utterances have no GTA features (first: %s); they are left out",
            len(missing),
            missing[:3],
        )
    scp_lines, shape_lines = [], []
    for uttid, loc in natural.items():
        if uttid not in gta:
            continue
        nat = load_feats(loc, uttid)
        g = load_feats(gta[uttid], uttid)
        if g.shape[1] != nat.shape[1]:
            raise ValueError(
                f"{uttid}: GTA features have {g.shape[1]} dims, natural {nat.shape[1]}"
            )
        diff = nat.shape[0] - g.shape[0]
        if abs(diff) > max_diff:
            raise ValueError(
                f"{uttid}: GTA features have {g.shape[0]} frames, the natural ones "
                f"{nat.shape[0]}: more than {max_diff} apart (wrong audio or model?)"
            )
        if diff > 0:
            g = np.concatenate([g, nat[g.shape[0] :]])
            counts["padded"] += 1
        elif diff < 0:
            g = g[: nat.shape[0]]
            counts["trimmed"] += 1
        path = (out / "data" / f"{uttid}.npy").resolve()
        np.save(path, g)
        scp_lines.append(f"{uttid} {path}\n")
        shape_lines.append(f"{uttid} {g.shape[0]},{g.shape[1]}\n")
        counts["utterances"] += 1
    if not scp_lines:
        raise ValueError(f"no utterance of {natural_scp} has GTA features in {gta_scp}")
    (out / "feats.scp").write_text("".join(scp_lines), encoding="utf-8")
    if wav_scp is not None:
        wavs = read_scp(wav_scp)
        kept = [line.split(maxsplit=1)[0] for line in scp_lines]
        absent = [u for u in kept if u not in wavs]
        if absent:
            raise ValueError(f"{wav_scp}: no audio for {absent[:5]}")
        (out / "wav.scp").write_text("".join(f"{u} {wavs[u]}\n" for u in kept), encoding="utf-8")
    (out / "feats_shape").write_text("".join(shape_lines), encoding="utf-8")
    logging.info(
        "GTA features: %d utterances (%d padded with natural tail frames, %d trimmed)",
        counts["utterances"],
        counts["padded"],
        counts["trimmed"],
    )
    return counts
