"""Training: the transformers Trainer, evaluated on the validation rows each epoch.

What is added around the Trainer: the metrics function (metrics.py), a
callback that times each epoch, the LoRA+ optimizer from peft, and the
per-epoch table assembled from the Trainer's log history.
"""

from __future__ import annotations

import dataclasses
import json
import math
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textlora.config import ADAPTER_METHODS, Config
from textlora.errors import TextloraError
from textlora.evaluate import pool_windows
from textlora.metrics import classification_metrics, softmax


@dataclass
class TrainResult:
    epochs: list[dict[str, Any]]
    """One row per evaluation on the validation rows (per epoch, or every eval_steps): step, epoch,
    train_loss, validation metrics, seconds; the row of the checkpoint that ships has selected: true."""
    seconds: float
    train_samples: int
    samples_per_second: float
    peak_memory_mb: float
    precision: str = "fp32"
    optimizer_groups: list[dict[str, Any]] = field(default_factory=list)
    """Learning rate and parameter count of each optimizer group (shows LoRA+ ratios)."""
    class_weights: list[float] | None = None
    selected_step: int | None = None
    """The optimizer step whose weights the model holds after training (the validation-best)."""
    stopped_early: bool = False
    steps: int = 0


def peak_memory_mb() -> float:
    """GPU: torch's peak allocation. CPU: the process's resident-set high-water mark."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _evaluation_recorder(journal: Path):
    """A TrainerCallback that times the training between evaluations and keeps each evaluation's
    confusion matrix and per-class report, journaled to a file so a resumed run still has the rows
    of the evaluations before the interruption. Keyed by optimizer step. Built lazily so importing
    textlora does not import transformers."""
    from transformers import TrainerCallback

    class EvaluationRecorder(TrainerCallback):
        def __init__(self):
            self.mark: float | None = None
            self.pending: dict[str, Any] = {}
            self.by_step: dict[str, dict[str, Any]] = json.loads(journal.read_text()) if journal.is_file() else {}

        def on_train_begin(self, args, state, control, **kwargs):
            self.mark = time.perf_counter()

        def on_evaluate(self, args, state, control, **kwargs):
            # Training seconds since the previous evaluation ended: evaluations are not training time.
            self.pending["seconds"] = time.perf_counter() - self.mark if self.mark is not None else None
            self.by_step[str(state.global_step)] = dict(self.pending)
            self.pending = {}
            if state.is_world_process_zero:
                journal.write_text(json.dumps(self.by_step))
            self.mark = time.perf_counter()

    return EvaluationRecorder()


def is_better(value: float | None, best: float | None, metric: str) -> bool:
    """Strictly better (lower for loss): ties keep the earlier checkpoint."""
    if value is None:
        return False
    if best is None:
        return True
    return value < best if metric == "loss" else value > best


def _best_checkpoint(folder: Path, metric: str, patience: int | None):
    """A TrainerCallback that keeps the trainable weights of the best evaluation on the validation
    rows (by `metric`) and optionally stops after `patience` evaluations without improvement.

    Written here rather than with the Trainer's load_best_model_at_end: that needs checkpoints
    saved exactly at every evaluation, which train.save_steps and budgets do not give, and
    EarlyStoppingCallback requires it. Only trainable tensors are kept (adapter and head: a few MiB),
    as safetensors named by step; the journal lists every evaluation by step, so a run resumed
    from an earlier checkpoint drops the evaluations it will redo and ends with the same choice.
    """
    from safetensors.torch import save_file
    from transformers import TrainerCallback

    journal = folder / "selection.json"

    class BestCheckpoint(TrainerCallback):
        def __init__(self):
            self.scores: dict[int, float | None] = (
                {int(k): v for k, v in json.loads(journal.read_text()).items()} if journal.is_file() else {})

        @property
        def best_step(self) -> int | None:
            best = None
            for step in sorted(self.scores):
                if is_better(self.scores[step], None if best is None else self.scores[best], metric):
                    best = step
            return best

        def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
            step = state.global_step
            self.scores = {s: v for s, v in self.scores.items() if s < step}  # drop evaluations a resume redoes
            self.scores[step] = (metrics or {}).get(f"eval_{metric}")
            if self.best_step == step and state.is_world_process_zero and model is not None:
                tensors = {n: p.detach().float().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
                save_file(tensors, str(folder / f"best-{step}.safetensors"))
                for old in folder.glob("best-*.safetensors"):
                    if old.name != f"best-{step}.safetensors":
                        old.unlink()
            if state.is_world_process_zero:
                journal.write_text(json.dumps({str(k): v for k, v in self.scores.items()}))
            if patience is not None and self.best_step is not None:
                since = sum(1 for s in self.scores if s > self.best_step)
                if since >= patience:
                    control.should_training_stop = True

        def restore_best(self, model) -> int | None:
            """Load the best evaluation's trainable weights into `model`; returns its step."""
            from safetensors.torch import load_file

            step = self.best_step
            path = folder / f"best-{step}.safetensors"
            if step is None or not path.is_file():
                return None
            tensors = load_file(str(path))
            params = dict(model.named_parameters())
            with torch.no_grad():
                for name, value in tensors.items():
                    params[name].copy_(value.to(params[name].dtype))
            return step

    return BestCheckpoint()


