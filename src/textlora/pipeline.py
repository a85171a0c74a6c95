"""One experiment end to end: config -> data -> baselines -> model -> train -> evaluate -> run folder.

`run_experiment` is what `textlora train` calls; notebooks call it the same way.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from textlora import __version__
from textlora.config import ADAPTER_METHODS, AUTO_HEAD_TAIL_SHARE, Config
from textlora.data import Splits, fingerprint, load_splits
from textlora.encode import encode, resolve_truncation, to_dataset, token_length_stats
from textlora.errors import TextloraError
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
    if splits.task != "classification":
        from textlora.tasks import summary_table

        say(render(*summary_table(splits)))
    else:
        summary = splits.summary()
        names = splits.label_names
        rows = [[split] + [info["rows"]] + [info["class_counts"][n] for n in names]
                for split, info in summary["splits"].items()]
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
        say(comparison_table([(name, row) for _, name, row in record.rows()], task=record.task))
        say("")
        for line in record.verdicts():
            say(line)
        say(f"\nrun saved to {final_dir}")
    return final_dir


@dataclass
class Prepared:
    """What the stages after data loading share: the data, the tokenizer, and the choices made
    from them (objective, truncation, selection metric, prompt) that run.json records."""

    source: str
    splits: Splits
    tokenizer: Any
    objective: str
    lengths: dict[str, Any]
    model_cfg: Any
    select_metric: str
    prompt: Any
    targets: list[list[int]] | None
    info: dict[str, Any]
    target_scale: Any = None
    """task: regression: the training rows' mean and spread (regression.TargetScale)."""

    @property
    def names(self) -> list[str]:
        return self.splits.label_names

    @property
    def task(self) -> str:
        """The task the labels were read for: the recipe's, or multi_label found in a list column."""
        return self.splits.task

    def labels(self, split: str):
        """A split's labels as its task's metrics take them (class ids, (n, K) multi-hot, numbers)."""
        frame = getattr(self.splits, split)
        if self.task == "classification":
            return frame["label"].to_numpy()
        from textlora.tasks import label_array

        return label_array(self.task, frame["label"], len(self.names))

    def training_labels(self, split: str):
        """What the model trains and evaluates on: class ids, or tasks.training_targets."""
        frame = getattr(self.splits, split)
        if self.task == "classification":
            return frame["label"]
        from textlora.tasks import training_targets

        return training_targets(self.task, frame["label"], len(self.names), self.target_scale)


@dataclass
class Scores:
    """Every row's probabilities on the validation and test rows, and its test metrics."""

    val_probs: dict[str, Any] = field(default_factory=dict)
    test_probs: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)


def prepare(cfg: Config) -> Prepared:
    """Data, tokenizer and every choice made from them, before any model weights are loaded."""
    from textlora.labelwords import Prompt, label_targets
    from textlora.models import (LABEL_WORD_OBJECTIVES, check_max_length, load_tokenizer, resolve_model_source,
                                 resolve_objective)
    from textlora.ship import resolve_select_metric

    source = resolve_model_source(cfg.model.name)
    check_max_length(cfg, source)  # a too-long max_length fails here, not deep in the first forward pass
    splits = load_splits(cfg.data, cfg.seed, cfg.task)
    names = splits.label_names
    tokenizer = load_tokenizer(source, cfg.model.trust_remote_code)
    objective = resolve_objective(cfg, source)
    if splits.task != "classification" and objective in LABEL_WORD_OBJECTIVES:
        raise TextloraError(f"task: {splits.task} needs a head on the model; {cfg.model.name!r} scores label words "
                            "(model.objective: auto chose label_words): set model.objective: classifier")
    lengths = token_length_stats(tokenizer, splits.train["text"], cfg.model.max_length)
    truncation = resolve_truncation(cfg.model, lengths)
    target_scale = None
    if splits.task == "classification":
        select_metric = resolve_select_metric(cfg.train.select_metric, splits.train["label"].to_numpy(), len(names))
    else:
        from textlora.tasks import resolve_select_metric as task_select_metric

        select_metric = task_select_metric(splits.task, cfg.train.select_metric)
        if splits.task == "regression":
            from textlora.regression import TargetScale

            target_scale = TargetScale.of(splits.train["label"].to_numpy())
    prompt = targets = None
    if objective in LABEL_WORD_OBJECTIVES:
        prompt = Prompt.build(cfg.prompt, names, objective, tokenizer)
        targets = label_targets(tokenizer, prompt)
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
    if splits.task != "classification":  # readers take a run.json without it for classification
        info["task"] = splits.task
    if prompt is not None:  # what prediction needs to rebuild the classifier around the LM
        info["prompt"] = {**prompt.as_dict(), "targets": targets}
    return Prepared(source=source, splits=splits, tokenizer=tokenizer, objective=objective, lengths=lengths,
                    model_cfg=cfg.model.with_truncation(truncation), select_metric=select_metric, prompt=prompt,
                    targets=targets, info=info, target_scale=target_scale)


