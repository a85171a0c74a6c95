"""Intervals and paired tests for task: multi_label and task: regression (stats.py does classification).

The same bootstrap as stats.py: one matrix of resampled test rows (stats.resample_indices) shared by
every row and metric, percentile intervals, and the two-sided bootstrap p of the paired differences.

- multi_label: the verdict is on micro F1 (paired bootstrap of the difference); subset accuracy adds
  McNemar's exact test on the rows each model gets exactly right.
- regression: the verdict is on MAE (paired bootstrap of the MAE difference, interval and p); a
  Wilcoxon signed-rank test on the rows' absolute errors is recorded beside it (it tests the median
  difference, so the two can disagree on skewed errors; the verdict says so when they do).

Decisions, not probabilities, are resampled: label sets after each row's validation-tuned thresholds,
or predicted numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from textlora.config import LOWER_IS_BETTER, TASK_INTERVAL_METRICS
from textlora.stats import CHUNK, _p_text, _percentile_interval, bootstrap_p, mcnemar_exact, resample_indices

HEADLINE = {"multi_label": "f1_micro", "regression": "mae"}
"""The metric each task's verdict is about."""
METRIC_NAMES = {"f1_micro": "micro F1", "f1_macro": "macro F1", "f1_samples": "samples F1",
                "subset_accuracy": "subset accuracy", "hamming_loss": "Hamming loss", "mae": "MAE", "rmse": "RMSE",
                "r2": "R²", "spearman": "Spearman", "pearson": "Pearson"}
POINTS = ("f1_micro", "f1_macro", "f1_samples", "subset_accuracy", "hamming_loss")
"""Metrics shown in percentage points (shares); the others in their own units."""


def _resampled(task: str, metric: str, labels: np.ndarray, decisions: np.ndarray, indices: np.ndarray) -> np.ndarray:
    if task == "multi_label":
        from textlora.multilabel import resampled
    else:
        from textlora.regression import resampled
    parts = [resampled(metric, labels, decisions, indices[start:start + CHUNK])
             for start in range(0, len(indices), CHUNK)]
    return np.concatenate(parts) if parts else np.zeros(0)


def full_value(task: str, metric: str, labels: np.ndarray, decisions: np.ndarray) -> float | None:
    """The metric on every row (the resampled form on the identity resample)."""
    value = _resampled(task, metric, labels, decisions, np.arange(len(labels))[None, :])[0] if len(labels) else np.nan
    return None if np.isnan(value) else float(value)


def bootstrap_intervals(task: str, labels: np.ndarray, decisions_by_name: Mapping[str, np.ndarray],
                        n_resamples: int = 1000, seed: int = 0,
                        confidence: float = 0.95) -> dict[str, dict[str, tuple[float, float] | None]]:
    """Percentile interval of each of the task's interval metrics for each row, on shared resamples."""
    indices = resample_indices(len(labels), n_resamples, seed)
    out: dict[str, dict[str, tuple[float, float] | None]] = {}
    for name, decisions in decisions_by_name.items():
        out[name] = {}
        for metric in TASK_INTERVAL_METRICS[task]:
            values = _resampled(task, metric, labels, decisions, indices)
            out[name][metric] = _percentile_interval(values[~np.isnan(values)], confidence)
    return out


def _amount(metric: str, diff: float) -> str:
    if metric in POINTS:
        text = f"{diff * 100:+.1f} pt"
        return "+0.0 pt" if text.startswith("-0.0 ") else text
    text = f"{diff:+.3f}"
    return "+0.000" if text == "-0.000" else text


@dataclass(frozen=True)
class PairedDifference:
    """metric(A) - metric(B) on the same test rows, its 95 % paired-bootstrap interval and p."""

    metric: str
    diff: float | None
    interval: tuple[float, float] | None
    p: float | None

    def text(self) -> str:
        shown = f"{METRIC_NAMES.get(self.metric, self.metric)} {_amount(self.metric, self.diff or 0.0)}"
        if self.interval is not None:
            low, high = (_amount(self.metric, v).removesuffix(" pt") for v in self.interval)
            shown += f" [{low}, {high}]"
        return shown


