"""Finished runs side by side: quality, cost and size, with their baselines as rows.

    from textlora.compare import compare_runs
    headers, rows = compare_runs(["runs/lora", "runs/full"])

Every cell comes from a run's metrics.json (nothing is re-evaluated); a cell
a row does not have (a baseline's trainable parameters) shows as "-". The
TF-IDF and pre-adaptation baselines of runs trained on the same rows (same
data fingerprint) with the same numbers are one row; otherwise each is
labelled with the runs it belongs to.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from textlora.errors import TextloraError

FORMATS = ("text", "markdown", "json")


@dataclass(frozen=True)
class ComparedRun:
    """What the table needs of one run: its label, method and metrics.json."""

    label: str
    method: str | None
    metrics: dict[str, Any]


def _fixed(digits: int, scale: float = 1) -> Callable[[Any], Any]:
    return lambda v: None if v is None else f"{v * scale:,.{digits}f}"


def _same(value: Any) -> Any:
    return value


# (key in a record, header, how the text/markdown table shows it). Test-row
# metrics stay floats so tables.fmt shows them as every other table does.
COLUMNS: list[tuple[str, str, Callable[[Any], Any]]] = [
    ("run", "run", _same),
    ("method", "method", _same),
    ("base_model", "base model", _same),
    ("trainable", "trainable", _same),
    ("trainable_ratio", "trainable %", _fixed(3, 100)),
    ("accuracy", "test accuracy", _same),
    ("f1", "test F1", _same),
    ("roc_auc", "test ROC AUC", _same),
    ("epoch_seconds", "s/epoch", _fixed(1)),
    ("samples_per_second", "samples/s", _fixed(1)),
    ("peak_memory_mb", "peak MiB", _fixed(0)),
    ("artifact_mb", "artifact MiB", _fixed(2)),
]

BASELINE_NAMES = {"tfidf": "TF-IDF + LR", "pre_adaptation": "Pre-adaptation"}
QUALITY = ("loss", "accuracy", "f1", "f1_macro", "roc_auc")
"""The numbers two baseline rows must share to be shown as one."""


def f1_of(row: dict[str, Any], n_classes: int | None) -> float | None:
    """Positive-class F1 for two classes, macro F1 for more (metrics.py computes both)."""
    if n_classes is None:
        matrix = row.get("confusion_matrix")
        n_classes = len(matrix) if matrix else None
    return row.get("f1") if n_classes == 2 else row.get("f1_macro", row.get("f1"))


def _n_classes(metrics: dict[str, Any]) -> int | None:
    names = (metrics.get("data") or {}).get("label_names")
    return len(names) if names else None


def _mean(values: Sequence[Any]) -> float | None:
    known = [v for v in values or () if v is not None]
    return sum(known) / len(known) if known else None


def run_record(run: ComparedRun) -> dict[str, Any]:
    metrics = run.metrics
    final = metrics.get("final") or {}
    params = metrics.get("params") or {}
    timing = metrics.get("timing") or {}
    artifact = metrics.get("artifact_bytes")
    return {
        "kind": "run",
        "run": run.label,
        "method": run.method or metrics.get("method"),
        "base_model": metrics.get("base_model"),
        "trainable": params.get("trainable"),
        "total": params.get("total"),
        "trainable_ratio": params.get("trainable_ratio"),
        "accuracy": final.get("accuracy"),
        "f1": f1_of(final, _n_classes(metrics)),
        "roc_auc": final.get("roc_auc"),
        "epoch_seconds": _mean(timing.get("epoch_seconds") or []),
        "samples_per_second": timing.get("train_samples_per_second"),
        "peak_memory_mb": timing.get("peak_memory_mb"),
        "artifact_mb": artifact / 2**20 if artifact is not None else None,
        "fingerprint": (metrics.get("data") or {}).get("fingerprint"),
    }


def baseline_records(runs: Sequence[ComparedRun]) -> list[dict[str, Any]]:
    """One row per distinct baseline: shared by runs on the same rows with equal numbers, else per run."""
    groups: dict[tuple, dict[str, Any]] = {}
    for run in runs:
        metrics = run.metrics
        fingerprint = (metrics.get("data") or {}).get("fingerprint")
        for key, row in (metrics.get("baselines") or {}).items():
            # The pre-adaptation row is the base model before training: a different base is a different row.
            base = metrics.get("base_model") if key == "pre_adaptation" else None
            identity = (key, base, fingerprint, tuple(row.get(k) for k in QUALITY)) if fingerprint else (key, id(row))
            group = groups.setdefault(identity, {"key": key, "row": row, "metrics": metrics, "runs": []})
            group["runs"].append(run.label)
    records = []
    for group in groups.values():
        key, row, metrics = group["key"], group["row"], group["metrics"]
        name = BASELINE_NAMES.get(key, key)
        if key == "pre_adaptation" and metrics.get("objective") == "seq2seq":
            name = "Zero-shot (prompt)"
        if len(group["runs"]) < len(runs):  # not every run's: say whose
            name = f"{name} ({', '.join(group['runs'])})"
        records.append({
            "kind": "baseline", "run": name, "method": "baseline",
            "base_model": metrics.get("base_model") if key == "pre_adaptation" else None,
            "trainable": None, "total": None, "trainable_ratio": None,
            "accuracy": row.get("accuracy"), "f1": f1_of(row, _n_classes(metrics)), "roc_auc": row.get("roc_auc"),
            "epoch_seconds": None, "samples_per_second": None, "peak_memory_mb": None, "artifact_mb": None,
            "fingerprint": (metrics.get("data") or {}).get("fingerprint"), "runs": group["runs"],
        })
    return records


def comparison_records(runs: Sequence[ComparedRun], baselines: bool = True) -> list[dict[str, Any]]:
    """Baseline rows first (the reference points, as in seed 000's table), then the runs, raw values."""
    return (baseline_records(runs) if baselines else []) + [run_record(run) for run in runs]


def comparison_table(runs: Sequence[ComparedRun], baselines: bool = True) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows for tables.render (report.py's "Comparison of runs" too)."""
    records = comparison_records(runs, baselines)
    return [header for _, header, _ in COLUMNS], [[show(r.get(key)) for key, _, show in COLUMNS] for r in records]


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

    return [ComparedRun(label=label(run.path), method=run.info.get("method"), metrics=run.metrics()) for run in opened]


def compare_runs(paths: Sequence[str | Path], baselines: bool = True) -> tuple[list[str], list[list[Any]]]:
    return comparison_table(load_runs(paths), baselines)


def render_comparison(runs: Sequence[ComparedRun], fmt: str = "text") -> str:
    from textlora.tables import render

    if fmt not in FORMATS:
        raise TextloraError(f"unknown --format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps(comparison_records(runs), indent=2)
    headers, rows = comparison_table(runs)
    note = "F1: positive-class F1 for two classes, macro F1 for more. Every number is on each run's test rows."
    return render(headers, rows, markdown=fmt == "markdown") + "\n\n" + note


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
        help="finished runs side by side: method, parameters, test metrics, time, memory, size, baselines",
        description="One table of finished runs, every cell from their metrics.json: method, trainable "
        "parameters, test accuracy / F1 / ROC-AUC, seconds per epoch, samples/s, peak memory, artifact size, "
        "with each run's TF-IDF and pre-adaptation baselines as rows (one row where runs share them).",
        epilog="example: textlora compare runs/imdb-lora runs/imdb-full --format markdown --out comparison.md",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders written by `textlora train`")
    parser.add_argument("--format", default="text", choices=FORMATS, help="text (default), markdown or json")
    parser.add_argument("--out", help="write the table to this file instead of printing it")
    parser.set_defaults(func=cmd_compare)
