"""Shared fixtures: tiny models built from configs, small learnable data, one tiny trained run."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(os.environ.get("TEXTLORA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

POSITIVE = ["good", "great", "excellent", "wonderful", "superb", "loved", "brilliant", "fantastic"]
NEGATIVE = ["bad", "awful", "terrible", "boring", "worst", "hated", "dull", "poor"]
FILLER = ["the", "movie", "film", "plot", "actor", "was", "really", "quite", "a", "story", "scene", "and"]


def synthetic_reviews(n: int, seed: int = 0) -> pd.DataFrame:
    """Texts whose label is given by sentiment words: a slice any model can learn."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 8))]
        for _ in range(rng.randint(3, 6)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label else NEGATIVE))
        rows.append({"text": " ".join(words), "label": ["negative", "positive"][label]})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def minilm_dir() -> str:
    from textlora.models import resolve_model_source

    return resolve_model_source("packaged:minilm")


def save_tokenizer_copy(minilm_dir: str, out: Path) -> None:
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (Path(minilm_dir) / name).exists():
            shutil.copy(Path(minilm_dir) / name, out / name)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, minilm_dir) -> str:
    """A 2-layer, 32-wide BERT with random weights, saved with the MiniLM WordPiece tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(out)
    save_tokenizer_copy(minilm_dir, out)
    return str(out)


@pytest.fixture(scope="session")
def reviews_csv(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("data") / "reviews.csv"
    synthetic_reviews(400).to_csv(out, index=False)
    return str(out)


def tiny_overrides(model_dir: str, data: str, out_dir: Path, **extra) -> list[str]:
    settings = {
        "model.name": model_dir, "data.source": data, "output_dir": str(out_dir), "model.max_length": 32,
        "train.epochs": 3, "train.learning_rate": 2e-2, "train.batch_size": 16, "data.validation_size": 0.15,
        "data.test_size": 0.25, "data.label_column": "label", "data.text_column": "text",
        # The fine-tuned model is what most tests exercise; ship: best (the default) has its own tests.
        "ship": "finetuned",
    }
    settings.update(extra)
    return [f"{k}={v}" for k, v in settings.items()]


def sets(overrides: list[str]) -> list[str]:
    """Overrides as command-line arguments: --set k=v --set ..."""
    return [arg for o in overrides for arg in ("--set", o)]


@contextlib.contextmanager
def one_thread():
    """Train tiny models on one torch thread: on 32-wide matrices threads only contend with each
    other on a shared CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_tiny(model_dir: str, data: str, out_dir: Path, **settings) -> Path:
    """One finished run of a tiny model (tiny_overrides + settings), trained on one thread."""
    from textlora.config import load_config
    from textlora.pipeline import run_experiment

    with one_thread():
        return run_experiment(load_config(None, tiny_overrides(model_dir, data, out_dir, **settings)), quiet=True,
                              say=lambda *_: None)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_bert_dir, reviews_csv) -> Path:
    """One finished LoRA run of the tiny BERT on the synthetic reviews."""
    from textlora.config import load_config
    from textlora.pipeline import run_experiment

    out = tmp_path_factory.mktemp("runs")
    # 5 epochs: test accuracy 0.95-1.00 on seeds 42-47 with either batch order; after 3 it was
    # 0.87-1.00, so a test of "it learned" (>= 0.9) passed or failed with the batch order.
    cfg = load_config(None, tiny_overrides(tiny_bert_dir, reviews_csv, out, name="tiny", **{"train.epochs": 5}))
    return run_experiment(cfg, quiet=True, say=lambda *_: None)


# --------------------------------------------------------------------------- tiny language models

PROMPT_WORDS = "classify the sentiment of this review text as negative neutral or positive : , answer".split()


def word_level_tokenizer(out: Path, specials: list[str], template: str, **special_tokens):
    """A fast word-level tokenizer over the synthetic reviews' vocabulary, built offline with `tokenizers`.

    `template` is the post-processor's single-sequence template, e.g. "$A </s>" (T5) or "<s> $A" (Llama).
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = specials + sorted(set(POSITIVE + NEGATIVE + FILLER + PROMPT_WORDS))
    vocab = {word: i for i, word in enumerate(words)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(t, vocab[t]) for t in specials if t in template])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", **special_tokens)
    fast.save_pretrained(out)
    return fast, len(words)


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory) -> str:
    """A 2-layer T5 with random weights and a T5-like tokenizer (appends </s>, pads with <pad>)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    out = tmp_path_factory.mktemp("tiny-t5")
    _, vocab_size = word_level_tokenizer(out, ["<pad>", "</s>", "<unk>"], "$A </s>", eos_token="</s>",
                                         pad_token="<pad>")
    torch.manual_seed(0)
    T5ForConditionalGeneration(T5Config(
        vocab_size=vocab_size, d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2, num_decoder_layers=2,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )).save_pretrained(out)
    return str(out)


def tiny_decoder(out: Path, family: str) -> str:
    """A 2-layer Llama (rotary positions) or GPT-2 (absolute positions) with random weights and a
    tokenizer that, like theirs, has no pad token and pads on the left."""
    import torch
    from transformers import GPT2Config, GPT2Model, LlamaConfig, LlamaModel

    _, vocab_size = word_level_tokenizer(out, ["<s>", "</s>", "<unk>"], "<s> $A", bos_token="<s>", eos_token="</s>",
                                         padding_side="left")
    torch.manual_seed(0)
    if family == "llama":
        LlamaModel(LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, bos_token_id=0, eos_token_id=1,
                               max_position_embeddings=128)).save_pretrained(out)
    else:
        GPT2Model(GPT2Config(vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=4, n_positions=128, bos_token_id=0,
                             eos_token_id=1)).save_pretrained(out)
    return str(out)


def reloaded_run_reproduces_its_metrics(run_dir):
    """Predictor.from_run on the saved test rows gives metrics.json's final row."""
    import json

    import numpy as np

    from textlora.config import load_config
    from textlora.data import load_splits
    from textlora.metrics import classification_metrics
    from textlora.predict import Predictor
    from textlora.runs import open_run

    metrics = json.loads((run_dir / "metrics.json").read_text())
    cfg = load_config(run_dir / "config.yaml")
    test = load_splits(cfg.data, cfg.seed).test
    probs = Predictor.from_run(run_dir).predict_probs(list(test["text"]))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    again = classification_metrics(test["label"].to_numpy(), probs, open_run(run_dir).label_names)
    assert again["accuracy"] == metrics["final"]["accuracy"]
    assert again["loss"] == pytest.approx(metrics["final"]["loss"], abs=1e-6)
    return metrics
