"""Report files: per-utterance CSV, summary JSON and Markdown, decoding RTF."""

import csv
import glob
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from espnet_wavenet.evaluation.evaluator import METRICS
from espnet_wavenet.evaluation.stats import mean_ci

PathLike = Union[str, Path]
CSV_FIELDS = ("utt", "system", "duration_s") + tuple(METRICS)


def write_csv(path: PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """One row per (utterance, system); empty cells for metrics that do not apply."""
    path = Path(path)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _cell(r.get(k)) for k in CSV_FIELDS})
    return path


def read_csv(path: PathLike) -> List[Dict[str, Any]]:
    """Rows of :func:`write_csv` with metric cells as floats (NaN when empty)."""
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            out: Dict[str, Any] = dict(utt=r["utt"], system=r["system"])
            for k in CSV_FIELDS[2:]:
                out[k] = float(r[k]) if r.get(k) not in (None, "") else math.nan
            rows.append(out)
    return rows


def _cell(v: Any) -> Any:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.6g}"
    return "" if v is None else v


def summarize(rows: Sequence[Mapping[str, Any]]) -> Dict[str, Dict[str, Dict[str, float]]]:
    """{system: {metric: {mean, ci95, std, n}}} over utterances (NaNs skipped)."""
    systems = list(dict.fromkeys(str(r["system"]) for r in rows))
    out: Dict[str, Dict[str, Dict[str, float]]] = {}
    for s in systems:
        mine = [r for r in rows if r["system"] == s]
        out[s] = {}
        for m in METRICS:
            stat = mean_ci(float(r[m]) for r in mine if r.get(m) is not None)
            if stat["n"] > 0:
                out[s][m] = stat
    return out


def _load_json(fn: str) -> Optional[Dict[str, Any]]:
    try:
        with open(fn, encoding="utf-8") as f:
            d = json.load(f)
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        return d
    except (OSError, ValueError) as e:
        logging.warning("%s: unreadable decode stats (%s); skipped", fn, e)
        return None


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_decode_stats(decode_dir: Optional[PathLike]) -> Optional[Dict[str, Any]]:
    """Decoding speed from ``decode_stats.json`` or ``decode_stats.JOB.json`` files.

    A ``decode_stats.json`` (one job, or the merge of all jobs) is used as it is.
    Otherwise the per-job files are joined: rtf = sum(wall_seconds) /
    sum(audio_seconds), i.e. compute time per second of audio. Looks in
    ``decode_dir`` and ``decode_dir/log``.
    """
    if decode_dir is None:
        return None
    for where in (Path(decode_dir), Path(decode_dir) / "log"):
        merged = where / "decode_stats.json"
        if merged.is_file():
            d = _load_json(str(merged))
            if d is not None:
                return _describe([d], [merged.name], merged=True)
        files = sorted(glob.glob(str(where / "decode_stats.*.json")))
        jobs = [(os.path.basename(f), _load_json(f)) for f in files]
        jobs = [(f, d) for f, d in jobs if d is not None]
        if jobs:
            return _describe([d for _, d in jobs], [f for f, _ in jobs], merged=False)
    return None


def _describe(jobs: List[Dict[str, Any]], files: List[str], merged: bool) -> Dict[str, Any]:
    total: Dict[str, Any] = dict(files=files)
    for key in ("utterances", "samples", "audio_seconds", "wall_seconds"):
        vals = [d.get(key) for d in jobs]
        if all(_number(v) for v in vals):
            total[key] = sum(vals)
    if merged and _number(jobs[0].get("rtf")):
        total["rtf"] = float(jobs[0]["rtf"])
    elif total.get("audio_seconds") and "wall_seconds" in total:
        total["rtf"] = total["wall_seconds"] / total["audio_seconds"]
    per_job = jobs[0].get("per_job") if merged else jobs
    per_job = per_job if isinstance(per_job, list) else []
    total["jobs"] = int(jobs[0].get("jobs", 1)) if merged else len(jobs)
    job_rtf = [d.get("rtf") for d in per_job if isinstance(d, dict) and _number(d.get("rtf"))]
    if job_rtf:
        total["rtf_per_job"] = job_rtf
    for key in ("generator", "precision", "kernel", "device", "batch_size", "samples_per_second"):
        v = jobs[0].get(key)
        if isinstance(v, (str, int, float)) and v != "":
            total[key] = v
    if "rtf" not in total:
        return None
    return total


def write_json(path: PathLike, summary: Mapping[str, Any]) -> Path:
    path = Path(path)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(_jsonable(summary), f, indent=2, allow_nan=False)
        f.write("\n")
    return path


def _jsonable(v: Any) -> Any:
    """NaN/Inf -> null (strict JSON)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _fmt(stat: Optional[Mapping[str, float]]) -> str:
    if not stat or stat.get("n", 0) == 0:
        return "-"
    mean, ci = stat["mean"], stat["ci95"]
    digits = 3 if abs(mean) < 10 else 1
    if ci is None or not math.isfinite(ci):
        return f"{mean:.{digits}f} (n={stat['n']})"
    return f"{mean:.{digits}f} ± {ci:.{digits}f}"


def markdown_summary(summary: Mapping[str, Any], out_dir: Optional[PathLike] = None) -> str:
    """The summary as Markdown: metric table, RTF, definitions, figures."""
    systems = summary["systems"]
    names = list(systems)
    lines = ["# Objective evaluation", ""]
    lines.append(
        f"{summary.get('n_utterances', '?')} utterances; mean ± half-width of the 95% "
        "confidence interval (Student's t over utterances)."
    )
    lines.append("")
    lines.append("| metric | better | " + " | ".join(names) + " |")
    lines.append("| --- | --- | " + " | ".join("---" for _ in names) + " |")
    for m, (label, better, _) in METRICS.items():
        cells = [_fmt(systems[s].get(m)) for s in names]
        if all(c == "-" for c in cells):
            continue
        lines.append(f"| {label} | {better} | " + " | ".join(cells) + " |")
    lines.append("")
    rtf = summary.get("rtf")
    if rtf and rtf.get("rtf") is not None:
        lines.append(
            f"Decoding real-time factor: **{rtf['rtf']:.3f}** "
            f"({rtf.get('wall_seconds', float('nan')):.1f} s of compute for "
            f"{rtf.get('audio_seconds', float('nan')):.1f} s of audio, "
            f"{rtf.get('jobs', 1)} job(s)"
            + "".join(
                f", {k}={rtf[k]}"
                for k in ("generator", "precision", "kernel", "device", "batch_size")
                if k in rtf
            )
            + "; RTF < 1 is faster than real time)."
        )
    else:
        lines.append("Decoding real-time factor: not available (no decode_stats*.json).")
    lines.append("")
    lines.append("## Definitions")
    lines.append("")
    for m, (label, _, definition) in METRICS.items():
        lines.append(f"- **{label}**: {definition}.")
    settings = summary.get("settings") or {}
    if settings:
        lines.append("")
        lines.append(
            "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()) + "."
        )
    figures = summary.get("figures") or []
    if figures:
        lines.append("")
        lines.append("## Figures")
        lines.append("")
        for fig in figures:
            rel = fig
            if out_dir is not None:
                rel = os.path.relpath(fig, out_dir)
            lines.append(f"![{Path(fig).stem}]({rel})")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(path: PathLike, summary: Mapping[str, Any]) -> Path:
    path = Path(path)
    path.write_text(markdown_summary(summary, path.parent), encoding="utf-8")
    return path
