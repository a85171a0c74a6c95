"""One experiment end to end: config -> data -> baselines -> model -> train -> evaluate -> run folder.

`run_experiment` is what `textlora train` calls; notebooks call it the same way.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from textlora import __version__
from textlora.config import ADAPTER_METHODS, AUTO_HEAD_TAIL_SHARE, Config
from textlora.data import Splits, fingerprint, load_splits
from textlora.encode import encode, resolve_truncation, to_dataset, token_length_stats
from textlora.errors import TextloraError
from textlora.metrics import softmax
from textlora.runs import FORMAT, RUN_MARKER, RunRecord, abandon_run, finish_run, folder_size, start_run, write_json
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
        record = _run(cfg, work_dir, final_dir, quiet or not main, say, resuming, main, callbacks)
    except BaseException as err:
        if main:
            keep = not isinstance(err, TextloraError) and any((work_dir / "checkpoints").glob("checkpoint-*"))
            if keep:
                say(f"\nunfinished run kept at {work_dir}; continue it with --resume")
            else:
                abandon_run(work_dir)
        raise
    if main and record is not None:
        say("")
        say(comparison_table([(name, row) for _, name, row in record.rows()]))
        say("")
        for line in record.verdicts():
            say(line)
        say(f"\nrun saved to {final_dir}")
    return final_dir


def _run(cfg: Config, work_dir: Path, final_dir: Path, quiet: bool, say: Printer, resuming: bool,
         main: bool, callbacks: tuple = ()) -> RunRecord | None:
    import numpy as np

    from textlora.audit import audit_splits
    from textlora.calibration import apply_temperature
    from textlora.card import model_card
    from textlora.classical import fit_classical
    from textlora.evaluate import predict_logits, predict_probs
    from textlora.labelwords import LabelWordClassifier, Prompt, label_targets
    from textlora.models import build_model, check_max_length, load_tokenizer, resolve_model_source, resolve_objective
    from textlora.predict import load_run_model
    from textlora.runs import (CALIBRATION_FILE, CLASSICAL_DIR, CLASSICAL_ROWS, EXAMPLES_FILE, PROBS_FILE, ROW_NAMES,
                               SHIP_FILE, RunDir, base_signature)
    from textlora.ship import decide, resolve_select_metric
    from textlora.train import train_model

    started = time.perf_counter()
    source = resolve_model_source(cfg.model.name)
    check_max_length(cfg, source)  # a too-long max_length fails here, not deep in the first forward pass
    splits = load_splits(cfg.data, cfg.seed)
    names = splits.label_names
    tokenizer = load_tokenizer(source, cfg.model.trust_remote_code)
    objective = resolve_objective(cfg, source)
    lengths = token_length_stats(tokenizer, splits.train["text"], cfg.model.max_length)
    truncation = resolve_truncation(cfg.model, lengths)
    model_cfg = cfg.model.with_truncation(truncation)
    select_metric = resolve_select_metric(cfg.train.select_metric, splits.train["label"].to_numpy(), len(names))
    prompt = targets = None
    if objective == "seq2seq":
        prompt = Prompt.build(cfg.prompt, names)
        targets = label_targets(tokenizer, prompt.words)
    info = {
        "format": FORMAT,
        "finished": False,
        "name": cfg.name,
        "method": cfg.method,
        "artifact": "adapter" if cfg.method in ADAPTER_METHODS else "model",
        "base_model": cfg.model.name,
        "base_model_source": source,
        "label_names": names,
        "objective": objective,
        "truncation": truncation,
        "textlora_version": __version__,
    }
    if prompt is not None:  # what prediction needs to rebuild the classifier around the LM
        info["prompt"] = {**prompt.as_dict(), "targets": targets}
    if main:
        (work_dir / "config.yaml").write_text(cfg.to_yaml())
        write_json(work_dir / RUN_MARKER, info)  # finished: false until the very end
    say(f"data: {cfg.data.source}" + ("  (resuming)" if resuming else ""))
    print_data_summary(splits, lengths, cfg.model.max_length, say)
    if cfg.model.truncation == "auto":
        say(f"truncation: auto -> {truncation} ({lengths.get('truncated_share', 0):.1%} of the training texts are "
            f"longer than {cfg.model.max_length} tokens; head_tail above {AUTO_HEAD_TAIL_SHARE:.0%})")
    say(f"selection metric (validation rows): {select_metric}")
    audit = audit_splits(splits, n_candidates=5, seed=cfg.seed) if main else None
    for line in audit.lines() if audit is not None and not quiet else ():
        say(line)

    data_summary = {**splits.summary(), "token_lengths": lengths, "fingerprint": fingerprint(splits),
                    "audit": audit.as_dict() if audit is not None else None}
    test_texts, test_labels = list(splits.test["text"]), splits.test["label"].to_numpy()
    val_texts, val_labels = list(splits.validation["text"]), splits.validation["label"].to_numpy()
    test_probs: dict[str, np.ndarray] = {}
    val_probs: dict[str, np.ndarray] = {}
    baselines: dict[str, dict[str, Any]] = {}
    classical_models = {}
    for kind in CLASSICAL_ROWS:
        if kind not in cfg.baselines or not main:
            continue
        say(f"baseline: {ROW_NAMES[kind]} ...")
        begun = time.perf_counter()
        classical_models[kind] = fit_classical(kind, splits.train["text"], splits.train["label"], len(names), cfg.seed)
        fitted = time.perf_counter()
        val_probs[kind] = classical_models[kind].predict_proba(val_texts)
        test_probs[kind] = classical_models[kind].predict_proba(test_texts)
        baselines[kind] = {**scored_row(test_labels, test_probs[kind], names), "train_seconds": fitted - begun,
                           "seconds": time.perf_counter() - begun}
    test_encoded = encode(tokenizer, test_texts, model_cfg, prompt)
    model, params = build_model(cfg, source, names, tokenizer, objective)
    info["base_signature"] = base_signature(model.config)
    say(f"model: {cfg.model.name} + {cfg.method}: {params.trainable:,} trainable of {params.total:,} parameters ({params.ratio:.2%})")
    if "pre_adaptation" in cfg.baselines and main:
        # Seeded construction makes this row identical on a resumed run.
        # For a label-word model this is the zero-shot row: the same prompt and scoring, untrained.
        say("baseline: the model before adaptation" + (" (zero-shot prompt)" if prompt else "") + " ...")
        classifier = model if targets is None else LabelWordClassifier(model, targets)
        begun = time.perf_counter()
        test_probs["pre_adaptation"] = predict_probs(classifier, test_encoded, tokenizer, cfg.train.eval_batch_size,
                                                     not quiet)
        baselines["pre_adaptation"] = {**scored_row(test_labels, test_probs["pre_adaptation"], names),
                                       "seconds": time.perf_counter() - begun}

    train_set = to_dataset(splits.train["text"], splits.train["label"], tokenizer, model_cfg, prompt, targets)
    validation_set = to_dataset(val_texts, val_labels, tokenizer, model_cfg, prompt, targets)
    val_encoded = encode(tokenizer, val_texts, model_cfg, prompt)
    plan = plan_training_budget(cfg, model, tokenizer, train_set, val_encoded, names, work_dir, targets, say) \
        if cfg.train.budget_minutes else None
    shown = f"{plan.max_steps} steps (budget)" if plan else f"{cfg.train.epochs:g} epoch(s)"
    say(f"training: {len(train_set)} rows, {shown}, lr {cfg.learning_rate:g}, batch {cfg.train.batch_size}")
    result = train_model(cfg, model, tokenizer, train_set, validation_set, names, work_dir,
                         quiet=quiet, resume=resuming, label_targets=targets, callbacks=callbacks,
                         select_metric=select_metric, max_steps=plan.max_steps if plan else None,
                         eval_steps=plan.eval_steps if plan else cfg.train.eval_steps, say=say)
    if not main:
        return None
    say(epoch_table(result.epochs))
    say(f"shipping the checkpoint of step {result.selected_step} (marked *: the best {select_metric} on the "
        f"validation rows)" + (", stopped early" if result.stopped_early and plan is None else ""))

    artifact = info["artifact"]
    save_artifacts(model, cfg, work_dir / artifact)
    tokenizer.save_pretrained(str(work_dir / "tokenizer"))
    write_json(work_dir / "labels.json", names)
    # The fine-tuned rows are measured on the artifact as shipped: reloaded from
    # disk (fp32, adapter merged), exactly what `textlora predict` runs.
    del model
    shipped_model = load_run_model(RunDir(path=work_dir, info=info), trust_remote_code=cfg.model.trust_remote_code)
    begun = time.perf_counter()
    val_logits = predict_logits(shipped_model, val_encoded, tokenizer, cfg.train.eval_batch_size, not quiet)
    test_logits = predict_logits(shipped_model, test_encoded, tokenizer, cfg.train.eval_batch_size, not quiet)
    scoring_seconds = time.perf_counter() - begun
    temperature, calibration = calibrate(val_logits, val_labels, test_logits, test_labels)
    val_probs["finetuned"] = apply_temperature(val_logits, temperature)
    test_probs["finetuned"] = apply_temperature(test_logits, temperature)
    final = {**scored_row(test_labels, test_probs["finetuned"], names), "seconds": scoring_seconds}
    write_json(work_dir / CALIBRATION_FILE, {"temperature": temperature, "fitted_on": "validation"})

    decision = decide(cfg.ship, select_metric, names, val_labels, val_probs, test_probs, CLASSICAL_ROWS)
    ensemble_row = None
    if decision.ensemble is not None:
        ensemble_row = {**scored_row(test_labels, test_probs["ensemble"], names),
                        "partner": decision.ensemble.partner, "weight": decision.ensemble.weight}
    say(decision.reason)
    for needed in {decision.plan.get("partner")} - {None}:
        classical_models[needed].save(work_dir / CLASSICAL_DIR / needed)
    write_json(work_dir / SHIP_FILE, decision.plan)
    save_test_probs(work_dir / PROBS_FILE, test_labels, test_probs)
    write_json(work_dir / EXAMPLES_FILE, short_examples(splits.test, names))

    rows = {**baselines, "finetuned": final, **({"ensemble": ensemble_row} if ensemble_row else {})}
    # The bar (the best classical row on validation) is the ensemble's partner: ship.decide chose it.
    bar = decision.ensemble.partner if decision.ensemble is not None else None
    comparisons = compare_rows(test_labels, test_probs, rows, decision.kind, bar, objective, cfg.seed)
    record = RunRecord(
        name=cfg.name, method=cfg.method, objective=objective, base_model=cfg.model.name, seed=cfg.seed,
        data=data_summary, baselines=baselines, final=final, ensemble=ensemble_row,
        shipped={**decision.plan, "row": rows[decision.kind]},
        selection={"metric": select_metric, "step": result.selected_step,
                   "validation_scores": decision.validation_scores,
                   "stopped_early": result.stopped_early, "budget": asdict(plan) if plan else None},
        calibration=calibration, comparisons=comparisons, epochs=result.epochs, params=params.as_dict(),
        timing={
            "train_seconds": result.seconds,
            "epoch_seconds": [e.get("seconds") for e in result.epochs],
            "train_samples_per_second": result.samples_per_second,
            "steps": result.steps,
            "peak_memory_mb": result.peak_memory_mb,
            "precision": result.precision,
            "processes": process_rank()[1],
            "resumed": resuming,
            "total_seconds": time.perf_counter() - started,
        },
        artifact_bytes=folder_size(work_dir / artifact), truncation=truncation,
        optimizer_groups=result.optimizer_groups, class_weights=result.class_weights, versions=package_versions(),
    )
    write_json(work_dir / "metrics.json", record.to_dict())
    (work_dir / "README.md").write_text(model_card(cfg, info, record))
    # The same card in the artifact folder (peft's own is a template of "More Information Needed").
    (work_dir / artifact / "README.md").write_text(model_card(cfg, info, record, where="artifact"))
    remove_scratch(work_dir)
    info.update(finished=True, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    write_json(work_dir / RUN_MARKER, info)  # last: finished: true marks a complete run
    finish_run(work_dir, final_dir)
    return record


def calibrate(val_logits, val_labels, test_logits, test_labels) -> tuple[float, dict[str, Any]]:
    """Temperature scaling fitted on the validation rows (one scalar: the predicted labels never
    change), and the test rows' ECE / Brier / log loss and reliability bins before and after it."""
    from textlora.calibration import apply_temperature, calibration_metrics, fit_temperature, reliability_bins

    temperature = fit_temperature(val_logits, val_labels)
    before, after = softmax(test_logits), apply_temperature(test_logits, temperature)
    return temperature, {
        "temperature": temperature, "fitted_on": "validation", "validation_rows": int(len(val_labels)),
        "before": calibration_metrics(test_labels, before), "after": calibration_metrics(test_labels, after),
        "reliability_before": reliability_bins(test_labels, before),
        "reliability_after": reliability_bins(test_labels, after),
    }


