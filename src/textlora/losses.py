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
