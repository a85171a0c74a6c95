"""Beyond encoders: Flan-T5-style label-word classification and decoder-only LMs with a score head,
on tiny random models whose tokenizers are built offline in conftest."""

import json

import numpy as np
import pytest
import torch

from conftest import reloaded_run_reproduces_its_metrics, tiny_decoder, tiny_overrides
from textlora.runs import open_run

MIXED = ["great", "the movie was really quite boring and the plot was poor and dull", "loved it", "bad film",
         "a superb story and brilliant actor"]


def train_tiny(model_dir, data, out, name, **extra):
    from textlora.config import load_config
    from textlora.pipeline import run_experiment

    settings = {"model.max_length": 48, "train.learning_rate": 1e-2, **extra}
    return run_experiment(load_config(None, tiny_overrides(model_dir, data, out, name=name, **settings)),
                          quiet=True, say=lambda *_: None)


def batched_equals_one_by_one(predictor):
    for side in ("left", "right"):
        predictor.tokenizer.padding_side = side
        together = predictor.predict_probs(MIXED)
        alone = np.vstack([predictor.predict_probs([t]) for t in MIXED])
        np.testing.assert_allclose(together, alone, atol=1e-5, err_msg=f"padding side {side}")
    predictor.tokenizer.padding_side = "right"


# --------------------------------------------------------------------------- T5: label words


@pytest.fixture(scope="module")
def t5_run(tiny_t5_dir, reviews_csv, tmp_path_factory):
    return train_tiny(tiny_t5_dir, reviews_csv, tmp_path_factory.mktemp("runs"), "t5")


def test_t5_is_trained_text_to_text_and_beats_its_zero_shot_row(t5_run):
    metrics = json.loads((t5_run / "metrics.json").read_text())
    assert metrics["objective"] == "seq2seq"
    adapter = json.loads((t5_run / "adapter" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "SEQ_2_SEQ_LM" and sorted(adapter["target_modules"]) == ["q", "v"]
    losses = [e["train_loss"] for e in metrics["epochs"]]
    assert losses[-1] < losses[0]  # the seq2seq LM loss of the gold label words goes down
    zero_shot = metrics["baselines"]["pre_adaptation"]
    assert metrics["final"]["accuracy"] >= zero_shot["accuracy"] + 0.2
    assert metrics["final"]["accuracy"] >= 0.85
    assert "Zero-shot (prompt)" in (t5_run / "README.md").read_text()


def test_t5_zero_shot_row_is_the_untrained_model_scoring_label_words(t5_run, tiny_t5_dir):
    from transformers import AutoModelForSeq2SeqLM

    from textlora.config import load_config
    from textlora.data import load_splits
    from textlora.labelwords import LabelWordClassifier
    from textlora.metrics import classification_metrics
    from textlora.predict import Predictor

    metrics = json.loads((t5_run / "metrics.json").read_text())
    run = open_run(t5_run)
    untrained = LabelWordClassifier(AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_dir), run.info["prompt"]["targets"])
    predictor = Predictor.for_model(run, untrained, calibrated=False)  # the zero-shot row is not calibrated
    cfg = load_config(t5_run / "config.yaml")
    test = load_splits(cfg.data, cfg.seed).test
    probs = predictor.predict_probs(list(test["text"]))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    row = classification_metrics(test["label"].to_numpy(), probs, run.label_names)
    assert row["accuracy"] == metrics["baselines"]["pre_adaptation"]["accuracy"]
    assert row["loss"] == pytest.approx(metrics["baselines"]["pre_adaptation"]["loss"], abs=1e-6)


def test_label_word_score_is_the_lm_log_likelihood(t5_run):
    """Each class's score equals -(summed token NLL) of its words as transformers' own loss computes it."""
    from textlora.predict import Predictor

    predictor = Predictor.from_run(t5_run)
    encoded = predictor.tokenizer([predictor.prompt.render("loved the brilliant film")], return_tensors="pt")
    scores = predictor.model(**encoded).logits[0]
    lm = predictor.model.lm
    for k, target in enumerate(open_run(t5_run).info["prompt"]["targets"]):
        with torch.no_grad():
            loss = lm(**encoded, labels=torch.tensor([target])).loss  # mean over the target tokens
        assert scores[k].item() == pytest.approx(-loss.item() * len(target), abs=1e-4)


def test_t5_run_reloads_and_batches_correctly(t5_run):
    from textlora.predict import Predictor

    reloaded_run_reproduces_its_metrics(t5_run)
    batched_equals_one_by_one(Predictor.from_run(t5_run))


def test_prompt_truncation_cuts_the_text_not_the_instruction(tiny_t5_dir):
    from textlora.config import ModelConfig, PromptConfig
    from textlora.labelwords import Prompt, encode_prompts
    from textlora.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_t5_dir)
    long_text = " ".join(["great"] * 100 + ["awful"] * 100)
    for template in ("Classify this text as {labels}:\n{text}", "{text}\nanswer: negative or positive ?"):
        prompt = Prompt.build(PromptConfig(template=template), ["negative", "positive"])
        for truncation in ("head", "head_tail"):
            cfg = ModelConfig(max_length=32, truncation=truncation, head_tokens=8)
            ids = encode_prompts(tokenizer, [long_text, "short text"], prompt, cfg)["input_ids"]
            assert len(ids[0]) <= 32
            words = tokenizer.decode(ids[0], skip_special_tokens=True).split()
            instruction = tokenizer.decode(tokenizer(prompt.render(""))["input_ids"], skip_special_tokens=True).split()
            if template.startswith("{text}"):
                assert words[-len(instruction):] == instruction
            else:
                assert words[: len(instruction)] == instruction
            assert ("awful" in words) == (truncation == "head_tail")  # the tail survives only with head_tail
            assert tokenizer.decode(ids[1], skip_special_tokens=True).split() == \
                tokenizer.decode(tokenizer(prompt.render("short text"))["input_ids"], skip_special_tokens=True).split()


