"""Training: the transformers Trainer, evaluated on the validation rows each epoch.

What is added around the Trainer: the metrics function (metrics.py), a
callback that times each epoch, the LoRA+ optimizer from peft, and the
per-epoch table assembled from the Trainer's log history.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from textlora.config import Config
from textlora.metrics import classification_metrics, softmax


@dataclass
class TrainResult:
    epochs: list[dict[str, Any]]
    """One row per epoch: train_loss, validation metrics, seconds."""
    seconds: float
    train_samples: int
    samples_per_second: float
    peak_memory_mb: float
    optimizer_groups: list[dict[str, Any]] = field(default_factory=list)
    """Learning rate and parameter count of each optimizer group (shows LoRA+ ratios)."""


def peak_memory_mb() -> float:
    """GPU: torch's peak allocation. CPU: the process's resident-set high-water mark."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class _EpochTimer:
    """A TrainerCallback (built lazily so importing textlora stays light)."""

    def __new__(cls):
        from transformers import TrainerCallback

        class EpochTimer(TrainerCallback):
            def __init__(self):
                self.started: float | None = None
                self.seconds: list[float] = []

            def on_epoch_begin(self, args, state, control, **kwargs):
                self.started = time.perf_counter()

            def on_epoch_end(self, args, state, control, **kwargs):
                if self.started is not None:
                    self.seconds.append(time.perf_counter() - self.started)

        return EpochTimer()


def _optimizer_groups(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    return [
        {"lr": group["lr"], "parameters": int(sum(p.numel() for p in group["params"]))}
        for group in optimizer.param_groups
        if group["params"]
    ]


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


def train_model(cfg: Config, model, tokenizer, train_set, validation_set, label_names: list[str],
                work_dir: str, quiet: bool = False) -> TrainResult:
    """Train `model` in place; returns the per-epoch table and timings."""
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    epoch_details: list[dict[str, Any]] = []

    def compute_metrics(prediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        result = classification_metrics(prediction.label_ids, softmax(np.asarray(logits, dtype=np.float64)), label_names)
        epoch_details.append({"confusion_matrix": result["confusion_matrix"], "per_class": result["per_class"]})
        # The Trainer logs scalars only; the matrix and report are kept aside.
        return {k: v for k, v in result.items() if isinstance(v, (int, float)) and k not in ("n", "loss")}

    args = TrainingArguments(
        output_dir=work_dir,
        num_train_epochs=cfg.train.epochs,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.train.batch_size,
        per_device_eval_batch_size=cfg.train.eval_batch_size,
        gradient_accumulation_steps=cfg.train.gradient_accumulation_steps,
        weight_decay=cfg.train.weight_decay,
        warmup_steps=cfg.train.warmup_ratio,  # a float below 1 is a ratio of all steps
        lr_scheduler_type="linear",
        eval_strategy="epoch",
        logging_strategy="epoch",
        save_strategy="no",
        report_to=[] if cfg.train.report_to == "none" else [cfg.train.report_to],
        seed=cfg.seed,
        data_seed=cfg.seed,
        disable_tqdm=quiet,
        train_sampling_strategy="group_by_length" if cfg.train.group_by_length else "random",
        use_cpu=not torch.cuda.is_available(),
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
    timer = _EpochTimer()
    trainer = Trainer(
        model=model,
        args=args,
        data_collator=DataCollatorWithPadding(tokenizer),
        train_dataset=train_set,
        eval_dataset=validation_set,
        compute_metrics=compute_metrics,
        callbacks=[timer],
    )
    _silence_log_printing(trainer, quiet)
    start = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - start
    groups = _optimizer_groups(trainer.optimizer) if trainer.optimizer is not None else []

    train_losses = {round(e["epoch"]): e["loss"] for e in trainer.state.log_history if "loss" in e and "epoch" in e}
    evals = [e for e in trainer.state.log_history if "eval_loss" in e]
    rows = []
    for i, entry in enumerate(evals):
        epoch = round(entry["epoch"])
        row: dict[str, Any] = {"epoch": epoch, "train_loss": train_losses.get(epoch)}
        row.update({k[len("eval_"):]: v for k, v in entry.items() if k.startswith("eval_") and "runtime" not in k and "per_second" not in k})
        row["seconds"] = timer.seconds[i] if i < len(timer.seconds) else None
        if i < len(epoch_details):
            row.update(epoch_details[i])
        rows.append(row)
    samples = len(train_set)
    return TrainResult(
        epochs=rows,
        seconds=seconds,
        train_samples=samples,
        samples_per_second=output.metrics.get("train_samples_per_second", samples * cfg.train.epochs / seconds),
        peak_memory_mb=peak_memory_mb(),
        optimizer_groups=groups,
    )
