"""The model card (runs/<name>/README.md): what was trained, how it compares, with uncertainty."""

from __future__ import annotations

from typing import Any

from textlora import __version__
from textlora.config import Config
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


def model_card(cfg: Config, info: dict[str, Any], record: RunRecord) -> str:
    params = record.params
    calibration = record.calibration or {}
    n = record.final.get("n")
    lines = [
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
        "```bash",
        f"textlora predict {cfg.output_dir}/{cfg.name} \"some text\"",
        "```",
        "",
        "The recipe is in `config.yaml`; every figure above is in `metrics.json`.",
        "",
    ]
    return "\n".join(lines)