def announce(cfg: Config, prep: Prepared, resuming: bool, quiet: bool, main: bool, say: Printer):
    """Print the data summary, the choices made, and the audit of the splits (returned)."""
    from textlora.audit import audit_splits

    say(f"data: {cfg.data.source}" + ("  (resuming)" if resuming else ""))
    print_data_summary(prep.splits, prep.lengths, cfg.model.max_length, say)
    if cfg.model.truncation == "auto":
        say(f"truncation: auto -> {prep.info['truncation']} ({prep.lengths.get('truncated_share', 0):.1%} of the "
            f"training texts are longer than {cfg.model.max_length} tokens; head_tail above {AUTO_HEAD_TAIL_SHARE:.0%})")
    say(f"selection metric (validation rows): {prep.select_metric}")
    audit = audit_splits(prep.splits, n_candidates=5, seed=cfg.seed) if main else None
    for line in audit.lines() if audit is not None and not quiet else ():
        say(line)
    return audit


def classical_rows(cfg: Config, splits: Splits, scores: Scores, say: Printer) -> dict[str, Any]:
    """Fit each classical baseline the recipe asks for on the training rows and score it on the
    validation and test rows (into `scores`); returns the fitted models by kind."""
    from textlora.classical import fit_classical
    from textlora.runs import CLASSICAL_ROWS, ROW_NAMES

    names = splits.label_names
    val_texts, test_texts = list(splits.validation["text"]), list(splits.test["text"])
    test_labels = splits.test["label"].to_numpy()
    models = {}
    for kind in CLASSICAL_ROWS:
        if kind not in cfg.baselines:
            continue
        if splits.task != "classification":
            if kind == "tfidf":
                models[kind] = task_classical_row(cfg, splits, scores, say)
            else:
                say(f"baseline: {ROW_NAMES[kind]} is a single-label classifier: skipped for task: {splits.task}")
            continue
        say(f"baseline: {ROW_NAMES[kind]} ...")
        begun = time.perf_counter()
        models[kind] = fit_classical(kind, splits.train["text"], splits.train["label"], len(names), cfg.seed)
        fitted = time.perf_counter()
        scores.val_probs[kind] = models[kind].predict_proba(val_texts)
        scores.test_probs[kind] = models[kind].predict_proba(test_texts)
        scores.rows[kind] = {**scored_row(test_labels, scores.test_probs[kind], names),
                             "train_seconds": fitted - begun, "seconds": time.perf_counter() - begun}
    return models


def task_classical_row(cfg: Config, splits: Splits, scores: Scores, say: Printer):
    """task: multi_label (TF-IDF + one-vs-rest logistic regressions) or regression (TF-IDF + ridge): fit on
    the training rows, outputs on the validation and test rows into `scores` (tasks.settle scores them)."""
    from textlora.classical import fit_classical
    from textlora.runs import row_name
    from textlora.tasks import label_array

    say(f"baseline: {row_name('tfidf', task=splits.task)} ...")
    begun = time.perf_counter()
    model = fit_classical("tfidf", splits.train["text"], label_array(splits.task, splits.train["label"],
                          len(splits.label_names)), len(splits.label_names), cfg.seed, task=splits.task)
    fitted = time.perf_counter()
    scores.val_probs["tfidf"] = model.predict_outputs(list(splits.validation["text"]))
    scores.test_probs["tfidf"] = model.predict_outputs(list(splits.test["text"]))
    scores.rows["tfidf"] = {"train_seconds": fitted - begun, "seconds": time.perf_counter() - begun}
    return model


