"""Run folders: the only thing later stages (predict, serve, report) read.

    runs/<name>/
      run.json        marker: format, finished, method, base model, labels
      config.yaml     the resolved recipe
      metrics.json    the run record (RunRecord below): baselines, per-epoch rows, final row,
                      intervals, verdicts, calibration, what ships, params, timings
      calibration.json  the temperature that divides the fine-tuned logits
      classical/<kind>/ classical models (JSON + safetensors) when they ship or join an ensemble
      ship.json       what predict / serve / ui / export load: finetuned, ensemble or a classical row
      adapter/        peft save_pretrained (safetensors, head included)  [adapter methods]
      model/          transformers save_pretrained (safetensors)         [full, head]
      tokenizer/      the tokenizer
      labels.json     class names in label-id order (task: regression: the target column's name)
      task.json       task: multi_label: each row's per-label thresholds (tuned on validation);
                      task: regression: the target's name, scale and bins  [those tasks only]
      README.md       model card with the comparison table

A run is written into a hidden folder beside its final place
(`.<name>.partial`, whose run.json says finished: false) and renamed at the
end. A run that fails is removed, unless training had saved a checkpoint:
then the partial folder stays for `--resume`, never mistaken for a finished
run because predict/serve/report only open folders whose run.json says
finished: true.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textlora.config import LABEL_WORD_OBJECTIVES
from textlora.errors import TextloraError

RUN_MARKER = "run.json"
FORMAT = 2
SHIP_FILE = "ship.json"
EXAMPLES_FILE = "examples.json"
"""One short test text per class (with its label), so the web page can offer the run's own texts."""
PROBS_FILE = "test_probs.safetensors"
"""Every row's probabilities on the test rows (and the labels), so that any later comparison
(compare, report, benchmarks) is a paired test on the same rows without scoring them again."""
CALIBRATION_FILE = "calibration.json"
CLASSICAL_DIR = "classical"
TASK_FILE = "task.json"
"""task: multi_label / regression: what prediction needs beyond the model (tasks.Settled.task_file)."""

# Display names of every row a run can hold: the one home for them.
ROW_NAMES = {
    "tfidf": "TF-IDF + LR",
    "nbsvm": "NBSVM",
    "pre_adaptation": "Pre-adaptation",
    "zero_shot": "Zero-shot (prompt)",
    "finetuned": "Fine-tuned",
    "ensemble": "Ensemble",
}
CLASSICAL_ROWS = ("tfidf", "nbsvm")
TASK_ROW_NAMES = {
    "multi_label": {"tfidf": "TF-IDF + OvR LR"},
    "regression": {"tfidf": "TF-IDF + ridge", "pre_adaptation": "Training mean"},
}
"""Rows whose model differs with the task: one-vs-rest regressions, ridge, and the constant prediction
that stands for 'before adaptation' in a regression (an untrained head predicts noise around 0)."""


def row_name(key: str, objective: str | None = None, task: str = "classification") -> str:
    """The display name of a row key (the pre-adaptation row of a label-word model is its zero-shot row)."""
    if key in TASK_ROW_NAMES.get(task, {}):
        return TASK_ROW_NAMES[task][key]
    if key == "pre_adaptation" and objective in LABEL_WORD_OBJECTIVES:
        key = "zero_shot"
    return ROW_NAMES.get(key, key)


