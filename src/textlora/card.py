"""The model card (runs/<name>/README.md): what was trained, how it compares, with uncertainty.

A Hugging Face model card: YAML front matter the hub reads (library_name, base_model,
pipeline_tag, tags, datasets, metrics, and a model-index with the test results of what ships,
written by huggingface_hub's ModelCardData), then the body. The same card, with a usage section
for plain peft / transformers, goes into the adapter folder and into `textlora export --adapter`,
so that folder can be uploaded as it is (huggingface_hub.upload_folder).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from textlora import __version__
from textlora.config import ADAPTER_METHODS, Config
from textlora.runs import RunRecord, row_name
from textlora.tables import comparison_table, epoch_table, interval_text, metric_name, render


def intervals_table(record: RunRecord, markdown: bool = True) -> str:
    """Every row's accuracy, macro F1 and ROC-AUC with its 95 % bootstrap interval, and its ECE (task:
    multi_label / regression: the task's interval metrics)."""
    if record.task != "classification":
        from textlora.config import TASK_INTERVAL_METRICS

        metrics = TASK_INTERVAL_METRICS[record.task]
        body = [[name, *(interval_text(row, m, digits=4) or "-" for m in metrics)] for _, name, row in record.rows()]
        return render(["row", *(f"{metric_name(m)} [95 % CI]" for m in metrics)], body, markdown)

    body = [[name, *(interval_text(row, metric, digits=4) or "-" for metric in ("accuracy", "f1_macro", "roc_auc")),
             row.get("ece")] for _, name, row in record.rows()]
    return render(["row", "accuracy [95 % CI]", "macro F1 [95 % CI]", "ROC-AUC [95 % CI]", "ECE"], body, markdown)


def shipped_what(record: RunRecord) -> str:
    """What the run ships, in words: the fine-tuned model, the ensemble, or the <classical> row."""
    kind = record.shipped_kind
    return {"finetuned": "the fine-tuned model", "ensemble": "the ensemble"}.get(
        kind, f"the {row_name(kind, task=record.task)} row")


def shipped_line(record: RunRecord) -> str:
    reason = record.shipped.get("reason", "")
    return f"Ships {shipped_what(record)}. {reason}"


