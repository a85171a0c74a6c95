"""TrainerCallbacks textlora adds around the transformers Trainer.

- EvaluationRecorder: training seconds between evaluations, and each evaluation's confusion
  matrix and per-class report (the Trainer logs scalars only), journaled for --resume;
- BestCheckpoint: keeps the weights of the validation-best evaluation, optional early stopping;
- BudgetProgress: minutes used and left of train.budget_minutes at each evaluation;
- EpochEndCheckpoints: with train.save_steps, the epoch-end checkpoint comes after its evaluation;
- StepTimer: seconds of each optimizer step (the budget probe).

This module imports transformers: only training imports it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback

from textlora.metrics import better


class EvaluationRecorder(TrainerCallback):
    """Keyed by optimizer step, journaled to a file so that a resumed run still has the rows of
    the evaluations before the interruption."""

    def __init__(self, journal: Path):
        self.journal = journal
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
            self.journal.write_text(json.dumps(self.by_step))
        self.mark = time.perf_counter()


class BestCheckpoint(TrainerCallback):
    """Keeps the trainable weights of the best evaluation on the validation rows (by `metric`) and
    optionally stops after `patience` evaluations without improvement.

    Written here rather than with the Trainer's load_best_model_at_end: that needs checkpoints
    saved exactly at every evaluation, which train.save_steps and budgets do not give, and
    EarlyStoppingCallback requires it. Only trainable tensors are kept (adapter and head: a few
    MiB), as safetensors named by step; the journal lists every evaluation by step, so a run
    resumed from an earlier checkpoint drops the evaluations it will redo and ends with the same
    choice.
    """

    def __init__(self, folder: Path, metric: str, patience: int | None):
        self.folder, self.metric, self.patience = Path(folder), metric, patience
        self.journal = self.folder / "selection.json"
        self.scores: dict[int, float | None] = (
            {int(k): v for k, v in json.loads(self.journal.read_text()).items()} if self.journal.is_file() else {})

    @property
    def best_step(self) -> int | None:
        best = None
        for step in sorted(self.scores):
            if better(self.scores[step], None if best is None else self.scores[best], self.metric):
                best = step
        return best

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        step = state.global_step
        self.scores = {s: v for s, v in self.scores.items() if s < step}  # drop evaluations a resume redoes
        self.scores[step] = (metrics or {}).get(f"eval_{self.metric}")
        if self.best_step == step and state.is_world_process_zero and model is not None:
            tensors = {n: p.detach().float().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
            save_file(tensors, str(self.folder / f"best-{step}.safetensors"))
            for old in self.folder.glob("best-*.safetensors"):
                if old.name != f"best-{step}.safetensors":
                    old.unlink()
        if state.is_world_process_zero:
            self.journal.write_text(json.dumps({str(k): v for k, v in self.scores.items()}))
        if self.patience is not None and self.best_step is not None:
            if sum(1 for s in self.scores if s > self.best_step) >= self.patience:
                control.should_training_stop = True

    def restore_best(self, model) -> int | None:
        """Load the best evaluation's trainable weights into `model`; returns its step."""
        step = self.best_step
        path = self.folder / f"best-{step}.safetensors"
        if step is None or not path.is_file():
            return None
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in load_file(str(path)).items():
                params[name].copy_(value.to(params[name].dtype))
        return step


class BudgetProgress(TrainerCallback):
    """Prints, at each evaluation, how much of the training budget is used and left."""

    def __init__(self, budget_seconds: float, say: Callable[[str], None]):
        self.budget_seconds, self.say = budget_seconds, say
        self.started = time.perf_counter()

    def on_evaluate(self, args, state, control, **kwargs):
        used = time.perf_counter() - self.started
        self.say(f"budget: step {state.global_step}/{state.max_steps}, {used / 60:.1f} of "
                 f"{self.budget_seconds / 60:.1f} min used, {max(0.0, self.budget_seconds - used) / 60:.1f} min left")


class EpochEndCheckpoints(TrainerCallback):
    """With train.save_steps: also checkpoint at every epoch end, *after* its evaluation.

    A step checkpoint that falls on an epoch's last step would be written before that epoch's
    evaluation, and a run resumed from it would never evaluate that epoch; it is deferred to the
    epoch-end save instead.
    """

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save and state.epoch is not None and abs(state.epoch - round(state.epoch)) < 1e-9:
            control.should_save = False  # the epoch end saves, after evaluating

    def on_epoch_end(self, args, state, control, **kwargs):
        control.should_save = True


class StepTimer(TrainerCallback):
    """Wall seconds of every optimizer step."""

    def __init__(self):
        self.began, self.times = 0.0, []

    def on_step_begin(self, args, state, control, **kwargs):
        self.began = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self.began)