def remove_scratch(work_dir: Path) -> None:
    """What only training and --resume needed: checkpoints, journals, the best weights, the budget plan."""
    shutil.rmtree(work_dir / "checkpoints", ignore_errors=True)
    for scratch in ("evaluations.journal.json", "selection.json", "budget.json"):
        (work_dir / scratch).unlink(missing_ok=True)
    for best in work_dir.glob("best-*.safetensors"):
        best.unlink()


def short_examples(test, label_names: list[str], words: tuple[int, int] = (6, 60)) -> list[dict[str, str]]:
    """One test text per class for the web page: the shortest with at least `words[0]` words
    (a text of one or two words shows little), cut to `words[1]` words."""
    out = []
    for label, name in enumerate(label_names):
        texts = [t for t in test["text"][test["label"] == label] if len(t.split()) >= words[0]]
        if texts:
            shortest = min(texts, key=len)
            out.append({"label": name, "text": " ".join(shortest.split()[: words[1]])})
    return out


def save_test_probs(path: Path, labels, probs: dict[str, Any]) -> None:
    """Every row's test probabilities beside the labels (safetensors: no pickle)."""
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"labels": np.asarray(labels, dtype=np.int64),
               **{k: np.ascontiguousarray(v, dtype=np.float64) for k, v in probs.items()}}, str(path))


