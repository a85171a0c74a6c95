"""Shared fixtures: tiny models built from configs, small learnable data, one tiny trained run."""

from __future__ import annotations

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
    }
    settings.update(extra)
    return [f"{k}={v}" for k, v in settings.items()]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_bert_dir, reviews_csv) -> Path:
    """One finished LoRA run of the tiny BERT on the synthetic reviews."""
    from textlora.config import load_config
    from textlora.pipeline import run_experiment

    out = tmp_path_factory.mktemp("runs")
    cfg = load_config(None, tiny_overrides(tiny_bert_dir, reviews_csv, out, name="tiny"))
    return run_experiment(cfg, quiet=True, say=lambda *_: None)