@dataclass(frozen=True)
class RunRecord:
    """metrics.json, typed: written once by the pipeline, read by every reader (compare, report,
    sweep, ui, serve, predict). Rows are the metrics dicts of metrics.classification_metrics,
    grown with `intervals` (95 % paired bootstrap), `ece` and `brier`; all on the test rows."""

    name: str
    method: str
    objective: str
    base_model: str
    seed: int
    data: dict[str, Any]
    """Rows and class counts per split, token lengths, fingerprint, audit findings."""
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    """tfidf, nbsvm, pre_adaptation: test rows."""
    final: dict[str, Any] = field(default_factory=dict)
    """The fine-tuned model (selected checkpoint, calibrated probabilities) on the test rows."""
    ensemble: dict[str, Any] | None = None
    """Fine-tuned and best classical probabilities averaged (its `weight` chosen on validation)."""
    shipped: dict[str, Any] = field(default_factory=dict)
    """{"kind": finetuned | ensemble | tfidf | nbsvm, "reason": ..., "row": test row}."""
    selection: dict[str, Any] = field(default_factory=dict)
    """How things were chosen on the validation rows: metric, best epoch / step, candidate scores."""
    calibration: dict[str, Any] | None = None
    """temperature, and ECE / Brier / log loss of the fine-tuned model before and after it."""
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    """stats.Comparison.as_dict() of fine-tuned and shipped against each baseline, with `verdict`."""
    epochs: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    artifact_bytes: int | None = None
    truncation: str | None = None
    """The truncation strategy the run used (model.truncation: auto resolved)."""
    optimizer_groups: list[dict[str, Any]] = field(default_factory=list)
    class_weights: list[float] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    task: str = "classification"
    """classification | multi_label | regression: which metrics the rows hold (multi_label: micro / macro /
    samples F1, subset accuracy, Hamming loss, per_label; regression: MAE, RMSE, R², Spearman, Pearson)
    and what the comparisons are (stats.Comparison, or taskstats.TaskComparison for the other two)."""

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RunRecord":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def label_names(self) -> list[str]:
        return list(self.data.get("label_names") or [])

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    def rows(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(key, display name, test row) of every row: classical and pre-adaptation, fine-tuned, ensemble."""
        out = [(key, row_name(key, self.objective, self.task), row) for key, row in self.baselines.items()]
        if self.final:
            out.append(("finetuned", f"{ROW_NAMES['finetuned']} ({self.method})", self.final))
        if self.ensemble:
            out.append(("ensemble", ROW_NAMES["ensemble"], self.ensemble))
        return out

    @property
    def shipped_kind(self) -> str:
        return self.shipped.get("kind", "finetuned")

    @property
    def shipped_row(self) -> dict[str, Any]:
        return self.shipped.get("row") or self.final

    def verdicts(self) -> list[str]:
        return [c["verdict"] for c in self.comparisons if c.get("verdict")]

    def validation_score(self, metric: str) -> float | None:
        """The metric on the validation rows at the selected checkpoint (what sweeps choose by)."""
        chosen = [e for e in self.epochs if e.get("selected")] or self.epochs[-1:]
        return chosen[0].get(metric) if chosen else None

    def headline_f1(self, row: dict[str, Any]) -> float | None:
        """Positive-class F1 for two classes, macro F1 for more (metrics.py computes both)."""
        return row.get("f1") if self.n_classes == 2 else row.get("f1_macro", row.get("f1"))


@dataclass(frozen=True)
class RunDir:
    path: Path
    info: dict[str, Any]

    @property
    def label_names(self) -> list[str]:
        return list(self.info["label_names"])

    @property
    def task(self) -> str:
        return self.info.get("task", "classification")

    @property
    def task_file(self) -> dict[str, Any]:
        """task.json (multi_label thresholds; regression target, scale and bins); {} for classification."""
        return self.json_file(TASK_FILE) or {}

    @property
    def artifact(self) -> Path:
        return self.path / self.info["artifact"]

    @property
    def ship_plan(self) -> dict[str, Any]:
        """ship.json: what the run ships (kind: finetuned | ensemble | tfidf | nbsvm, the classical
        partner and the ensemble weight); runs written before ship.json existed ship the fine-tuned
        model. The same plan is in metrics.json's `shipped` (RunRecord.shipped_kind), beside its row."""
        return self.json_file(SHIP_FILE) or {"kind": "finetuned"}

    @property
    def needs_neural_model(self) -> bool:
        """Whether what ships runs the transformer (a classical row shipping alone does not)."""
        return self.ship_plan["kind"] in ("finetuned", "ensemble")

    def metrics(self) -> dict[str, Any]:
        path = self.path / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def record(self) -> RunRecord:
        """metrics.json as the typed run record."""
        path = self.path / "metrics.json"
        try:
            return RunRecord.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            raise TextloraError(f"{path} is missing or corrupt; re-train this run") from None

    def test_probs(self) -> dict[str, Any]:
        """{"labels": (n,), row key: (n, classes)} of the test rows, as the run scored them."""
        from safetensors.numpy import load_file

        path = self.path / PROBS_FILE
        if not path.is_file():
            raise TextloraError(f"run {str(self.path)!r} has no {PROBS_FILE}; re-train it with this textlora")
        return load_file(str(path))

    def json_file(self, name: str) -> dict[str, Any] | None:
        """A small JSON file of the run folder (ship.json, calibration.json), or None."""
        path = self.path / name
        return json.loads(path.read_text()) if path.is_file() else None

    def config(self) -> dict[str, Any]:
        import yaml

        return yaml.safe_load((self.path / "config.yaml").read_text())


def base_signature(config) -> dict[str, Any]:
    """run.json's base_signature: what must match between an adapter's base model and the one it is loaded on."""
    keys = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "d_model", "dim", "n_layers")
    return {k: getattr(config, k) for k in keys if getattr(config, k, None) is not None}