def scored_row(labels, probs, label_names: list[str]) -> dict[str, Any]:
    """Every metric of one row, with its calibration (ECE, Brier) beside them."""
    from textlora.calibration import calibration_metrics
    from textlora.metrics import classification_metrics

    row = classification_metrics(labels, probs, label_names)
    quality = calibration_metrics(labels, probs)
    row.update(ece=quality["ece"], brier=quality["brier"])
    return row


def compare_rows(labels, probs: dict, rows: dict[str, dict[str, Any]], shipped: str, bar: str | None,
                 objective: str, seed: int) -> list[dict[str, Any]]:
    """Intervals on every row (paired bootstrap, the same resampled test rows for all) and the
    verdicts: fine-tuned against each baseline, and what ships (when it is not the fine-tuned
    model) against each other baseline; `bar` marks the comparisons with the classical row that
    was best on the validation rows."""
    from textlora.runs import row_name
    from textlora.stats import bootstrap_intervals, compare

    intervals = bootstrap_intervals(labels, {k: probs[k] for k in rows}, seed=seed)
    for key, row in rows.items():
        row["intervals"] = {m: (list(v) if v is not None else None) for m, v in intervals[key].items()}
    names = {k: row_name(k, objective) for k in rows}
    names["finetuned"] = "fine-tuned"
    baselines = [k for k in rows if k not in ("finetuned", "ensemble")]
    pairs = [("finetuned", k) for k in baselines]
    if shipped != "finetuned":  # what ships, against every other baseline too
        pairs += [(shipped, k) for k in baselines if k != shipped]
    out = []
    for a, b in pairs:
        name_a = names[a] if a == "finetuned" else f"shipped ({names[a]})"
        comparison = compare(labels, probs[a], probs[b], name_a, names[b], seed=seed)
        # `bar`: b is the best classical row on the validation rows, the one to beat.
        out.append({**comparison.as_dict(), "a": a, "b": b, "bar": b == bar, "verdict": comparison.verdict})
    return out


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