def _budget_progress(budget_seconds: float, started_at: float, say):
    """Prints, at each evaluation, how much of the training budget is used and left."""
    from transformers import TrainerCallback

    class BudgetProgress(TrainerCallback):
        def on_evaluate(self, args, state, control, **kwargs):
            used = time.perf_counter() - started_at
            say(f"budget: step {state.global_step}/{state.max_steps}, {used / 60:.1f} of "
                f"{budget_seconds / 60:.1f} min used, {max(0.0, budget_seconds - used) / 60:.1f} min left")

    return BudgetProgress()


def _optimizer_groups(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Each group's base learning rate (before the schedule scales it; after training the
    linear schedule has decayed every `lr` to 0) and its parameter count."""
    return [
        {"lr": group.get("initial_lr", group["lr"]), "parameters": int(sum(p.numel() for p in group["params"]))}
        for group in optimizer.param_groups
        if group["params"]
    ]


def epoch_label(epoch: float) -> int | float:
    """Whole epochs as ints; a fractional last epoch (train.epochs: 1.5) keeps two decimals,
    or its row would repeat the label of the epoch before it."""
    return round(epoch) if abs(epoch - round(epoch)) < 1e-6 else round(epoch, 2)


def resolve_precision(requested: str) -> str:
    """auto -> bf16 only where bf16 matmuls run natively; emulated bf16 is slower than fp32."""
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
    except (AttributeError, RuntimeError):
        return "fp32"


def hold_frozen_weights_in_bf16(model: torch.nn.Module) -> int:
    """Cast frozen parameters to bf16 once, so autocast has nothing to re-cast each step.

    Trainable parameters (adapter, head) and so the optimizer state stay fp32.
    Returns how many parameters were cast.
    """
    cast = 0
    for param in model.parameters():
        if not param.requires_grad and param.dtype == torch.float32:
            param.data = param.data.to(torch.bfloat16)
            cast += param.numel()
    return cast


def _silence_log_printing(trainer, quiet: bool) -> None:
    """Keep the progress bar, drop the Trainer's raw log dicts: textlora prints its own table."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    if not quiet:
        class BarOnly(ProgressCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                pass

        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(BarOnly())


def _tracking_callbacks(cfg: Config, work_dir: Path) -> list:
    """TensorBoard events go to <run>/logs, beside the numbers they plot.

    transformers 5 dropped TrainingArguments.logging_dir and would write them
    under output_dir (the checkpoints folder, deleted when the run finishes).
    """
    if cfg.train.report_to != "tensorboard":
        return []
    from transformers.integrations import TensorBoardCallback

    try:
        callback = TensorBoardCallback()
    except RuntimeError:
        raise TextloraError("train.report_to: tensorboard needs TensorBoard: pip install 'textlora[tracking]'") from None
    callback.logging_dir = str(work_dir / "logs")
    return [callback]


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint that was completely written, or None.

    The Trainer writes trainer_state.json last, so a checkpoint without a
    readable one was cut off by the kill; such folders are removed, so that
    the resumed run neither loads nor rotates them.
    """
    numbered = [p for p in folder.glob("checkpoint-*") if p.name.rsplit("-", 1)[-1].isdigit()]
    for candidate in sorted(numbered, key=lambda p: int(p.name.rsplit("-", 1)[-1]), reverse=True):
        try:
            json.loads((candidate / "trainer_state.json").read_text())
            return str(candidate)
        except (OSError, ValueError):
            shutil.rmtree(candidate, ignore_errors=True)
    return None


def losses_between_evaluations(log_history: list[dict[str, Any]]) -> dict[int, float]:
    """Mean training loss of the steps since the previous evaluation, keyed by the evaluation's step.

    Per-step entries carry `loss` and `step`; evaluations carry `eval_loss`. With one evaluation
    per epoch this is each epoch's mean training loss.
    """
    eval_steps = sorted({entry["step"] for entry in log_history if "eval_loss" in entry and "step" in entry})
    by_eval: dict[int, list[float]] = {}
    for entry in log_history:
        if "loss" in entry and "step" in entry and "eval_loss" not in entry:
            owner = next((s for s in eval_steps if s >= entry["step"]), None)
            if owner is not None:
                by_eval.setdefault(owner, []).append(entry["loss"])
    return {step: float(np.mean(losses)) for step, losses in by_eval.items()}


def _length_grouped_sampler(seed: int):
    """LengthGroupedSampler whose order depends on (seed, epoch) only.

    transformers' own draws from the global torch RNG, whose state at the
    start of an epoch differs between an uninterrupted run and one resumed
    from a checkpoint (dropout consumed it); this one makes a resumed run see
    exactly the batches the uninterrupted run saw. The Trainer (through
    accelerate's DataLoaderShard.set_epoch) tells it the epoch.
    """
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
        epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            self.generator = torch.Generator().manual_seed(seed + self.epoch)
            return super().__iter__()

    return EpochSeededLengthGroupedSampler


def _trainer_class():
    """The Trainer with the epoch-seeded length-grouped sampler (built lazily: importing
    textlora does not import transformers)."""
    from transformers import Trainer

    class TextloraTrainer(Trainer):
        def __init__(self, *args, label_targets: list[list[int]] | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self.label_targets = label_targets
            self._scorer = None

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            """Label-word models: every class's score as the logits, the class ids as the labels."""
            if self.label_targets is None:
                return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
            from textlora.labelwords import LabelWordClassifier, classes_of

            inputs = self._prepare_inputs(inputs)
            if self._scorer is None:  # self.model: the bare PeftModel, whatever wraps `model` for evaluation
                self._scorer = LabelWordClassifier(self.model, self.label_targets).to(inputs["input_ids"].device)
            classes = classes_of(inputs["labels"], self.label_targets)
            with torch.no_grad(), self.autocast_smart_context_manager():
                scores = self._scorer.score(inputs["input_ids"], inputs.get("attention_mask")).float()
            loss = torch.nn.functional.cross_entropy(scores, classes)  # log loss over the classes, as in every other row
            return loss.detach(), (None if prediction_loss_only else scores.detach()), classes

        def _get_train_sampler(self, train_dataset=None):
            sampler = super()._get_train_sampler(train_dataset)
            if self.args.train_sampling_strategy != "group_by_length" or sampler is None:
                return sampler
            grouped = _length_grouped_sampler(self.args.data_seed if self.args.data_seed is not None else self.args.seed)
            return grouped(sampler.batch_size, lengths=sampler.lengths)

    return TextloraTrainer


def _epoch_end_checkpoints():
    """With train.save_steps: also checkpoint at every epoch end, *after* its evaluation.

    A step checkpoint that falls on an epoch's last step would be written
    before that epoch's evaluation, and a run resumed from it would never
    evaluate that epoch; it is deferred to the epoch-end save instead.
    """
    from transformers import TrainerCallback

    class EpochEndCheckpoints(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if control.should_save and state.epoch is not None and abs(state.epoch - round(state.epoch)) < 1e-9:
                control.should_save = False  # the epoch end saves, after evaluating

        def on_epoch_end(self, args, state, control, **kwargs):
            control.should_save = True

    return EpochEndCheckpoints()


def class_weighted_lm_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                           label_targets: list[list[int]], num_items_in_batch=None) -> torch.Tensor:
    """The seq2seq LM loss with each row's target tokens weighted by its class.

    With every weight 1 it is exactly the token-averaged loss transformers
    computes; `num_items_in_batch` (target tokens in the whole accumulation
    window, from the Trainer) replaces this batch's count when given.
    """
    from textlora.labelwords import IGNORE_INDEX, classes_of

    tokens = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX,
                                               reduction="none")
    row_weights = weights.to(logits.device)[classes_of(labels, label_targets)]
    weighted = (tokens.sum(dim=1) * row_weights).sum()
    return weighted / (num_items_in_batch or (labels != IGNORE_INDEX).sum())


def _pad_rows(rows: list[list[int]]) -> list[list[int]]:
    from textlora.labelwords import IGNORE_INDEX

    longest = max((len(r) for r in rows), default=0)
    return [list(r) + [IGNORE_INDEX] * (longest - len(r)) for r in rows]


def class_weight_vector(cfg: Config, train_labels: np.ndarray, n_classes: int) -> torch.Tensor | None:
    """The per-class loss weights in force: "balanced" is sklearn's n / (k * count)."""
    setting = cfg.train.class_weights
    if setting is None:
        return None
    if setting == "balanced":
        counts = np.bincount(train_labels, minlength=n_classes).astype(np.float64)
        weights = len(train_labels) / (n_classes * np.maximum(counts, 1))
    else:
        if len(setting) != n_classes:
            raise TextloraError(f"train.class_weights has {len(setting)} weights for {n_classes} classes; give one per class")
        weights = np.asarray(setting, dtype=np.float64)
    return torch.tensor(weights, dtype=torch.float32)


def train_model(cfg: Config, model, tokenizer, train_set, validation_set, label_names: list[str],
                work_dir: Path, quiet: bool = False, resume: bool = False,
                label_targets: list[list[int]] | None = None, callbacks: tuple = (),
                select_metric: str = "accuracy", max_steps: int | None = None, eval_steps: int | None = None,
                say=print) -> TrainResult:
    """Train `model` in place, checkpointing into work_dir/checkpoints; afterwards the model holds
    the weights of its best evaluation on the validation rows by `select_metric` (never the test rows).

    With `resume`, training continues from the last checkpoint there: the
    Trainer restores weights, optimizer, scheduler and RNG states and skips
    the batches already seen, so the result equals an uninterrupted run.

    `max_steps` replaces cfg.train.epochs (a budget); `eval_steps` evaluates every N steps
    instead of every epoch. With `label_targets` (objective label_words), `model` is a seq2seq LM
    trained on the LM loss of each row's target ids (its `labels`), and each evaluation scores every
    class's targets (labelwords.py). `callbacks`: extra TrainerCallbacks.
    """
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithPadding, TrainingArguments

    from textlora.labelwords import IGNORE_INDEX, classes_of

    precision = resolve_precision(cfg.train.precision)
    if precision == "bf16" and cfg.method in ADAPTER_METHODS:
        # Only where the frozen base is not saved: a `head` run ships its body.
        hold_frozen_weights_in_bf16(model)
    checkpoints = Path(work_dir) / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    recorder = _evaluation_recorder(Path(work_dir) / "evaluations.journal.json")
    best = _best_checkpoint(Path(work_dir), select_metric, cfg.train.early_stopping_patience)

    # truncation: chunks: validation rows are windows; metrics are per text (mean window logits).
    windows_of = np.asarray(validation_set["text_index"]) if "text_index" in validation_set.column_names else None

    def compute_metrics(prediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(prediction.label_ids)
        if windows_of is not None:
            logits = pool_windows(logits, windows_of)
            labels = labels[np.unique(windows_of, return_index=True)[1]]  # a text's first window's label
        result = classification_metrics(labels, softmax(logits), label_names)
        # The Trainer logs scalars only; the matrix and report are kept aside.
        recorder.pending.update(confusion_matrix=result["confusion_matrix"], per_class=result["per_class"])
        # loss is recomputed here from the pooled probabilities (the Trainer's own eval_loss is per window).
        scalars = {k: v for k, v in result.items() if isinstance(v, (int, float)) and k not in ("n", "loss")}
        if windows_of is not None:
            scalars["text_loss"] = result["loss"]
        return scalars

    by_steps = eval_steps is not None
    args = TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=cfg.train.epochs,
        max_steps=max_steps if max_steps is not None else -1,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.train.batch_size,
        per_device_eval_batch_size=cfg.train.eval_batch_size,
        gradient_accumulation_steps=cfg.train.gradient_accumulation_steps,
        weight_decay=cfg.train.weight_decay,
        warmup_steps=cfg.train.warmup_ratio,  # a float below 1 is a ratio of all steps
        lr_scheduler_type="linear",
        eval_strategy="steps" if by_steps else "epoch",
        eval_steps=eval_steps,
        # Every step's loss goes into the log history, which checkpoints keep:
        # a resumed run then still averages each epoch's training loss over
        # all of its steps, not only those after the interruption.
        logging_strategy="steps",
        logging_steps=1,
        # Checkpoints for --resume: at every evaluation, and every save_steps steps if set.
        save_strategy="steps" if (cfg.train.save_steps or by_steps) else "epoch",
        save_steps=cfg.train.save_steps or eval_steps or 500,
        save_total_limit=1,
        save_only_model=False,
        # TensorBoard is attached below, writing into the run folder.
        report_to=[cfg.train.report_to] if cfg.train.report_to == "mlflow" else [],
        seed=cfg.seed,
        data_seed=cfg.seed,
        disable_tqdm=quiet,
        train_sampling_strategy="group_by_length" if cfg.train.group_by_length else "random",
        use_cpu=not torch.cuda.is_available(),
        torch_compile=cfg.train.compile,
        bf16=precision == "bf16",
    )
    optimizers: tuple = (None, None)
    if cfg.method == "loraplus":
        from peft.optimizers import create_loraplus_optimizer

        optimizer = create_loraplus_optimizer(
            model=model,
            optimizer_cls=torch.optim.AdamW,
            lr=cfg.learning_rate,
            loraplus_lr_ratio=cfg.lora.loraplus_lr_ratio,
            weight_decay=cfg.train.weight_decay,
        )
        optimizers = (optimizer, None)
    if label_targets is None:
        train_classes = np.asarray(train_set["labels"])
        collator = DataCollatorWithPadding(tokenizer)
    else:
        train_classes = classes_of(torch.tensor(_pad_rows(train_set["labels"])), label_targets).numpy()
        collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX)
    weights = class_weight_vector(cfg, train_classes, len(label_names))
    compute_loss = None
    if weights is not None and label_targets is None:
        def compute_loss(outputs, labels, num_items_in_batch=None):
            logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
            losses = torch.nn.functional.cross_entropy(
                logits.float(), labels, weight=weights.to(logits.device), reduction="none"
            )
            # In training the Trainer passes the number of labels in the whole
            # gradient-accumulation window and expects the loss scaled by it.
            return losses.sum() / num_items_in_batch if num_items_in_batch else losses.mean()
    elif weights is not None:
        def compute_loss(outputs, labels, num_items_in_batch=None):
            logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
            return class_weighted_lm_loss(logits, labels, weights, label_targets, num_items_in_batch)

    extra = [recorder, best, *_tracking_callbacks(cfg, Path(work_dir))]
    if max_steps is not None and cfg.train.budget_minutes and not quiet:
        extra.append(_budget_progress(cfg.train.budget_minutes * 60, time.perf_counter(), say))
    if cfg.train.save_steps and not by_steps:
        extra.append(_epoch_end_checkpoints())
    trainer = _trainer_class()(
        model=model,
        args=args,
        label_targets=label_targets,
        data_collator=collator,
        train_dataset=train_set,
        eval_dataset=validation_set,
        compute_metrics=compute_metrics,
        compute_loss_func=compute_loss,
        optimizers=optimizers,
        callbacks=[*extra, *callbacks],
    )
    _silence_log_printing(trainer, quiet)
    start = time.perf_counter()
    last = last_complete_checkpoint(checkpoints) if resume else None
    first_step = int(last.rsplit("-", 1)[-1]) if last else 0
    trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - start
    groups = _optimizer_groups(trainer.optimizer) if trainer.optimizer is not None else []
    # A run whose last step did not fall on an evaluation (early stop, fractional epoch) is
    # evaluated once more, so the weights it ends with were compared too.
    evaluated = {e.get("step") for e in trainer.state.log_history if "eval_loss" in e}
    if trainer.state.global_step not in evaluated:
        trainer.evaluate()
    selected = best.restore_best(trainer.model if hasattr(trainer.model, "named_parameters") else model)

    train_losses = losses_between_evaluations(trainer.state.log_history)
    evals = [e for e in trainer.state.log_history if "eval_loss" in e]
    rows = []
    for entry in evals:
        step = entry.get("step")
        epoch = epoch_label(entry["epoch"])
        row: dict[str, Any] = {"epoch": epoch, "step": step, "train_loss": train_losses.get(step)}
        row.update({k[len("eval_"):]: v for k, v in entry.items() if k.startswith("eval_") and "runtime" not in k and "per_second" not in k})
        if "text_loss" in row:
            row["loss"] = row.pop("text_loss")
        row.setdefault("seconds", None)
        row.update(recorder.by_step.get(str(step), {}))
        row["selected"] = step == selected
        rows.append(row)
    samples = len(train_set)
    if first_step or max_steps is not None:  # resumed or budgeted: count the steps this process ran
        steps_run = trainer.state.global_step - first_step
        trained = steps_run * cfg.train.batch_size * cfg.train.gradient_accumulation_steps * args.world_size
    else:
        trained = samples * cfg.train.epochs
    return TrainResult(
        epochs=rows,
        seconds=seconds,
        train_samples=samples,
        # Measured here, not taken from the Trainer: on resume its figure counts skipped steps.
        samples_per_second=trained / seconds,
        peak_memory_mb=peak_memory_mb(),
        precision=precision,
        optimizer_groups=groups,
        class_weights=None if weights is None else [float(w) for w in weights],
        selected_step=selected,
        stopped_early=trainer.state.global_step < trainer.state.max_steps,
        steps=trainer.state.global_step,
    )


