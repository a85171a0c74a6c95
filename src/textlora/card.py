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
from textlora.tables import comparison_table, epoch_table, interval_text


def intervals_table(record: RunRecord, markdown: bool = True) -> str:
    """Every row's accuracy, macro F1 and ROC-AUC with its 95 % bootstrap interval, and its ECE."""
    from textlora.tables import render

    body = [[name, *(interval_text(row, metric, digits=4) or "-" for metric in ("accuracy", "f1_macro", "roc_auc")),
             row.get("ece")] for _, name, row in record.rows()]
    return render(["row", "accuracy [95 % CI]", "macro F1 [95 % CI]", "ROC-AUC [95 % CI]", "ECE"], body, markdown)


def shipped_line(record: RunRecord) -> str:
    kind = record.shipped_kind
    what = {"finetuned": "the fine-tuned model", "ensemble": "the ensemble"}.get(kind, f"the {row_name(kind)} row")
    reason = record.shipped.get("reason", "")
    return f"Ships {what}. {reason}"


# A hub repo id: "name" (legacy, e.g. bert-base-uncased) or "owner/name".
HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")
LORA_FAMILY = ("lora", "rslora", "dora", "loraplus", "pissa")
CARD_METRICS = (("accuracy", "accuracy", None, "accuracy"), ("f1_macro", "f1", "macro", "macro F1"),
                ("roc_auc", "roc_auc", None, "ROC-AUC"))
"""(row key, model-index metric type, metric config, words): what the model-index reports of the shipped row."""


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


def front_matter(cfg: Config, info: dict[str, Any], record: RunRecord) -> str:
    """The card's YAML metadata (without the --- fences), as huggingface_hub writes and parses it.

    The model-index holds the test accuracy, macro F1 and ROC-AUC of what ships; the spec has no
    field for an interval, so each metric's `name` carries its 95 % interval and row count.
    """
    from huggingface_hub import EvalResult, ModelCardData

    method = info.get("method", cfg.method)
    dataset = hub_id(cfg.data.source)
    row, kind = record.shipped_row, record.shipped_kind
    shipped = f"{row_name(kind, record.objective)} ({method})" if kind == "finetuned" else row_name(kind, record.objective)
    carved = any("test rows from" in note for note in record.data.get("notes", []))
    local = Path(cfg.data.source.removeprefix("packaged:")).name  # a file's name: no local paths in the metadata
    where = dict(task_type="text-classification", task_name="Text Classification",
                 dataset_type=dataset or local, dataset_name=dataset or local,
                 dataset_config=cfg.data.subset if dataset else None,
                 dataset_split=f"{cfg.data.train_split} (held-out rows)" if carved else (cfg.data.test_split or "test"))
    n = row.get("n")
    results = [
        EvalResult(**where, metric_type=metric, metric_config=config, metric_value=round(float(row[key]), 4),
                   metric_name=(f"test {words} of {shipped}{_interval_words(row, key)}"
                                + (f", {n:,} rows" if n else "")))
        for key, metric, config, words in CARD_METRICS if row.get(key) is not None
    ]
    tags = ["textlora", "text-classification", method]
    if method in LORA_FAMILY and method != "lora":
        tags.insert(2, "lora")
    return ModelCardData(
        model_name=cfg.name,
        library_name="peft" if method in ADAPTER_METHODS else "transformers",
        base_model=hub_id(cfg.model.name),
        pipeline_tag="text-classification",
        tags=tags,
        datasets=[dataset] if dataset else None,
        metrics=[metric for _, metric, _, _ in CARD_METRICS],
        eval_results=results or None,
    ).to_yaml()


def _usage(cfg: Config, info: dict[str, Any], where: str) -> list[str]:
    if where == "run":
        return ["```bash", f"textlora predict {cfg.output_dir}/{cfg.name} \"some text\"", "```", "",
                "The recipe is in `config.yaml`; every figure above is in `metrics.json`."]
    base = hub_id(cfg.model.name) or "BASE_MODEL_FOLDER"  # a local or packaged base: where it lives
    auto = "AutoModelForSeq2SeqLM" if info.get("objective") == "seq2seq" else "AutoModelForSequenceClassification"
    if info.get("artifact") == "model":  # full / head: the whole model, no adapter
        return [f"A transformers model ({cfg.method} training of `{cfg.model.name}`); loading it needs no textlora:",
                "", "```python", f"from transformers import AutoTokenizer, {auto}", "",
                f'model = {auto}.from_pretrained("THIS_FOLDER_OR_REPO_ID")  # label names in its config',
                "tokenizer = AutoTokenizer.from_pretrained(\"THIS_FOLDER_OR_REPO_ID\")  # or the base model's", "```"]
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
    return lines


def model_card(cfg: Config, info: dict[str, Any], record: RunRecord, where: str = "run") -> str:
    """The card of the run folder (`where="run"`), or of the folder that ships (`where="artifact"`:
    adapter/ or model/, and what `textlora export --adapter` writes): the same metadata and
    results, with how to load it in plain peft / transformers instead of textlora."""
    params = record.params
    calibration = record.calibration or {}
    n = record.final.get("n")
    lines = [
        "---",
        front_matter(cfg, info, record).rstrip("\n"),
        "---",
        "",
        f"# {cfg.name}",
        "",
        f"Text classifier trained by textlora {__version__}: `{cfg.model.name}` adapted with {cfg.method} "
        f"on `{cfg.data.source}` ({', '.join(info['label_names'])}).",
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
        comparison_table([(name, row) for _, name, row in record.rows()], markdown=True),
        "",
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
        epoch_table(record.epochs, markdown=True),
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
        *_usage(cfg, info, where),
        "",
    ]
    return "\n".join(lines)


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
