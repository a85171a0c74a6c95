"""Evaluation: the logits and class probabilities of a model on encoded rows (metrics.py scores them).

The inference loop is written here rather than through Trainer.predict
because it sorts rows by length before batching, so a batch of short texts
is not padded to the length of a long one; results come back in input order.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

from textlora.metrics import softmax


def model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def predict_probs(
    model: torch.nn.Module,
    encoded: dict[str, list[list[int]]],
    tokenizer,
    batch_size: int = 64,
    progress: bool = False,
    temperature: float = 1.0,
) -> np.ndarray:
    """Softmax probabilities of logits / temperature, shape (texts, classes), in the order of the texts."""
    return softmax(predict_logits(model, encoded, tokenizer, batch_size, progress) / temperature)


def predict_logits(
    model: torch.nn.Module,
    encoded: dict[str, list[list[int]]],
    tokenizer,
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Logits in float64, shape (texts, classes), in the order of the texts.

    Each row of `encoded` is one text, or, with a `text_index` (truncation:
    chunks), one window of the text it names: a text's logits are then the
    mean of its windows' logits.
    """
    input_ids = encoded["input_ids"]
    n = len(input_ids)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    order = np.argsort([len(ids) for ids in input_ids], kind="stable")[::-1]
    device = model_device(model)
    positions_needed = tokenizer.padding_side == "left" and "position_ids" in inspect.signature(model.forward).parameters
    was_training = model.training
    model.eval()
    chunks: list[tuple[np.ndarray, np.ndarray]] = []
    batches = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="predict", unit="batch", leave=False)
    try:
        with torch.inference_mode():
            for start in batches:
                index = order[start : start + batch_size]
                rows = [{k: encoded[k][i] for k in keys} for i in index]
                batch = tokenizer.pad(rows, padding=True, return_tensors="pt")
                if positions_needed:
                    # Left padding shifts every real token's absolute position;
                    # count positions from each row's first real token instead.
                    batch["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
                batch = {k: v.to(device) for k, v in batch.items()}
                chunks.append((index, model(**batch).logits.double().cpu().numpy()))
    finally:
        model.train(was_training)
    if not chunks:
        return np.zeros((0, 0))
    logits = np.zeros((n, chunks[0][1].shape[1]))
    for index, part in chunks:
        logits[index] = part
    if "text_index" in encoded:
        logits = pool_windows(logits, np.asarray(encoded["text_index"]))
    return logits  # float64: softmax rows then sum to 1 to 1e-12


def pool_windows(logits: np.ndarray, text_index: np.ndarray) -> np.ndarray:
    """Mean logits of the windows of each text (text ids 0..T-1, every one present)."""
    texts = int(text_index.max()) + 1 if len(text_index) else 0
    sums = np.zeros((texts, logits.shape[1]))
    np.add.at(sums, text_index, logits)
    return sums / np.bincount(text_index, minlength=texts)[:, None]
