"""Sweep summaries: a sweep folder -> summary.csv, summary.md and plots/ beside its runs.

    sweeps/<name>/
      summary.csv     one row per finished run (and one per failed point), sorted by the validation metric
      summary.md      the same table (with the spread over seeds for --repeats), plus the plots below
      plots/*.png     metric and wall time vs each swept key, parameters vs r, time vs metric, loss curves

Also the reading both this summary and the report (report.py) build on: `Run`, a finished run as
tables show it (its record, config values by dotted key, dataset), `read_sweep`, and the rows,
table and figures of a sweep, so a sweep and a report show the same table. Reads run records
only (runs.RunRecord); nothing is retrained or re-evaluated.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textlora.compare import ComparedRun, baseline_records
from textlora.config import LOWER_IS_BETTER, RANKED_METHODS
from textlora.errors import TextloraError
from textlora.runs import CLASSICAL_ROWS, RunDir, RunRecord, is_run, open_run
from textlora.sweep import SWEEP_FILE
from textlora.tables import fixed, render

TEST_COLUMNS = [("accuracy", "test accuracy"), ("f1", "test F1"), ("f1_macro", "test F1 macro"),
                ("roc_auc", "test ROC AUC"), ("loss", "test loss")]


def test_columns(task: str) -> list[tuple[str, str]]:
    """The test columns of a sweep table: TEST_COLUMNS, or the task's interval metrics and its loss."""
    if task == "classification":
        return TEST_COLUMNS
    from textlora.config import TASK_INTERVAL_METRICS
    from textlora.tables import metric_name

    return [(m, f"test {metric_name(m)}") for m in TASK_INTERVAL_METRICS[task]] + [("loss", "test loss")]


# --------------------------------------------------------------------------- reading


@dataclass
class Run:
    path: Path
    label: str
    """The name shown in tables: the run name, with its sweep's name where two would clash."""
    info: dict[str, Any]
    record: RunRecord
    config: dict[str, Any]

    @classmethod
    def read(cls, run: RunDir) -> "Run":
        return cls(path=run.path, label=run.path.name, info=run.info, record=run.record(), config=run.config() or {})

    @property
    def method(self) -> str:
        return self.info.get("method") or self.record.method

    @property
    def dataset(self) -> tuple[Any, ...]:
        """What makes two runs' numbers comparable at all: the same source (and subset) and the same classes.
        Runs on different rows of one source stay together; compare labels their baselines per run."""
        return self.value("data.source"), self.value("data.subset"), tuple(self.record.label_names)

    def compared(self) -> ComparedRun:
        return ComparedRun(label=self.label, method=self.method, record=self.record)

    def value(self, key: str) -> Any:
        """A config value by dotted key (lora.r), as the run was actually trained."""
        node: Any = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node


@dataclass
class SweepDir:
    path: Path
    spec: dict[str, Any]
    runs: list[Run]

    @property
    def keys(self) -> list[str]:
        return list(self.spec.get("keys", []))

    @property
    def metric(self) -> str:
        return self.spec.get("metric", "accuracy")


def is_sweep(path: Path) -> bool:
    return (path / SWEEP_FILE).is_file()


def read_sweep(path: str | Path) -> SweepDir:
    path = Path(path)
    if not is_sweep(path):
        raise TextloraError(f"{str(path)!r} is not a sweep folder (no {SWEEP_FILE}); give a folder written by `textlora sweep`")
    spec = json.loads((path / SWEEP_FILE).read_text())
    runs_dir = path / "runs"
    runs = [Run.read(open_run(p)) for p in sorted(runs_dir.iterdir()) if is_run(p)] if runs_dir.is_dir() else []
    order = {point["name"]: i for i, point in enumerate(spec.get("points", []))}
    runs.sort(key=lambda run: order.get(run.path.name, len(order)))  # grid order: ties keep it
    return SweepDir(path=path, spec=spec, runs=runs)