def open_run(path: str | Path) -> RunDir:
    """A finished run folder, or a one-line error saying what is wrong with it."""
    path = Path(path)
    if not path.is_dir():
        raise TextloraError(f"run folder {str(path)!r} does not exist; give a folder written by `textlora train`")
    marker = path / RUN_MARKER
    if not marker.is_file():
        raise TextloraError(f"{str(path)!r} is not a textlora run folder (no {RUN_MARKER}); give a folder written by `textlora train`")
    try:
        info = json.loads(marker.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TextloraError(f"{marker} is corrupt; re-run training for this run") from None
    if not info.get("finished"):
        raise TextloraError(f"run {str(path)!r} did not finish; resume or re-run its training first")
    if info.get("format") != FORMAT:
        raise TextloraError(f"run {str(path)!r} has format {info.get('format')!r}, this textlora reads {FORMAT}; re-train it")
    for needed in (info.get("artifact", "adapter"), "tokenizer", "labels.json"):
        if not (path / needed).exists():
            raise TextloraError(f"run {str(path)!r} is missing {needed}; the folder is incomplete, re-train it")
    return RunDir(path=path, info=info)


def is_run(path: str | Path) -> bool:
    try:
        open_run(path)
        return True
    except TextloraError:
        return False


def partial_dir(final: Path) -> Path:
    """Where an unfinished run lives: hidden, beside its final place, the same for every rank."""
    return final.parent / f".{final.name}.partial"


def start_run(output_dir: str | Path, name: str, overwrite: bool, resume: bool = False,
              create: bool = True) -> tuple[Path, Path, bool]:
    """Check the final place is free (or may be overwritten) and prepare the work folder.

    Returns (final folder, work folder, resuming). An unfinished run found
    in the work folder is continued with `resume`, replaced with `overwrite`,
    and otherwise left alone with an error saying so. `create=False` (ranks
    other than 0 in multi-process training) only computes the paths.
    """
    final = Path(output_dir) / name
    work = partial_dir(final)
    if not create:  # another process (rank 0) checks and prepares the folder
        return final, work, resume and work.exists()
    if final.exists() and not overwrite:
        raise TextloraError(
            f"run folder {str(final)!r} already exists; pass --overwrite, or choose another name with --set name=..."
        )
    resuming = False
    if work.exists():
        if resume:
            resuming = True
        elif overwrite:
            shutil.rmtree(work)
        else:
            raise TextloraError(
                f"an unfinished run of {name!r} is at {str(work)!r}; pass --resume to continue it or --overwrite to start over"
            )
    work.mkdir(parents=True, exist_ok=True)
    return final, work, resuming


def finish_run(temporary: Path, final: Path) -> None:
    """Move a complete run into place; an overwritten run is removed only after."""
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        final.rename(old)
    temporary.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def abandon_run(temporary: Path) -> None:
    shutil.rmtree(temporary, ignore_errors=True)


def folder_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
