"""Every classification metric, from true labels and predicted probabilities.

One function, `classification_metrics`, so that the classical baseline, the
pre-adaptation row, each epoch and the final row are computed identically.
All numbers come from scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

from textlora.config import HEADLINE_METRICS as HEADLINE  # noqa: F401  (re-exported: readers import it from here)
from textlora.config import LOWER_IS_BETTER


def better(value: float | None, than: float | None, metric: str) -> bool:
    """Is `value` strictly better than `than` (lower for loss, MAE, RMSE, Hamming loss)? An undefined value
    never is; anything beats an undefined `than`. Strict, so ties keep the earlier candidate (checkpoint,
    weight, row)."""
    if value is None:
        return False
    if than is None:
        return True
    return value < than if metric in LOWER_IS_BETTER else value > than


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def classification_metrics(labels: np.ndarray, probs: np.ndarray, label_names: list[str]) -> dict[str, Any]:
    """Accuracy, precision/recall/F1, ROC-AUC, log loss, confusion matrix and per-class report.

    Binary: precision/recall/F1 are those of the positive class (label id 1).
    Multiclass: precision/recall/F1 are macro averages. Macro and weighted
    variants are always reported too. ROC-AUC is one-vs-rest macro for
    multiclass, and None when the labels hold a single class.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n_classes = len(label_names)
    if probs.ndim != 2 or probs.shape != (len(labels), n_classes):
        raise ValueError(f"probs must have shape ({len(labels)}, {n_classes}), got {probs.shape}")
    class_ids = list(range(n_classes))
    predictions = probs.argmax(axis=1)
    binary = n_classes == 2
    out: dict[str, Any] = {
        "n": int(len(labels)),
        "loss": float(skm.log_loss(labels, np.clip(probs, 1e-12, 1.0), labels=class_ids)),
        "accuracy": float(skm.accuracy_score(labels, predictions)),
    }
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            labels, predictions, labels=class_ids, average=average, zero_division=0
        )
        out[f"precision_{average}"], out[f"recall_{average}"], out[f"f1_{average}"] = float(p), float(r), float(f)
    if binary:
        p, r, f, _ = skm.precision_recall_fscore_support(
            labels, predictions, labels=class_ids, pos_label=1, average="binary", zero_division=0
        )
        out["precision"], out["recall"], out["f1"] = float(p), float(r), float(f)
    else:
        out["precision"], out["recall"], out["f1"] = out["precision_macro"], out["recall_macro"], out["f1_macro"]
    present = np.unique(labels)
    if len(present) < 2:
        out["roc_auc"] = None
    elif binary:
        out["roc_auc"] = float(skm.roc_auc_score(labels, probs[:, 1]))
    else:
        # One-vs-rest over the classes present; sklearn needs rows summing to 1.
        out["roc_auc"] = float(
            skm.roc_auc_score(labels, probs / probs.sum(axis=1, keepdims=True), multi_class="ovr",
                              average="macro", labels=class_ids)
        ) if len(present) == n_classes else None
    out["confusion_matrix"] = skm.confusion_matrix(labels, predictions, labels=class_ids).tolist()
    report = skm.classification_report(
        labels, predictions, labels=class_ids, target_names=label_names, output_dict=True, zero_division=0
    )
    out["per_class"] = {
        name: {k: float(v) for k, v in report[name].items()} for name in label_names
    }
    return out
