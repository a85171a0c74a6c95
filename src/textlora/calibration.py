"""Calibration: temperature scaling and the numbers that say whether probabilities can be trusted.

Temperature scaling (Guo et al., 2017) fits one scalar T on validation
logits; predictions then use softmax(logits / T). Dividing by one positive
scalar never changes the argmax, so accuracy is untouched and only
confidence moves. T is selected on validation rows, never on test rows.

Written here because scikit-learn's CalibratedClassifierCV calibrates an
estimator rather than a fixed set of logits, and has no temperature method.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.metrics import brier_score_loss, log_loss

# log T is searched in [-4, 4], i.e. T in [0.018, 55]: wider than any
# temperature a real classifier needs, and bounded so the search always ends.
LOG_T_BOUNDS = (-4.0, 4.0)


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    # log_softmax subtracts the row maximum, so large logits / small T do not overflow.
    log_probs = log_softmax(logits / temperature, axis=1)
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising the mean NLL of softmax(logits / T) on these rows.

    Callers predict with apply_temperature(logits, T), which divides the
    logits by T: T > 1 softens over-confident models, T < 1 sharpens.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    result = minimize_scalar(
        lambda log_t: _nll(logits, labels, float(np.exp(log_t))), bounds=LOG_T_BOUNDS, method="bounded"
    )
    return float(np.exp(result.x))


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """float64 softmax(logits / T); rows sum to 1."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)


def _top_label(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    return probs.max(axis=1), probs.argmax(axis=1) == np.asarray(labels)


def reliability_bins(labels: np.ndarray, probs: np.ndarray, bins: int = 15) -> list[dict[str, Any]]:
    """Top-label confidence in `bins` equal-width bins over [0, 1], for a reliability diagram.

    Each bin is (low, high], the first also holding confidence 0. Empty bins
    have count 0 and None for confidence and accuracy.
    """
    confidence, correct = _top_label(labels, probs)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # right=True puts a confidence equal to an edge in the bin that edge closes.
    index = np.clip(np.digitize(confidence, edges, right=True) - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        out.append({
            "low": float(edges[b]),
            "high": float(edges[b + 1]),
            "count": count,
            "confidence": float(confidence[members].mean()) if count else None,
            "accuracy": float(correct[members].mean()) if count else None,
        })
    return out


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE: sum over bins of |accuracy - mean confidence| x share of rows in the bin."""
    n = len(labels)
    return float(sum(
        b["count"] / n * abs(b["accuracy"] - b["confidence"])
        for b in reliability_bins(labels, probs, bins) if b["count"]
    ))


def brier_score(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean over rows of the sum over classes of (p - one_hot)^2; in [0, 2].

    Not halved for binary problems (sklearn's default is), so the binary and
    multiclass figures are on one scale.
    """
    probs = np.asarray(probs, dtype=np.float64)
    return float(brier_score_loss(labels, probs, labels=list(range(probs.shape[1])), scale_by_half=False))


def calibration_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """ECE (15 bins), Brier score and log loss of one set of probabilities."""
    probs = np.asarray(probs, dtype=np.float64)
    class_ids = list(range(probs.shape[1]))
    return {
        "ece": expected_calibration_error(labels, probs),
        "brier": brier_score(labels, probs),
        # Clipped so a hard 0 on the true class costs log(1e-12), not infinity.
        "log_loss": float(log_loss(labels, np.clip(probs, 1e-12, 1.0), labels=class_ids)),
    }
