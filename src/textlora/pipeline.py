"""One experiment end to end: config -> data -> baselines -> model -> train -> evaluate -> run folder.

`run_experiment` is what `textlora train` calls; notebooks call it the same way.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from textlora import __version__
from textlora.config import ADAPTER_METHODS, Config
from textlora.data import Splits, fingerprint, load_splits
from textlora.encode import encode, to_dataset, token_length_stats
from textlora.errors import TextloraError
from textlora.runs import FORMAT, RUN_MARKER, abandon_run, finish_run, folder_size, start_run, write_json
from textlora.tables import comparison_table, epoch_table, render

Printer = Callable[[str], None]


def package_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "textlora": __version__}
    for name in ("torch", "transformers", "peft", "datasets", "accelerate", "scikit-learn"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def print_data_summary(splits: Splits, lengths: dict[str, Any], max_length: int, say: Printer) -> None:
    summary = splits.summary()
    names = splits.label_names
    rows = [[split] + [info["rows"]] + [info["class_counts"][n] for n in names] for split, info in summary["splits"].items()]
    say(render(["split", "rows", *names], rows))
    if lengths:
        say(
            f"tokens per text (train sample of {lengths['counted']}): mean {lengths['mean']:.0f}, "
            f"p50 {lengths['p50']:.0f}, p90 {lengths['p90']:.0f}, p99 {lengths['p99']:.0f}, max {lengths['max']}; "
            f"{lengths['truncated_share']:.1%} longer than max_length {max_length}"
        )
    for note in splits.notes:
        say(f"note: {note}")


def model_card(cfg: Config, info: dict[str, Any], metrics: dict[str, Any]) -> str:
    rows = [(name, row) for name, row in comparison_rows(metrics)]
    params = metrics["params"]
    lines = [
        f"# {cfg.name}",
        "",
        f"Text classifier trained by textlora {__version__}: `{cfg.model.name}` adapted with **{cfg.method}** "
        f"on `{cfg.data.source}` ({', '.join(info['label_names'])}).",
        "",
        "## Results on the test rows",
        "",
        comparison_table(rows, markdown=True),
        "",
        "## Per epoch (validation rows)",
        "",
        epoch_table(metrics["epochs"], markdown=True),
        "",
        "## Cost",
        "",
        f"- trainable parameters: {params['trainable']:,} of {params['total']:,} ({params['trainable_ratio']:.2%})",
        f"- training time: {metrics['timing']['train_seconds']:.1f} s, {metrics['timing']['train_samples_per_second']:.2f} samples/s",
        f"- peak memory: {metrics['timing']['peak_memory_mb']:.0f} MiB",
        f"- artifact to ship (`{info['artifact']}/`): {metrics['artifact_bytes'] / 2**20:.2f} MiB",
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


def comparison_rows(metrics: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    pre = "Zero-shot (prompt)" if metrics.get("objective") == "seq2seq" else "Pre-adaptation"
    names = {"tfidf": "TF-IDF + LR", "pre_adaptation": pre}
    rows = [(names.get(k, k), v) for k, v in metrics.get("baselines", {}).items()]
    if metrics.get("final"):
        rows.append((f"Fine-tuned ({metrics.get('method', '')})", metrics["final"]))
    return rows


def process_rank() -> tuple[int, int]:
    """(rank, world size) under torchrun / accelerate launch; (0, 1) otherwise."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def run_experiment(cfg: Config, overwrite: bool = False, quiet: bool = False, say: Printer = print,
                   resume: bool = False, callbacks: tuple = ()) -> Path:
    """Run one experiment and return its run folder (`callbacks`: extra TrainerCallbacks).

    Under torchrun or accelerate launch every process runs this function:
    the Trainer shards the training data across them, while only rank 0
    computes the baselines, prints, and writes the run folder.
    """
    rank, world = process_rank()
    main = rank == 0
    if not main:
        say = lambda *_: None  # noqa: E731
    final_dir, work_dir, resuming = start_run(cfg.output_dir, cfg.name, overwrite, resume, create=main)
    try:
        metrics = _run(cfg, work_dir, final_dir, quiet or not main, say, resuming, main, callbacks)
    except BaseException as err:
        if main:
            keep = not isinstance(err, TextloraError) and any((work_dir / "checkpoints").glob("checkpoint-*"))
            if keep:
                say(f"\nunfinished run kept at {work_dir}; continue it with --resume")
            else:
                abandon_run(work_dir)
        raise
    if main:
        say("")
        say(comparison_table(comparison_rows(metrics)))
        say(f"\nrun saved to {final_dir}")
    return final_dir


