"""The recipe's results table (``RESULTS.md``): one row per (experiment, set).

A row puts a trained configuration's evaluation (stage 5's ``summary.json``)
beside what it cost: training samples seen and hours, read from the ESPnet
checkpoint's reporter and ``config.yaml``. Griffin-Lim on the same utterances
and the natural recordings (DNSMOS only) get rows of their own, written once per
set and evaluation.
"""

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from espnet_wavenet.train.cost import training_cost

PathLike = Union[str, Path]
# (summary key, column title, digits)
METRIC_COLUMNS = (
    ("nll_bits", "NLL bit/sample", 3),
    ("logmel_rmse_db", "log-mel RMSE dB", 2),
    ("mcd_db", "MCD dB", 2),
    ("mcd_dtw_db", "MCD-DTW (ESPnet) dB", 2),
    ("f0_rmse_cents", "F0 RMSE cent", 0),
    ("vuv_error", "V/UV error", 3),
    ("pesq_wb", "PESQ-WB", 2),
    ("stoi", "STOI", 3),
    ("dnsmos_ovrl", "DNSMOS OVRL", 2),
    ("dnsmos_p808", "DNSMOS P.808", 2),
)
HEADER = (
    ["config", "set", "utts", "train samples", "train h", "CPU-h", "CPU"]
    + [title for _, title, _ in METRIC_COLUMNS]
)


def _cell(stat: Optional[Dict[str, float]], digits: int) -> str:
    if not stat or not stat.get("n"):
        return "-"
    if stat.get("ci95") is None:  # one value (e.g. F0 where one utterance had voicing): no interval
        return f"{stat['mean']:.{digits}f} (n={stat['n']})"
    return f"{stat['mean']:.{digits}f} ± {stat['ci95']:.{digits}f}"


def rows_for(
    name: str,
    set_name: str,
    summary: Dict[str, Any],
    cost: Optional[Dict[str, Any]],
    cpu: str,
    cores: int,
    system: str = "wavenet",
) -> List[str]:
    """Markdown row cells for ``system`` of one evaluation summary."""
    metrics = summary["systems"].get(system)
    if metrics is None:
        raise ValueError(f"{set_name}: no system {system!r} in the summary "
                         f"(has {sorted(summary['systems'])})")
    if cost is None:
        budget = ["-", "-", "-", "-"]
    else:
        n = cost["samples"]
        budget = [f"{n / 1e6:.0f}M" if n >= 1e7 else str(n), f"{cost['train_hours']:.2f}",
                  f"{cost['train_hours'] * cores:.2f}", cpu]
    cells = [name, set_name, str(summary["n_utterances"]), *budget]
    for key, _, digits in METRIC_COLUMNS:
        cells.append(_cell(metrics.get(key), digits))
    return cells


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def append_rows(
    results_md: PathLike,
    name: str,
    eval_dirs: Dict[str, PathLike],
    exp_dir: Optional[PathLike],
    cpu: str,
    cores: int,
    checkpoint: str = "checkpoint.pth",
    cost: Optional[Dict[str, Any]] = None,
) -> List[str]:
    """Append the rows of one experiment (and Griffin-Lim, once) to ``results_md``.

    ``eval_dirs`` maps a set name to stage 5's output folder (``summary.json``).
    The cost comes from ``exp_dir``'s checkpoint, or is given (``cost``: a packed
    model's ``provenance``). The rows go after the last row of the table (whose
    header is written at the end if the file has none); text after it stays.
    """
    path = Path(results_md)
    if exp_dir is not None:
        cost = training_cost(exp_dir, checkpoint)
    shaping = (cost or {}).get("noise_shaping") or {}
    if shaping.get("lpc_order"):
        name += f" (NLL of the LPC excitation, order {shaping['lpc_order']})"
    elif shaping.get("pre_emphasis"):
        name += f" (NLL of pre-emphasized audio, a={shaping['pre_emphasis']})"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if _line(HEADER) not in text:
        text = text.rstrip("\n") + ("\n\n" if text else "") + _line(HEADER) + "\n"
        text += _line(["---"] * len(HEADER)) + "\n"
    new = []
    for set_name, d in eval_dirs.items():
        with open(Path(d) / "summary.json", encoding="utf-8") as f:
            summary = json.load(f)
        new.append(_line(rows_for(name, set_name, summary, cost, cpu, cores)))
        iters = summary.get("settings", {}).get("griffin_lim_iters")
        for system, label in (("griffin_lim", f"Griffin-Lim ({iters} iterations)"),
                              ("natural", "natural speech")):
            if system in summary["systems"]:
                line = _line(rows_for(label, set_name, summary, None, cpu, cores, system))
                if line not in text and line not in new:
                    new.append(line)
    # after the table's last row: notes written below the table stay below it
    lines = text.rstrip("\n").split("\n")
    end = lines.index(_line(HEADER)) + 2
    while end < len(lines) and lines[end].startswith("| "):
        end += 1
    lines[end:end] = new
    text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    logging.info("%s: %d rows appended", path, len(new))
    return new
