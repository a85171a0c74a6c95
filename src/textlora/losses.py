"""Class-weighted losses (train.class_weights): cross-entropy for a classification head, and the
seq2seq LM loss of a label-word model with each row's target tokens weighted by its class."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from textlora.config import Config
from textlora.errors import TextloraError


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


def _logits(outputs) -> torch.Tensor:
    return outputs["logits"] if isinstance(outputs, dict) else outputs[0]


@dataclass(frozen=True)
class WeightedLoss:
    """The Trainer's compute_loss_func for class weights: weighted cross-entropy of a
    classification head, or (with label_targets) the weighted LM loss of label words."""

    weights: torch.Tensor
    label_targets: list[list[int]] | None = None

    def __call__(self, outputs, labels, num_items_in_batch=None) -> torch.Tensor:
        logits = _logits(outputs)
        if self.label_targets is not None:
            return class_weighted_lm_loss(logits, labels, self.weights, self.label_targets, num_items_in_batch)
        losses = torch.nn.functional.cross_entropy(logits.float(), labels, weight=self.weights.to(logits.device),
                                                   reduction="none")
        # In training the Trainer passes the number of labels in the whole gradient-accumulation
        # window and expects the loss scaled by it.
        return losses.sum() / num_items_in_batch if num_items_in_batch else losses.mean()


# --------------------------------------------------------------------------- multi-label and regression


def pos_weight_vector(setting, train_matrix: np.ndarray) -> torch.Tensor | None:
    """train.pos_weight in force: "balanced" is negatives / positives of each label in the training
    rows (torch's BCEWithLogitsLoss convention), a list gives one weight per label."""
    if setting is None:
        return None
    train_matrix = np.asarray(train_matrix)
    n_labels = train_matrix.shape[1]
    if setting == "balanced":
        positives = train_matrix.sum(axis=0).astype(np.float64)
        weights = (len(train_matrix) - positives) / np.maximum(positives, 1)
    else:
        if len(setting) != n_labels:
            raise TextloraError(f"train.pos_weight has {len(setting)} weights for {n_labels} labels; give one per label")
        weights = np.asarray(setting, dtype=np.float64)
    return torch.tensor(weights, dtype=torch.float32)


def _per_item_mean(losses: torch.Tensor, num_items_in_batch) -> torch.Tensor:
    # In training the Trainer passes the number of label entries (rows x labels, or rows) in the whole
    # gradient-accumulation window and expects the loss scaled by it.
    return losses.sum() / num_items_in_batch if num_items_in_batch else losses.mean()


@dataclass(frozen=True)
class MultiLabelLoss:
    """The Trainer's compute_loss_func for task: multi_label: BCE over every (row, label), with
    train.pos_weight on the positives of each label when given."""

    pos_weight: torch.Tensor | None = None

    def __call__(self, outputs, labels, num_items_in_batch=None) -> torch.Tensor:
        logits = _logits(outputs).float()
        weight = None if self.pos_weight is None else self.pos_weight.to(logits.device)
        losses = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=weight,
                                                                      reduction="none")
        return _per_item_mean(losses, num_items_in_batch)


@dataclass(frozen=True)
class RegressionLoss:
    """The Trainer's compute_loss_func for task: regression: MSE or Huber (delta 1) between the one
    output and the standardised target."""

    kind: str = "mse"

    def __call__(self, outputs, labels, num_items_in_batch=None) -> torch.Tensor:
        predictions = _logits(outputs).float().reshape(-1)
        targets = labels.float().reshape(-1)
        if self.kind == "huber":
            losses = torch.nn.functional.huber_loss(predictions, targets, reduction="none", delta=1.0)
        else:
            losses = torch.nn.functional.mse_loss(predictions, targets, reduction="none")
        return _per_item_mean(losses, num_items_in_batch)


def task_loss(cfg: Config, train_targets: np.ndarray):
    """The compute_loss_func of a multi_label or regression run (`train_targets`: the multi-hot training
    matrix, or the standardised training targets); None for classification (its own path above)."""
    if cfg.task == "multi_label":
        return MultiLabelLoss(pos_weight_vector(cfg.train.pos_weight, train_targets))
    if cfg.task == "regression":
        return RegressionLoss(cfg.train.regression_loss)
    return None
