"""Reports: run and sweep folders -> one self-contained HTML page and its markdown twin.

    report/
      index.html     every image embedded (data: URIs): one file to mail or open anywhere
      report.md      the same content; images beside it in images/
      images/*.png

What is in it: per dataset (the runs' data.source and classes: numbers
measured on different data are never ranked in one table) one comparison
table of the classical (TF-IDF, NBSVM), pre-adaptation, fine-tuned and
ensemble rows with 95 % intervals, each run's paired verdicts under it, and
seed 002's time / parameters / loss / metric panels (intervals as error bars,
classical rows as reference lines), time vs metric and all loss curves; for
each sweep its table (sorted by the validation metric) and plots; for each
run seed 000's evaluation comparison, what ships and why, its calibration
(temperature, ECE / Brier before -> after, reliability diagram), per-epoch
table, learning curves and confusion matrix. Reports read run records only
(runs.RunRecord); nothing is retrained or re-evaluated.

Runs of task: multi_label and task: regression are grouped apart (a dataset
table per task) and show their task's metrics, intervals and verdicts; they
have no temperature or confusion matrix: their section shows the fine-tuned
model's per-label metrics and thresholds (multi_label) or its bins
(regression: the predicted value's bin against the true value's). Without
--metric the figures use each task's default (accuracy, micro F1, MAE).

The sweep sections reuse sweep_summary.py (its runs, table and figures), so
a sweep's summary.md and a report show the same table; the sweep summary
itself is written there.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from textlora.compare import NOTE, TASK_NOTES, comparison_table, verdict_sections
from textlora.config import ADAPTER_METHODS, RANKED_METHODS
from textlora.errors import TextloraError
from textlora.runs import is_run, open_run
from textlora.sweep_summary import (Run, SweepDir, is_sweep, overview_figures, plain, read_sweep, references,
                                    require_plots, run_row, sort_rows, sweep_figures, sweep_note, sweep_table)
from textlora.tables import (COMPARISON_METRICS, TASK_COMPARISON_METRICS, TASK_EPOCH_COLUMNS,
                             default_metric, epoch_cells, fmt, metric_name, render, task_metrics)

NUMBER = re.compile(r"-?[0-9][0-9,]*(\.[0-9]+)?(e-?[0-9]+)?")


# --------------------------------------------------------------------------- reading


def collect(paths: Iterable[str | Path]) -> tuple[list[Run], list[SweepDir]]:
    """Runs and sweeps named by `paths`: a run folder, a sweep folder, or a folder of either."""
    runs: dict[Path, Run] = {}
    sweeps: list[SweepDir] = []

    def add_sweep(path: Path) -> None:
        found = read_sweep(path)
        sweeps.append(found)
        for run in found.runs:
            runs.setdefault(run.path.resolve(), run)

    for given in paths:
        path = Path(given)
        if not path.is_dir():
            raise TextloraError(f"{str(given)!r} does not exist; give run or sweep folders (or a folder holding them)")
        if is_sweep(path):
            add_sweep(path)
        elif is_run(path):
            runs.setdefault(path.resolve(), Run.read(open_run(path)))
        elif (path / "run.json").is_file():
            open_run(path)  # raises the precise reason (unfinished, incomplete, other format)
        else:
            children = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
            found = False
            for child in children:
                if is_sweep(child):
                    add_sweep(child)
                    found = True
                elif is_run(child):
                    runs.setdefault(child.resolve(), Run.read(open_run(child)))
                    found = True
            if not found:
                raise TextloraError(f"{str(given)!r} holds no finished run or sweep folder; train or sweep first")
    ordered = list(runs.values())
    names = [r.label for r in ordered]
    for run in ordered:
        if names.count(run.label) > 1:
            parent = run.path.parent.parent if run.path.parent.name == "runs" and is_sweep(run.path.parent.parent) else run.path.parent
            run.label = f"{parent.name}/{run.path.name}"
    return ordered, sweeps


def by_dataset(runs: list[Run]) -> list[list[Run]]:
    """Runs grouped by Run.dataset and task (their rows hold different metrics), in order of appearance."""
    groups: dict[tuple[Any, ...], list[Run]] = {}
    for run in runs:
        groups.setdefault((*run.dataset, run.record.task), []).append(run)
    return list(groups.values())


def metric_of(run: Run, metric: str | None) -> str:
    """The metric a run's figures use: `metric` where its task has it, else the task's default."""
    task = run.record.task
    return metric if metric is not None and metric in task_metrics(task) else default_metric(task)


# --------------------------------------------------------------------------- the report document


@dataclass
class Doc:
    """A list of blocks rendered twice: HTML (images inline) and markdown (images as files)."""

    title: str
    blocks: list[tuple] = field(default_factory=list)
    _stems: set[str] = field(default_factory=set)

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, headers: list[str], rows: list[list[Any]]) -> None:
        self.blocks.append(("table", headers, rows))

    def bullets(self, items: list[str]) -> None:
        if items:
            self.blocks.append(("list", items))

    def image(self, stem: str, caption: str, data: bytes) -> None:
        stem = re.sub(r"[^A-Za-z0-9._=,+-]", "-", stem)
        base, i = stem, 2
        while stem in self._stems:
            stem, i = f"{base}-{i}", i + 1
        self._stems.add(stem)
        self.blocks.append(("img", stem, caption, data))


def _html_table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for value in row:
            numeric = (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
                isinstance(value, str) and NUMBER.fullmatch(value) is not None)
            cells.append(f'<td class="{"num" if numeric else "txt"}">{html.escape(fmt(value))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


BOLD = re.compile(r"\*\*(.+?)\*\*")


def _inline(text: str) -> str:
    """Markdown's `code` as <code> and **bold** as <strong>, everything else escaped: the markdown twin
    shows the same text, so no asterisk ever reaches the page literally."""
    parts = text.split("`")
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else BOLD.sub(r"<strong>\1</strong>", html.escape(p))
                   for i, p in enumerate(parts))


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .8rem 0 1.2rem; font-size: .85rem; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: .25rem .55rem; }
th { background: #f6f8fa; text-align: center; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fbfcfd; }
figure { margin: 1rem 0; display: inline-block; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eaeef2; }
figcaption { font-size: .8rem; color: #57606a; }
code { background: #f6f8fa; padding: 0 .25rem; border-radius: 3px; }
"""