def probe_step_seconds(cfg: Config, model, tokenizer, train_set, label_names: list[str], work_dir: Path,
                       label_targets: list[list[int]] | None = None, steps: int = 6) -> float:
    """Seconds per optimizer step of this model, data and settings, timed on a few real steps.

    The steps run through the same Trainer set-up on a seeded sample of the training rows; the
    first step (allocation, warm-up) is not counted. The model's trainable weights are restored
    afterwards, so the run that follows starts exactly as it would have.
    """
    from transformers import TrainerCallback

    snapshot = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    rows = np.random.default_rng(cfg.seed).choice(len(train_set), min(len(train_set), steps * cfg.train.batch_size),
                                                  replace=False)

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.began, self.times = 0.0, []

        def on_step_begin(self, args, state, control, **kwargs):
            self.began = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.began)

    timer = StepTimer()
    probe_dir = Path(work_dir) / "budget-probe"
    try:
        probe_cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, early_stopping_patience=None))
        subset = train_set.select(sorted(int(i) for i in rows))
        train_model(probe_cfg, model, tokenizer, subset, subset.select(range(min(2, len(subset)))),
                    label_names, probe_dir, quiet=True,
                    label_targets=label_targets, callbacks=(timer,), select_metric="loss", max_steps=steps)
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
        with torch.no_grad():
            params = dict(model.named_parameters())
            for name, value in snapshot.items():
                params[name].copy_(value)
    counted = timer.times[1:] or timer.times
    return float(np.median(counted)) if counted else float("nan")
