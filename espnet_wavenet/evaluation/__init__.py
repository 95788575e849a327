"""Objective evaluation of vocoded speech against natural recordings, and reports.

Metrics (definitions in each module and in ``summary.md``): PESQ-WB and STOI
(:mod:`.perceptual`), mel-cepstral distortion (:mod:`.mcd`), F0 RMSE and V/UV
error (:mod:`.f0`) from a shared WORLD analysis (:mod:`.world`), log-mel RMSE with
the recipe's own features (:mod:`.logmel`), the model's held-out NLL
(:mod:`.nll`), all for the vocoder and a Griffin-Lim floor (:mod:`.gl_baseline`).
"""

from espnet_wavenet.evaluation.evaluator import METRICS, SignalEvaluator
from espnet_wavenet.evaluation.pipeline import evaluate_corpus

__all__ = ["METRICS", "SignalEvaluator", "evaluate_corpus"]
