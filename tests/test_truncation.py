"""Long texts: head, head+tail, and chunk-and-pool (windows whose logits are averaged)."""

import json

import numpy as np
import pytest

from conftest import synthetic_reviews, tiny_overrides
from textlora.config import ModelConfig
from textlora.encode import encode_texts, to_dataset
from textlora.evaluate import pool_windows

LONG = " ".join(["great"] * 30 + ["the", "plot"] * 20 + ["awful"] * 30)


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    from textlora.models import load_tokenizer

    return load_tokenizer(minilm_dir)


def words(tokenizer, ids):
    return tokenizer.convert_ids_to_tokens(ids)


def test_head_keeps_the_start(tokenizer):
    ids = encode_texts(tokenizer, [LONG], ModelConfig(max_length=16, truncation="head"))["input_ids"][0]
    assert len(ids) == 16 and words(tokenizer, ids) == ["[CLS]"] + ["great"] * 14 + ["[SEP]"]


def test_head_tail_keeps_both_ends(tokenizer):
    ids = encode_texts(tokenizer, [LONG, "short text"], ModelConfig(max_length=16, truncation="head_tail",
                                                                   head_tokens=6))["input_ids"]
    assert words(tokenizer, ids[0]) == ["[CLS]"] + ["great"] * 5 + ["awful"] * 9 + ["[SEP]"]
    assert words(tokenizer, ids[1]) == ["[CLS]", "short", "text", "[SEP]"]


def test_chunks_cover_the_whole_text_with_overlap(tokenizer):
    cfg = ModelConfig(max_length=16, truncation="chunks", chunk_overlap=4)
    encoded = encode_texts(tokenizer, [LONG, "short text"], cfg)
    content = tokenizer(LONG, add_special_tokens=False)["input_ids"]
    windows = [ids for ids, text in zip(encoded["input_ids"], encoded["text_index"]) if text == 0]
    assert all(len(w) <= 16 and w[0] == tokenizer.cls_token_id and w[-1] == tokenizer.sep_token_id for w in windows)
    # 14 content tokens per window, 4 shared with the next: stepping by 10 covers all 100
    assert len(windows) == 1 + -(-(len(content) - 14) // 10)
    assert windows[0][1:-1] == content[:14] and windows[1][1:5] == content[10:14]
    assert windows[-1][-2] == content[-1]  # the end of the text is in the last window
    assert encoded["text_index"][-1] == 1 and words(tokenizer, encoded["input_ids"][-1]) == [
        "[CLS]", "short", "text", "[SEP]"]
    dataset = to_dataset([LONG, "short text"], [1, 0], tokenizer, cfg)
    assert dataset["labels"] == [1] * len(windows) + [0]  # every window carries its text's label


def test_pooling_averages_the_logits_of_each_texts_windows():
    logits = np.array([[1.0, 2.0], [3.0, 0.0], [5.0, 5.0], [0.0, 4.0]])
    np.testing.assert_allclose(pool_windows(logits, np.array([0, 0, 1, 2])), [[2.0, 1.0], [5.0, 5.0], [0.0, 4.0]])


def test_a_chunked_run_reports_per_text_metrics_and_reloads(tiny_bert_dir, tmp_path):
    from textlora.config import load_config
    from textlora.data import load_splits
    from textlora.metrics import classification_metrics
    from textlora.pipeline import run_experiment
    from textlora.predict import Predictor

    data = tmp_path / "reviews.csv"
    frame = synthetic_reviews(240)
    frame["text"] = frame["text"] + " " + frame["text"]  # ~20 tokens: 2-3 windows of 12
    frame.to_csv(data, index=False)
    cfg = load_config(None, tiny_overrides(tiny_bert_dir, str(data), tmp_path / "runs", name="chunks", **{
        "model.max_length": 12, "model.truncation": "chunks", "model.chunk_overlap": 2, "train.epochs": 2,
        "baselines": "[pre_adaptation]"}))
    run = run_experiment(cfg, quiet=True, say=lambda *_: None)
    metrics = json.loads((run / "metrics.json").read_text())
    splits = load_splits(cfg.data, cfg.seed)
    assert metrics["final"]["n"] == len(splits.test)  # one prediction per text, not per window
    assert sum(metrics["epochs"][-1]["confusion_matrix"][0]) + sum(metrics["epochs"][-1]["confusion_matrix"][1]) \
        == len(splits.validation)
    assert metrics["final"]["accuracy"] > metrics["baselines"]["pre_adaptation"]["accuracy"] + 0.2
    predictor = Predictor.from_run(run)
    probs = predictor.predict_probs(list(splits.test["text"]))
    assert probs.shape == (len(splits.test), 2)
    again = classification_metrics(splits.test["label"].to_numpy(), probs, ["negative", "positive"])
    assert again["accuracy"] == metrics["final"]["accuracy"]
    texts = list(splits.test["text"][:5])
    np.testing.assert_allclose(predictor.predict_probs(texts), np.vstack([predictor.predict_probs([t]) for t in texts]),
                               atol=1e-5)


def test_auto_must_be_resolved_before_encoding(tokenizer):
    """truncation: auto is a recipe's choice, resolved by the run from its training texts; encoding never guesses."""
    from textlora.encode import resolve_truncation

    with pytest.raises(ValueError, match="must be resolved"):
        encode_texts(tokenizer, [LONG], ModelConfig(max_length=16))
    assert resolve_truncation(ModelConfig(max_length=16), {"truncated_share": 0.11}) == "head_tail"
    assert resolve_truncation(ModelConfig(max_length=16), {"truncated_share": 0.10}) == "head"
    assert resolve_truncation(ModelConfig(max_length=16, truncation="chunks", chunk_overlap=4),
                              {"truncated_share": 0.9}) == "chunks"
