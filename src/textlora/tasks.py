"""What a run of task: multi_label or task: regression asks of its task, in one place.

Single-label classification keeps its own path (metrics.py, calibration, stats.compare); the pipeline,
training and prediction ask here for everything that differs for the other two tasks:

- the targets the model trains on (multi-hot rows; the standardised number) and what its logits
  mean (sigmoid probabilities; the number itself, once regression.bake_target_scale has run);
- the metrics of a row and of each evaluation, and the selection metric;
- `settle`: after training, on the validation rows only, each row's per-label thresholds, the
  ensemble weight and what ships; then the test rows' metrics, intervals and paired verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from textlora.config import TASK_SELECT_METRICS


def resolve_select_metric(task: str, setting: str) -> str:
    """train.select_metric: auto -> micro F1 (multi_label) or MAE (regression)."""
    return TASK_SELECT_METRICS[task][0] if setting == "auto" else setting


def label_array(task: str, labels: Sequence, n_labels: int) -> np.ndarray:
    """A split's labels as the task's metrics take them: (n, K) multi-hot ints, or (n,) floats."""
    if task == "multi_label":
        from textlora.multilabel import multi_hot

        return multi_hot(list(labels), n_labels)
    return np.asarray(labels, dtype=np.float64)


def training_targets(task: str, labels: Sequence, n_labels: int, scale=None) -> list:
    """The `labels` of the rows the model trains and evaluates on: multi-hot floats (BCE), or the
    standardised number (regression.TargetScale)."""
    if task == "multi_label":
        return label_array(task, labels, n_labels).astype(np.float32).tolist()
    return scale.standardise(np.asarray(labels, dtype=np.float64)).tolist()


def outputs_of(task: str, logits: np.ndarray) -> np.ndarray:
    """A saved model's logits as the task's outputs: each label's sigmoid probability (n, K), or the
    predicted number (n,) (the target's scale is baked into the head)."""
    logits = np.asarray(logits, dtype=np.float64)
    if task == "multi_label":
        from textlora.multilabel import sigmoid

        return sigmoid(logits)
    return logits[:, 0] if logits.ndim == 2 else logits


def score_row(task: str, labels: np.ndarray, outputs: np.ndarray, label_names: list[str],
              thresholds: np.ndarray | None = None, bins: dict | None = None) -> dict[str, Any]:
    """Every metric of one row's outputs on labelled rows (label_array form)."""
    if task == "multi_label":
        from textlora.multilabel import multilabel_metrics

        return multilabel_metrics(labels, outputs, label_names, thresholds)
    from textlora.regression import regression_metrics

    return regression_metrics(labels, outputs, bins)


def decisions_of(task: str, outputs: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
    """What a row decides, the thing paired tests compare: label sets (n, K) bool, or numbers."""
    if task == "multi_label":
        from textlora.multilabel import DEFAULT_THRESHOLD, predict_sets

        return predict_sets(outputs, DEFAULT_THRESHOLD if thresholds is None else thresholds)
    return np.asarray(outputs, dtype=np.float64)


def validation_scorer(task: str, label_names: list[str]):
    """ship.Scorer of the task: multi_label tunes each candidate's thresholds on the validation rows it
    is scored on (so every candidate, classical or fine-tuned, gets the same treatment)."""
    def scorer(metric: str, labels: np.ndarray, outputs: np.ndarray) -> float | None:
        thresholds = None
        if task == "multi_label":
            from textlora.multilabel import tune_thresholds

            thresholds = tune_thresholds(labels, outputs)
        return score_row(task, labels, outputs, label_names, thresholds).get(metric)

    return scorer


def evaluation_metrics(task: str, logits: np.ndarray, labels: np.ndarray, label_names: list[str],
                       scale=None) -> tuple[dict[str, float], dict[str, Any]]:
    """One evaluation on the validation rows during training: (the scalars the Trainer logs, the per-label
    report). multi_label decides at 0.5 (thresholds are tuned once, after training); regression
    un-standardises outputs and targets, so MAE is in the target's units."""
    logits = np.asarray(logits, dtype=np.float64)
    if task == "multi_label":
        row = score_row(task, np.asarray(labels) > 0.5, outputs_of(task, logits), label_names)
        extra = {"per_label": row.pop("per_label")}
    else:
        row = score_row(task, scale.restore(np.asarray(labels).reshape(-1)), scale.restore(logits[:, 0]), label_names)
        extra = {}
    return {k: v for k, v in row.items() if isinstance(v, (int, float)) and k not in ("n", "loss")}, extra


# --------------------------------------------------------------------------- after training


@dataclass
class Settled:
    """Everything decided on the validation rows after training, and the test rows' numbers."""

    rows: dict[str, dict[str, Any]]
    """Test rows by key (tfidf, pre_adaptation, finetuned, ensemble), each with `intervals`."""
    decision: Any
    """ship.ShipDecision (what ships, the ensemble weight, the validation scores)."""
    thresholds: dict[str, list[float]] = field(default_factory=dict)
    """multi_label: each row's per-label thresholds (tuned on validation; 0.5 for pre_adaptation)."""
    comparisons: list[dict[str, Any]] = field(default_factory=list)

    def task_file(self, task: str, label_names: list[str], target: dict[str, Any] | None = None) -> dict[str, Any]:
        """task.json: what prediction needs beyond the model."""
        out: dict[str, Any] = {"task": task}
        if task == "multi_label":
            out["thresholds"] = {k: dict(zip(label_names, v)) for k, v in self.thresholds.items()}
            out["fitted_on"] = "validation"
        else:
            out.update(target or {})
        return out


def settle(task: str, ship_setting: str, metric: str, label_names: list[str], val_labels: np.ndarray,
           test_labels: np.ndarray, val_outputs: dict[str, np.ndarray], test_outputs: dict[str, np.ndarray],
           display: dict[str, str], seed: int, bins: dict | None = None,
           classical: tuple[str, ...] = ("tfidf",)) -> Settled:
    """Thresholds, ensemble and what ships from the validation rows (labels in label_array form); then
    every test row's metrics, intervals and the verdicts: fine-tuned against each baseline, and what
    ships (when it is not the fine-tuned model) against the others. `display`: row key -> shown name.
    Adds the ensemble's outputs to val_outputs / test_outputs."""
    from textlora.ship import decide
    from textlora.taskstats import bootstrap_intervals, compare

    decision = decide(ship_setting, metric, label_names, val_labels, val_outputs, test_outputs, classical,
                      scorer=validation_scorer(task, label_names))
    thresholds: dict[str, np.ndarray] = {}
    if task == "multi_label":
        from textlora.multilabel import DEFAULT_THRESHOLD, tune_thresholds

        for key in test_outputs:
            thresholds[key] = tune_thresholds(val_labels, val_outputs[key]) if key in val_outputs \
                else np.full(len(label_names), DEFAULT_THRESHOLD)
    rows = {key: score_row(task, test_labels, test_outputs[key], label_names, thresholds.get(key), bins)
            for key in test_outputs}
    if decision.ensemble is not None:
        rows["ensemble"].update(partner=decision.ensemble.partner, weight=decision.ensemble.weight)
    decisions = {key: decisions_of(task, test_outputs[key], thresholds.get(key)) for key in rows}
    intervals = bootstrap_intervals(task, test_labels, decisions, seed=seed)
    for key, row in rows.items():
        row["intervals"] = {m: (list(v) if v is not None else None) for m, v in intervals[key].items()}
    baselines = [k for k in rows if k not in ("finetuned", "ensemble")]
    pairs = [("finetuned", k) for k in baselines]
    if decision.kind != "finetuned":
        pairs += [(decision.kind, k) for k in baselines if k != decision.kind]
    bar = decision.ensemble.partner if decision.ensemble is not None else None
    comparisons = []
    for a, b in pairs:
        name_a = "fine-tuned" if a == "finetuned" else f"shipped ({display.get(a, a)})"
        result = compare(task, test_labels, decisions[a], decisions[b], name_a, display.get(b, b), seed=seed)
        comparisons.append({**result.as_dict(), "a": a, "b": b, "bar": b == bar, "verdict": result.verdict})
    return Settled(rows=rows, decision=decision, comparisons=comparisons,
                   thresholds={k: [float(t) for t in v] for k, v in thresholds.items()})


# --------------------------------------------------------------------------- printing


def summary_table(splits) -> tuple[list[str], list[list[Any]]]:
    """(headers, rows) of the dataset summary: per split, rows and each label's count (multi_label), or
    the target's mean, standard deviation and range (regression)."""
    summary = splits.summary()["splits"]
    if splits.task == "multi_label":
        names = splits.label_names
        return (["split", "rows", *names, "empty", "labels/row"],
                [[split, info["rows"], *(info["class_counts"][n] for n in names), info["empty_sets"],
                  round(info["label_cardinality"], 2)] for split, info in summary.items()])
    return (["split", "rows", "mean", "std", "min", "max"],
            [[split, info["rows"], *(info["target"].get(k) for k in ("mean", "std", "min", "max"))]
             for split, info in summary.items()])
