"""task: regression: a number per text (a rating, a score).

- `data.label_column` names the number; a value that is not a number stops the run naming its row.
- The model has one output trained on the standardised target (z = (y - mean) / std of the training
  rows, so MSE / Huber and the learning rate mean the same for ratings 1-10 as for prices); after
  training, `bake_target_scale` folds y = mean + std * z into the head's output layer, so the saved
  model (adapter, merged or ONNX) outputs the number itself and no reader applies a scale.
- Metrics: MAE, RMSE, R², Spearman and Pearson, and, with `data.label_bins`, accuracy and macro F1
  of the bin the predicted value falls in against the true value's bin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from textlora.errors import TextloraError


def to_number(value: Any, split: str, row: int) -> float:
    """A target cell as a float; NaN when missing; one line naming the row when not a number."""
    if value is None or value is pd.NA or (isinstance(value, str) and not value.strip()):
        return math.nan
    if isinstance(value, (bool, np.bool_)):
        raise TextloraError(f"target {value!r} (row {row} of the {split} split) is a boolean; task: regression "
                            "needs numbers in data.label_column")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise TextloraError(
            f"target {value!r} (row {row} of the {split} split) is not a number; task: regression needs numbers "
            "in data.label_column: fix that row, or point data.label_column at the numeric column") from None
    if math.isinf(number):
        raise TextloraError(f"target {value!r} (row {row} of the {split} split) is infinite; fix that row")
    return number


class NumberMapper:
    """The regression counterpart of data.py's label mappers: one output, named after the column."""

    def __init__(self, column: str):
        self.names = [column]

    def map(self, labels: pd.Series, split: str) -> pd.Series:
        return pd.Series([to_number(v, split, i) for i, v in enumerate(labels)], index=labels.index, dtype=np.float64)


@dataclass(frozen=True)
class TargetScale:
    """The training rows' mean and standard deviation: the model learns (y - mean) / std."""

    mean: float
    std: float

    @classmethod
    def of(cls, values: np.ndarray) -> "TargetScale":
        values = np.asarray(values, dtype=np.float64)
        std = float(values.std())
        return cls(mean=float(values.mean()), std=std if std > 0 else 1.0)

    def standardise(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float64) - self.mean) / self.std

    def restore(self, standardised: np.ndarray) -> np.ndarray:
        return np.asarray(standardised, dtype=np.float64) * self.std + self.mean

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}


def bake_target_scale(model, scale: TargetScale) -> None:
    """Fold y = mean + std * z into the output layer of the head (weight x std, bias x std + mean), in
    place: afterwards the model outputs the number itself. Every one-output linear layer of the head
    is changed (peft keeps the trained copy beside the original). An output layer carrying an adapter
    (lora.target_modules naming the head) would keep an unscaled update: refused."""
    import torch
    from torch import nn

    from textlora.models import head_module_names

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    changed = 0
    with torch.no_grad():
        for head in head_module_names(base):
            for name, module in getattr(base, head).named_modules():
                if not isinstance(module, nn.Linear) or module.out_features != 1:
                    continue
                if name.endswith("base_layer"):
                    raise TextloraError(
                        f"task: regression: the output layer {head}.{name.rsplit('.', 1)[0]} carries an adapter, "
                        "whose update the target's scale cannot be folded into; leave the head out of "
                        "lora.target_modules (it is trained in full anyway)")
                if module.bias is None:
                    raise TextloraError(f"task: regression: the output layer {head}.{name} has no bias to hold the "
                                        "target's mean; this model's head is not supported for regression")
                module.weight.mul_(scale.std)
                module.bias.mul_(scale.std).add_(scale.mean)
                changed += 1
    if not changed:
        raise TextloraError("task: regression: found no one-output layer in the model's head; this model is not "
                            "supported for regression")


# --------------------------------------------------------------------------- bins