def pre_adaptation_row(cfg: Config, prep: Prepared, model, test_encoded, scores: Scores, quiet: bool,
                       say: Printer) -> None:
    """The model before adaptation on the test rows; for a label-word model the zero-shot row
    (the same prompt and scoring, untrained). Seeded construction makes it identical on resume.
    task: multi_label: the untrained head's sigmoids (0.5 thresholds: no validation scores it);
    task: regression: the training mean for every text (an untrained head would predict noise)."""
    from textlora.evaluate import predict_logits, predict_probs
    from textlora.labelwords import LabelWordClassifier

    if prep.task != "classification":
        import numpy as np

        from textlora.tasks import outputs_of

        say("baseline: " + ("the training mean" if prep.task == "regression" else "the model before adaptation")
            + " ...")
        begun = time.perf_counter()
        scores.test_probs["pre_adaptation"] = np.full(len(prep.splits.test), prep.target_scale.mean) \
            if prep.task == "regression" else \
            outputs_of(prep.task, predict_logits(model, test_encoded, prep.tokenizer, cfg.train.eval_batch_size,
                                                 not quiet))
        scores.rows["pre_adaptation"] = {"seconds": time.perf_counter() - begun}
        return

    say("baseline: the model before adaptation" + (" (zero-shot prompt)" if prep.prompt else "") + " ...")
    classifier = model if prep.targets is None else LabelWordClassifier(model, prep.targets)
    begun = time.perf_counter()
    scores.test_probs["pre_adaptation"] = predict_probs(classifier, test_encoded, prep.tokenizer,
                                                        cfg.train.eval_batch_size, not quiet)
    scores.rows["pre_adaptation"] = {**scored_row(prep.splits.test["label"].to_numpy(),
                                                  scores.test_probs["pre_adaptation"], prep.names),
                                     "seconds": time.perf_counter() - begun}


def score_shipped_model(cfg: Config, prep: Prepared, work_dir: Path, val_encoded, test_encoded, scores: Scores,
                        quiet: bool) -> dict[str, Any]:
    """Score the fine-tuned artifact as shipped (reloaded from disk: fp32, adapter merged, exactly
    what `textlora predict` runs) on the validation and test rows, fit the temperature on the
    validation rows and keep the calibrated probabilities; returns the calibration report."""
    from textlora.calibration import apply_temperature
    from textlora.evaluate import predict_logits
    from textlora.predict import load_run_model
    from textlora.runs import CALIBRATION_FILE, RunDir

    val_labels, test_labels = prep.splits.validation["label"].to_numpy(), prep.splits.test["label"].to_numpy()
    shipped_model = load_run_model(RunDir(path=work_dir, info=prep.info), trust_remote_code=cfg.model.trust_remote_code)
    begun = time.perf_counter()
    val_logits = predict_logits(shipped_model, val_encoded, prep.tokenizer, cfg.train.eval_batch_size, not quiet)
    test_logits = predict_logits(shipped_model, test_encoded, prep.tokenizer, cfg.train.eval_batch_size, not quiet)
    scoring_seconds = time.perf_counter() - begun
    if prep.task != "classification":  # sigmoid probabilities or numbers: no temperature (tasks.settle scores them)
        from textlora.tasks import outputs_of

        scores.val_probs["finetuned"] = outputs_of(prep.task, val_logits)
        scores.test_probs["finetuned"] = outputs_of(prep.task, test_logits)
        scores.rows["finetuned"] = {"seconds": scoring_seconds}
        return None
    temperature, calibration = calibrate(val_logits, val_labels, test_logits, test_labels)
    scores.val_probs["finetuned"] = apply_temperature(val_logits, temperature)
    scores.test_probs["finetuned"] = apply_temperature(test_logits, temperature)
    scores.rows["finetuned"] = {**scored_row(test_labels, scores.test_probs["finetuned"], prep.names),
                                "seconds": scoring_seconds}
    write_json(work_dir / CALIBRATION_FILE, {"temperature": temperature, "fitted_on": "validation"})
    return calibration