def _run(cfg: Config, work_dir: Path, final_dir: Path, quiet: bool, say: Printer, resuming: bool,
         main: bool, callbacks: tuple = ()) -> dict[str, Any]:
    from textlora.baselines import tfidf_logreg
    from textlora.evaluate import evaluate
    from textlora.labelwords import LabelWordClassifier, Prompt, label_targets
    from textlora.models import build_model, load_tokenizer, resolve_model_source, resolve_objective
    from textlora.predict import base_signature, load_run_model
    from textlora.runs import RunDir
    from textlora.train import train_model

    started = time.perf_counter()
    source = resolve_model_source(cfg.model.name)
    splits = load_splits(cfg.data, cfg.seed)
    tokenizer = load_tokenizer(source, cfg.model.trust_remote_code)
    objective = resolve_objective(cfg, source)
    prompt = targets = None
    if objective == "seq2seq":
        prompt = Prompt.build(cfg.prompt, splits.label_names)
        targets = label_targets(tokenizer, prompt.words)
    info = {
        "format": FORMAT,
        "finished": False,
        "name": cfg.name,
        "method": cfg.method,
        "artifact": "adapter" if cfg.method in ADAPTER_METHODS else "model",
        "base_model": cfg.model.name,
        "base_model_source": source,
        "label_names": splits.label_names,
        "objective": objective,
        "textlora_version": __version__,
    }
    if prompt is not None:  # what prediction needs to rebuild the classifier around the LM
        info["prompt"] = {**prompt.as_dict(), "targets": targets}
    if main:
        (work_dir / "config.yaml").write_text(cfg.to_yaml())
        write_json(work_dir / RUN_MARKER, info)  # finished: false until the very end
    lengths = token_length_stats(tokenizer, splits.train["text"], cfg.model.max_length)
    say(f"data: {cfg.data.source}" + ("  (resuming)" if resuming else ""))
    print_data_summary(splits, lengths, cfg.model.max_length, say)

    metrics: dict[str, Any] = {
        "name": cfg.name,
        "method": cfg.method,
        "objective": objective,
        "base_model": cfg.model.name,
        "seed": cfg.seed,
        "data": {**splits.summary(), "token_lengths": lengths, "fingerprint": fingerprint(splits)},
        "baselines": {},
    }
    test_texts, test_labels = list(splits.test["text"]), list(splits.test["label"])
    if "tfidf" in cfg.baselines and main:
        say("baseline: TF-IDF + logistic regression ...")
        metrics["baselines"]["tfidf"] = tfidf_logreg(
            splits.train["text"], splits.train["label"], test_texts, test_labels, splits.label_names, cfg.seed
        )
    test_encoded = encode(tokenizer, test_texts, cfg.model, prompt)
    model, params = build_model(cfg, source, splits.label_names, tokenizer, objective)
    info["base_signature"] = base_signature(model.config)
    metrics["params"] = params.as_dict()
    say(f"model: {cfg.model.name} + {cfg.method}: {params.trainable:,} trainable of {params.total:,} parameters ({params.ratio:.2%})")
    if "pre_adaptation" in cfg.baselines and main:
        # Seeded construction makes this row identical on a resumed run.
        # For a label-word model this is the zero-shot row: the same prompt and scoring, untrained.
        say("baseline: the model before adaptation" + (" (zero-shot prompt)" if prompt else "") + " ...")
        classifier = model if targets is None else LabelWordClassifier(model, targets)
        metrics["baselines"]["pre_adaptation"] = evaluate(
            classifier, test_encoded, test_labels, splits.label_names, tokenizer, cfg.train.eval_batch_size, not quiet
        )

    train_set = to_dataset(splits.train["text"], splits.train["label"], tokenizer, cfg.model, prompt, targets)
    validation_set = to_dataset(splits.validation["text"], splits.validation["label"], tokenizer, cfg.model,
                                prompt, targets)
    say(f"training: {len(train_set)} rows, {cfg.train.epochs:g} epoch(s), lr {cfg.learning_rate:g}, "
        f"batch {cfg.train.batch_size}")
    result = train_model(cfg, model, tokenizer, train_set, validation_set, splits.label_names, work_dir,
                         quiet=quiet, resume=resuming, label_targets=targets, callbacks=callbacks)
    if not main:
        return metrics
    say(epoch_table(result.epochs))
    metrics["epochs"] = result.epochs
    metrics["optimizer_groups"] = result.optimizer_groups
    metrics["class_weights"] = result.class_weights
    metrics["timing"] = {
        "train_seconds": result.seconds,
        "epoch_seconds": [e.get("seconds") for e in result.epochs],
        "train_samples_per_second": result.samples_per_second,
        "peak_memory_mb": result.peak_memory_mb,
        "precision": result.precision,
        "processes": process_rank()[1],
        "resumed": resuming,
    }

    artifact = info["artifact"]
    save_artifacts(model, cfg, work_dir / artifact)
    tokenizer.save_pretrained(str(work_dir / "tokenizer"))
    write_json(work_dir / "labels.json", splits.label_names)
    # The final row is measured on the artifact as shipped: reloaded from
    # disk (fp32, adapter merged), exactly what `textlora predict` runs.
    del model
    shipped = load_run_model(RunDir(path=work_dir, info=info), trust_remote_code=cfg.model.trust_remote_code)
    metrics["final"] = evaluate(shipped, test_encoded, test_labels, splits.label_names, tokenizer,
                                cfg.train.eval_batch_size, not quiet)
    metrics["artifact_bytes"] = folder_size(work_dir / artifact)
    metrics["timing"]["total_seconds"] = time.perf_counter() - started
    metrics["versions"] = package_versions()
    write_json(work_dir / "metrics.json", metrics)
    (work_dir / "README.md").write_text(model_card(cfg, info, metrics))
    shutil.rmtree(work_dir / "checkpoints", ignore_errors=True)
    (work_dir / "epochs.journal.json").unlink(missing_ok=True)
    info.update(finished=True, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    write_json(work_dir / RUN_MARKER, info)  # last: finished: true marks a complete run
    finish_run(work_dir, final_dir)
    return metrics


def save_artifacts(model, cfg: Config, out: Path) -> None:
    """Adapter methods: the peft adapter (head inside, via modules_to_save) plus
    the model config holding the label names; full/head: the whole model."""
    if cfg.method in ADAPTER_METHODS:
        model.save_pretrained(str(out), safe_serialization=True)
        # The classification config (num_labels, id2label) beside the adapter,
        # so plain transformers can rebuild the right head shape with labels.
        model.get_base_model().config.save_pretrained(str(out))
    else:
        model.save_pretrained(str(out), safe_serialization=True)
    if not any(out.glob("*.safetensors")):
        raise TextloraError(f"saving to {out} wrote no safetensors file; this is a bug, please report it")
