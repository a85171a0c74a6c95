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


def epoch_cells(epoch: dict[str, Any]) -> list[Any]:
    """One row of the per-epoch table; the checkpoint that ships is marked with *."""
    cells = [epoch.get(k) for _, k in EPOCH_COLUMNS]
    if epoch.get("selected"):
        cells[0] = f"{fmt(cells[0])}*"
    return cells


def epoch_table(epochs: list[dict[str, Any]], markdown: bool = False) -> str:
    """Seed 000's per-epoch table (one row per evaluation; * marks the checkpoint that ships)."""
    return render([h for h, _ in EPOCH_COLUMNS], [epoch_cells(e) for e in epochs], markdown)


COMPARISON_METRICS = [
    ("loss", "Loss"), ("accuracy", "Accuracy"), ("precision", "Precision"), ("recall", "Recall"), ("f1", "F1"),
    ("f1_macro", "F1 macro"), ("f1_weighted", "F1 weighted"), ("roc_auc", "ROC AUC"), ("seconds", "Seconds"),
]


def comparison_table(named_rows: list[tuple[str, dict[str, Any]]], markdown: bool = False) -> str:
    """Seed 000's "Evaluation Comparison": one column per row (baselines, fine-tuned)."""
    headers = ["Metric"] + [name for name, _ in named_rows]
    rows = [[label] + [metrics.get(key) for _, metrics in named_rows] for key, label in COMPARISON_METRICS]
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