def settle_task(cfg: Config, prep: Prepared, work_dir: Path, scores: Scores, classical_models: dict, say: Printer):
    """task: multi_label / regression: tasks.settle on the validation rows (thresholds, ensemble weight, what
    ships), then the test rows' metrics, intervals and verdicts into `scores.rows`; writes ship.json,
    task.json and the classical model the shipped composition needs. Returns the tasks.Settled."""
    from textlora.runs import CLASSICAL_DIR, CLASSICAL_ROWS, SHIP_FILE, TASK_FILE, row_name
    from textlora.tasks import settle

    display = {k: row_name(k, prep.objective, prep.task) for k in scores.test_probs}
    bins = cfg.data.label_bins if prep.task == "regression" else None
    settled = settle(prep.task, cfg.ship, prep.select_metric, prep.names, prep.labels("validation"),
                     prep.labels("test"), scores.val_probs, scores.test_probs, display, cfg.seed, bins,
                     CLASSICAL_ROWS)
    scores.rows = {k: {**row, **scores.rows.get(k, {})} for k, row in settled.rows.items()}
    say(settled.decision.reason)
    for needed in {settled.decision.plan.get("partner")} - {None}:
        classical_models[needed].save(work_dir / CLASSICAL_DIR / needed)
    write_json(work_dir / SHIP_FILE, settled.decision.plan)
    target = None
    if prep.task == "regression":
        target = {"target": prep.names[0], "scale": prep.target_scale.as_dict(), "bins": bins,
                  "scale_in_model": True}
    write_json(work_dir / TASK_FILE, settled.task_file(prep.task, prep.names, target))
    return settled


def choose_what_ships(cfg: Config, prep: Prepared, work_dir: Path, scores: Scores, classical_models: dict,
                      say: Printer):
    """ship.decide on the validation rows (the ensemble's weight too); writes ship.json and the
    classical model the shipped composition needs; adds the ensemble row to `scores`."""
    from textlora.runs import CLASSICAL_DIR, CLASSICAL_ROWS, SHIP_FILE
    from textlora.ship import decide

    val_labels, test_labels = prep.splits.validation["label"].to_numpy(), prep.splits.test["label"].to_numpy()
    decision = decide(cfg.ship, prep.select_metric, prep.names, val_labels, scores.val_probs, scores.test_probs,
                      CLASSICAL_ROWS)
    if decision.ensemble is not None:
        scores.rows["ensemble"] = {**scored_row(test_labels, scores.test_probs["ensemble"], prep.names),
                                   "partner": decision.ensemble.partner, "weight": decision.ensemble.weight}
    say(decision.reason)
    for needed in {decision.plan.get("partner")} - {None}:
        classical_models[needed].save(work_dir / CLASSICAL_DIR / needed)
    write_json(work_dir / SHIP_FILE, decision.plan)
    return decision


