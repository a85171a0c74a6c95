"""End to end on the tiny random BERT: the run folder, its numbers, and reloading it."""

import json

import numpy as np
import pytest

from textlora.runs import open_run


def test_run_folder_has_exactly_the_expected_files(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert names == {"run.json", "config.yaml", "metrics.json", "adapter", "tokenizer", "labels.json", "README.md",
                     "ship.json", "calibration.json", "test_probs.safetensors", "examples.json"}
    adapter = {p.name for p in (tiny_run / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json"} <= adapter
    assert not list(tiny_run.parent.glob(".*partial*"))
    assert json.loads((tiny_run / "labels.json").read_text()) == ["negative", "positive"]


def test_metrics_json_has_every_row_and_metric(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert set(metrics["baselines"]) == {"tfidf", "nbsvm", "pre_adaptation"}
    for row in [metrics["final"], *metrics["baselines"].values()]:
        for key in ("loss", "accuracy", "precision", "recall", "f1", "f1_macro", "f1_weighted", "roc_auc",
                    "confusion_matrix", "per_class"):
            assert key in row, key
    assert len(metrics["epochs"]) == 5  # one row per epoch (the tiny_run fixture trains 5)
    assert sum(e["selected"] for e in metrics["epochs"]) == 1
    for row in [metrics["final"], metrics["ensemble"], *metrics["baselines"].values()]:
        assert set(row["intervals"]) == {"accuracy", "f1_macro", "roc_auc"}
        low, high = row["intervals"]["accuracy"]
        assert low <= row["accuracy"] <= high
        assert 0 <= row["ece"] <= 1 and row["brier"] >= 0
    for epoch in metrics["epochs"]:
        for key in ("train_loss", "loss", "accuracy", "precision", "recall", "f1", "roc_auc", "seconds"):
            assert epoch[key] is not None, key
    assert metrics["params"]["trainable"] < metrics["params"]["total"]
    assert metrics["timing"]["peak_memory_mb"] > 0 and metrics["artifact_bytes"] > 0
    assert metrics["data"]["fingerprint"]


def test_saved_test_probabilities_give_back_every_row(tiny_run):
    """test_probs.safetensors holds each row's test probabilities: paired comparisons later need no re-scoring."""
    from textlora.metrics import classification_metrics

    run = open_run(tiny_run)
    record, probs = run.record(), run.test_probs()
    assert set(probs) == {"labels", "tfidf", "nbsvm", "pre_adaptation", "finetuned", "ensemble"}
    for key, name, row in record.rows():
        again = classification_metrics(probs["labels"], probs[key], run.label_names)
        assert again["accuracy"] == row["accuracy"] and again["loss"] == pytest.approx(row["loss"], abs=1e-12), name


def test_lora_trainable_parameters_counted_exactly(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    hidden, layers, r, labels = 32, 2, 8, 2
    lora = layers * 2 * (r * hidden + hidden * r)  # query and value: A (r x in) + B (out x r)
    head = hidden * labels + labels
    assert metrics["params"]["trainable"] == lora + head


def test_loss_goes_down_and_model_beats_pre_adaptation(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    losses = [e["train_loss"] for e in metrics["epochs"]]
    assert losses[-1] < losses[0]
    assert metrics["final"]["accuracy"] > metrics["baselines"]["pre_adaptation"]["accuracy"] + 0.2
    assert metrics["final"]["accuracy"] >= 0.9


def test_predictor_reproduces_saved_test_metrics(tiny_run):
    """Reload the run, score its own test rows, and get metrics.json's final row back exactly."""
    from textlora.config import load_config
    from textlora.data import load_splits
    from textlora.metrics import classification_metrics
    from textlora.predict import Predictor

    run = open_run(tiny_run)
    predictor = Predictor.from_run(tiny_run)
    assert predictor.label_names == ["negative", "positive"]
    cfg = load_config(tiny_run / "config.yaml")
    test = load_splits(cfg.data, cfg.seed).test
    saved = json.loads((tiny_run / "metrics.json").read_text())["final"]
    again = classification_metrics(test["label"].to_numpy(), predictor.predict_probs(list(test["text"])),
                                   predictor.label_names)
    for key in ("accuracy", "f1", "f1_macro", "roc_auc", "loss"):
        assert again[key] == pytest.approx(saved[key], abs=1e-9), key
    assert again["confusion_matrix"] == saved["confusion_matrix"]
    out = predictor.predict(["great superb wonderful loved the film", "awful boring terrible dull plot"])
    assert [p.label for p in out] == ["positive", "negative"]
    for p in out:
        assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-9)
        assert p.confidence == max(p.probabilities.values())
    assert run.info["base_signature"]["hidden_size"] == 32


def test_adapter_loads_with_plain_peft_and_transformers(tiny_run):
    """No textlora import on the loading side: the adapter folder is standard peft."""
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from textlora.predict import Predictor

    info = json.loads((tiny_run / "run.json").read_text())
    config = AutoConfig.from_pretrained(tiny_run / "adapter")
    assert config.id2label == {0: "negative", 1: "positive"}
    base = AutoModelForSequenceClassification.from_pretrained(info["base_model_source"], config=config)
    model = PeftModel.from_pretrained(base, tiny_run / "adapter").eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_run / "tokenizer")
    texts = ["great superb film", "dull plot and the worst actor", "a story"]
    temperature = json.loads((tiny_run / "calibration.json").read_text())["temperature"]
    with torch.no_grad():
        batch = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
        logits = model(**batch).logits.double()
    # The one division a plain-peft user applies to get textlora's calibrated probabilities.
    np.testing.assert_allclose(Predictor.from_run(tiny_run).predict_probs(texts),
                               torch.softmax(logits / temperature, -1).numpy(), atol=1e-5)
    np.testing.assert_allclose(Predictor.from_run(tiny_run, calibrated=False).predict_probs(texts),
                               torch.softmax(logits, -1).numpy(), atol=1e-5)


def test_batched_prediction_equals_one_by_one(tiny_run):
    from textlora.predict import Predictor

    predictor = Predictor.from_run(tiny_run)
    texts = ["great", "the movie was really quite boring and the plot was poor and dull", "loved it", "bad"]
    together = predictor.predict_probs(texts)
    alone = np.vstack([predictor.predict_probs([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_model_card_shows_the_comparison(tiny_run):
    card = (tiny_run / "README.md").read_text()
    assert "TF-IDF + LR" in card and "NBSVM" in card and "Pre-adaptation" in card and "Fine-tuned (lora)" in card
    assert "| Epoch |" in card
    assert "fine-tuned vs TF-IDF + LR: " in card and " test texts" in card and "wins" not in card
    assert "Temperature " in card and "95 %" in card


def test_bf16_inference_keeps_the_labels_and_rejects_unknown_precisions(tiny_run, reviews_csv):
    """--precision bf16 casts the merged model (works on any CPU, fast only where bf16 is native):
    same labels as fp32 on real rows, probabilities within bf16 rounding."""
    import pandas as pd
    import torch

    from textlora.errors import TextloraError
    from textlora.predict import Predictor

    texts = list(pd.read_csv(reviews_csv)["text"][:64])
    fp32 = Predictor.from_run(tiny_run)
    bf16 = Predictor.from_run(tiny_run, precision="bf16")
    assert {p.dtype for p in bf16.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in fp32.model.parameters()} == {torch.float32}
    a, b = fp32.predict_probs(texts), bf16.predict_probs(texts)
    assert np.abs(a - b).max() < 0.05 and np.abs(a - b).max() > 0  # rounded, not the same model
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.95
    assert b.sum(1) == pytest.approx(np.ones(len(texts)), abs=1e-9)
    with pytest.raises(TextloraError, match="unknown precision 'fp8'"):
        Predictor.from_run(tiny_run, precision="fp8")
