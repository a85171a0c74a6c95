"""Training: the transformers Trainer, evaluated on the validation rows, shipping its best evaluation.

What is added around the Trainer: a Trainer subclass (label-word scoring at evaluation, a
resumable length-grouped sampler), the metrics function (metrics.py), the callbacks of
callbacks.py, class-weighted losses (losses.py), the LoRA+ optimizer from peft, the per-evaluation
table assembled from the Trainer's log history, and the step-time probe behind train.budget_minutes.

This module imports transformers' Trainer at the top (seconds): only a training run imports it.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import Trainer
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from textlora.callbacks import BestCheckpoint, BudgetProgress, EpochEndCheckpoints, EvaluationRecorder, StepTimer
from textlora.config import ADAPTER_METHODS, Config
from textlora.errors import TextloraError
from textlora.evaluate import pool_windows
from textlora.losses import WeightedLoss, class_weight_vector, task_loss
from textlora.metrics import classification_metrics, softmax
from textlora.precision import hold_frozen_weights_in_bf16, resolve_precision


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


class BarOnly(ProgressCallback):
    """The progress bar without the Trainer's raw log dicts: textlora prints its own table."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


def _silence_log_printing(trainer, quiet: bool) -> None:
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if not quiet:
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


class ShuffledLengthGroupedSampler(LengthGroupedSampler):
    """Length-grouped batches in a random order that depends on (seed, epoch) only.

    The batches are transformers' own: rows shuffled, cut into mega-batches of 50 batches, each
    sorted by length, the longest batch first (so that running out of memory happens at once).
    transformers then serves every mega-batch in descending length, a sawtooth: 50 steps from the
    longest texts to the shortest, four times an epoch on a small set, the last steps before each
    restart all short texts, whose labels need not be balanced (the shortest eighth of 1,600 IMDB
    training reviews is 55 % positive). Here the batches after the first are served in a seeded
    random order: the same batches, so the same padding, without the sawtooth. Measured on 5 seeds
    (benchmarks/results/train_ablation.json), the order changed held-out accuracy by nothing
    measurable (-0.3 pt for transformers' order, p = 0.84).

    transformers' sampler also draws from the global torch RNG, whose state at the start of an
    epoch differs between an uninterrupted run and one resumed from a checkpoint (dropout consumed
    it); this one makes a resumed run see exactly the batches the uninterrupted run saw. The
    Trainer (through accelerate's DataLoaderShard.set_epoch) tells it the epoch.
    """

    shuffle_batches = True
    """False serves the batches in transformers' order (benchmarks/train_ablation.py measures both)."""

    def __init__(self, *args, seed: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        from transformers.trainer_pt_utils import get_length_grouped_indices

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        indices = get_length_grouped_indices(self.lengths, self.batch_size, generator=generator)
        if not self.shuffle_batches:
            return iter(indices)
        size = self.batch_size
        batches = [indices[i:i + size] for i in range(0, len(indices), size)]
        # The longest batch stays first; a short last batch stays last, or the data loader, which
        # cuts this stream into consecutive batches, would mix the batches after it.
        last = len(batches) if len(batches[-1]) == size else len(batches) - 1
        middle = [batches[1 + int(i)] for i in torch.randperm(max(last - 1, 0), generator=generator)]
        ordered = batches[:1] + middle + batches[max(last, 1):]
        return iter([i for batch in ordered for i in batch])


class TextloraTrainer(Trainer):
    """The Trainer with label-word scoring at evaluation and the shuffled, epoch-seeded length-grouped sampler."""

    def __init__(self, *args, label_targets: list[list[int]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.label_targets = label_targets
        self._scorer = None
        from textlora.labelwords import is_causal_lm

        if label_targets is not None and is_causal_lm(self.model):
            # A decoder's label batches hold the answers alone (compute_loss puts them after their
            # prompts): each of their tokens is predicted. transformers >= 5.x counts a causal LM's
            # labels from the second on (the first of a sequence is never predicted), which would
            # scale the loss by too few tokens (by 0 with one-token answers).
            self._loss_shifts_labels = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """A decoder-only label-word LM reads each row's gold answer after its prompt (labelwords.
        append_answers); a class-weighted loss (losses.WeightedLoss), which does not shift labels as
        transformers' causal LM loss does, gets them aligned with the logits that predict them."""
        from textlora.labelwords import append_answers, is_causal_lm

        if self.label_targets is not None and is_causal_lm(self.model):
            inputs = append_answers(inputs, shift=self.compute_loss_func is not None)
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Label-word models: every class's score as the logits, the class ids as the labels."""
        if self.label_targets is None:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        from textlora.labelwords import LabelWordClassifier, classes_of

        inputs = self._prepare_inputs(inputs)
        if self._scorer is None:  # self.model: the bare PeftModel, whatever wraps `model` for evaluation
            self._scorer = LabelWordClassifier(self.model, self.label_targets).to(inputs["input_ids"].device)
        classes = classes_of(inputs["labels"], self.label_targets)
        # The scorer runs self.model, which accelerate did not wrap in autocast (only `model` is), and
        # Trainer.autocast_smart_context_manager is a no-op since transformers 5: accelerate's own
        # autocast, or the bf16-held Linear weights would meet fp32 activations.
        with torch.no_grad(), self.accelerator.autocast():
            scores = self._scorer.score(inputs["input_ids"], inputs.get("attention_mask")).float()
        loss = torch.nn.functional.cross_entropy(scores, classes)  # log loss over the classes, as in every other row
        return loss.detach(), (None if prediction_loss_only else scores.detach()), classes

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if self.args.train_sampling_strategy != "group_by_length" or sampler is None:
            return sampler
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return ShuffledLengthGroupedSampler(sampler.batch_size, lengths=sampler.lengths, seed=seed)


class ValidationMetrics:
    """The Trainer's compute_metrics: every metric of metrics.py on the validation rows (per text
    with truncation: chunks, whose rows are windows); the confusion matrix and per-class report,
    which the Trainer cannot log, go to the EvaluationRecorder."""

    def __init__(self, label_names: list[str], recorder: EvaluationRecorder, windows_of: np.ndarray | None,
                 task: str = "classification", target_scale=None):
        self.label_names, self.recorder, self.windows_of = label_names, recorder, windows_of
        self.task, self.target_scale = task, target_scale

    def __call__(self, prediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(prediction.label_ids)
        if self.windows_of is not None:
            logits = pool_windows(logits, self.windows_of)
            labels = labels[np.unique(self.windows_of, return_index=True)[1]]  # a text's first window's label
        if self.task != "classification":  # multi_label / regression: tasks.py scores them
            from textlora.tasks import evaluation_metrics

            scalars, extra = evaluation_metrics(self.task, logits, labels, self.label_names, self.target_scale)
            self.recorder.pending.update(extra)
            return scalars
        result = classification_metrics(labels, softmax(logits), self.label_names)
        self.recorder.pending.update(confusion_matrix=result["confusion_matrix"], per_class=result["per_class"])
        scalars = {k: v for k, v in result.items() if isinstance(v, (int, float)) and k not in ("n", "loss")}
        if self.windows_of is not None:
            # The Trainer's own eval_loss is per window; the per-text loss replaces it in the table.
            scalars["text_loss"] = result["loss"]
        return scalars


def _pad_rows(rows: list[list[int]]) -> list[list[int]]:
    from textlora.labelwords import IGNORE_INDEX

    longest = max((len(r) for r in rows), default=0)
    return [list(r) + [IGNORE_INDEX] * (longest - len(r)) for r in rows]


def training_arguments(cfg: Config, work_dir: Path, precision: str, quiet: bool,
                       max_steps: int | None, eval_steps: int | None):
    """The Trainer's arguments for a run of `cfg`: evaluations per epoch (or every eval_steps),
    a checkpoint at each for --resume, every step's loss logged."""
    from transformers import TrainingArguments

    by_steps = eval_steps is not None
    return TrainingArguments(
        output_dir=str(Path(work_dir) / "checkpoints"),
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
        # TensorBoard is attached by _tracking_callbacks, writing into the run folder.
        report_to=[cfg.train.report_to] if cfg.train.report_to == "mlflow" else [],
        seed=cfg.seed,
        data_seed=cfg.seed,
        disable_tqdm=quiet,
        train_sampling_strategy="group_by_length" if cfg.train.group_by_length else "random",
        use_cpu=not torch.cuda.is_available(),
        torch_compile=cfg.train.compile,
        bf16=precision == "bf16",
    )


def loraplus_optimizer(cfg: Config, model) -> torch.optim.Optimizer:
    """peft's LoRA+ optimizer: the B matrices learn loraplus_lr_ratio times faster than A."""
    from peft.optimizers import create_loraplus_optimizer

    return create_loraplus_optimizer(model=model, optimizer_cls=torch.optim.AdamW, lr=cfg.learning_rate,
                                     loraplus_lr_ratio=cfg.lora.loraplus_lr_ratio,
                                     weight_decay=cfg.train.weight_decay)


def collator_and_classes(tokenizer, train_set, label_targets: list[list[int]] | None):
    """The batch collator, and each training row's class id (for class weights): a classifier's
    labels are class ids; a label-word LM's labels are its class's target tokens."""
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithPadding

    from textlora.labelwords import IGNORE_INDEX, classes_of

    if label_targets is None:
        return DataCollatorWithPadding(tokenizer), np.asarray(train_set["labels"])
    classes = classes_of(torch.tensor(_pad_rows(train_set["labels"])), label_targets).numpy()
    return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX), classes


def evaluation_rows(log_history: list[dict[str, Any]], recorder: EvaluationRecorder,
                    selected: int | None) -> list[dict[str, Any]]:
    """One row per evaluation: step, epoch, mean training loss since the previous one, the
    validation metrics (per text under truncation: chunks), the confusion matrix and per-class
    report the recorder kept, and whether its weights are the ones that ship."""
    train_losses = losses_between_evaluations(log_history)
    rows = []
    for entry in (e for e in log_history if "eval_loss" in e):
        step = entry.get("step")
        row: dict[str, Any] = {"epoch": epoch_label(entry["epoch"]), "step": step, "train_loss": train_losses.get(step)}
        row.update({k[len("eval_"):]: v for k, v in entry.items()
                    if k.startswith("eval_") and "runtime" not in k and "per_second" not in k})
        if "text_loss" in row:
            row["loss"] = row.pop("text_loss")
        row.setdefault("seconds", None)
        row.update(recorder.by_step.get(str(step), {}))
        row["selected"] = step == selected
        rows.append(row)
    return rows


def train_model(cfg: Config, model, tokenizer, train_set, validation_set, label_names: list[str],
                work_dir: Path, quiet: bool = False, resume: bool = False,
                label_targets: list[list[int]] | None = None, callbacks: tuple = (),
                select_metric: str = "accuracy", max_steps: int | None = None, eval_steps: int | None = None,
                say=print, target_scale=None) -> TrainResult:
    """Train `model` in place, checkpointing into work_dir/checkpoints; afterwards the model holds
    the weights of its best evaluation on the validation rows by `select_metric` (never the test rows).

    With `resume`, training continues from the last checkpoint there: the
    Trainer restores weights, optimizer, scheduler and RNG states and skips
    the batches already seen, so the result equals an uninterrupted run.

    `max_steps` replaces cfg.train.epochs (a budget); `eval_steps` evaluates every N steps
    instead of every epoch. With `label_targets` (objective label_words), `model` is a seq2seq LM
    trained on the LM loss of each row's target ids (its `labels`), and each evaluation scores every
    class's targets (labelwords.py). `callbacks`: extra TrainerCallbacks. task: multi_label trains on
    multi-hot rows with BCE, task: regression on the target standardised by `target_scale`
    (regression.TargetScale; evaluations report the target's own units), both with losses.task_loss.
    """
    precision = resolve_precision(cfg.train.precision)
    if precision == "bf16" and cfg.method in ADAPTER_METHODS:
        # Only where the frozen base is not saved: a `head` run ships its body.
        hold_frozen_weights_in_bf16(model)
    checkpoints = Path(work_dir) / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    recorder = EvaluationRecorder(Path(work_dir) / "evaluations.journal.json")
    best = BestCheckpoint(Path(work_dir), select_metric, cfg.train.early_stopping_patience)
    # truncation: chunks: validation rows are windows; metrics are per text (mean window logits).
    windows_of = np.asarray(validation_set["text_index"]) if "text_index" in validation_set.column_names else None
    args = training_arguments(cfg, work_dir, precision, quiet, max_steps, eval_steps)
    collator, train_classes = collator_and_classes(tokenizer, train_set, label_targets)
    weights = class_weight_vector(cfg, train_classes, len(label_names))
    loss = WeightedLoss(weights, label_targets) if weights is not None else task_loss(cfg, train_classes)
    if cfg.task == "regression" and target_scale is None:  # the budget probe: any scale will do
        from textlora.regression import TargetScale

        target_scale = TargetScale(mean=0.0, std=1.0)
    extra = [recorder, best, *_tracking_callbacks(cfg, Path(work_dir))]
    if max_steps is not None and cfg.train.budget_minutes and not quiet:
        extra.append(BudgetProgress(cfg.train.budget_minutes * 60, say))
    if cfg.train.save_steps and eval_steps is None:
        extra.append(EpochEndCheckpoints())
    trainer = TextloraTrainer(
        model=model,
        args=args,
        label_targets=label_targets,
        data_collator=collator,
        train_dataset=train_set,
        eval_dataset=validation_set,
        compute_metrics=ValidationMetrics(label_names, recorder, windows_of, cfg.task, target_scale),
        compute_loss_func=loss,
        optimizers=(loraplus_optimizer(cfg, model) if cfg.method == "loraplus" else None, None),
        callbacks=[*extra, *callbacks],
    )
    _silence_log_printing(trainer, quiet)
    start = time.perf_counter()
    last = last_complete_checkpoint(checkpoints) if resume else None
    first_step = int(last.rsplit("-", 1)[-1]) if last else 0
    trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - start
    # A run whose last step did not fall on an evaluation (early stop, fractional epoch) is
    # evaluated once more, so the weights it ends with were compared too.
    evaluated = {e.get("step") for e in trainer.state.log_history if "eval_loss" in e}
    if trainer.state.global_step not in evaluated:
        trainer.evaluate()
    selected = best.restore_best(model)

    samples = len(train_set)
    if first_step or max_steps is not None:  # resumed or budgeted: count the steps this process ran
        steps_run = trainer.state.global_step - first_step
        trained = steps_run * cfg.train.batch_size * cfg.train.gradient_accumulation_steps * args.world_size
    else:
        trained = samples * cfg.train.epochs
    return TrainResult(
        epochs=evaluation_rows(trainer.state.log_history, recorder, selected),
        seconds=seconds,
        train_samples=samples,
        # Measured here, not taken from the Trainer: on resume its figure counts skipped steps.
        samples_per_second=trained / seconds,
        peak_memory_mb=peak_memory_mb(),
        precision=precision,
        optimizer_groups=_optimizer_groups(trainer.optimizer) if trainer.optimizer is not None else [],
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
    snapshot = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    rows = np.random.default_rng(cfg.seed).choice(len(train_set), min(len(train_set), steps * cfg.train.batch_size),
                                                  replace=False)
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
