"""Texts -> token ids, the same way for training, evaluation and prediction.

Truncation strategies for texts longer than max_length:
- head: the first max_length tokens (the tokenizer's own truncation);
- head_tail: the first `head_tokens` and the last max_length - head_tokens
  (Sun et al. 2019 found head 128 + tail 382 best on IMDB at 512);
- chunks: overlapping windows of max_length covering the whole text (the
  tokenizer's own return_overflowing_tokens); `text_index` maps each window
  to its text, and a text's logits are the mean of its windows'.
Batches are padded only to their longest member (dynamic padding).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from textlora.config import ModelConfig


def encode_texts(tokenizer, texts: Sequence[str], model_cfg: ModelConfig) -> dict[str, list[list[int]]]:
    """Token ids (and attention masks) for each text, truncated, not padded."""
    texts = list(texts)
    if model_cfg.truncation == "auto":
        raise ValueError("truncation: auto must be resolved (resolve_truncation) before encoding")
    if model_cfg.truncation == "head":
        return dict(tokenizer(texts, truncation=True, max_length=model_cfg.max_length))
    if model_cfg.truncation == "chunks":
        windows = dict(tokenizer(texts, truncation=True, max_length=model_cfg.max_length,
                                 stride=model_cfg.chunk_overlap, return_overflowing_tokens=True))
        windows["text_index"] = list(windows.pop("overflow_to_sample_mapping"))
        return windows
    encoded = dict(tokenizer(texts, truncation=False, verbose=False))
    head = model_cfg.head_tail_split
    tail = model_cfg.max_length - head
    for key, rows in encoded.items():
        # Special tokens sit at both ends ([CLS] ... [SEP]), so slicing the
        # ends keeps them in place.
        encoded[key] = [row if len(row) <= model_cfg.max_length else row[:head] + row[-tail:] for row in rows]
    return encoded


def token_length_stats(tokenizer, texts: Sequence[str], max_length: int, limit: int = 2000) -> dict[str, Any]:
    """Percentiles of untruncated token lengths and the share cut by max_length."""
    texts = list(texts)[:limit]
    if not texts:
        return {}
    lengths = np.array([len(ids) for ids in tokenizer(texts, truncation=False, verbose=False)["input_ids"]])
    p50, p90, p95, p99 = np.percentile(lengths, [50, 90, 95, 99])
    return {
        "counted": int(len(lengths)),
        "mean": float(lengths.mean()),
        "p50": float(p50),
        "p90": float(p90),
        "p95": float(p95),
        "p99": float(p99),
        "max": int(lengths.max()),
        "truncated_share": float((lengths > max_length).mean()),
    }


def resolve_truncation(model_cfg: ModelConfig, lengths: dict[str, Any]) -> str:
    """truncation: auto -> head_tail when more than AUTO_HEAD_TAIL_SHARE of the (training) texts
    are longer than max_length, else head; any other strategy as given."""
    from textlora.config import AUTO_HEAD_TAIL_SHARE

    if model_cfg.truncation != "auto":
        return model_cfg.truncation
    return "head_tail" if lengths.get("truncated_share", 0.0) > AUTO_HEAD_TAIL_SHARE else "head"


def encode(tokenizer, texts: Sequence[str], model_cfg: ModelConfig, prompt=None) -> dict[str, list[list[int]]]:
    """Token ids of the texts as the model reads them: plain, or inside the prompt of a label-word model."""
    if prompt is None:
        return encode_texts(tokenizer, texts, model_cfg)
    from textlora.labelwords import encode_prompts

    return encode_prompts(tokenizer, texts, prompt, model_cfg)


def to_dataset(texts: Sequence[str], labels: Sequence[int] | None, tokenizer, model_cfg: ModelConfig,
               prompt=None, targets: Sequence[Sequence[int]] | None = None):
    """A datasets.Dataset of token ids (+ `labels`), ready for the Trainer.

    A label-word model's `labels` are the target token ids of each row's
    class (its LM loss); a classifier's are the class ids.
    """
    import datasets

    columns = encode(tokenizer, texts, model_cfg, prompt)
    # With truncation: chunks every window is a row carrying its text's label,
    # and `text_index` (which the Trainer drops from batches: no model takes
    # it) tells evaluation which windows to pool.
    text_of_row = columns.get("text_index", range(len(columns["input_ids"])))
    if labels is not None:
        labels = list(labels)
        columns["labels"] = [_target(labels[i]) if targets is None else list(targets[int(labels[i])]) for i in text_of_row]
    return datasets.Dataset.from_dict(columns)


def _target(label):
    """A row's training target: a class id (int), a multi-hot row (list of floats, task: multi_label) or a
    standardised number (float, task: regression; tasks.training_targets makes the last two)."""
    if isinstance(label, (list, tuple, np.ndarray)):
        return [float(v) for v in label]
    if isinstance(label, (float, np.floating)):
        return float(label)
    return int(label)