def run_row(run: Run, keys: list[str], metric: str) -> dict[str, Any]:
    """The numbers one run contributes to tables and plots (plots.py's row)."""
    record = run.record
    final, params, timing = record.final, record.params, record.timing
    method = run.method
    return {
        "name": run.label,
        "task": record.task,
        "values": {key: run.value(key) for key in keys},
        "method": method,
        "r": run.value("lora.r") if method in RANKED_METHODS else None,
        "score": record.validation_score(metric),
        "test": final.get(metric),
        "test_interval": (final.get("intervals") or {}).get(metric),
        "test_loss": final.get("loss"),
        "final": final,
        "trainable": params.get("trainable"),
        "total": params.get("total"),
        "ratio": params.get("trainable_ratio"),
        "train_seconds": timing.get("train_seconds"),
        "peak_memory_mb": timing.get("peak_memory_mb"),
        "artifact_mb": record.artifact_bytes / 2**20 if record.artifact_bytes is not None else None,
        "epochs": record.epochs,
    }


def references(runs: list[Run], metric: str) -> list[tuple[str, float]]:
    """The classical rows' test metric as (name, value) reference lines: one per row `textlora compare`
    shows (shared where the runs share it, else labelled with its runs)."""
    by_label = {run.label: run for run in runs}
    out = []
    for shown in baseline_records([run.compared() for run in runs]):
        if shown["key"] in CLASSICAL_ROWS:
            value = by_label[shown["runs"][0]].record.baselines[shown["key"]].get(metric)
            if value is not None:
                out.append((shown["run"], value))
    return out


