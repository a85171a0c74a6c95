"""Figures for sweeps and reports (matplotlib, Agg backend: no display needed).

Every function takes plain rows read from run folders and returns a
matplotlib Figure; `png` turns one into bytes. Axes are labelled with their
units, and the data split a number comes from (validation or test) is named.

A row is a dict with: name, task, values ({swept key: value}), score
(validation metric), test (test metric), test_interval ([low, high], its 95 %
bootstrap interval, or None), train_seconds, trainable, total, epochs (the
per-epoch rows of the run record); its task (classification, multi_label,
regression) names the loss on the axes. References are (label, test metric)
pairs of the classical rows (TF-IDF, NBSVM): drawn as horizontal lines, the
bar a fine-tuned run has to clear.
"""

from __future__ import annotations

import io
import math
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import StrMethodFormatter  # noqa: E402

def _thousands() -> StrMethodFormatter:
    return StrMethodFormatter("{x:,.0f}")  # one per axis: a formatter binds to its axis

STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "axes.titlesize": 11,
    "legend.fontsize": 8,
    "legend.frameon": False,
}

METRIC_LABELS = {
    "loss": "loss (cross-entropy)", "accuracy": "accuracy", "precision": "precision", "recall": "recall",
    "f1": "F1", "f1_macro": "F1 macro", "f1_weighted": "F1 weighted", "roc_auc": "ROC AUC",
}


LOSS_WORDS = {"classification": "loss (cross-entropy)", "multi_label": "loss (binary cross-entropy)",
              "regression": "loss (MSE, target units)"}
"""The loss of a task's test rows."""
EPOCH_LOSS_WORDS = {**LOSS_WORDS, "regression": "loss (standardised target)"}
"""The loss of a task's per-epoch rows: a regression trains and validates on the standardised target."""
EPOCH_SCORES = {"classification": (("accuracy", "f1", "f1_macro", "roc_auc"), "score (validation rows, 0-1)"),
                "multi_label": (("f1_micro", "f1_macro", "f1_samples", "subset_accuracy", "roc_auc"),
                                "score (validation rows, 0-1)"),
                "regression": (("mae", "rmse"), "error (validation rows, target units)")}
"""The right panel of learning_curves per task: its metrics and the axis label."""


def metric_words(metric: str) -> str:
    """A metric's name on an axis or in a title: METRIC_LABELS, else tables.metric_name (micro F1, MAE, ...)."""
    if metric in METRIC_LABELS:
        return METRIC_LABELS[metric]
    from textlora.tables import metric_name

    return metric_name(metric)


def _title_words(metric: str) -> str:
    if metric in METRIC_LABELS:
        return METRIC_LABELS[metric].capitalize()
    words = metric_words(metric)
    return words[:1].upper() + words[1:]  # MAE, Micro F1: capitalize() would lower the rest


def task_of(rows: Sequence[dict[str, Any]]) -> str | None:
    """The task every row shares (None when they differ: the loss is then only called loss)."""
    tasks = {r.get("task", "classification") for r in rows}
    return tasks.pop() if len(tasks) == 1 else None


def _legend_outside(ax, **kwargs) -> None:
    """Right of the axes, where it hides no line (savefig's tight box makes room)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, **kwargs)


def _figure(**kwargs) -> tuple[Figure, Any]:
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(**kwargs)
    return fig, ax


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes; the figure is closed (pyplot keeps every open one alive)."""
    buffer = io.BytesIO()
    with plt.rc_context(STYLE):
        fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def metric_label(metric: str, split: str, task: str | None = "classification") -> str:
    if metric == "loss" and task != "classification":
        return f"{LOSS_WORDS.get(task, 'loss')} ({split} rows)"
    return f"{metric_words(metric)} ({split} rows)"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "+".join(map(str, value))
    return str(value)


