"""Finished runs side by side: quality, cost and size, with their baselines and ensembles as rows.

    from textlora.compare import compare_runs
    headers, rows = compare_runs(["runs/lora", "runs/full"])

Every cell comes from a run's record (metrics.json, read as runs.RunRecord;
nothing is re-evaluated); a cell a row does not have (a baseline's trainable
parameters) shows as "-". Test accuracy carries its 95 % paired-bootstrap
interval. The classical (TF-IDF, NBSVM) and pre-adaptation baselines of runs
trained on the same rows (same data fingerprint) with the same numbers are
one row; otherwise each is labelled with the runs it belongs to. A run's
ensemble (fine-tuned averaged with a classical row) follows the run, and
under the table each run's paired verdicts say whether it beat its baselines.

Runs of task: multi_label and task: regression get a table of their own per
task (their rows hold other metrics): each of the task's interval metrics
(config.TASK_INTERVAL_METRICS: micro / macro / samples F1, subset accuracy,
Hamming loss; MAE, RMSE, R², Spearman) with its 95 % interval, and their
verdicts (taskstats.TaskComparison: micro F1, MAE).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from textlora.errors import TextloraError
from textlora.runs import ROW_NAMES, RunRecord, row_name
from textlora.tables import fixed, interval_text

FORMATS = ("text", "markdown", "json")


@dataclass(frozen=True)
class ComparedRun:
    """What the table needs of one run: its label, method and record."""

    label: str
    method: str | None
    record: RunRecord


# (header, the cell of a record as the text/markdown table shows it). Test-row
# metrics without an interval stay floats so tables.fmt shows them as every other table does.
COLUMNS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("run", lambda r: r["run"]),
    ("method", lambda r: r["method"]),
    ("base model", lambda r: r["base_model"]),
    ("trainable", lambda r: r["trainable"]),
    ("trainable %", lambda r: fixed(r["trainable_ratio"], 3, 100)),
    ("test rows", lambda r: r["n"]),
    ("test accuracy [95 % CI]", lambda r: interval_text(r, "accuracy")),
    ("test F1", lambda r: r["f1"]),
    ("test ROC AUC", lambda r: r["roc_auc"]),
    ("s/epoch", lambda r: fixed(r["epoch_seconds"], 1)),
    ("samples/s", lambda r: fixed(r["samples_per_second"], 1)),
    ("peak MiB", lambda r: fixed(r["peak_memory_mb"], 0)),
    ("artifact MiB", lambda r: fixed(r["artifact_mb"], 2)),
]

CLASSIFICATION_QUALITY = ("test accuracy [95 % CI]", "test F1", "test ROC AUC")
"""The columns of COLUMNS that only a classification row has (other tasks show theirs in their place)."""
QUALITY = ("loss", "accuracy", "f1", "f1_macro", "roc_auc")
"""The numbers two baseline rows must share to be shown as one (other tasks: loss and their interval metrics)."""
NO_COST = {"trainable": None, "total": None, "trainable_ratio": None, "epoch_seconds": None,
           "samples_per_second": None, "peak_memory_mb": None, "artifact_mb": None}
"""The cost cells of a row that trains nothing of its own (a baseline, an ensemble's averaging)."""


def _mean(values: Sequence[Any]) -> float | None:
    known = [v for v in values or () if v is not None]
    return sum(known) / len(known) if known else None


def _task_metrics(task: str) -> tuple[str, ...]:
    from textlora.config import TASK_INTERVAL_METRICS

    return TASK_INTERVAL_METRICS[task]


def columns(task: str = "classification") -> list[tuple[str, Callable[[dict[str, Any]], Any]]]:
    """The table's columns for runs of `task`: COLUMNS, with the task's interval metrics (each with its
    95 % interval) in place of accuracy / F1 / ROC-AUC for multi_label and regression."""
    if task == "classification":
        return COLUMNS
    from textlora.tables import metric_name

    metrics = [(f"test {metric_name(m)} [95 % CI]", lambda r, m=m: interval_text(r, m)) for m in _task_metrics(task)]
    out: list[tuple[str, Callable[[dict[str, Any]], Any]]] = []
    for header, cell in COLUMNS:
        if header == CLASSIFICATION_QUALITY[0]:
            out += metrics
        elif header not in CLASSIFICATION_QUALITY:
            out.append((header, cell))
    return out


def _quality(record: RunRecord, row: dict[str, Any]) -> dict[str, Any]:
    """A test row's cells: raw numbers and intervals (JSON keeps them; the table formats them)."""
    if record.task != "classification":
        return {"task": record.task, "n": row.get("n"), **{m: row.get(m) for m in _task_metrics(record.task)},
                "intervals": row.get("intervals")}
    return {"n": row.get("n"), "accuracy": row.get("accuracy"), "f1": record.headline_f1(row),
            "roc_auc": row.get("roc_auc"), "intervals": row.get("intervals")}


def run_record(run: ComparedRun) -> dict[str, Any]:
    record = run.record
    params, timing, artifact = record.params, record.timing, record.artifact_bytes
    return {
        "kind": "run",
        "run": run.label,
        "method": run.method or record.method,
        "base_model": record.base_model,
        "trainable": params.get("trainable"),
        "total": params.get("total"),
        "trainable_ratio": params.get("trainable_ratio"),
        **_quality(record, record.final),
        "epoch_seconds": _mean(timing.get("epoch_seconds") or []),
        "samples_per_second": timing.get("train_samples_per_second"),
        "peak_memory_mb": timing.get("peak_memory_mb"),
        "artifact_mb": artifact / 2**20 if artifact is not None else None,
        "fingerprint": record.data.get("fingerprint"),
        "shipped": record.shipped_kind,
        "verdicts": record.verdicts(),
    }


def ensemble_record(run: ComparedRun) -> dict[str, Any] | None:
    """The run's fine-tuned model averaged with its best classical row, or None where it has none."""
    record, row = run.record, run.record.ensemble
    if not row:
        return None
    partner = row.get("partner")
    return {
        "kind": "ensemble", "run": f"{ROW_NAMES['ensemble']} ({run.label})",
        "method": (f"{run.method or record.method} + {row_name(partner, task=record.task)}" if partner
                   else ROW_NAMES["ensemble"]),
        "base_model": record.base_model, **NO_COST, **_quality(record, row),
        "partner": partner, "weight": row.get("weight"), "fingerprint": record.data.get("fingerprint"),
        "runs": [run.label],
    }


def baseline_records(runs: Sequence[ComparedRun]) -> list[dict[str, Any]]:
    """One row per distinct baseline: shared by runs on the same rows with equal numbers, else per run."""
    groups: dict[tuple, dict[str, Any]] = {}
    for run in runs:
        record = run.record
        fingerprint = record.data.get("fingerprint")
        for key, row in record.baselines.items():
            # The pre-adaptation row is the base model before training: a different base is a different row.
            base = record.base_model if key == "pre_adaptation" else None
            quality = QUALITY if record.task == "classification" else ("loss", *_task_metrics(record.task))
            identity = (key, base, fingerprint, tuple(row.get(k) for k in quality)) if fingerprint else (key, id(row))
            group = groups.setdefault(identity, {"key": key, "row": row, "record": record, "runs": []})
            group["runs"].append(run.label)
    records = []
    for group in groups.values():
        key, row, record = group["key"], group["row"], group["record"]
        name = row_name(key, record.objective, record.task)
        if len(group["runs"]) < len(runs):  # not every run's: say whose
            name = f"{name} ({', '.join(group['runs'])})"
        records.append({
            "kind": "baseline", "key": key, "run": name, "method": "baseline",
            "base_model": record.base_model if key == "pre_adaptation" else None, **NO_COST,
            **_quality(record, row), "fingerprint": record.data.get("fingerprint"), "runs": group["runs"],
        })
    return records


def comparison_records(runs: Sequence[ComparedRun], baselines: bool = True) -> list[dict[str, Any]]:
    """Baseline rows first (the reference points, as in seed 000's table), then each run and its ensemble."""
    records = baseline_records(runs) if baselines else []
    for run in runs:
        records.append(run_record(run))
        ensemble = ensemble_record(run) if baselines else None
        if ensemble:
            records.append(ensemble)
    return records


def by_task(runs: Sequence[ComparedRun]) -> list[tuple[str, list[ComparedRun]]]:
    """Runs grouped by task (one table each: their rows hold different metrics), in order of appearance."""
    groups: dict[str, list[ComparedRun]] = {}
    for run in runs:
        groups.setdefault(run.record.task, []).append(run)
    return list(groups.items())


def comparison_table(runs: Sequence[ComparedRun], baselines: bool = True) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows for tables.render (report.py's per-dataset tables too), of runs of one task (by_task)."""
    tasks = {run.record.task for run in runs}
    if len(tasks) > 1:
        raise ValueError(f"runs of several tasks ({', '.join(sorted(tasks))}) in one table; split them with by_task")
    shown = columns(tasks.pop() if tasks else "classification")
    records = comparison_records(runs, baselines)
    return [header for header, _ in shown], [[cell(r) for _, cell in shown] for r in records]


def verdict_sections(runs: Sequence[ComparedRun]) -> list[tuple[str, list[str]]]:
    """Per run: what ships and why, and its paired verdicts against every baseline (the pipeline's sentences)."""
    from textlora.card import shipped_line

    sections = []
    for run in runs:
        heading = f"{run.label}: {shipped_line(run.record)}"
        verdicts = run.record.verdicts()
        sections.append((heading if verdicts else f"{heading} No baselines were run: nothing to compare it with.",
                         verdicts))
    return sections


def load_runs(paths: Sequence[str | Path]) -> list[ComparedRun]:
    """Finished runs (open_run refuses others), labelled by folder name, or parent/name where two clash."""
    from textlora.runs import open_run

    opened, seen = [], set()
    for given in paths:
        run = open_run(given)
        resolved = run.path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            opened.append(run)
    names = [run.path.resolve().name for run in opened]

    def label(path: Path) -> str:
        path = path.resolve()
        return path.name if names.count(path.name) == 1 else f"{path.parent.name}/{path.name}"

    return [ComparedRun(label=label(run.path), method=run.info.get("method"), record=run.record()) for run in opened]


def compare_runs(paths: Sequence[str | Path], baselines: bool = True) -> tuple[list[str], list[list[Any]]]:
    return comparison_table(load_runs(paths), baselines)


NOTE = ("F1: positive-class F1 for two classes, macro F1 for more. Every number is on each run's test rows; "
        "[95 % CI]: paired bootstrap over those rows.")
TASK_NOTES = {
    "classification": NOTE,
    "multi_label": ("Every number is on each run's test rows, from the label sets each row decides with its per-label "
                    "thresholds (tuned on the validation rows); [95 % CI]: paired bootstrap over those rows. Verdicts: "
                    "micro F1, with McNemar's test on the rows whose whole label set is right beside it."),
    "regression": ("Every number is on each run's test rows; MAE and RMSE are in the target's units, lower is better; "
                   "[95 % CI]: paired bootstrap over those rows. Verdicts: MAE, with a Wilcoxon signed-rank test on "
                   "the rows' absolute errors beside it."),
}


def render_comparison(runs: Sequence[ComparedRun], fmt: str = "text") -> str:
    from textlora.tables import render

    if fmt not in FORMATS:
        raise TextloraError(f"unknown --format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps(comparison_records(runs), indent=2)
    markdown = fmt == "markdown"
    groups = by_task(runs)
    lines: list[str] = []
    for i, (task, group) in enumerate(groups):
        if len(groups) > 1:  # runs of several tasks: a titled table each
            title = f"task: {task} ({len(group)} run{'s' if len(group) > 1 else ''})"
            lines += ([""] if i else []) + ([f"## {title}", ""] if markdown else [title, ""])
        headers, rows = comparison_table(group)
        lines += [render(headers, rows, markdown=markdown), "", TASK_NOTES[task]]
        for heading, verdicts in verdict_sections(group):
            lines += ["", heading] + (["", *(f"- {v}" for v in verdicts)] if markdown else [f"  {v}" for v in verdicts])
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def cmd_compare(args: argparse.Namespace) -> int:
    text = render_comparison(load_runs(args.run_dirs), args.format)
    if args.out:
        out = Path(args.out)
        if out.is_dir():
            raise TextloraError(f"--out {args.out!r} is a folder; give a file path")
        out.parent.mkdir(parents=True, exist_ok=True)
        temporary = out.with_name(f".{out.name}.partial")
        temporary.write_text(text + "\n", encoding="utf-8")
        temporary.replace(out)
        print(f"comparison of {len(args.run_dirs)} run(s) written to {out}")
    else:
        print(text)
    return 0


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="finished runs side by side: method, parameters, test metrics with intervals, time, memory, size, "
        "baselines, verdicts",
        description="One table of finished runs, every cell from their metrics.json: method, trainable "
        "parameters, test accuracy [95 % CI] / F1 / ROC-AUC (multi-label runs: micro / macro / samples F1, subset "
        "accuracy, Hamming loss; regression runs: MAE, RMSE, R², Spearman; each with its interval and a table of "
        "its own), seconds per epoch, samples/s, peak memory, artifact "
        "size, with each run's TF-IDF, NBSVM and pre-adaptation baselines as rows (one row where runs share them) "
        "and its ensemble after it; then what each run ships and its paired verdicts against the baselines.",
        epilog="example: textlora compare runs/imdb-lora runs/imdb-full --format markdown --out comparison.md",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders written by `textlora train`")
    parser.add_argument("--format", default="text", choices=FORMATS, help="text (default), markdown or json")
    parser.add_argument("--out", help="write the table to this file instead of printing it")
    parser.set_defaults(func=cmd_compare)
