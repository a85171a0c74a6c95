"""Uncertainty for compared figures: bootstrap intervals and paired tests.

Every number the project compares carries an interval and the size of the
set it came from (DESIGN.md, "Honest numbers"). Resampling is always
*paired*: one matrix of row indices is drawn per call and every model is
scored on the same resampled rows, so differences between models are not
inflated by independent noise.

On resamples, accuracy, macro F1 and ROC-AUC are computed with numpy, vectorised over the
resamples (the bootstrap needs thousands of them and sklearn's input validation costs ~1 ms a
call); tests check them against sklearn and against metric_value per resample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

from textlora.config import INTERVAL_METRICS as METRICS_WITH_INTERVALS

Interval = tuple[float, float]


def metric_value(metric: str, labels: np.ndarray, probs: np.ndarray) -> float | None:
    """One metric from true labels (n,) and probabilities (n, K); None where undefined.

    roc_auc is undefined with fewer than two classes present, and for
    multiclass (one-vs-rest macro) unless every class is present.
    """
    labels = np.asarray(labels, dtype=np.int64)  # no copy when already int64
    probs = np.asarray(probs)
    n_classes = probs.shape[1]
    if metric == "accuracy":
        return float(np.mean(probs.argmax(axis=1) == labels))
    if metric == "f1_macro":
        predictions = probs.argmax(axis=1)
        counts = np.bincount(labels * n_classes + predictions, minlength=n_classes * n_classes)
        confusion = counts.reshape(n_classes, n_classes)  # rows: true, columns: predicted
        tp = np.diag(confusion).astype(np.float64)
        # F1 = 2tp / (2tp + fp + fn) = 2tp / (true count + predicted count);
        # a class absent from both scores 0, as sklearn's zero_division=0.
        denominator = confusion.sum(axis=1) + confusion.sum(axis=0)
        f1 = np.divide(2 * tp, denominator, out=np.zeros(n_classes), where=denominator > 0)
        return float(f1.mean())
    if metric == "roc_auc":
        present = np.unique(labels)
        if len(present) < 2:
            return None
        if n_classes == 2:
            return float(roc_auc_score(labels, probs[:, 1]))
        if len(present) < n_classes:
            return None
        return float(roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=range(n_classes)))
    raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS_WITH_INTERVALS}")


def resample_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """The (n_resamples, n) matrix of row indices every bootstrap here uses.

    Drawn in one call so that the same seed gives the same rows to every
    model and every metric (the pairing). Memory is 8 bytes x n x n_resamples.
    """
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def _percentile_interval(values: Sequence[float], confidence: float) -> Interval | None:
    if len(values) == 0:
        return None
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(np.asarray(values, dtype=np.float64), [tail, 100 - tail])
    return float(low), float(high)


CHUNK = 200
"""Resamples scored at once: bounds the (chunk x rows) arrays of the vectorised metrics."""


def _resampled(metric: str, labels: np.ndarray, probs: np.ndarray, indices: np.ndarray) -> list[float | None]:
    """metric_value on every resample (rows of `indices`), vectorised over resamples: the same
    numbers as calling metric_value per resample (a test checks it), orders of magnitude faster
    (a tiny run's intervals and verdicts took ~15 s of sklearn calls)."""
    out: list[float | None] = []
    for start in range(0, len(indices), CHUNK):
        values = _resampled_chunk(metric, np.asarray(labels, dtype=np.int64), np.asarray(probs), indices[start:start + CHUNK])
        out += [None if np.isnan(v) else float(v) for v in values]
    return out


def _resampled_chunk(metric: str, labels: np.ndarray, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    n_classes = probs.shape[1]
    resampled_labels = labels[rows]  # (chunk, n)
    if metric == "accuracy":
        return (probs.argmax(axis=1)[rows] == resampled_labels).mean(axis=1)
    if metric == "f1_macro":
        codes = resampled_labels * n_classes + probs.argmax(axis=1)[rows]
        offsets = np.arange(len(rows))[:, None] * n_classes * n_classes
        confusion = np.bincount((codes + offsets).ravel(), minlength=len(rows) * n_classes * n_classes)
        confusion = confusion.reshape(len(rows), n_classes, n_classes)
        tp = np.diagonal(confusion, axis1=1, axis2=2).astype(np.float64)
        denominator = confusion.sum(axis=2) + confusion.sum(axis=1)
        f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
        return f1.mean(axis=1)
    if metric == "roc_auc":
        # The rank-sum form of ROC-AUC (ties take average ranks, as sklearn's trapezoids count them 1/2):
        # AUC = (sum of the positives' ranks - P(P+1)/2) / (P * N).
        from scipy.stats import rankdata

        classes = [1] if n_classes == 2 else range(n_classes)
        aucs = []
        for k in classes:
            positive = resampled_labels == k
            n_pos = positive.sum(axis=1)
            n_neg = positive.shape[1] - n_pos
            ranks = rankdata(probs[:, k][rows], axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                aucs.append(((ranks * positive).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
        aucs = np.vstack(aucs)  # (classes, chunk); NaN where a class is absent or alone
        # Undefined as metric_value: fewer than two classes present; multiclass unless every class is.
        return aucs[0] if n_classes == 2 else np.where(np.isnan(aucs).any(axis=0), np.nan, aucs.mean(axis=0))
    raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS_WITH_INTERVALS}")


def bootstrap_intervals(
    labels: np.ndarray,
    probs_by_name: Mapping[str, np.ndarray],
    metrics: Sequence[str] = METRICS_WITH_INTERVALS,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, dict[str, Interval | None]]:
    """Percentile bootstrap interval of each metric for each model, on shared resamples.

    Resamples where a metric is undefined (one class only, for roc_auc) are
    skipped for that metric; None when no resample defines it.
    """
    labels = np.asarray(labels)
    indices = resample_indices(len(labels), n_resamples, seed)
    out: dict[str, dict[str, Interval | None]] = {}
    for name, probs in probs_by_name.items():
        probs = np.asarray(probs)
        out[name] = {}
        for metric in metrics:
            values = [v for v in _resampled(metric, labels, probs, indices) if v is not None]
            out[name][metric] = _percentile_interval(values, confidence)
    return out


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact two-sided McNemar p-value: a binomial test on the discordant pairs.

    b = rows only A gets right, c = rows only B gets right; under the null
    each discordant row is a fair coin. 1.0 when no row is discordant.
    """
    correct_a = np.asarray(correct_a, dtype=bool)
    correct_b = np.asarray(correct_b, dtype=bool)
    b = int(np.sum(correct_a & ~correct_b))
    c = int(np.sum(~correct_a & correct_b))
    if b + c == 0:
        return 1.0
    return float(binomtest(b, b + c, 0.5).pvalue)


def _paired(
    labels: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray, metric: str, indices: np.ndarray, confidence: float
) -> tuple[float | None, float | None, float | None, float | None]:
    full_a, full_b = metric_value(metric, labels, probs_a), metric_value(metric, labels, probs_b)
    if full_a is None or full_b is None:
        return None, None, None, None
    diffs = [a - b for a, b in zip(_resampled(metric, labels, probs_a, indices),
                                   _resampled(metric, labels, probs_b, indices)) if a is not None and b is not None]
    interval = _percentile_interval(diffs, confidence)
    if interval is None:
        return full_a - full_b, None, None, None
    return full_a - full_b, interval[0], interval[1], bootstrap_p(diffs)


def bootstrap_p(diffs: Sequence[float]) -> float:
    """Two-sided bootstrap p of paired differences (A - B on each resample) against no difference."""
    d = np.asarray(diffs)
    # Two-sided bootstrap p: twice the smaller tail share at 0. The +1s count
    # the observed sample among the resamples, so p is never reported as 0
    # (its floor is 2 / (R + 1)): R resamples cannot resolve smaller values.
    below = (np.sum(d <= 0) + 1) / (len(d) + 1)
    above = (np.sum(d >= 0) + 1) / (len(d) + 1)
    return float(min(1.0, 2 * min(below, above)))


def paired_bootstrap(
    labels: np.ndarray,
    probs_a: np.ndarray,
    probs_b: np.ndarray,
    metric: str,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float | None, float | None, float | None, float | None]:
    """(metric(a) - metric(b) on all rows, interval low, interval high, two-sided p).

    The interval is the percentile interval of the differences over shared
    resamples. p = min(1, 2 * min((#d <= 0) + 1, (#d >= 0) + 1) / (R + 1)),
    so identical models get p = 1. All None where the metric is undefined on
    the full set; interval and p None where no resample defines it.
    """
    labels = np.asarray(labels)
    indices = resample_indices(len(labels), n_resamples, seed)
    return _paired(labels, np.asarray(probs_a), np.asarray(probs_b), metric, indices, confidence)


def _points(diff: float) -> str:
    text = f"{diff * 100:+.1f}"
    return "+0.0" if text == "-0.0" else text


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


@dataclass(frozen=True)
class Comparison:
    """Model A against model B on the same test rows; diffs are A - B (fractions, not points)."""

    name_a: str
    name_b: str
    n: int
    accuracy_diff: float
    accuracy_interval: Interval | None
    mcnemar_p: float
    f1_macro_diff: float
    f1_macro_interval: Interval | None
    f1_macro_p: float | None
    roc_auc_diff: float | None
    roc_auc_interval: Interval | None
    roc_auc_p: float | None
    alpha: float = 0.05

    @property
    def significant(self) -> bool:
        """Whether accuracies differ by McNemar's exact test at level alpha."""
        return self.mcnemar_p < self.alpha

    @property
    def verdict(self) -> str:
        """One line for a report: accuracy difference, interval, McNemar p, and the set size."""
        head = f"{self.name_a} vs {self.name_b}: {_points(self.accuracy_diff)} pt accuracy"
        if self.accuracy_interval is not None:
            low, high = self.accuracy_interval
            head += f" [{_points(low)}, {_points(high)}]"
        size = f"on {self.n:,} test texts"
        if self.significant:
            direction = "better" if self.accuracy_diff > 0 else "worse"
            line = f"{head}: significantly {direction} (McNemar {_p_text(self.mcnemar_p)}) {size}"
        else:
            line = f"{head}, McNemar {_p_text(self.mcnemar_p)}: no significant difference {size}"
        # Macro F1 can disagree with accuracy (imbalanced classes); say so only then.
        if self.f1_macro_p is not None and (self.f1_macro_p < self.alpha) != self.significant:
            line += f"; macro F1 {_points(self.f1_macro_diff)} pt"
            if self.f1_macro_interval is not None:
                line += f" [{_points(self.f1_macro_interval[0])}, {_points(self.f1_macro_interval[1])}]"
            line += f" {'is' if self.f1_macro_p < self.alpha else 'is not'} significant ({_p_text(self.f1_macro_p)})"
        return line

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly: intervals become lists."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        """Inverse of as_dict. Keys stored beside the fields (the pipeline adds
        `verdict`, `a`, `b`) are ignored; a missing field is an error."""
        names = {f.name for f in fields(cls)}
        missing = {f.name for f in fields(cls) if f.name != "alpha"} - set(data)
        if missing:
            raise ValueError(f"Comparison record lacks {sorted(missing)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names})


def compare(
    labels: np.ndarray,
    probs_a: np.ndarray,
    probs_b: np.ndarray,
    name_a: str,
    name_b: str,
    n_resamples: int = 1000,
    seed: int = 0,
) -> Comparison:
    """Paired comparison of two models' probabilities on the same labelled rows."""
    labels = np.asarray(labels)
    probs_a, probs_b = np.asarray(probs_a), np.asarray(probs_b)
    if probs_a.shape != probs_b.shape or probs_a.shape[0] != len(labels):
        raise ValueError(f"probs shapes {probs_a.shape} and {probs_b.shape} must match {len(labels)} labels")
    # One index matrix for all three metrics: every difference is on the same rows.
    indices = resample_indices(len(labels), n_resamples, seed)
    acc, acc_low, acc_high, _ = _paired(labels, probs_a, probs_b, "accuracy", indices, 0.95)
    f1, f1_low, f1_high, f1_p = _paired(labels, probs_a, probs_b, "f1_macro", indices, 0.95)
    auc, auc_low, auc_high, auc_p = _paired(labels, probs_a, probs_b, "roc_auc", indices, 0.95)
    return Comparison(
        name_a=name_a,
        name_b=name_b,
        n=int(len(labels)),
        accuracy_diff=float(acc),
        accuracy_interval=None if acc_low is None else (acc_low, acc_high),
        mcnemar_p=mcnemar_exact(probs_a.argmax(axis=1) == labels, probs_b.argmax(axis=1) == labels),
        f1_macro_diff=float(f1),
        f1_macro_interval=None if f1_low is None else (f1_low, f1_high),
        f1_macro_p=f1_p,
        roc_auc_diff=auc,
        roc_auc_interval=None if auc_low is None else (auc_low, auc_high),
        roc_auc_p=auc_p,
    )
