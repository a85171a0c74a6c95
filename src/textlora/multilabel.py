"""task: multi_label: a set of labels per text.

- Label sets come from a list column (jsonl, parquet, a hub Sequence) or a delimited string
  (`data.label_separator`); the label names from the training rows (or `data.label_names`).
  An empty cell or list is the empty set: a text with none of the labels.
- The head has one sigmoid per label (BCE loss, losses.py); a label is predicted when its probability
  reaches its decision threshold, tuned per label on the validation rows (never the test rows).
- Metrics: micro / macro / samples F1, subset accuracy, Hamming loss, and per label precision,
  recall, F1, ROC-AUC and support; the resampled forms that stats.py's bootstrap needs.

Rows hold a label set as a sorted tuple of label ids; `multi_hot` turns them into an (n, K) matrix.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from textlora.errors import TextloraError

DEFAULT_THRESHOLD = 0.5
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)
"""Candidate thresholds per label: a coarse grid, so that a handful of validation positives cannot
place a threshold between two of their own probabilities."""


def is_label_list(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def parse_label_set(value: Any, separator: str | None, split: str, row: int) -> list[str]:
    """One cell as label names: a list, a delimited string, a JSON list written into a CSV, or empty."""
    if _missing(value):
        return []
    if is_label_list(value):
        items = list(value)
    elif isinstance(value, str):
        text = value.strip()
        if separator is not None:
            items = text.split(separator)
        elif text.startswith("[") and text.endswith("]"):
            try:
                items = json.loads(text)
            except ValueError:
                raise TextloraError(f"label {value!r} (row {row} of the {split} split) is not a JSON list; write "
                                    "label sets as lists or set data.label_separator") from None
            if not isinstance(items, list):
                items = [items]
        elif not text:
            return []
        else:
            raise TextloraError(
                f"label {value!r} (row {row} of the {split} split) is a plain string: for task: multi_label set "
                "data.label_separator to the character between labels (e.g. '|' or ','), or give a list column")
    else:
        items = [value]
    names = []
    for item in items:
        if _missing(item):
            continue
        if isinstance(item, (float, np.floating)) and float(item).is_integer():
            item = int(item)
        name = str(item).strip()
        if name:
            names.append(name)
    return names


def _natural(names: set[str]) -> list[str]:
    """Sorted label names; numerically when every name is a whole number (2 before 10)."""
    if names and all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


class LabelSetMapper:
    """Decides the label names once (from the training rows) and maps every split's cells to sorted
    tuples of label ids. Whole-number items index data.label_names (or a hub dataset's names) when given."""

    def __init__(self, separator: str | None, label_names: list[str] | None, train_labels: pd.Series,
                 hub_names: list[str] | None = None, split: str = "train"):
        self.separator = separator
        given = label_names or hub_names
        sets = [parse_label_set(v, separator, split, i) for i, v in enumerate(train_labels)]
        if not any(sets):
            raise TextloraError(
                f"every row of the {split} split has an empty label set: check data.label_column"
                + (" and data.label_separator" if separator else "") + " (a multi-label column holds lists "
                "such as [sports, politics], or strings with data.label_separator)")
        self.names = list(given) if given else _natural({name for names in sets for name in names})
        if len(set(self.names)) != len(self.names):
            raise TextloraError(f"label names must be unique, got {self.names}")
        self.index = {name: i for i, name in enumerate(self.names)}
        self.by_id = bool(given)
        self._map_sets(sets, split)  # a training label outside data.label_names fails here, naming it

    def _id(self, name: str, split: str, row: int) -> int:
        if name in self.index:
            return self.index[name]
        if self.by_id and name.isdigit() and int(name) < len(self.names):
            return int(name)  # a label id into data.label_names (or the hub's names)
        where = "never in train" if split != "train" else "not among data.label_names"
        raise TextloraError(
            f"label {name!r} (row {row} of the {split} split) is {where} (labels: {', '.join(self.names)}); "
            "fix the data or list it in data.label_names")

    def _map_sets(self, sets: list[list[str]], split: str) -> list[tuple[int, ...]]:
        return [tuple(sorted({self._id(name, split, row) for name in names})) for row, names in enumerate(sets)]

    def map(self, labels: pd.Series, split: str) -> pd.Series:
        sets = [parse_label_set(v, self.separator, split, i) for i, v in enumerate(labels)]
        return pd.Series(self._map_sets(sets, split), index=labels.index, dtype=object)


def multi_hot(label_sets: Sequence[Sequence[int]], n_labels: int) -> np.ndarray:
    """(n, K) int64 matrix with a 1 for every label of each row."""
    out = np.zeros((len(label_sets), n_labels), dtype=np.int64)
    for row, ids in enumerate(label_sets):
        out[row, list(ids)] = 1
    return out


def sigmoid(logits: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(np.asarray(logits, dtype=np.float64))


# --------------------------------------------------------------------------- thresholds


def tune_thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per label, the threshold on THRESHOLD_GRID with the best F1 on these (validation) rows; ties go to
    the one nearest 0.5, and a label with no positive row here keeps 0.5 (nothing to tune on)."""
    labels, probs = np.asarray(labels, dtype=bool), np.asarray(probs, dtype=np.float64)
    thresholds = np.full(labels.shape[1], DEFAULT_THRESHOLD)
    order = np.argsort(np.abs(THRESHOLD_GRID - DEFAULT_THRESHOLD), kind="stable")  # nearest 0.5 first
    grid = THRESHOLD_GRID[order]
    for k in range(labels.shape[1]):
        positive = labels[:, k]
        if not positive.any():
            continue
        predicted = probs[:, k, None] >= grid[None, :]
        tp = (predicted & positive[:, None]).sum(axis=0)
        f1 = 2 * tp / (predicted.sum(axis=0) + positive.sum())
        thresholds[k] = grid[int(np.argmax(f1))]  # argmax takes the first: the nearest 0.5 among ties
    return thresholds


def predict_sets(probs: np.ndarray, thresholds: np.ndarray | float = DEFAULT_THRESHOLD) -> np.ndarray:
    """(n, K) bool: each label whose probability reaches its threshold."""
    return np.asarray(probs) >= np.asarray(thresholds)


# --------------------------------------------------------------------------- metrics


def _f1(tp, fp, fn, empty: float = 0.0):
    tp, denominator = np.asarray(tp, dtype=np.float64), np.asarray(2 * tp + fp + fn, dtype=np.float64)
    return np.divide(2 * tp, denominator, out=np.full(np.shape(denominator), empty), where=denominator > 0)


def multilabel_metrics(labels: np.ndarray, probs: np.ndarray, label_names: list[str],
                       thresholds: np.ndarray | float | None = None) -> dict[str, Any]:
    """Every multi-label metric of sigmoid probabilities (n, K) against the multi-hot labels (n, K).

    F1 micro pools every (row, label) decision; macro averages the labels' F1 (a label absent from both
    labels and predictions scores 0, as sklearn's zero_division=0); samples averages each row's F1 (a
    row with no label that predicts none scores 1). ROC-AUC is the mean over the labels with both
    classes present (None when none has). loss: the mean BCE, probabilities clipped to [1e-12, 1 - 1e-12].
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels, dtype=bool)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != y.shape or probs.ndim != 2 or probs.shape[1] != len(label_names):
        raise ValueError(f"probs {probs.shape} and labels {y.shape} must both be (rows, {len(label_names)})")
    thresholds = np.broadcast_to(np.asarray(DEFAULT_THRESHOLD if thresholds is None else thresholds, dtype=np.float64),
                                 (len(label_names),))
    predicted = predict_sets(probs, thresholds)
    tp = (predicted & y).sum(axis=0)
    fp = (predicted & ~y).sum(axis=0)
    fn = (~predicted & y).sum(axis=0)
    clipped = np.clip(probs, 1e-12, 1 - 1e-12)
    per_row = _f1((predicted & y).sum(axis=1), (predicted & ~y).sum(axis=1), (~predicted & y).sum(axis=1), empty=1.0)
    precision = np.divide(tp, tp + fp, out=np.zeros(len(tp)), where=(tp + fp) > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros(len(tp)), where=(tp + fn) > 0)
    aucs = [float(roc_auc_score(y[:, k], probs[:, k])) if 0 < y[:, k].sum() < len(y) else None
            for k in range(y.shape[1])]
    defined = [a for a in aucs if a is not None]
    micro_p = tp.sum() / (tp.sum() + fp.sum()) if tp.sum() + fp.sum() else 0.0
    micro_r = tp.sum() / (tp.sum() + fn.sum()) if tp.sum() + fn.sum() else 0.0
    return {
        "n": int(len(y)),
        "loss": float(-(y * np.log(clipped) + ~y * np.log(1 - clipped)).mean()) if y.size else None,
        "f1_micro": float(_f1(tp.sum(), fp.sum(), fn.sum())),
        "precision_micro": float(micro_p),
        "recall_micro": float(micro_r),
        "f1_macro": float(_f1(tp, fp, fn).mean()),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_samples": float(per_row.mean()) if len(y) else None,
        "subset_accuracy": float((predicted == y).all(axis=1).mean()) if len(y) else None,
        "hamming_loss": float((predicted != y).mean()) if y.size else None,
        "roc_auc": float(np.mean(defined)) if defined else None,
        "label_cardinality": float(predicted.sum(axis=1).mean()) if len(y) else None,
        "per_label": {
            name: {"precision": float(precision[k]), "recall": float(recall[k]), "f1": float(_f1(tp[k], fp[k], fn[k])),
                   "roc_auc": aucs[k], "support": int(y[:, k].sum()), "threshold": float(thresholds[k])}
            for k, name in enumerate(label_names)
        },
    }


def resampled(metric: str, labels: np.ndarray, predicted: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`metric` of the decisions `predicted` (n, K) on each resample (rows of `rows`, shape (R, n)), vectorised
    over the resamples: the numbers multilabel_metrics gives on each resampled set (a test checks it)."""
    y, predicted = np.asarray(labels, dtype=bool), np.asarray(predicted, dtype=bool)
    tp, fp, fn = predicted & y, predicted & ~y, ~predicted & y
    if metric == "f1_micro":
        return _f1(tp.sum(axis=1)[rows].sum(axis=1), fp.sum(axis=1)[rows].sum(axis=1), fn.sum(axis=1)[rows].sum(axis=1))
    if metric == "f1_macro":
        # Per-label counts of each resample: (R, n) row indices -> (R, K) sums, a chunk at a time.
        out = []
        step = max(1, int(4_000_000 // max(1, y.size)))
        for start in range(0, len(rows), step):
            part = rows[start:start + step]
            out.append(_f1(tp[part].sum(axis=1), fp[part].sum(axis=1), fn[part].sum(axis=1)).mean(axis=1))
        return np.concatenate(out) if out else np.zeros(0)
    if metric == "f1_samples":
        return _f1(tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1), empty=1.0)[rows].mean(axis=1)
    if metric == "subset_accuracy":
        return (predicted == y).all(axis=1)[rows].mean(axis=1)
    if metric == "hamming_loss":
        return (predicted != y).mean(axis=1)[rows].mean(axis=1)
    raise ValueError(f"no resampled form of {metric!r} for task: multi_label")
