"""Plain-text and markdown tables for the terminal, model cards and reports."""

from __future__ import annotations

from typing import Any, Sequence


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render(headers: Sequence[str], rows: Sequence[Sequence[Any]], markdown: bool = False) -> str:
    cells = [[fmt(v) for v in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda values: "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths)))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


EPOCH_COLUMNS = [
    ("Epoch", "epoch"), ("Step", "step"), ("Training Loss", "train_loss"), ("Validation Loss", "loss"), ("Accuracy", "accuracy"),
    ("Precision", "precision"), ("Recall", "recall"), ("F1", "f1"), ("F1 macro", "f1_macro"), ("ROC AUC", "roc_auc"),
    ("Seconds", "seconds"),
]


_STEPS = [("Epoch", "epoch"), ("Step", "step"), ("Training Loss", "train_loss"), ("Validation Loss", "loss")]
TASK_EPOCH_COLUMNS = {
    "classification": EPOCH_COLUMNS,
    "multi_label": _STEPS + [("F1 micro", "f1_micro"), ("F1 macro", "f1_macro"), ("F1 samples", "f1_samples"),
                             ("Subset accuracy", "subset_accuracy"), ("Hamming loss", "hamming_loss"),
                             ("ROC AUC", "roc_auc"), ("Seconds", "seconds")],
    "regression": _STEPS + [("MAE", "mae"), ("RMSE", "rmse"), ("R2", "r2"), ("Spearman", "spearman"),
                            ("Pearson", "pearson"), ("Seconds", "seconds")],
}
"""The per-evaluation columns of each task (the validation loss of a regression is on the standardised target)."""


def epoch_cells(epoch: dict[str, Any], task: str = "classification") -> list[Any]:
    """One row of the per-epoch table; the checkpoint that ships is marked with *."""
    cells = [epoch.get(k) for _, k in TASK_EPOCH_COLUMNS[task]]
    if epoch.get("selected"):
        cells[0] = f"{fmt(cells[0])}*"
    return cells


def epoch_table(epochs: list[dict[str, Any]], markdown: bool = False, task: str = "classification") -> str:
    """Seed 000's per-epoch table (one row per evaluation; * marks the checkpoint that ships)."""
    return render([h for h, _ in TASK_EPOCH_COLUMNS[task]], [epoch_cells(e, task) for e in epochs], markdown)


COMPARISON_METRICS = [
    ("loss", "Loss"), ("accuracy", "Accuracy"), ("precision", "Precision"), ("recall", "Recall"), ("f1", "F1"),
    ("f1_macro", "F1 macro"), ("f1_weighted", "F1 weighted"), ("roc_auc", "ROC AUC"), ("seconds", "Seconds"),
]


TASK_COMPARISON_METRICS = {
    "classification": COMPARISON_METRICS,
    "multi_label": [("loss", "Loss (BCE)"), ("f1_micro", "F1 micro"), ("f1_macro", "F1 macro"),
                    ("f1_samples", "F1 samples"), ("subset_accuracy", "Subset accuracy"),
                    ("hamming_loss", "Hamming loss"), ("roc_auc", "ROC AUC"), ("seconds", "Seconds")],
    "regression": [("mae", "MAE"), ("rmse", "RMSE"), ("r2", "R2"), ("spearman", "Spearman"), ("pearson", "Pearson"),
                   ("bin_accuracy", "Bin accuracy"), ("bin_f1_macro", "Bin F1 macro"), ("seconds", "Seconds")],
}


def comparison_table(named_rows: list[tuple[str, dict[str, Any]]], markdown: bool = False,
                     task: str = "classification") -> str:
    """Seed 000's "Evaluation Comparison": one column per row (baselines, fine-tuned)."""
    headers = ["Metric"] + [name for name, _ in named_rows]
    metrics_shown = [(k, label) for k, label in TASK_COMPARISON_METRICS[task]
                     if task == "classification" or any(m.get(k) is not None for _, m in named_rows)]
    rows = [[label] + [metrics.get(key) for _, metrics in named_rows] for key, label in metrics_shown]
    return render(headers, rows, markdown)


def fixed(value: float | None, digits: int, scale: float = 1) -> str | None:
    """A number with fixed decimals and thousands separators (fmt shows 4 decimals for every float)."""
    return None if value is None else f"{value * scale:,.{digits}f}"


def interval_text(row: dict[str, Any], metric: str, digits: int = 3) -> str | None:
    """`0.861 [0.839, 0.882]`: a test metric with its 95 % interval, or the value alone where none was computed."""
    value = row.get(metric)
    if value is None:
        return None
    interval = (row.get("intervals") or {}).get(metric)
    if not interval:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def task_metrics(task: str) -> tuple[str, ...]:
    """The metrics a run of `task` can be ranked by (validation score) and is summed up by: what
    `textlora sweep --metric` and `report --metric` accept and /v1/models shows. Classification:
    config.HEADLINE_METRICS; multi_label / regression: the task's selection metrics, then its interval
    metrics (config.TASK_SELECT_METRICS, TASK_INTERVAL_METRICS)."""
    from textlora.config import HEADLINE_METRICS, TASK_INTERVAL_METRICS, TASK_SELECT_METRICS

    if task == "classification":
        return HEADLINE_METRICS
    return tuple(dict.fromkeys((*TASK_SELECT_METRICS[task], *TASK_INTERVAL_METRICS[task])))


def default_metric(task: str) -> str:
    """What a sweep or a report ranks by unless told: accuracy, micro F1 (multi_label) or MAE (regression)."""
    from textlora.config import TASK_SELECT_METRICS

    return TASK_SELECT_METRICS[task][0]


def metric_name(metric: str) -> str:
    """A metric key as prose shows it (`f1_micro` -> micro F1; taskstats.METRIC_NAMES), else the key."""
    from textlora.taskstats import METRIC_NAMES

    return METRIC_NAMES.get(metric, metric)