@dataclass(frozen=True)
class TaskComparison:
    """Model A against model B on the same test rows of a multi_label or regression run."""

    task: str
    name_a: str
    name_b: str
    n: int
    metric: str
    """The headline metric the verdict is about (HEADLINE)."""
    diff: float | None
    interval: tuple[float, float] | None
    p: float | None
    """Two-sided paired-bootstrap p of the headline difference."""
    others: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Every other interval metric: {metric: {diff, interval, p}}."""
    test: str = "paired bootstrap"
    second_test: str | None = None
    """McNemar on the rows each gets exactly right (multi_label), or Wilcoxon signed-rank on the rows'
    absolute errors (regression)."""
    second_p: float | None = None
    alpha: float = 0.05

    @property
    def significant(self) -> bool:
        return self.p is not None and self.p < self.alpha

    @property
    def better(self) -> bool | None:
        """Whether A is better than B on the headline metric (None: no difference measured)."""
        if not self.diff:
            return None
        return self.diff < 0 if self.metric in LOWER_IS_BETTER else self.diff > 0

    @property
    def verdict(self) -> str:
        """One line: the headline difference, its interval and test, and the set size."""
        head = f"{self.name_a} vs {self.name_b}: " + PairedDifference(self.metric, self.diff, self.interval, self.p).text()
        if self.metric in LOWER_IS_BETTER:
            head += " (lower is better)"
        size = f"on {self.n:,} test texts"
        if self.p is None:
            return f"{head}: not tested (undefined on these rows) {size}"
        if self.significant:
            line = f"{head}: significantly {'better' if self.better else 'worse'} ({self.test} {_p_text(self.p)}) {size}"
        else:
            line = f"{head}, {self.test} {_p_text(self.p)}: no significant difference {size}"
        if self.second_p is not None and (self.second_p < self.alpha) != self.significant:
            differs = self.second_p < self.alpha  # the second test disagrees: say so
            if self.task == "multi_label":
                line += f"; subset accuracy {'differs' if differs else 'does not differ'} significantly "
            else:
                line += f"; the rows' absolute errors {'differ' if differs else 'do not differ'} significantly "
            line += f"({self.second_test} {_p_text(self.second_p)})"
        return line

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = list(self.interval) if self.interval is not None else None
        return out


def compare(task: str, labels: np.ndarray, decisions_a: np.ndarray, decisions_b: np.ndarray, name_a: str,
            name_b: str, n_resamples: int = 1000, seed: int = 0) -> TaskComparison:
    """Paired comparison of two rows' decisions (label sets, or predicted numbers) on the same rows."""
    labels, a, b = np.asarray(labels), np.asarray(decisions_a), np.asarray(decisions_b)
    if a.shape != b.shape or len(a) != len(labels):
        raise ValueError(f"decisions {a.shape} and {b.shape} must match {len(labels)} labelled rows")
    indices = resample_indices(len(labels), n_resamples, seed)
    paired = {}
    for metric in TASK_INTERVAL_METRICS[task]:
        full_a, full_b = full_value(task, metric, labels, a), full_value(task, metric, labels, b)
        if full_a is None or full_b is None:
            paired[metric] = PairedDifference(metric, None, None, None)
            continue
        diffs = _resampled(task, metric, labels, a, indices) - _resampled(task, metric, labels, b, indices)
        diffs = diffs[~np.isnan(diffs)]
        interval = _percentile_interval(diffs, 0.95)
        paired[metric] = PairedDifference(metric, full_a - full_b, interval,
                                          bootstrap_p(diffs) if interval is not None else None)
    headline = paired[HEADLINE[task]]
    if task == "multi_label":
        truth = labels.astype(bool)
        second = ("McNemar",
                  mcnemar_exact((a.astype(bool) == truth).all(axis=1), (b.astype(bool) == truth).all(axis=1)))
    else:
        second = ("Wilcoxon signed-rank", wilcoxon_p(np.abs(a - labels), np.abs(b - labels)))
    return TaskComparison(
        task=task, name_a=name_a, name_b=name_b, n=int(len(labels)), metric=headline.metric, diff=headline.diff,
        interval=headline.interval, p=headline.p,
        others={m: {"diff": d.diff, "interval": list(d.interval) if d.interval else None, "p": d.p}
                for m, d in paired.items() if m != headline.metric},
        second_test=second[0], second_p=second[1],
    )


def wilcoxon_p(errors_a: np.ndarray, errors_b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of paired errors (rows where they tie are dropped); 1.0 when
    every row ties."""
    from scipy.stats import wilcoxon

    d = np.asarray(errors_a, dtype=np.float64) - np.asarray(errors_b, dtype=np.float64)
    if not np.any(d != 0):
        return 1.0
    return float(wilcoxon(d, zero_method="wilcox").pvalue)