def per_label_table(row: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """task: multi_label: each label's support, threshold, precision, recall, F1 and ROC-AUC in a test row."""
    per_label = row.get("per_label") or {}
    return (["label", "support", "threshold", "precision", "recall", "F1", "ROC AUC"],
            [[name, m.get("support"), m.get("threshold"), m.get("precision"), m.get("recall"), m.get("f1"),
              m.get("roc_auc")] for name, m in per_label.items()])


def bins_table(row: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """task: regression with data.label_bins: the true value's bin (rows) against the predicted value's
    (columns) in a test row: counts."""
    bins = row.get("bins") or {}
    names = bins.get("names") or []
    return (["true bin", *(f"predicted {name}" for name in names)],
            [[name, *counts] for name, counts in zip(names, bins.get("confusion_matrix") or [])])


def bins_line(row: dict[str, Any]) -> str:
    bins = row.get("bins") or {}
    return (f"The predicted value's bin against the true value's: accuracy {bins.get('accuracy', 0):.4f}, "
            f"macro F1 {bins.get('f1_macro', 0):.4f} (data.label_bins: {', '.join(bins.get('names') or [])}).")


def task_sections(record: RunRecord, markdown: bool = True) -> list[str]:
    """What multi_label and regression runs show where classification shows its calibration: the fine-tuned
    model's per-label metrics, or its bins (nothing for classification)."""
    row = record.final
    if record.task == "multi_label" and row.get("per_label"):
        return ["## Per label (test rows, fine-tuned)", "",
                "Each label's threshold was tuned on the validation rows (its best F1 on a 0.05 grid, the nearest to 0.5 "
                "on ties).", "",
                render(*per_label_table(row), markdown=markdown), ""]
    if record.task == "regression" and row.get("bins"):
        return ["## Bins (test rows, fine-tuned)", "", bins_line(row), "",
                render(*bins_table(row), markdown=markdown), ""]
    return []


# A hub repo id: "name" (legacy, e.g. bert-base-uncased) or "owner/name".
HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")
LORA_FAMILY = ("lora", "rslora", "dora", "loraplus", "pissa")
CARD_METRICS = (("accuracy", "accuracy", None, "accuracy"), ("f1_macro", "f1", "macro", "macro F1"),
                ("roc_auc", "roc_auc", None, "ROC-AUC"))
"""(row key, model-index metric type, metric config, words): what the model-index reports of the shipped row."""
TASK_CARD_METRICS = {
    "classification": CARD_METRICS,
    "multi_label": (("f1_micro", "f1", "micro", "micro F1"), ("f1_macro", "f1", "macro", "macro F1"),
                    ("f1_samples", "f1", "samples", "samples F1"),
                    ("subset_accuracy", "accuracy", "subset", "subset accuracy (exact label set)"),
                    ("hamming_loss", "hamming_loss", None, "Hamming loss"), ("roc_auc", "roc_auc", "macro", "ROC-AUC")),
    "regression": (("mae", "mae", None, "MAE"), ("rmse", "rmse", None, "RMSE"), ("r2", "r_squared", None, "R²"),
                   ("spearman", "spearmanr", None, "Spearman correlation"),
                   ("pearson", "pearsonr", None, "Pearson correlation")),
}
"""The same per task: the metric ids are those of the Hugging Face `evaluate` library."""
TASK_WORDS = {
    "classification": ("text-classification", "Text Classification", "Text classifier"),
    "multi_label": ("text-classification", "Multi-label Text Classification", "Multi-label text classifier"),
    "regression": ("text-classification", "Text Regression", "Text regression model"),
}
"""(model-index task type, task name, what the card calls the model). A regression keeps the hub's
text-classification task and pipeline: transformers' pipeline runs a one-output head with it
(function_to_apply="none" gives the number)."""
TASK_TAGS = {"classification": ["text-classification"],
             "multi_label": ["text-classification", "multi-label-classification"],
             "regression": ["text-regression", "regression"]}


def hub_id(name: str | None) -> str | None:
    """`name` when it reads as a hub id (not packaged:, not a local path or data file), else None."""
    if not name or name.startswith("packaged:") or Path(name).expanduser().exists():
        return None
    if name.lower().endswith((".csv", ".tsv", ".jsonl", ".json", ".parquet")):
        return None
    return name if HUB_ID.match(name) else None


def _interval_words(row: dict[str, Any], metric: str) -> str:
    interval = (row.get("intervals") or {}).get(metric)
    return f", 95 % CI [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else ""


def front_matter(cfg: Config, info: dict[str, Any], record: RunRecord, merged: bool = False) -> str:
    """The card's YAML metadata (without the --- fences), as huggingface_hub writes and parses it.

    The model-index holds the test accuracy, macro F1 and ROC-AUC of what ships; the spec has no
    field for an interval, so each metric's `name` carries its 95 % interval and row count.
    """
    from huggingface_hub import EvalResult, ModelCardData

    method = info.get("method", cfg.method)
    dataset = hub_id(cfg.data.source)
    row, kind = record.shipped_row, record.shipped_kind
    shipped = (f"{row_name(kind, record.objective, record.task)} ({method})" if kind == "finetuned"
               else row_name(kind, record.objective, record.task))
    carved = any("test rows from" in note for note in record.data.get("notes", []))
    local = Path(cfg.data.source.removeprefix("packaged:")).name  # a file's name: no local paths in the metadata
    task_type, task_name, _ = TASK_WORDS[record.task]
    card_metrics = TASK_CARD_METRICS[record.task]
    where = dict(task_type=task_type, task_name=task_name,
                 dataset_type=dataset or local, dataset_name=dataset or local,
                 dataset_config=cfg.data.subset if dataset else None,
                 dataset_split=f"{cfg.data.train_split} (held-out rows)" if carved else (cfg.data.test_split or "test"))
    n = row.get("n")
    results = [
        EvalResult(**where, metric_type=metric, metric_config=config, metric_value=round(float(row[key]), 4),
                   metric_name=(f"test {words} of {shipped}{_interval_words(row, key)}"
                                + (f", {n:,} rows" if n else "")))
        for key, metric, config, words in card_metrics if row.get(key) is not None
    ]
    tags = ["textlora", *TASK_TAGS[record.task], method]
    if method in LORA_FAMILY and method != "lora":
        tags.insert(len(tags) - 1, "lora")
    return ModelCardData(
        model_name=cfg.name,
        library_name="peft" if method in ADAPTER_METHODS and not merged else "transformers",
        base_model=hub_id(cfg.model.name),
        pipeline_tag="text-classification",
        tags=tags,
        datasets=[dataset] if dataset else None,
        metrics=list(dict.fromkeys(metric for _, metric, _, _ in card_metrics)),
        eval_results=results or None,
    ).to_yaml()


def _usage(cfg: Config, info: dict[str, Any], where: str, record: RunRecord | None = None) -> list[str]:
    """How to use what the card sits in: the run folder (textlora predict), the adapter folder
    (`where="artifact"`, and `export --adapter`) or a merged export (`where="merged"`)."""
    if where == "run":
        return ["```bash", f"textlora predict {cfg.output_dir}/{cfg.name} \"some text\"", "```", "",
                "The recipe is in `config.yaml`; every figure above is in `metrics.json`."]
    task = record.task if record is not None else "classification"
    base = hub_id(cfg.model.name) or "BASE_MODEL_FOLDER"  # a local or packaged base: where it lives
    auto = "AutoModelForSeq2SeqLM" if info.get("objective") == "seq2seq" else "AutoModelForSequenceClassification"
    if info.get("artifact") == "model" or where == "merged":  # full / head, or merged: the whole model, no adapter
        what = (f"the adapter merged into `{cfg.model.name}`" if info.get("artifact") != "model"
                else f"{cfg.method} training of `{cfg.model.name}`")
        return [f"A transformers model ({what}); loading it needs no textlora:",
                "", "```python", f"from transformers import AutoTokenizer, {auto}", "",
                f'model = {auto}.from_pretrained("THIS_FOLDER_OR_REPO_ID")  # label names in its config',
                "tokenizer = AutoTokenizer.from_pretrained(\"THIS_FOLDER_OR_REPO_ID\")  # or the base model's", "```",
                *_task_usage(task, record)]
    lines = [
        f"A peft adapter of `{cfg.model.name}`, its classification head included; loading it needs no textlora:",
        "",
        "```python",
        "from peft import PeftModel",
        f"from transformers import AutoConfig, AutoTokenizer, {auto}",
        "",
        'adapter = "THIS_FOLDER_OR_REPO_ID"',
        "config = AutoConfig.from_pretrained(adapter)  # num_labels and the label names",
        f'model = PeftModel.from_pretrained({auto}.from_pretrained("{base}", config=config), adapter)',
        "tokenizer = AutoTokenizer.from_pretrained(adapter)  # `textlora export --adapter` puts it here",
        "```",
    ]
    if info.get("objective") == "seq2seq":
        lines += ["", "It classifies by scoring each label word after the prompt in `label_words.json`."]
    return lines + _task_usage(task, record)


def _task_usage(task: str, record: RunRecord | None) -> list[str]:
    """What a plain transformers user does with the logits of a multi_label or regression model."""
    if task == "multi_label":
        lines = [
            "",
            "It is a multi-label classifier: each label's probability is the sigmoid of its logit, and a text gets "
            "every label whose probability reaches that label's threshold. The thresholds were tuned on the "
            "validation rows; they are in `task.json` (`thresholds` → `finetuned`: this model's; `textlora export` "
            "puts the run's task.json beside the model):",
            "",
            "```python",
            "import json",
            "",
            "import torch",
            "",
            'thresholds = json.load(open("task.json"))["thresholds"]["finetuned"]  # {label: threshold}',
            'batch = tokenizer(["some text"], return_tensors="pt", padding=True, truncation=True)',
            "with torch.no_grad():",
            "    probs = torch.sigmoid(model(**batch).logits)",
            "names = model.config.id2label",
            "labels = [[names[j] for j, p in enumerate(row) if p >= thresholds[names[j]]] for row in probs.tolist()]",
            "```",
        ]
    elif task == "regression":
        target = (record.label_names or ["the target"])[0] if record is not None else "the target"
        lines = [
            "",
            f"It predicts `{target}` itself: its one output is the number (the training rows' mean and spread are "
            "folded into the head), with no softmax or sigmoid: `model(**batch).logits[:, 0]`. `task.json` holds "
            "that scale and the named ranges (`bins`) textlora reports beside the value.",
        ]
    else:
        return []
    if record is not None and record.shipped_kind != "finetuned":
        lines += ["", f"This is the fine-tuned model: its numbers are the fine-tuned row above; the run ships "
                      f"{shipped_what(record)} (`textlora predict` on the run applies it)."]
    return lines


def model_card(cfg: Config, info: dict[str, Any], record: RunRecord, where: str = "run") -> str:
    """The card of the run folder (`where="run"`), or of the folder that ships (`where="artifact"`:
    adapter/ or model/, and what `textlora export --adapter` writes; `where="merged"`: a merged
    export): the same metadata and results, with how to load it in plain peft / transformers
    instead of textlora."""
    params = record.params
    calibration = record.calibration or {}
    n = record.final.get("n")
    lines = [
        "---",
        front_matter(cfg, info, record, merged=where == "merged").rstrip("\n"),
        "---",
        "",
        f"# {cfg.name}",
        "",
        f"{TASK_WORDS[record.task][2]} trained by textlora {__version__}: `{cfg.model.name}` adapted with "
        f"{cfg.method} on `{cfg.data.source}` ({_what_it_predicts(record, info)}).",
        "",
        shipped_line(record),
        "",
        f"## Results on the {n:,} test rows" if n else "## Results on the test rows",
        "",
        intervals_table(record),
        "",
        "Intervals: 95 % paired bootstrap over the test rows (1,000 resamples). Verdicts:",
        "",
        *[f"- {line}" for line in record.verdicts()],
        "",
        comparison_table([(name, row) for _, name, row in record.rows()], markdown=True, task=record.task),
        "",
        *task_sections(record),
    ]
    if calibration:
        before, after = calibration.get("before", {}), calibration.get("after", {})
        lines += [
            "## Calibration",
            "",
            f"Temperature {calibration['temperature']:.3f}, fitted on the validation rows (the logits are divided "
            "by it before the softmax; predict, serve and ui do so by default). On the test rows: "
            f"ECE {before.get('ece', 0):.4f} -> {after.get('ece', 0):.4f}, Brier {before.get('brier', 0):.4f} -> "
            f"{after.get('brier', 0):.4f}, log loss {before.get('log_loss', 0):.4f} -> {after.get('log_loss', 0):.4f}.",
            "",
        ]
    lines += data_section(record)
    selected = [e for e in record.epochs if e.get("selected")]
    lines += [
        "## Per evaluation (validation rows)",
        "",
        epoch_table(record.epochs, markdown=True, task=record.task),
        "",
        (f"The checkpoint that ships is the one marked *: step {selected[0].get('step')}, the best "
         f"{record.selection.get('metric')} on the validation rows." if selected else ""),
        "",
        "## Cost",
        "",
        f"- trainable parameters: {params['trainable']:,} of {params['total']:,} ({params['trainable_ratio']:.2%})",
        f"- training time: {record.timing['train_seconds']:.1f} s, {record.timing['train_samples_per_second']:.2f} samples/s",
        f"- peak memory: {record.timing['peak_memory_mb']:.0f} MiB",
        f"- artifact to ship (`{info['artifact']}/`): {(record.artifact_bytes or 0) / 2**20:.2f} MiB",
        "",
        "## Use",
        "",
        *_usage(cfg, info, where, record),
        "",
    ]
    return "\n".join(lines)


def _what_it_predicts(record: RunRecord, info: dict[str, Any]) -> str:
    """The parenthesis after the card's first sentence: the classes, the labels of a set, or the number."""
    names = ", ".join(info["label_names"])
    if record.task == "multi_label":
        return f"any set of the labels {names}"
    if record.task == "regression":
        bins = (record.final.get("bins") or {}).get("names")
        return f"the number `{names}`" + (f", named by the ranges {', '.join(bins)}" if bins else "")
    return names


def data_section(record: RunRecord) -> list[str]:
    """Rows per split, what was done to the data, and the audit's findings on the rows used."""
    data = record.data
    splits = data.get("splits") or {}
    lines = ["## Data", "", "Rows used: " + ", ".join(f"{name} {info['rows']:,}" for name, info in splits.items()) + "."]
    lines += [f"- {note}" for note in data.get("notes") or []]
    audit = data.get("audit")
    if audit:
        leaks = audit.get("leakage") or {}
        leaked = sum(leaks.values())
        exact = sum(m["rows"] for m in (audit.get("exact_duplicates") or {}).values())
        near = (audit.get("near_duplicates") or {}).get("pairs", 0)
        conflicts = sum(m["rows"] for m in (audit.get("label_conflicts") or {}).values())
        issues = audit.get("label_issues") or {}
        lines += [
            "",
            ("The evaluation rows share no text with the training rows (exact match after lower-casing and "
             "collapsing whitespace)." if not leaked else
             f"**{leaked} evaluation row(s) repeat a training text** ({', '.join(f'{k} {v}' for k, v in leaks.items() if v)}): "
             "test figures may be inflated; set data.dedupe: across to drop them."),
            f"Audit of these rows: {exact:,} exact duplicate row(s), {near:,} near-duplicate pair(s), "
            f"{conflicts:,} row(s) with a conflicting label"
            + (f", {sum((issues.get('flagged') or {}).values()):,} likely label error(s) (confident learning on "
               f"out-of-fold TF-IDF probabilities)" if issues else "") + " (`metrics.json` → data.audit).",
        ]
    return lines + [""]
