"""Every method of config.METHODS, trained for real on the tiny BERT, checked on its numbers.

One module-scoped fixture trains every case once (1 epoch, 100 rows, 32 tokens,
no baselines); the tests then read the run folders: parameter counts from the
architecture's shapes, the adapter config peft saved, the weights in the
safetensors file, artifact sizes, and that each run reloads into the model
that was evaluated (validation rows: the in-memory model at the last epoch;
test rows: metrics.json's final row).

The tiny BERT (conftest): hidden 32, intermediate 64, 2 layers, 2 labels, vocabulary 30522.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import synthetic_reviews, train_tiny

HIDDEN, INTERMEDIATE, LAYERS, LABELS, VOCAB, R = 32, 64, 2, 2, 30522, 8
HEAD = HIDDEN * LABELS + LABELS  # BertForSequenceClassification's classifier (the pooler is pretrained)


def lora(n_in: int, n_out: int) -> int:
    return R * (n_in + n_out)


# Trainable parameters of each case, from the shapes alone.
QUERY_VALUE = LAYERS * 2 * lora(HIDDEN, HIDDEN)
CASES: dict[str, tuple[dict, int]] = {
    "lora": ({"method": "lora"}, QUERY_VALUE + HEAD),
    "rslora": ({"method": "rslora"}, QUERY_VALUE + HEAD),
    # DoRA adds a magnitude vector: one value per output feature of each adapted layer.
    "dora": ({"method": "dora"}, QUERY_VALUE + LAYERS * 2 * HIDDEN + HEAD),
    "loraplus": ({"method": "loraplus", "lora.loraplus_lr_ratio": 4.0}, QUERY_VALUE + HEAD),
    "pissa": ({"method": "pissa"}, QUERY_VALUE + HEAD),
    # (IA)^3 preset: key and value scale their outputs (32 each); the attention output and
    # feed-forward output layers (both named output.dense) scale their inputs (32 and 64).
    "ia3": ({"method": "ia3"}, LAYERS * (HIDDEN + HIDDEN + HIDDEN + INTERMEDIATE) + HEAD),
    "head": ({"method": "head"}, HEAD),
    "full": ({"method": "full"}, None),  # everything: checked against the total below
    # all-linear without `key`: query, value, attention output (32->32), intermediate (32->64) and
    # output (64->32) per layer, plus the pooler (32->32); never the classifier, which trains in full.
    "all-linear": ({"method": "lora", "lora.target_modules": "all-linear", "lora.exclude_modules": "[key]"},
                   LAYERS * (3 * lora(HIDDEN, HIDDEN) + 2 * lora(HIDDEN, INTERMEDIATE)) + lora(HIDDEN, HIDDEN) + HEAD),
    # An embedding target: LoRA's A is vocab x r, B is r x hidden.
    "embedding": ({"method": "lora", "lora.target_modules": "[word_embeddings]"}, lora(VOCAB, HIDDEN) + HEAD),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bert_dir) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("methods")
    data = tmp / "reviews.csv"
    synthetic_reviews(100, seed=1).to_csv(data, index=False)
    return {name: train_tiny(tiny_bert_dir, str(data), tmp / "runs", name=name, baselines="[]",
                             **{"train.epochs": 1, **settings})
            for name, (settings, _) in CASES.items()}


def metrics_of(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def adapter_config(run: Path) -> dict:
    return json.loads((run / "adapter" / "adapter_config.json").read_text())


def saved_tensors(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


@pytest.mark.parametrize("name", list(CASES))
def test_trainable_parameters_match_the_shapes(runs, name):
    params = metrics_of(runs[name])["params"]
    expected = CASES[name][1]
    if name == "full":
        assert params["trainable"] == params["total"] == metrics_of(runs["head"])["params"]["total"]
    else:
        assert params["trainable"] == expected
        assert params["trainable_ratio"] == pytest.approx(expected / params["total"])


@pytest.mark.parametrize("name", list(CASES))
def test_run_reloads_into_the_model_it_evaluated(runs, name):
    """Predictor.from_run reproduces metrics.json's final row on the test rows, and the in-memory model's
    last validation epoch (save -> load changed nothing, PiSSA's re-derived residual weights included)."""
    from textlora.config import config_from_dict
    from textlora.data import load_splits
    from textlora.metrics import classification_metrics
    from textlora.predict import Predictor
    from textlora.runs import open_run

    run = open_run(runs[name])
    metrics = run.metrics()
    splits = load_splits(config_from_dict(run.config()).data, metrics["seed"])
    # The final row is temperature-scaled (the temperature fitted on the validation rows), as
    # Predictor serves it; the epoch rows are the Trainer's raw softmax.
    calibrated, raw = Predictor.from_run(run.path), Predictor.from_run(run.path, calibrated=False)
    # The epoch row comes from the Trainer's evaluation of the unmerged adapter in its own batches
    # (other padding, other summation order): fp32 rounding moves the loss by up to a few 1e-5 there,
    # while a lost or re-initialised head or adapter moves it by more than 1e-2.
    for predictor, frame, reference, loss_tolerance in ((calibrated, splits.test, metrics["final"], 1e-9),
                                                        (raw, splits.validation, metrics["epochs"][-1], 2e-4)):
        probs = predictor.predict_probs(list(frame["text"]))
        got = classification_metrics(np.asarray(frame["label"]), probs, predictor.label_names)
        assert got["accuracy"] == reference["accuracy"]
        # The log loss depends on every probability, so it pins the weights far tighter than accuracy.
        assert got["loss"] == pytest.approx(reference["loss"], abs=loss_tolerance)


LORA_FLAGS = {  # what peft must have saved for each LoRA variant
    "lora": {"use_dora": False, "use_rslora": False, "init_lora_weights": True},
    "rslora": {"use_dora": False, "use_rslora": True, "init_lora_weights": True},
    "dora": {"use_dora": True, "use_rslora": False, "init_lora_weights": True},
    "loraplus": {"use_dora": False, "use_rslora": False, "init_lora_weights": True},
    "pissa": {"use_dora": False, "use_rslora": False, "init_lora_weights": "pissa"},
}


@pytest.mark.parametrize("name", list(LORA_FLAGS))
def test_lora_variants_are_in_the_saved_adapter(runs, name):
    config = adapter_config(runs[name])
    assert config["peft_type"] == "LORA" and config["r"] == R
    assert {key: config[key] for key in LORA_FLAGS[name]} == LORA_FLAGS[name]
    assert set(config["target_modules"]) == {"query", "value"}
    tensors = saved_tensors(runs[name])
    # B starts at zero (PiSSA: at the principal components); one epoch must have moved it.
    b = [t for k, t in tensors.items() if ".lora_B." in k]
    assert len(b) == LAYERS * 2 and all(t.abs().sum() > 0 for t in b)
    magnitudes = [k for k in tensors if "lora_magnitude_vector" in k]
    assert len(magnitudes) == (LAYERS * 2 if name == "dora" else 0)
    assert {"base_model.model.classifier.weight", "base_model.model.classifier.bias"} <= set(tensors)


def test_ia3_saves_an_ia3_adapter(runs):
    import torch

    config = adapter_config(runs["ia3"])
    assert config["peft_type"] == "IA3"
    assert set(config["target_modules"]) == {"key", "value", "output.dense"}
    assert set(config["feedforward_modules"]) == {"output.dense"}
    vectors = {k: t for k, t in saved_tensors(runs["ia3"]).items() if k.endswith("ia3_l")}
    assert len(vectors) == LAYERS * 4
    assert not any(k for k in vectors if ".lora_" in k)
    # IA3 vectors start at one; training moved them.
    assert any(not torch.allclose(t, torch.ones_like(t)) for t in vectors.values())


def test_loraplus_optimizer_groups(runs):
    """peft's LoRA+ optimizer: B matrices in their own group(s), every other trainable weight elsewhere."""
    groups = metrics_of(runs["loraplus"])["optimizer_groups"]
    b_params = QUERY_VALUE // 2  # B is r x out: half of each query/value adapter here (in = out = 32)
    assert sum(g["parameters"] for g in groups) == CASES["loraplus"][1]
    assert b_params in [g["parameters"] for g in groups]
    assert len(metrics_of(runs["lora"])["optimizer_groups"]) < len(groups)


def test_loraplus_learning_rate_of_b_is_ratio_times_a(runs):
    metrics = metrics_of(runs["loraplus"])
    groups = metrics["optimizer_groups"]
    b_params = QUERY_VALUE // 2
    lr_b = next(g["lr"] for g in groups if g["parameters"] == b_params)
    lr_a = next(g["lr"] for g in groups if g["parameters"] == CASES["loraplus"][1] - b_params - LABELS)
    assert lr_a == pytest.approx(2e-2)  # tiny_overrides' train.learning_rate
    assert lr_b == pytest.approx(4.0 * lr_a)


def test_all_linear_with_exclude_modules(runs):
    adapted = {k.split(".lora_A.")[0].removeprefix("base_model.model.") for k in saved_tensors(runs["all-linear"])
               if ".lora_A." in k}
    assert not any(name.endswith(".key") for name in adapted)
    assert {name.rsplit(".", 1)[-1] for name in adapted} == {"query", "value", "dense"}
    assert "bert.pooler.dense" in adapted and not any("classifier" in name for name in adapted)
    assert len(adapted) == LAYERS * 5 + 1
    # peft saves all-linear resolved into every linear name, key included: exclude_modules drops it.
    config = adapter_config(runs["all-linear"])
    assert config["exclude_modules"] == ["key"]
    assert {name for name in config["target_modules"] if not name.endswith(".key")} == adapted


def test_embedding_target(runs):
    tensors = saved_tensors(runs["embedding"])
    a = [t for k, t in tensors.items() if "lora_embedding_A" in k]
    b = [t for k, t in tensors.items() if "lora_embedding_B" in k]
    assert [tuple(t.shape) for t in a] == [(R, VOCAB)] and [tuple(t.shape) for t in b] == [(HIDDEN, R)]
    assert not any(".lora_A." in k for k in tensors)


def test_artifact_sizes(runs):
    full, head, lora_run = (metrics_of(runs[n]) for n in ("full", "head", "lora"))
    model_bytes = 4 * full["params"]["total"]  # fp32
    # A whole model (full, head) is its weights plus a small safetensors header and config.json.
    for whole in (full, head):
        assert model_bytes <= whole["artifact_bytes"] <= model_bytes * 1.01 + 16_384
    # The LoRA adapter holds its matrices and the head, not the model: under 1% of it here.
    assert 4 * lora_run["params"]["trainable"] <= lora_run["artifact_bytes"] < 0.01 * full["artifact_bytes"]


def test_head_trains_only_the_head(runs):
    """method head ships the whole model, but only the classifier may differ from the base weights."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    trained = load_file(str(runs["head"] / "model" / "model.safetensors"))
    run_info = json.loads((runs["head"] / "run.json").read_text())
    base = AutoModelForSequenceClassification.from_pretrained(run_info["base_model_source"], num_labels=2)
    changed = {name for name, value in base.state_dict().items()
               if name in trained and not torch.equal(trained[name], value)}
    assert changed == {"classifier.weight", "classifier.bias"}


# --------------------------------------------------------------------------- a container in modules_to_save

POOLER = HIDDEN * HIDDEN + HIDDEN  # BertPooler: a container (dense + tanh), no weight of its own
POOLER_METHODS = ["lora", "rslora", "dora", "loraplus", "pissa", "ia3", "full", "head"]


@pytest.fixture(scope="module")
def pooler_runs(tmp_path_factory, tiny_bert_dir) -> dict[str, Path]:
    """Every method with `lora.modules_to_save: [pooler]`, as every MiniLM recipe sets it."""
    tmp = tmp_path_factory.mktemp("pooler")
    data = tmp / "reviews.csv"
    synthetic_reviews(80, seed=2).to_csv(data, index=False)
    return {name: train_tiny(tiny_bert_dir, str(data), tmp / "runs", name=name, baselines="[]",
                             **{**CASES[name][0], "train.epochs": 1, "lora.modules_to_save": "[pooler]"})
            for name in POOLER_METHODS}


@pytest.mark.parametrize("name", POOLER_METHODS)
def test_a_pooler_in_modules_to_save_trains_merges_and_reloads(pooler_runs, tiny_bert_dir, name):
    """(IA)^3 used to die in peft's merge_and_unload ('BertPooler' object has no attribute 'weight'):
    every method must train the pooler, ship it, and give the same probabilities merged or not."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from textlora.models import load_tokenizer
    from textlora.predict import load_run_model
    from textlora.runs import open_run

    run = open_run(pooler_runs[name])
    params = run.metrics()["params"]
    if name == "full":
        assert params["trainable"] == params["total"]
    else:  # the pooler trains on top of what the method trains without it
        assert params["trainable"] == CASES[name][1] + POOLER

    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    shipped = load_run_model(run)  # merged, as predict and serve load it
    trained_pooler = shipped.bert.pooler.dense.weight
    assert not torch.equal(trained_pooler, base.bert.pooler.dense.weight)  # trained, and shipped trained
    if name in ("full", "head"):
        return
    saved = saved_tensors(run.path)
    assert any(".pooler." in key for key in saved), sorted(saved)
    if name == "ia3":  # the container is saved as the layer inside it
        assert "pooler.dense" in adapter_config(run.path)["modules_to_save"]
    tokenizer = load_tokenizer(str(run.path / "tokenizer"))
    batch = tokenizer(list(synthetic_reviews(24, seed=5)["text"]), padding=True, truncation=True, max_length=32,
                      return_tensors="pt")
    with torch.inference_mode():
        merged = shipped.eval()(**batch).logits.softmax(-1)
        unmerged = load_run_model(run, merge=False).eval()(**batch).logits.softmax(-1)
    assert (merged - unmerged).abs().max().item() < 1e-6


def test_ia3_merges_a_container_head_too(tmp_path):
    """RoBERTa's head is a container (classifier.dense + classifier.out_proj), which peft's SEQ_CLS
    task type would re-add whole: save -> reload -> merge keeps the logits."""
    import torch
    from peft import PeftModel, get_peft_model
    from transformers import RobertaConfig, RobertaForSequenceClassification

    from textlora.config import load_config
    from textlora.models import head_module_names, peft_config_for

    torch.manual_seed(0)
    RobertaForSequenceClassification(RobertaConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=66, pad_token_id=1)).save_pretrained(tmp_path / "base")
    model = RobertaForSequenceClassification.from_pretrained(tmp_path / "base")
    config = peft_config_for(load_config(None, ["method=ia3"]), model, head_module_names(model))
    assert config.modules_to_save == ["classifier.dense", "classifier.out_proj"]
    adapted = get_peft_model(model, config)
    with torch.no_grad():  # as if trained: every trainable weight moved
        for param in adapted.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.1)
    ids = torch.randint(3, 100, (4, 12))
    want = adapted.eval()(input_ids=ids).logits
    adapted.save_pretrained(tmp_path / "adapter")
    reloaded = PeftModel.from_pretrained(RobertaForSequenceClassification.from_pretrained(tmp_path / "base"),
                                         tmp_path / "adapter").eval()
    assert torch.allclose(reloaded(input_ids=ids).logits, want, atol=1e-6)
    assert torch.allclose(reloaded.merge_and_unload().eval()(input_ids=ids).logits, want, atol=1e-5)
