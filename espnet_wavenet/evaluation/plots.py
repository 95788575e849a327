"""PNG figures (matplotlib, Agg backend): spectrograms, waveforms, curves, metrics."""

import logging
import math
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Union

import numpy as np

PathLike = Union[str, Path]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def preload_pyplot() -> None:
    """Import matplotlib's pyplot now (about 1.5 s), e.g. before forking scoring jobs."""
    _pyplot()


def _save(plt, fig, path: PathLike) -> Path:
    """Lay out, write (100 dpi) and close a figure."""
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_utterance(
    path: PathLike,
    uttid: str,
    fs: int,
    hop: int,
    wavs: Mapping[str, np.ndarray],
    logmels_db: Mapping[str, np.ndarray],
) -> Path:
    """One row per signal (natural first): waveform left, log-mel (dB) right.

    All spectrograms share the colour range of the first (natural) one: its
    maximum down to 80 dB below it.
    """
    plt = _pyplot()
    names = list(wavs)
    fig, axes = plt.subplots(
        len(names),
        2,
        figsize=(14, 2.6 * len(names)),
        gridspec_kw=dict(width_ratios=[1, 1.3]),
        squeeze=False,
    )
    ref = logmels_db[names[0]]
    vmax = float(np.max(ref))
    vmin = vmax - 80.0
    for i, name in enumerate(names):
        wav = wavs[name]
        t = np.arange(len(wav)) / fs
        ax = axes[i, 0]
        ax.plot(t, wav, linewidth=0.4)
        ax.set_xlim(0, max(t[-1] if len(t) else 0.0, 1.0 / fs))
        ax.set_ylim(-1.0, 1.0)
        ax.set_ylabel(name)
        ax.set_title(f"{name}: waveform", fontsize=9)
        ax = axes[i, 1]
        m = logmels_db[name]
        im = ax.imshow(
            m.T,
            origin="lower",
            aspect="auto",
            vmin=vmin,
            vmax=vmax,
            cmap="magma",
            extent=[0, len(m) * hop / fs, 0, m.shape[1]],
        )
        ax.set_ylabel("mel bin")
        ax.set_title(f"{name}: log-mel (dB)", fontsize=9)
        fig.colorbar(im, ax=ax, pad=0.01)
    axes[-1, 0].set_xlabel("time (s)")
    axes[-1, 1].set_xlabel("time (s)")
    fig.suptitle(uttid)
    return _save(plt, fig, path)


def plot_training_curves(
    path: PathLike,
    curves: Mapping[str, Mapping[str, Sequence]],
    keys: Sequence[str] = ("loss", "nll_bits"),
) -> Optional[Path]:
    """Per-epoch train/valid curves of ``keys`` (plus per-interval train points)."""
    keys = [k for k in keys if any(k in c for c in curves.values())]
    if not keys:
        logging.warning("no %s curves in the training log; no plot", list(keys))
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4), squeeze=False)
    styles = {
        "train_batches": dict(alpha=0.35, linewidth=0.8, label="train (log interval)"),
        "train": dict(marker="o", label="train (epoch)"),
        "valid": dict(marker="s", label="valid (epoch)"),
    }
    for ax, key in zip(axes[0], keys):
        for section in ("train_batches", "train", "valid"):
            pts = (curves.get(section) or {}).get(key)
            if pts:
                x, y = zip(*pts)
                ax.plot(x, y, **styles[section])
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(plt, fig, path)


def plot_metric_distributions(
    path: PathLike,
    rows: List[Mapping[str, object]],
    metrics: Sequence[str],
    labels: Mapping[str, str],
) -> Optional[Path]:
    """Box plots of every metric per system over utterances."""
    systems = list(dict.fromkeys(str(r["system"]) for r in rows))
    metrics = [
        m for m in metrics if any(_finite(r.get(m)) for r in rows)
    ]
    if not metrics or not systems:
        return None
    plt = _pyplot()
    ncol = min(4, len(metrics))
    nrow = math.ceil(len(metrics) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.2 * nrow), squeeze=False)
    for ax, m in zip(axes.flat, metrics):
        data, names = [], []
        for s in systems:
            v = [float(r[m]) for r in rows if r["system"] == s and _finite(r.get(m))]
            if v:
                data.append(v)
                names.append(s)
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(names) + 1), names, fontsize=8)
        ax.set_title(labels.get(m, m), fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    return _save(plt, fig, path)


def _finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False
