"""Training: the transformers Trainer, evaluated on the validation rows each epoch.

What is added around the Trainer: the metrics function (metrics.py), a
callback that times each epoch, the LoRA+ optimizer from peft, and the
per-epoch table assembled from the Trainer's log history.
"""

from __future__ import annotations

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
    """One row per epoch: train_loss, validation metrics, seconds."""
    seconds: float
    train_samples: int
    samples_per_second: float
    peak_memory_mb: float
    precision: str = "fp32"
    optimizer_groups: list[dict[str, Any]] = field(default_factory=list)
    class_weights: list[float] | None = None
    """Learning rate and parameter count of each optimizer group (shows LoRA+ ratios)."""


def peak_memory_mb() -> float:
    """GPU: torch's peak allocation. CPU: the process's resident-set high-water mark."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _epoch_recorder(journal: Path):
    """A TrainerCallback that times each epoch and keeps each evaluation's confusion
    matrix and per-class report, journaled to a file so a resumed run still has
    the rows of the epochs before the interruption. Built lazily so importing
    textlora does not import transformers."""
    from transformers import TrainerCallback

    class EpochRecorder(TrainerCallback):
        def __init__(self):
            self.started: float | None = None
            self.pending: dict[str, Any] = {}
            self.by_epoch: dict[str, dict[str, Any]] = json.loads(journal.read_text()) if journal.is_file() else {}

        def on_epoch_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            if self.started is not None:
                self.pending["seconds"] = time.perf_counter() - self.started

        def on_evaluate(self, args, state, control, **kwargs):
            self.by_epoch[str(epoch_label(state.epoch))] = dict(self.pending)
            self.pending = {}
            if state.is_world_process_zero:
                journal.write_text(json.dumps(self.by_epoch))

    return EpochRecorder()


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


def epoch_train_losses(log_history: list[dict[str, Any]]) -> dict[int, float]:
    """Mean training loss of each epoch, from the per-step entries of the log history.

    A step logged at fractional epoch e belongs to epoch ceil(e): the last
    step of epoch 1 is logged at exactly 1.0.
    """
    by_epoch: dict[int, list[float]] = {}
    for entry in log_history:
        if "loss" in entry and "epoch" in entry and "eval_loss" not in entry:
            by_epoch.setdefault(math.ceil(round(entry["epoch"], 6)), []).append(entry["loss"])
    return {epoch: float(np.mean(losses)) for epoch, losses in by_epoch.items()}


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
                label_targets: list[list[int]] | None = None, callbacks: tuple = ()) -> TrainResult:
    """Train `model` in place, checkpointing into work_dir/checkpoints.

    With `resume`, training continues from the last checkpoint there: the
    Trainer restores weights, optimizer, scheduler and RNG states and skips
    the batches already seen, so the result equals an uninterrupted run.

    With `label_targets` (objective label_words), `model` is a seq2seq LM
    trained on the LM loss of each row's target ids (its `labels`), and each
    evaluation scores every class's targets (labelwords.py). `callbacks`:
    extra TrainerCallbacks (benchmarks use one to trace accuracy over time).
    """
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithPadding, TrainingArguments

    from textlora.labelwords import IGNORE_INDEX, classes_of

    precision = resolve_precision(cfg.train.precision)
    if precision == "bf16" and cfg.method in ADAPTER_METHODS:
        # Only where the frozen base is not saved: a `head` run ships its body.
        hold_frozen_weights_in_bf16(model)
    checkpoints = Path(work_dir) / "checkpoints"
    recorder = _epoch_recorder(Path(work_dir) / "epochs.journal.json")

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
        return {k: v for k, v in result.items() if isinstance(v, (int, float)) and k not in ("n", "loss")}

    args = TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=cfg.train.epochs,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.train.batch_size,
        per_device_eval_batch_size=cfg.train.eval_batch_size,
        gradient_accumulation_steps=cfg.train.gradient_accumulation_steps,
        weight_decay=cfg.train.weight_decay,
        warmup_steps=cfg.train.warmup_ratio,  # a float below 1 is a ratio of all steps
        lr_scheduler_type="linear",
        eval_strategy="epoch",
        # Every step's loss goes into the log history, which checkpoints keep:
        # a resumed run then still averages each epoch's training loss over
        # all of its steps, not only those after the interruption.
        logging_strategy="steps",
        logging_steps=1,
        # Checkpoints for --resume: every epoch, and every save_steps steps if set.
        save_strategy="steps" if cfg.train.save_steps else "epoch",
        save_steps=cfg.train.save_steps or 500,
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
        callbacks=[recorder, *_tracking_callbacks(cfg, Path(work_dir)),
                   *([_epoch_end_checkpoints()] if cfg.train.save_steps else []), *callbacks],
    )
    _silence_log_printing(trainer, quiet)
    start = time.perf_counter()
    last = last_complete_checkpoint(checkpoints) if resume else None
    first_step = int(last.rsplit("-", 1)[-1]) if last else 0
    trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - start
    groups = _optimizer_groups(trainer.optimizer) if trainer.optimizer is not None else []

    train_losses = epoch_train_losses(trainer.state.log_history)
    evals = [e for e in trainer.state.log_history if "eval_loss" in e]
    rows = []
    for entry in evals:
        epoch = epoch_label(entry["epoch"])
        row: dict[str, Any] = {"epoch": epoch, "train_loss": train_losses.get(math.ceil(epoch))}
        row.update({k[len("eval_"):]: v for k, v in entry.items() if k.startswith("eval_") and "runtime" not in k and "per_second" not in k})
        row.setdefault("seconds", None)
        row.update(recorder.by_epoch.get(str(epoch), {}))
        rows.append(row)
    samples = len(train_set)
    if first_step:  # resumed: only the steps run by this process count
        steps = trainer.state.global_step - first_step
        trained = steps * cfg.train.batch_size * cfg.train.gradient_accumulation_steps * args.world_size
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
    )