def _x_axis(ax, values: Sequence[Any], key: str) -> dict[Any, float]:
    """Numeric values on a (log, when they span 8x or more) scale; anything else as categories."""
    distinct = list(dict.fromkeys(_text(v) if not _is_number(v) else v for v in values))
    if all(_is_number(v) for v in distinct):
        distinct = sorted(distinct)
        if min(distinct) > 0 and max(distinct) / min(distinct) >= 8:
            ax.set_xscale("log", base=2 if all(float(v).is_integer() for v in distinct) else 10)
        ax.set_xticks(distinct)
        ax.set_xticklabels([_text(v) for v in distinct])
        ax.minorticks_off()
        positions = {v: v for v in distinct}
    else:
        positions = {v: float(i) for i, v in enumerate(distinct)}
        ax.set_xticks(list(positions.values()))
        ax.set_xticklabels(list(positions), rotation=20 if len(distinct) > 4 else 0)
    ax.set_xlabel(key)
    return positions


def _position(positions: dict[Any, float], value: Any) -> float:
    return positions[value if _is_number(value) else _text(value)]


def by_swept_value(rows: list[dict[str, Any]], key: str, fields: list[tuple[str, str | None, str]], ylabel: str,
                   title: str) -> Figure:
    """Fields of each run against one swept key: one colour per combination of the other swept
    keys, one line style per field (e.g. validation solid, test dashed)."""
    fig, ax = _figure()
    positions = _x_axis(ax, [r["values"][key] for r in rows], key)
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        others = ", ".join(f"{k.rsplit('.', 1)[-1]}={_text(v)}" for k, v in row["values"].items() if k != key)
        groups.setdefault(others, []).append(row)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (group, members) in enumerate(groups.items()):
        for field, field_label, style in fields:
            points = sorted((_position(positions, r["values"][key]), r[field]) for r in members
                            if r.get(field) is not None)
            if not points:
                continue
            label = ", ".join(part for part in (field_label, group) if part) or None
            ax.plot(*zip(*points), marker="o", linestyle=style, color=colors[i % len(colors)], label=label)
    if ax.get_legend_handles_labels()[1] and len(groups) <= 12:
        _legend_outside(ax)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def params_vs_rank(rows: list[dict[str, Any]]) -> Figure:
    """Trainable parameters against the LoRA rank (seed 000's rank table, drawn)."""
    fig, ax = _figure()
    points = sorted({(r["r"], r["trainable"]) for r in rows if r.get("r") is not None})
    xs, ys = zip(*points)
    positions = _x_axis(ax, list(xs), "LoRA rank r")
    ax.plot([positions[x] for x in xs], ys, marker="o")
    for x, y in points:
        ax.annotate(f"{y:,}", (positions[x], y), textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.set_ylabel("trainable parameters (count)")
    ax.set_title("Trainable parameters vs rank")
    ax.yaxis.set_major_formatter(_thousands())
    return fig


def _references(ax, references: Sequence[tuple[str, float]]) -> None:
    """Classical rows as labelled horizontal lines (grey shades and dash styles: the bars keep the colours)."""
    styles = ["--", ":", "-.", (0, (5, 1, 1, 1))]
    for i, (label, value) in enumerate(references):
        ax.axhline(value, color=str(0.25 + 0.15 * (i % 4)), linestyle=styles[i % len(styles)], linewidth=1.2,
                   label=f"{label}: {value:.3f}")
    if references:
        ax.autoscale_view()  # a line at 1.0 would otherwise sit on the top spine


def time_vs_metric(rows: list[dict[str, Any]], metric: str, split: str = "test", field: str = "test",
                   references: Sequence[tuple[str, float]] = ()) -> Figure:
    """Each run as a point: training wall time against its metric (seed 002's Figure 5), its 95 % interval
    as a vertical bar where the run has one, the classical rows as reference lines."""
    fig, ax = _figure()
    for row in rows:
        if row.get(field) is None:
            continue
        interval = row.get("test_interval") if field == "test" else None
        yerr = [[row[field] - interval[0]], [interval[1] - row[field]]] if interval else None
        ax.errorbar(row["train_seconds"], row[field], yerr=yerr, fmt="o", markersize=6, capsize=3)
        ax.annotate(row["name"], (row["train_seconds"], row[field]), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    _references(ax, references)
    if references:
        _legend_outside(ax)
    ax.set_xlabel("training wall time (s)")
    ax.set_ylabel(metric_label(metric, split, task_of(rows)))
    ax.set_title(f"Time vs {metric_words(metric)}" + (" (bars: 95 % interval)" if field == "test" else ""))
    return fig


def loss_curves(runs: list[tuple[str, list[dict[str, Any]]]], task: str | None = "classification") -> Figure:
    """Validation loss (solid) and training loss (dashed) per epoch, every run on one axis (`task`: whose loss;
    None: runs of several tasks)."""
    fig, ax = _figure()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, epochs) in enumerate(runs):
        color = colors[i % len(colors)]
        rows = [e for e in epochs if e.get("epoch") is not None]
        val = [(e["epoch"], e["loss"]) for e in rows if e.get("loss") is not None]
        train = [(e["epoch"], e["train_loss"]) for e in rows if e.get("train_loss") is not None]
        if val:
            ax.plot(*zip(*val), marker="o", color=color, label=name)
        if train:
            ax.plot(*zip(*train), marker="x", linestyle="--", color=color, alpha=0.7)
    ax.plot([], [], color="grey", marker="o", label="validation (solid)")
    ax.plot([], [], color="grey", marker="x", linestyle="--", label="training (dashed)")
    epochs_seen = sorted({e["epoch"] for _, rows in runs for e in rows if e.get("epoch") is not None})
    if epochs_seen:
        ax.set_xticks(epochs_seen)
    ax.set_xlabel("epoch")
    ax.set_ylabel(EPOCH_LOSS_WORDS.get(task, "loss"))
    ax.set_title("Loss curves")
    _legend_outside(ax, ncol=2 if len(runs) > 12 else 1)
    return fig


def comparison_bars(rows: list[dict[str, Any]], metric: str = "accuracy",
                    references: Sequence[tuple[str, float]] = ()) -> Figure:
    """Seed 002's four panels: training time, trainable parameters, test loss and test metric per run;
    the metric bars carry their 95 % intervals as error bars and the classical rows as reference lines."""
    with plt.rc_context(STYLE):
        width = max(8.0, 1.1 * len(rows) + 4)
        fig, axes = plt.subplots(2, 2, figsize=(width, 6.4))
    names = [r["name"] for r in rows]
    task = task_of(rows)
    panels = [
        ("train_seconds", "training wall time (s)", "Time"),
        ("trainable", "trainable parameters (count)", "Parameters"),
        ("test_loss", metric_label("loss", "test", task), "Loss"),
        ("test", metric_label(metric, "test", task), _title_words(metric)),
    ]
    for ax, (field, ylabel, title) in zip(axes.flat, panels):
        values = [r.get(field) if r.get(field) is not None else math.nan for r in rows]
        yerr = _error_bars(rows, values) if field == "test" else None
        bars = ax.bar(range(len(rows)), values, yerr=yerr, capsize=4 if yerr is not None else 0,
                      color=plt.rcParams["axes.prop_cycle"].by_key()["color"][: len(rows)])
        ax.bar_label(bars, labels=[_short_number(v) for v in values], fontsize=7, padding=2,
                     label_type="center" if yerr is not None else "edge")  # the edge is the error bar's
        if field == "test" and references:
            _references(ax, references)
            _legend_outside(ax)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(names, rotation=25 if len(rows) > 2 else 0, ha="right" if len(rows) > 2 else "center",
                           fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if field == "trainable":
            ax.yaxis.set_major_formatter(_thousands())
        if field == "trainable" and all(v > 0 for v in values if not math.isnan(v)) and len(values) > 1:
            finite = [v for v in values if not math.isnan(v)]
            if finite and max(finite) / min(finite) > 50:
                ax.set_yscale("log")  # full fine-tuning beside LoRA spans three orders of magnitude
    fig.tight_layout()
    return fig


def _error_bars(rows: list[dict[str, Any]], values: list[float]) -> list[list[float]] | None:
    """matplotlib's asymmetric yerr ([below], [above]) from each row's interval; None where no row has one."""
    if not any(r.get("test_interval") for r in rows):
        return None
    below, above = [], []
    for row, value in zip(rows, values):
        interval = row.get("test_interval")
        ok = interval and not math.isnan(value)
        below.append(value - interval[0] if ok else 0.0)
        above.append(interval[1] - value if ok else 0.0)
    return [below, above]


def _short_number(value: float) -> str:
    if value is None or math.isnan(value):
        return "-"
    if abs(value) >= 1e6:
        return f"{value / 1e6:.1f}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:.0f}k"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.3g}"


def confusion_matrix(matrix: list[list[int]], label_names: list[str], title: str, what: str = "class") -> Figure:
    """Counts, rows = true class, columns = predicted class (`what`: bin, for a regression's bins)."""
    n = len(label_names)
    fig, ax = _figure(figsize=(1.1 * n + 2.6, 1.0 * n + 1.8))
    image = ax.imshow(matrix, cmap="Blues")
    ax.grid(False)
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, f"{count:,}", ha="center", va="center", color="white" if count > peak / 2 else "black")
    ax.set_xticks(range(n))
    ax.set_xticklabels(label_names, rotation=30 if n > 3 else 0)
    ax.set_yticks(range(n))
    ax.set_yticklabels(label_names)
    ax.set_xlabel(f"predicted {what}")
    ax.set_ylabel(f"true {what}")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="rows (count)", fraction=0.046, pad=0.04)
    return fig