def _run(cfg: Config, work_dir: Path, final_dir: Path, quiet: bool, say: Printer, resuming: bool,
         main: bool, callbacks: tuple = ()) -> RunRecord | None:
    from textlora.card import model_card
    from textlora.models import build_model
    from textlora.runs import EXAMPLES_FILE, PROBS_FILE, base_signature
    from textlora.train import train_model

    started = time.perf_counter()
    prep = prepare(cfg)
    if prep.task != cfg.task:  # task: classification over a list column: the recipe as it ran (re-validated)
        cfg = dataclasses.replace(cfg, task=prep.task)
    splits, names, tokenizer, model_cfg, info = prep.splits, prep.names, prep.tokenizer, prep.model_cfg, prep.info
    if main:
        (work_dir / "config.yaml").write_text(cfg.to_yaml())
        write_json(work_dir / RUN_MARKER, info)  # finished: false until the very end
    audit = announce(cfg, prep, resuming, quiet, main, say)
    data_summary = {**splits.summary(), "token_lengths": prep.lengths, "fingerprint": fingerprint(splits),
                    "audit": audit.as_dict() if audit is not None else None}
    scores = Scores()
    classical_models = classical_rows(cfg, splits, scores, say) if main else {}
    test_encoded = encode(tokenizer, list(splits.test["text"]), model_cfg, prep.prompt)
    model, params = build_model(cfg, prep.source, names, tokenizer, prep.objective)
    info["base_signature"] = base_signature(model.config)
    say(f"model: {cfg.model.name} + {cfg.method}: {params.trainable:,} trainable of {params.total:,} parameters ({params.ratio:.2%})")
    if "pre_adaptation" in cfg.baselines and main:
        pre_adaptation_row(cfg, prep, model, test_encoded, scores, quiet, say)

    val_texts = list(splits.validation["text"])
    train_set = to_dataset(splits.train["text"], prep.training_labels("train"), tokenizer, model_cfg, prep.prompt,
                           prep.targets)
    validation_set = to_dataset(val_texts, prep.training_labels("validation"), tokenizer, model_cfg, prep.prompt,
                                prep.targets)
    val_encoded = encode(tokenizer, val_texts, model_cfg, prep.prompt)
    plan = plan_training_budget(cfg, model, tokenizer, train_set, val_encoded, names, work_dir, prep.targets, say) \
        if cfg.train.budget_minutes else None
    shown = f"{plan.max_steps} steps (budget)" if plan else f"{cfg.train.epochs:g} epoch(s)"
    say(f"training: {len(train_set)} rows, {shown}, lr {cfg.learning_rate:g}, batch {cfg.train.batch_size}")
    result = train_model(cfg, model, tokenizer, train_set, validation_set, names, work_dir,
                         quiet=quiet, resume=resuming, label_targets=prep.targets, callbacks=callbacks,
                         select_metric=prep.select_metric, max_steps=plan.max_steps if plan else None,
                         eval_steps=plan.eval_steps if plan else cfg.train.eval_steps, say=say,
                         target_scale=prep.target_scale)
    if not main:
        return None
    say(epoch_table(result.epochs, task=prep.task))
    say(f"shipping the checkpoint of step {result.selected_step} (marked *: the best {prep.select_metric} on the "
        f"validation rows)" + (", stopped early" if result.stopped_early and plan is None else ""))

    artifact = info["artifact"]
    if prep.task == "regression":  # the saved model outputs the number itself (regression.py)
        from textlora.regression import bake_target_scale

        bake_target_scale(model, prep.target_scale)
    save_artifacts(model, cfg, work_dir / artifact)
    tokenizer.save_pretrained(str(work_dir / "tokenizer"))
    write_json(work_dir / "labels.json", names)
    del model
    calibration = score_shipped_model(cfg, prep, work_dir, val_encoded, test_encoded, scores, quiet)
    thresholds = {}  # task: multi_label: each row's per-label thresholds, chosen on the validation rows
    if prep.task == "classification":
        decision = choose_what_ships(cfg, prep, work_dir, scores, classical_models, say)
    else:
        settled = settle_task(cfg, prep, work_dir, scores, classical_models, say)
        decision, comparisons = settled.decision, settled.comparisons
        if prep.task == "multi_label":
            thresholds = {"thresholds": settled.task_file(prep.task, names)["thresholds"]}
    test_labels = prep.labels("test")
    save_test_probs(work_dir / PROBS_FILE, test_labels, scores.test_probs)
    write_json(work_dir / EXAMPLES_FILE, short_examples(splits.test, names, task=prep.task))

    rows = scores.rows
    if prep.task == "classification":
        # The bar (the best classical row on validation) is the ensemble's partner: ship.decide chose it.
        bar = decision.ensemble.partner if decision.ensemble is not None else None
        comparisons = compare_rows(test_labels, scores.test_probs, rows, decision.kind, bar, prep.objective, cfg.seed)
    baselines = {k: v for k, v in rows.items() if k not in ("finetuned", "ensemble")}
    record = RunRecord(
        name=cfg.name, method=cfg.method, objective=prep.objective, base_model=cfg.model.name, seed=cfg.seed,
        data=data_summary, baselines=baselines, final=rows["finetuned"], ensemble=rows.get("ensemble"),
        shipped={**decision.plan, "row": rows[decision.kind]},
        selection={"metric": prep.select_metric, "step": result.selected_step,
                   "validation_scores": decision.validation_scores,
                   "stopped_early": result.stopped_early, "budget": asdict(plan) if plan else None,
                   **thresholds},
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
        artifact_bytes=folder_size(work_dir / artifact), truncation=info["truncation"],
        optimizer_groups=result.optimizer_groups, class_weights=result.class_weights, versions=package_versions(),
        task=prep.task,
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

    from textlora.metrics import softmax

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


def short_examples(test, label_names: list[str], words: tuple[int, int] = (6, 60),
                   task: str = "classification") -> list[dict[str, str]]:
    """One test text per class for the web page: the shortest with at least `words[0]` words
    (a text of one or two words shows little), cut to `words[1]` words. task: multi_label: one per label,
    `label` naming the text's whole set; regression: the lowest, middle and highest target."""
    if task != "classification":
        return _task_examples(test, label_names, words, task)
    out = []
    for label, name in enumerate(label_names):
        texts = [t for t in test["text"][test["label"] == label] if len(t.split()) >= words[0]]
        if texts:
            shortest = min(texts, key=len)
            out.append({"label": name, "text": " ".join(shortest.split()[: words[1]])})
    return out


def _task_examples(test, label_names: list[str], words: tuple[int, int], task: str) -> list[dict[str, str]]:
    long_enough = test[test["text"].map(lambda t: len(t.split()) >= words[0])]
    cut = lambda text: " ".join(text.split()[: words[1]])  # noqa: E731
    if task == "regression":
        ordered = long_enough.sort_values("label", kind="stable")
        picks = [ordered.iloc[i] for i in sorted({0, len(ordered) // 2, len(ordered) - 1})] if len(ordered) else []
        return [{"label": f"{row['label']:g}", "text": cut(row["text"])} for row in picks]
    out = []
    for label in range(len(label_names)):
        holding = long_enough[long_enough["label"].map(lambda ids: label in ids)]
        if len(holding):
            row = holding.loc[holding["text"].str.len().idxmin()]
            out.append({"label": ", ".join(label_names[i] for i in row["label"]), "text": cut(row["text"])})
    return out


def save_test_probs(path: Path, labels, probs: dict[str, Any]) -> None:
    """Every row's test probabilities beside the labels (safetensors: no pickle). task: multi_label: (n, K)
    multi-hot labels and sigmoid probabilities; regression: float targets and predicted numbers (n,)."""
    import numpy as np
    from safetensors.numpy import save_file

    labels = np.asarray(labels)
    save_file({"labels": labels.astype(np.float64 if labels.dtype.kind == "f" else np.int64),
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


# --------------------------------------------------------------------------- the `train` command


def cmd_train(args) -> int:
    from textlora.config import command_overrides, load_config

    overrides = command_overrides(args.recipe, args.set, quick=args.quick, model=args.model, data=args.data,
                                  name=args.name, output_dir=args.output_dir, trust_remote_code=args.trust_remote_code)
    cfg = load_config(args.recipe, overrides)
    run_experiment(cfg, overwrite=args.overwrite, quiet=args.quiet, resume=args.resume)
    return 0


def register_cli(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        help="run one experiment: data -> baselines -> training -> run folder",
        description="Run one experiment end to end and write runs/<name>/ (config, metrics, adapter, model card).",
        epilog="example: textlora train recipes/imdb-minilm.yaml --data ../shared/data/imdb --set data.n_train=2000",
    )
    train.add_argument("recipe", nargs="?", help="YAML recipe (see recipes/); omitted: the built-in defaults (demo)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a recipe key, e.g. --set lora.r=16 --set train.epochs=1 (repeatable)")
    train.add_argument("--model", help="model: hub id, local folder, a .gguf file, packaged:minilm or packaged:smollm2 "
                                       "(sets model.name)")
    train.add_argument("--data", help="data: hub dataset id, local file or folder, or packaged:NAME (sets data.source)")
    train.add_argument("--name", help="run folder name (sets name)")
    train.add_argument("--output-dir", help="where run folders go (sets output_dir; default runs/)")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run folder of the same name")
    train.add_argument("--resume", action="store_true",
                       help="continue an unfinished run (killed or interrupted) from its last checkpoint")
    train.add_argument("--trust-remote-code", action="store_true",
                       help="run Python code shipped with a hub model (off by default; sets model.trust_remote_code)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument("--quick", action="store_true",  # issue 5: textlora.quick
                       help="a seconds-long check of the recipe: 64 train rows, 1 epoch, 64 tokens (numbers mean nothing)")
    train.set_defaults(func=cmd_train)