def sort_rows(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Best validation score first (lowest for loss, MAE, RMSE, Hamming loss: config.LOWER_IS_BETTER); runs
    without one last."""
    sign = 1 if metric in LOWER_IS_BETTER else -1
    return sorted(rows, key=lambda r: (r["score"] is None, sign * (r["score"] or 0)))


# --------------------------------------------------------------------------- tables


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def sweep_table(rows: list[dict[str, Any]], keys: list[str], metric: str) -> tuple[list[str], list[list[Any]]]:
    tasks = dict.fromkeys(row.get("task", "classification") for row in rows) or ["classification"]
    shown = list(dict.fromkeys(column for task in tasks for column in test_columns(task)))
    headers = ["run", *(_short(k) for k in keys), f"validation {metric}",
               *(label for _, label in shown), "trainable", "trainable %", "train s", "peak MiB",
               "artifact MiB"]
    body = []
    for row in rows:
        body.append([
            row["name"], *(plain(row["values"][k]) for k in keys), row["score"],
            *(row["final"].get(key) for key, _ in shown), row["trainable"],
            fixed(row["ratio"], 3, 100), fixed(row["train_seconds"], 1), fixed(row["peak_memory_mb"], 0),
            fixed(row["artifact_mb"], 2),
        ])
    return headers, body


def plain(value: Any) -> Any:
    """A config value as tables show it: a list as [a, b], a float in its shortest form."""
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return value


# --------------------------------------------------------------------------- figures


def require_plots():
    """textlora.plots, or a TextloraError naming the extra that brings matplotlib."""
    try:
        from textlora import plots
    except ImportError:
        raise TextloraError("plots need matplotlib: pip install 'textlora[plots]'") from None
    return plots


def sweep_figures(rows: list[dict[str, Any]], keys: list[str], metric: str,
                  refs: list[tuple[str, float]] = ()) -> list[tuple[str, str, bytes]]:
    """(file stem, caption, png) for every sweep plot."""
    plots = require_plots()

    out = []
    for key in keys:
        fig = plots.by_swept_value(
            rows, key, [("score", "validation", "-"), ("test", "test", "--")],
            plots.metric_words(metric), f"{plots.metric_words(metric)} vs {key}",
        )
        out.append((f"{metric}_vs_{_short(key)}", f"{metric} (validation: solid, test: dashed) vs {key}", plots.png(fig)))
        fig = plots.by_swept_value(rows, key, [("train_seconds", None, "-")], "training wall time (s)",
                                   f"Training time vs {key}")
        out.append((f"time_vs_{_short(key)}", f"training wall time vs {key}", plots.png(fig)))
    if "lora.r" in keys and any(r["r"] is not None and r["trainable"] for r in rows):
        out.append(("params_vs_r", "trainable parameters vs LoRA rank r", plots.png(plots.params_vs_rank(rows))))
    return out + overview_figures(rows, metric, refs)


def overview_figures(rows: list[dict[str, Any]], metric: str,
                     refs: list[tuple[str, float]] = ()) -> list[tuple[str, str, bytes]]:
    """Time vs metric and loss curves (for two runs or more), and the four comparison panels."""
    plots = require_plots()

    lines = "; classical rows as horizontal lines" if refs else ""
    out = []
    if len(rows) > 1:
        out.append(("time_vs_" + metric, f"training wall time vs test {metric}, one point per run (95 % "
                    f"intervals{lines})", plots.png(plots.time_vs_metric(rows, metric, references=refs))))
        out.append(("loss_curves", "validation (solid) and training (dashed) loss per epoch, every run",
                    plots.png(plots.loss_curves([(r["name"], r["epochs"]) for r in rows], plots.task_of(rows)))))
    if len(rows) <= 24:
        out.append(("comparison", f"training time, trainable parameters, test loss and test {metric} per run "
                    f"(95 % intervals as error bars{lines})",
                    plots.png(plots.comparison_bars(rows, metric, references=refs))))
    return out


# --------------------------------------------------------------------------- sweep summary


@dataclass
class SweepSummary:
    rows: list[dict[str, Any]]
    headers: list[str]
    body: list[list[Any]]
    text: str
    """The table as the terminal shows it."""


def write_sweep_summary(sweep_dir: str | Path, metric: str | None = None) -> SweepSummary:
    """summary.csv, summary.md and plots/*.png of a sweep folder, from its finished runs."""
    sweep = read_sweep(sweep_dir)
    metric = metric or sweep.metric
    finished = {run.path.name for run in sweep.runs}
    # Points whose last attempt failed (sweep.json keeps their one-line error): a row marked failed.
    failed = [p for p in sweep.spec.get("points", []) if p.get("error") and p["name"] not in finished]
    if not sweep.runs and not failed:
        raise TextloraError(f"sweep {str(sweep.path)!r} has no finished run yet; run the sweep first")
    rows = sort_rows([run_row(run, sweep.keys, metric) for run in sweep.runs], metric)
    headers, body = sweep_table(rows, sweep.keys, metric)
    if failed:
        headers = [*headers, "error"]
        body = [[*row, None] for row in body] + [
            [p["name"], *(plain(p.get("values", {}).get(k)) for k in sweep.keys), "failed",
             *([None] * (len(headers) - len(sweep.keys) - 3)), p["error"]] for p in failed]
    with open(sweep.path / "summary.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(headers)
        writer.writerows([["" if v is None else v for v in row] for row in body])
    plots_dir = sweep.path / "plots"
    lines = [f"# Sweep {sweep.path.name}", "", sweep_note(sweep, metric, len(rows)), "", render(headers, body, markdown=True), ""]
    if failed:
        lines += [f"{len(failed)} point(s) failed (marked failed above); re-running the sweep retries them.", ""]
    if not rows:
        lines += ["No plots: no point finished.", ""]
    try:
        figures = sweep_figures(rows, sweep.keys, metric, references(sweep.runs, metric)) if rows else []
        plots_dir.mkdir(exist_ok=True)
    except TextloraError as err:  # no matplotlib: the table still stands
        figures = []
        lines += [f"No plots: {err}.", ""]
    for stem, caption, data in figures:
        (plots_dir / f"{stem}.png").write_bytes(data)
        lines += [f"![{caption}](plots/{stem}.png)", ""]
    text = render(headers, body)
    seeds = {row["values"].get("seed") for row in rows}
    if "seed" in sweep.keys and len(seeds) > 1:  # --repeats: the spread over seeds, per point
        from textlora.sweep import over_seeds

        seed_headers, seed_body = over_seeds(rows, sweep.keys, metric)
        lines[4:4] = ["## Over seeds", "", render(seed_headers, seed_body, markdown=True), "",
                      "## Every run", ""]
        text = render(seed_headers, seed_body) + "\n\n" + text
    (sweep.path / "summary.md").write_text("\n".join(lines))
    return SweepSummary(rows=rows, headers=headers, body=body, text=text)


def sweep_note(sweep: SweepDir, metric: str, n: int) -> str:
    recipe = sweep.spec.get("recipe") or "the built-in defaults"
    swept = ", ".join(sweep.keys) or "-"
    return (f"{n} run(s) of `{recipe}` over {swept}, sorted by {metric} on the validation rows "
            f"(at each run's selected checkpoint); the test columns are reported, never used to choose.")