def learning_curves(epochs: list[dict[str, Any]], title: str, task: str = "classification") -> Figure:
    """Per epoch: losses (left) and validation accuracy / F1 (right; multi_label: its F1s, subset accuracy and
    ROC-AUC; regression: MAE and RMSE)."""
    with plt.rc_context(STYLE):
        fig, (left, right) = plt.subplots(1, 2, figsize=(9.6, 3.6))
    rows = [e for e in epochs if e.get("epoch") is not None]
    xs = [e["epoch"] for e in rows]
    for key, label, style in (("train_loss", "training", "--"), ("loss", "validation", "-")):
        points = [(e["epoch"], e[key]) for e in rows if e.get(key) is not None]
        if points:
            left.plot(*zip(*points), marker="o", linestyle=style, label=label)
    scores, score_axis = EPOCH_SCORES[task]
    for key in scores:
        points = [(e["epoch"], e[key]) for e in rows if e.get(key) is not None]
        if points:
            right.plot(*zip(*points), marker="o", label=metric_words(key))
    for ax in (left, right):
        ax.set_xlabel("epoch")
        if xs:
            ax.set_xticks(sorted(set(xs)))
        ax.legend()
    left.set_ylabel(EPOCH_LOSS_WORDS[task])
    left.set_title("Loss")
    right.set_ylabel(score_axis)
    right.set_title("Validation metrics")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def reliability_diagram(before: list[dict[str, Any]], after: list[dict[str, Any]], temperature: float | None,
                        title: str) -> Figure:
    """Mean confidence against accuracy per confidence bin (calibration.reliability_bins, test rows), before
    and after temperature scaling; a calibrated model lies on the diagonal. Point area shows the bin's rows."""
    fig, ax = _figure(figsize=(4.8, 4.4))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect calibration")
    after_label = f"after (T = {temperature:.3g})" if temperature is not None else "after"
    for bins, label, marker in ((before, "before (T = 1)", "s"), (after, after_label, "o")):
        filled = [b for b in bins if b.get("count")]
        if not filled:
            continue
        total = sum(b["count"] for b in filled)
        xs, ys = [b["confidence"] for b in filled], [b["accuracy"] for b in filled]
        line = ax.plot(xs, ys, marker=marker, markersize=0, label=label)[0]
        ax.scatter(xs, ys, s=[12 + 200 * b["count"] / total for b in filled], marker=marker, color=line.get_color(),
                   zorder=3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("mean confidence of the predicted class")
    ax.set_ylabel("accuracy (test rows)")
    ax.set_title(title)
    ax.legend(loc="lower right")  # a model is rarely far below the diagonal at low confidence
    return fig