def plan_training_budget(cfg: Config, model, tokenizer, train_set, val_encoded, label_names: list[str],
                         work_dir: Path, targets, say: Printer):
    """train.budget_minutes -> a BudgetPlan, measured here (or the one a resumed run already made)."""
    from textlora.budget import load_plan, plan_budget, save_plan
    from textlora.evaluate import predict_logits
    from textlora.labelwords import LabelWordClassifier
    from textlora.train import probe_step_seconds

    plan = load_plan(work_dir)
    if plan is None:
        step_seconds = probe_step_seconds(cfg, model, tokenizer, train_set, label_names, work_dir, targets)
        # Evaluation time: a timed pass over a sample of the validation rows, scaled to all of them.
        rows = list(range(0, len(val_encoded["input_ids"]), max(1, len(val_encoded["input_ids"]) // 64)))
        sample = {k: [v[i] for i in rows] for k, v in val_encoded.items() if k != "text_index"}
        scorer = model if targets is None else LabelWordClassifier(model, targets)
        begun = time.perf_counter()
        predict_logits(scorer, sample, tokenizer, cfg.train.eval_batch_size)
        evaluation_seconds = (time.perf_counter() - begun) * len(val_encoded["input_ids"]) / max(1, len(rows))
        plan = plan_budget(cfg.train.budget_minutes, step_seconds, evaluation_seconds)
        save_plan(plan, work_dir)
    say(plan.describe())
    return plan