def render_html(doc: Doc) -> str:
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{html.escape(doc.title)}</title><style>{CSS}</style></head><body>"]
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            parts.append(f"<h{block[1]}>{html.escape(block[2])}</h{block[1]}>")
        elif kind == "p":
            parts.append(f"<p>{_inline(block[1])}</p>")
        elif kind == "table":
            parts.append(_html_table(block[1], block[2]))
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "img":
            encoded = base64.b64encode(block[3]).decode("ascii")
            parts.append(f'<figure><img src="data:image/png;base64,{encoded}" alt="{html.escape(block[2])}">'
                         f"<figcaption>{html.escape(block[2])}</figcaption></figure>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def render_markdown(doc: Doc) -> str:
    lines: list[str] = []
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            lines += ["#" * block[1] + " " + block[2], ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "table":
            lines += [render(block[1], block[2], markdown=True), ""]
        elif kind == "list":
            lines += [f"- {item}" for item in block[1]] + [""]
        elif kind == "img":
            lines += [f"![{block[2]}](images/{block[1]}.png)", ""]
    return "\n".join(lines)


RUN_METRICS = COMPARISON_METRICS + [("ece", "ECE"), ("brier", "Brier")]
INTERVAL_METRICS = [("accuracy", "Accuracy 95 % CI"), ("f1_macro", "F1 macro 95 % CI"), ("roc_auc", "ROC AUC 95 % CI")]


def build_report(runs: list[Run], sweeps: list[SweepDir], metric: str | None = None,
                 title: str = "textlora report") -> Doc:
    """The report of runs and sweeps; `metric` (None: each task's default) is what the figures plot, for the
    runs whose task has it."""
    plots = require_plots()

    doc = Doc(title=title)
    doc.heading(1, title)
    doc.para(f"{len(runs)} run(s), {len(sweeps)} sweep(s). Test numbers are measured on each run's held-out test rows "
             "with the shipped artifact; per-epoch numbers on its validation rows.")
    rows = {run.path.resolve(): run_row(run, [], metric_of(run, metric)) for run in runs}
    sweep_sets = [{r.path.resolve() for r in sweep.runs} for sweep in sweeps]

    groups = by_dataset(runs)
    doc.heading(2, "Comparison of runs")
    doc.para(f"One table per dataset (data.source and classes; {len(groups)} here): runs on different data are never "
             "ranked together. Rows: the classical baselines, pre-adaptation, each fine-tuned run and its ensemble. "
             + NOTE)
    for group in groups:
        source, subset, labels = group[0].dataset
        task = group[0].record.task
        group_metric = metric_of(group[0], metric)
        doc.heading(3, f"Dataset {source}" + (f" ({subset})" if subset else "")
                    + (f", task: {task}" if task != "classification" else ""))
        what = {"multi_label": "Labels (a set per text)", "regression": "Target"}.get(task, "Classes")
        doc.para(f"{what}: {', '.join(map(str, labels))}. {len(group)} run(s).")
        compared = [run.compared() for run in group]
        doc.table(*comparison_table(compared))
        if task != "classification":
            doc.para(TASK_NOTES[task])
        for heading, verdicts in verdict_sections(compared):
            doc.para(heading)
            doc.bullets(verdicts)
        # A group that is exactly one sweep's runs gets these figures in the sweep's section.
        if {run.path.resolve() for run in group} not in sweep_sets:
            group_rows = [rows[run.path.resolve()] for run in group]
            for stem, caption, data in overview_figures(group_rows, group_metric, references(group, group_metric)):
                doc.image(f"{_slug(source)}-{stem}", caption, data)

    for sweep in sweeps:
        doc.heading(2, f"Sweep {sweep.path.name}")
        if not sweep.runs:
            doc.para("No finished run yet.")
            continue
        labels = {r.path.resolve(): r.label for r in runs}
        sweep_rows = [run_row(run, sweep.keys, sweep.metric) for run in sweep.runs]
        for row, run in zip(sweep_rows, sweep.runs):
            row["name"] = labels.get(run.path.resolve(), row["name"])
        sweep_rows = sort_rows(sweep_rows, sweep.metric)
        doc.para(sweep_note(sweep, sweep.metric, len(sweep_rows)))
        doc.table(*sweep_table(sweep_rows, sweep.keys, sweep.metric))
        for stem, caption, data in sweep_figures(sweep_rows, sweep.keys, sweep.metric,
                                                 references(sweep.runs, sweep.metric)):
            doc.image(f"{sweep.path.name}-{stem}", caption, data)

    for run in runs:
        run_section(doc, run, rows[run.path.resolve()], plots)
    return doc


def run_section(doc: Doc, run: Run, row: dict[str, Any], plots) -> None:
    """One run: description, its rows side by side with intervals, calibration, epochs, figures (what ships
    and the verdicts are under its dataset's table above)."""
    record = run.record
    doc.heading(2, f"Run {run.label}")
    doc.para(run_description(run, row))
    named = [(name, test_row) for _, name, test_row in record.rows()]
    task = record.task
    if named:
        doc.heading(3, "Evaluation comparison (test rows)")
        metrics, intervals = RUN_METRICS, INTERVAL_METRICS
        if task != "classification":
            from textlora.config import TASK_INTERVAL_METRICS

            metrics = TASK_COMPARISON_METRICS[task]
            intervals = [(m, f"{metric_name(m)} 95 % CI") for m in TASK_INTERVAL_METRICS[task]]
        doc.table(["Metric"] + [name for name, _ in named],
                  [[label] + [m.get(key) for _, m in named] for key, label in metrics]
                  + [[label] + [_interval(m, key) for _, m in named] for key, label in intervals])
    if record.calibration:
        doc.heading(3, "Calibration (test rows)")
        doc.para(calibration_text(record.calibration))
        doc.image(f"{run.label}-reliability", f"{run.label}: reliability diagram of the fine-tuned model on the "
                  "test rows, before and after temperature scaling (point area: rows in the bin)",
                  plots.png(plots.reliability_diagram(record.calibration.get("reliability_before") or [],
                                                      record.calibration.get("reliability_after") or [],
                                                      record.calibration.get("temperature"),
                                                      f"{run.label} (test rows)")))
    if row["epochs"]:
        doc.heading(3, "Per epoch (validation rows; * marks the checkpoint that ships)")
        doc.table([h for h, _ in TASK_EPOCH_COLUMNS[task]], [epoch_cells(e, task) for e in row["epochs"]])
        doc.image(f"{run.label}-learning-curves", f"{run.label}: learning curves",
                  plots.png(plots.learning_curves(row["epochs"], run.label, task)))
    if task != "classification":
        task_section(doc, run, plots)
        return
    matrix = row["final"].get("confusion_matrix")
    if matrix:
        doc.image(f"{run.label}-confusion", f"{run.label}: confusion matrix on the test rows (fine-tuned)",
                  plots.png(plots.confusion_matrix(matrix, record.label_names, f"{run.label} (test rows)")))


def task_section(doc: Doc, run: Run, plots) -> None:
    """Where a classification run shows its calibration and confusion matrix: the fine-tuned model's
    per-label metrics and thresholds (multi_label), or its bins on the test rows (regression)."""
    from textlora.card import bins_line, bins_table, per_label_table

    final = run.record.final
    if run.record.task == "multi_label" and final.get("per_label"):
        doc.heading(3, "Per label (test rows, fine-tuned; thresholds tuned on the validation rows)")
        doc.table(*per_label_table(final))
    bins = final.get("bins") or {}
    if run.record.task == "regression" and bins.get("confusion_matrix"):
        doc.heading(3, "Bins (test rows, fine-tuned)")
        doc.para(bins_line(final))
        doc.table(*bins_table(final))
        doc.image(f"{run.label}-bins", f"{run.label}: the predicted value's bin against the true value's on the "
                  "test rows (fine-tuned)",
                  plots.png(plots.confusion_matrix(bins["confusion_matrix"], bins["names"],
                                                   f"{run.label} (test rows)", what="bin")))


def calibration_text(calibration: dict[str, Any]) -> str:
    """The temperature and what it did to the fine-tuned model's probabilities on the test rows."""
    before, after = calibration.get("before") or {}, calibration.get("after") or {}
    fitted = calibration.get("validation_rows")
    changes = ", ".join(f"{label} {fmt(before.get(key))} -> {fmt(after.get(key))}"
                        for key, label in (("ece", "ECE"), ("brier", "Brier"), ("log_loss", "log loss")))
    return (f"Temperature {calibration['temperature']:.3f}, fitted on the "
            f"{f'{fitted:,} ' if fitted else ''}validation rows (the logits are divided by it before the softmax). "
            f"On the test rows: {changes}.")


def _interval(row: dict[str, Any], metric: str) -> str | None:
    interval = (row.get("intervals") or {}).get(metric)
    return f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval else None


def _slug(text: Any) -> str:
    return Path(str(text)).name or str(text)


def run_description(run: Run, row: dict[str, Any]) -> str:
    method = row["method"]
    task = run.record.task
    what = ", ".join(run.record.label_names)
    what = {"multi_label": f"multi-label: {what}", "regression": f"regression of {what}"}.get(task, what)
    parts = [f"`{run.info.get('base_model')}` + {method} on `{run.value('data.source')}` ({what})."]
    targets = run.value("lora.target_modules")
    targets = plain(targets) if targets else "preset"
    if method in RANKED_METHODS:
        parts.append(f"r={run.value('lora.r')}, alpha={plain(run.value('lora.alpha'))}, "
                     f"dropout={plain(run.value('lora.dropout'))}, targets={targets}.")
    elif method in ADAPTER_METHODS:  # IA3: scaling vectors, no rank
        parts.append(f"targets={targets}.")
    lr = run.value("train.learning_rate")
    parts.append(f"{plain(run.value('train.epochs'))} epoch(s), lr {plain(lr) if lr is not None else 'method default'}, "
                 f"batch {run.value('train.batch_size')}.")
    if row["trainable"] is not None:
        parts.append(f"Trainable parameters: {row['trainable']:,} of {row['total']:,} ({row['ratio']:.2%}).")
    if row["train_seconds"] is not None:
        parts.append(f"Training: {row['train_seconds']:.1f} s.")
    if row["artifact_mb"] is not None:
        parts.append(f"Artifact: {row['artifact_mb']:.2f} MiB.")
    parts.append(f"Folder: `{run.path}`.")
    return " ".join(parts)


def write_report(paths: Iterable[str | Path], out: str | Path, metric: str | None = None,
                 title: str = "textlora report") -> Path:
    """Write out/index.html (self-contained) and out/report.md (+ images/); returns index.html.
    `metric`: what the figures plot (one of the runs' tasks' metrics; None: each task's default)."""
    runs, sweeps = collect(paths)
    if not runs:
        raise TextloraError("nothing to report: the folders hold no finished run; train or sweep first")
    tasks = list(dict.fromkeys(run.record.task for run in runs))
    allowed = list(dict.fromkeys(m for task in tasks for m in task_metrics(task)))
    if metric is not None and metric not in allowed:
        from textlora.config import TASKS

        if any(metric in task_metrics(task) for task in TASKS):
            raise TextloraError(f"--metric {metric!r} is not a metric of these runs' task ({', '.join(tasks)}); "
                                f"choose one of: {', '.join(allowed)}")
        raise TextloraError(f"unknown --metric {metric!r}; choose one of: {', '.join(allowed)}")
    doc = build_report(runs, sweeps, metric, title)
    out = Path(out)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    for block in doc.blocks:
        if block[0] == "img":
            (images / f"{block[1]}.png").write_bytes(block[3])
    (out / "report.md").write_text(render_markdown(doc))
    index = out / "index.html"
    index.write_text(render_html(doc), encoding="utf-8")
    return index


# --------------------------------------------------------------------------- CLI


def cmd_report(args) -> int:
    index = write_report(args.paths, args.out, args.metric, args.title)
    print(f"report written to {index} (and {index.parent / 'report.md'})")
    return 0


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="an HTML + markdown report of run and sweep folders (tables, learning curves, plots)",
        description="Write a self-contained HTML report (images embedded) and a markdown twin from run folders, "
        "sweep folders, or folders holding them. Nothing is retrained.",
        epilog="example: textlora report runs/imdb-minilm sweeps/imdb-minilm --out report/",
    )
    parser.add_argument("paths", nargs="+", metavar="RUN_OR_SWEEP_DIR", help="run folders, sweep folders, or their parents")
    parser.add_argument("--out", default="report", help="output folder (default: report/)")
    parser.add_argument("--metric", help="metric of the time-vs-metric and comparison plots (default: accuracy; "
                        "micro F1 for multi-label runs, MAE for regression runs)")
    parser.add_argument("--title", default="textlora report", help="title of the report")
    parser.set_defaults(func=cmd_report)