def value_bins(values: np.ndarray, bins: dict[str, list]) -> list[str]:
    """The bin of each value: the one holding it, else the nearest one (a predicted 4.6 between
    [null, 4] and [5, 6] goes to the second); ties go to the bin listed first."""
    out = []
    for value in np.asarray(values, dtype=np.float64):
        best, distance = None, math.inf
        for name, (low, high) in bins.items():
            gap = max(0.0, (low - value) if low is not None else 0.0, (value - high) if high is not None else 0.0)
            if gap < distance:
                best, distance = name, gap
        out.append(best)
    return out


# --------------------------------------------------------------------------- metrics


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None  # undefined for a constant (the training-mean row predicts one value)
    return float(np.corrcoef(a, b)[0, 1])


def regression_metrics(targets: np.ndarray, predictions: np.ndarray,
                       bins: dict[str, list] | None = None) -> dict[str, Any]:
    """MAE, RMSE, MSE (also `loss`), R², Spearman and Pearson of predictions against targets; with `bins`,
    accuracy, macro F1 and the confusion matrix of the predicted value's bin against the true value's."""
    from scipy.stats import rankdata
    from sklearn import metrics as skm

    y = np.asarray(targets, dtype=np.float64)
    pred = np.asarray(predictions, dtype=np.float64).reshape(-1)
    if pred.shape != y.shape:
        raise ValueError(f"predictions {pred.shape} and targets {y.shape} must have the same length")
    errors = pred - y
    mse = float(np.mean(errors ** 2)) if len(y) else None
    out: dict[str, Any] = {
        "n": int(len(y)),
        "loss": mse,
        "mae": float(np.mean(np.abs(errors))) if len(y) else None,
        "rmse": math.sqrt(mse) if mse is not None else None,
        "mse": mse,
        "r2": float(skm.r2_score(y, pred)) if len(y) > 1 and np.ptp(y) > 0 else None,
        "spearman": _correlation(rankdata(y), rankdata(pred)),
        "pearson": _correlation(y, pred),
        "mean_prediction": float(pred.mean()) if len(y) else None,
    }
    if bins:
        names = list(bins)
        truth, guess = value_bins(y, bins), value_bins(pred, bins)
        out["bins"] = {
            "names": names,
            "accuracy": float(skm.accuracy_score(truth, guess)),
            "f1_macro": float(skm.f1_score(truth, guess, labels=names, average="macro", zero_division=0)),
            "confusion_matrix": skm.confusion_matrix(truth, guess, labels=names).tolist(),
        }
        out["bin_accuracy"], out["bin_f1_macro"] = out["bins"]["accuracy"], out["bins"]["f1_macro"]
    return out


def resampled(metric: str, targets: np.ndarray, predictions: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`metric` on each resample (rows of `rows`, shape (R, n)), vectorised over the resamples; NaN where
    undefined (a constant resample for R² and the correlations)."""
    y, pred = np.asarray(targets, dtype=np.float64), np.asarray(predictions, dtype=np.float64).reshape(-1)
    errors = pred - y
    if metric == "mae":
        return np.abs(errors)[rows].mean(axis=1)
    if metric == "rmse":
        return np.sqrt((errors ** 2)[rows].mean(axis=1))
    if metric == "r2":
        sampled = y[rows]
        total = ((sampled - sampled.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(total > 0, 1 - (errors ** 2)[rows].sum(axis=1) / total, np.nan)
    if metric in ("spearman", "pearson"):
        a, b = y[rows], pred[rows]
        if metric == "spearman":
            from scipy.stats import rankdata

            a, b = rankdata(a, axis=1), rankdata(b, axis=1)
        a = a - a.mean(axis=1, keepdims=True)
        b = b - b.mean(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (a * b).sum(axis=1) / np.sqrt((a ** 2).sum(axis=1) * (b ** 2).sum(axis=1))
        return np.where(np.isfinite(r), r, np.nan)
    raise ValueError(f"no resampled form of {metric!r} for task: regression")