def test_class_weighted_lm_loss_with_unit_weights_is_transformers_loss(tiny_t5_dir):
    from transformers import AutoModelForSeq2SeqLM

    from textlora.losses import class_weighted_lm_loss

    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_dir)
    targets = [[5, 1], [7, 8, 1]]
    labels = torch.tensor([[5, 1, -100], [7, 8, 1], [5, 1, -100]])
    input_ids = torch.tensor([[9, 10, 11, 1], [12, 13, 1, 0], [14, 1, 0, 0]])
    out = model(input_ids=input_ids, attention_mask=(input_ids != 0).long(), labels=labels)
    ours = class_weighted_lm_loss(out.logits, labels, torch.ones(2), targets)
    assert ours.item() == pytest.approx(out.loss.item(), abs=1e-6)
    # Row 2 (class 1, 3 target tokens) counts twice: (nll_0 + 2 nll_1 + nll_2) / 7 tokens.
    doubled = class_weighted_lm_loss(out.logits, labels, torch.tensor([1.0, 2.0]), targets)
    tokens = torch.nn.functional.cross_entropy(out.logits.transpose(1, 2), labels, reduction="none").sum(1)
    assert doubled.item() == pytest.approx(((tokens * torch.tensor([1.0, 2.0, 1.0])).sum() / 7).item(), abs=1e-6)


def test_label_words_on_an_encoder_is_a_user_error(tiny_bert_dir, reviews_csv, tmp_path):
    from textlora.errors import TextloraError

    with pytest.raises(TextloraError, match="label_words needs an encoder-decoder model"):
        train_tiny(tiny_bert_dir, reviews_csv, tmp_path, "bad", **{"model.objective": "label_words"})
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- decoder-only LMs


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def decoder_run(request, reviews_csv, tmp_path_factory):
    model_dir = tiny_decoder(tmp_path_factory.mktemp(f"tiny-{request.param}"), request.param)
    return train_tiny(model_dir, reviews_csv, tmp_path_factory.mktemp("runs"), request.param)


def test_decoder_classifier_trains_with_its_score_head_saved(decoder_run):
    from safetensors import safe_open

    from textlora.models import load_tokenizer

    metrics = json.loads((decoder_run / "metrics.json").read_text())
    assert metrics["objective"] == "classifier"
    assert metrics["final"]["accuracy"] >= metrics["baselines"]["pre_adaptation"]["accuracy"] + 0.2
    assert [e["train_loss"] for e in metrics["epochs"]][-1] < metrics["epochs"][0]["train_loss"]
    with safe_open(str(decoder_run / "adapter" / "adapter_model.safetensors"), "pt") as weights:
        assert any(".score." in key for key in weights.keys())  # the head travels with the adapter
    tokenizer = load_tokenizer(str(decoder_run / "tokenizer"))
    assert tokenizer.pad_token == tokenizer.eos_token == "</s>"  # set from eos: the tokenizer had none


def test_decoder_run_reloads_and_batches_correctly_on_both_padding_sides(decoder_run):
    from textlora.predict import Predictor

    reloaded_run_reproduces_its_metrics(decoder_run)
    batched_equals_one_by_one(Predictor.from_run(decoder_run))


def test_a_label_word_run_is_served_alone(t5_run, tmp_path):
    import shutil

    from textlora.errors import TextloraError
    from textlora.predict import Predictor
    from textlora.serve import load_engine

    engine = load_engine([("t5", t5_run)])
    served = engine.predict("t5", MIXED)
    local = Predictor.from_run(t5_run).predict(MIXED)
    assert [p.label for p in served] == [p.label for p in local]
    for a, b in zip(served, local):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
    twin = tmp_path / "twin"
    shutil.copytree(t5_run, twin)
    with pytest.raises(TextloraError, match="scores label words with a language model; serve it alone"):
        load_engine([("t5", t5_run), ("twin", twin)])
