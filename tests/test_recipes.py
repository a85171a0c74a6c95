"""Every recipe validates, carries the seed's settings, and runs in --quick mode on a tiny model.

The seed recipes name real hub models and datasets; here each one runs with
--model pointing at a tiny model of the same architecture (random weights,
the MiniLM vocabulary) and --data at a local copy of its dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import SHARED_DATA, save_tokenizer_copy, synthetic_reviews
from textlora.cli import main
from textlora.config import load_config, read_recipe
from textlora.quick import QUICK

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_validates_and_shows_its_command(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith(f"# textlora train recipes/{path.name}"), first
    cfg = load_config(path)
    assert cfg.name == path.stem


def seed_recipe(number: str) -> list[Path]:
    return [p for p in RECIPES if p.name.startswith(f"seed{number}-")]


def test_a_recipe_for_every_seed():
    assert all(seed_recipe(n) for n in ("000", "001", "002", "003", "004"))
    assert {p.stem for p in seed_recipe("002")} == {"seed002-imdb-distilbert", "seed002-agnews-distilbert"}


# What each write-up states (shared/seeds/*.txt), key by key.
SEED_SETTINGS = {
    "seed000-imdb-bert-base": {
        "model.name": "bert-base-uncased", "data.source": "stanfordnlp/imdb", "data.n_train": 5000,
        "data.n_eval": 2000, "method": "lora", "lora.r": 8, "lora.alpha": 16, "lora.target_modules": ["query", "value"],
        "lora.dropout": 0.1, "lora.bias": "none", "train.epochs": 3, "train.batch_size": 16,
    },
    "seed001-imdb-roberta-rslora": {
        "model.name": "roberta-base", "data.source": "stanfordnlp/imdb", "method": "rslora", "lora.r": 8,
        "lora.alpha": 8, "lora.dropout": 0.1, "lora.exclude_modules": ["classifier"], "train.epochs": 3,
        "lora.target_modules": ["query", "key", "value", "dense", "word_embeddings"],
    },
    "seed002-imdb-distilbert": {
        "model.name": "distilbert-base-uncased", "data.source": "stanfordnlp/imdb", "method": "lora", "lora.r": 8,
        "lora.alpha": 32, "lora.dropout": 0.1, "train.learning_rate": 5e-5, "train.batch_size": 16,
        "train.eval_batch_size": 16, "train.epochs": 3, "train.weight_decay": 0.01, "model.max_length": 128,
        "lora.loraplus_lr_ratio": 2.0,
    },
    "seed002-agnews-distilbert": {
        "model.name": "distilbert-base-uncased", "data.source": "ag_news", "method": "lora", "lora.r": 8,
        "lora.alpha": 32, "lora.dropout": 0.1, "train.learning_rate": 5e-5, "train.batch_size": 16,
        "train.epochs": 3, "train.weight_decay": 0.01, "model.max_length": 128,
        "data.label_names": ["World", "Sports", "Business", "Sci/Tech"],
    },
    "seed003-imdb-distilbert-qlin": {
        "model.name": "distilbert-base-uncased", "data.source": "stanfordnlp/imdb", "lora.r": 4, "lora.alpha": 32,
        "lora.dropout": 0.01, "lora.target_modules": ["q_lin"], "train.learning_rate": 1e-3, "train.batch_size": 4,
        "train.epochs": 1,
    },
    "seed004-druglib-flan-t5": {
        "model.name": "google/flan-t5-base", "lora.r": 16, "lora.alpha": 64, "lora.dropout": 0.1,
        "lora.target_modules": ["q", "v", "o"], "train.learning_rate": 3e-4, "train.batch_size": 8, "train.epochs": 4,
        "data.label_bins": {"negative": [None, 4], "neutral": [5, 6], "positive": [7, None]},
        "data.oversample": 800, "data.undersample": 800, "model.objective": "label_words",
        "prompt.template": "Classify the sentiment of this review as {labels}:\n{text}",
    },
}


def dotted(config: dict, key: str):
    for part in key.split("."):
        config = config[part]
    return config


@pytest.mark.parametrize("name", sorted(SEED_SETTINGS))
def test_seed_recipe_has_the_write_up_settings(name):
    config = load_config(Path(RECIPES[0].parent / f"{name}.yaml")).to_dict()
    for key, expected in SEED_SETTINGS[name].items():
        assert dotted(config, key) == expected, key


def adapted_parameter_count(model_config, recipe: Path, overrides=()) -> tuple[int, int, int]:
    """(before, trainable, total) of the recipe's method on the full-size architecture, counted by
    textlora.params on the meta device: exact counts in milliseconds, no weights downloaded or allocated."""
    from textlora.params import adapted_parameter_count as count

    before, counted = count(model_config, load_config(recipe, overrides))
    return before, counted.trainable, counted.total


def test_seed000_rank_table_is_reproduced():
    """Seed 000 printed trainable/total parameters of bert-base-uncased for r = 4, 8, 16, 32."""
    from transformers import BertConfig

    bert_base = BertConfig(num_labels=2)  # BertConfig's defaults are bert-base-uncased's architecture
    printed = {4: (148_994, 109_632_772), 8: (296_450, 109_780_228), 16: (591_362, 110_075_140),
               32: (1_181_186, 110_664_964)}
    recipe = seed_recipe("000")[0]
    for r, (trainable, total) in printed.items():
        before, got_trainable, got_total = adapted_parameter_count(bert_base, recipe, [f"lora.r={r}"])
        assert before == 109_483_778  # the write-up's "Total parameters" of the plain model
        assert (got_trainable, got_total) == (trainable, total), r


def test_seed001_trainable_parameters_are_reproduced():
    """Seed 001: 2,410,442 trainable of 124,647,170 (the plain roberta-base classifier)."""
    from transformers import RobertaConfig

    roberta_base = RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                                 num_labels=2)
    before, trainable, _ = adapted_parameter_count(roberta_base, seed_recipe("001")[0])
    assert (before, trainable) == (124_647_170, 2_410_442)


# --------------------------------------------------------------------------- quick runs on tiny models


def _tiny(tmp_path_factory, minilm_dir, name: str, build):
    import torch

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp(name)
    build().save_pretrained(out)
    save_tokenizer_copy(minilm_dir, out)
    return str(out)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, minilm_dir, tiny_bert_dir, tiny_t5_dir) -> dict[str, str]:
    from transformers import DistilBertConfig, DistilBertModel, RobertaConfig, RobertaModel

    distilbert = _tiny(tmp_path_factory, minilm_dir, "tiny-distilbert", lambda: DistilBertModel(
        DistilBertConfig(vocab_size=30522, dim=32, n_layers=2, n_heads=2, hidden_dim=64)))
    roberta = _tiny(tmp_path_factory, minilm_dir, "tiny-roberta", lambda: RobertaModel(
        RobertaConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=130)))
    return {"bert-base-uncased": tiny_bert_dir, "packaged:minilm": tiny_bert_dir,
            "distilbert-base-uncased": distilbert, "roberta-base": roberta, "google/flan-t5-base": tiny_t5_dir}


# Local copies of the recipes' datasets (shared/data, beside the repository); a
# recipe whose source is a local folder that is not here (seed 004's UCI files)
# takes the shared folder of the same name. Where there is no copy (a fresh
# clone), a small synthetic folder with the recipe's columns stands in.
LOCAL_DATA = {"stanfordnlp/imdb": "imdb", "ag_news": "ag_news"}


def synthetic_source(recipe: Path, out: Path) -> Path:
    """train.csv / test.csv with exactly the columns the recipe reads: its text column or every
    field of its text_template (IMDB, AG News: text; DrugLib: three review fields), and labels as
    the recipe maps them (class ids for label_names, 1-10 ratings for label_bins, else names)."""
    import string

    import pandas as pd

    cfg = load_config(recipe)
    data = cfg.data
    fields = [f for _, f, _, _ in string.Formatter().parse(data.text_template) if f] if data.text_template \
        else [data.text_column]
    out.mkdir()
    for split, n, seed in (("train", 160, 0), ("test", 64, 1)):  # quick: 64 + 16 train rows, 32 test rows
        if cfg.task == "multi_label":  # label sets, as JSON lists in the CSV
            labels = [json.dumps([["negative"], ["positive"], ["negative", "positive"], []][i % 4]) for i in range(n)]
        elif data.label_bins:
            labels = [1 + (i * 7) % 10 for i in range(n)]  # every rating 1..10, so every bin
        elif data.label_names:
            labels = [i % len(data.label_names) for i in range(n)]
        else:
            labels = [["negative", "positive"][i % 2] for i in range(n)]
        columns = {f: synthetic_reviews(n, seed + 10 * k)["text"] for k, f in enumerate(fields)}
        pd.DataFrame({**columns, data.label_column: labels}).to_csv(out / f"{split}.csv", index=False)
    return out


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_runs_in_quick_mode(path, tiny_models, tmp_path):
    raw = read_recipe(path)
    source = raw["data"]["source"]
    data = []
    if source in LOCAL_DATA or not (source.startswith("packaged:") or Path(source).exists()):
        local = SHARED_DATA / LOCAL_DATA.get(source, Path(source).name)
        if not local.is_dir():  # a fresh clone: no ../shared
            local = synthetic_source(path, tmp_path / "data")
        data = ["--data", str(local)]
    model = tiny_models[raw["model"]["name"]]
    out = tmp_path / "runs"
    assert main(["train", str(path), "--model", model, *data, "--quick", "--output-dir", str(out), "--quiet"]) == 0

    run_dir = out / path.stem
    metrics = json.loads((run_dir / "metrics.json").read_text())
    train_counts = metrics["data"]["splits"]["train"].get("class_counts", {})  # a regression has none
    if raw["data"].get("oversample"):  # quick mode oversamples to the largest class
        assert len(set(train_counts.values())) == 1 and sum(train_counts.values()) >= QUICK["data.n_train"]
    else:
        assert metrics["data"]["splits"]["train"]["rows"] == QUICK["data.n_train"]
    assert metrics["data"]["splits"]["test"]["rows"] == QUICK["data.n_eval"]
    assert len(metrics["epochs"]) == 1
    # The final row is what the saved test probabilities give (the numbers of a quick run mean nothing,
    # but they must be the run's own): accuracy recomputed from test_probs.safetensors.
    from textlora.runs import open_run

    saved = open_run(run_dir).test_probs()
    task = metrics.get("task", "classification")
    if task == "classification":
        assert metrics["final"]["accuracy"] == float((saved["finetuned"].argmax(1) == saved["labels"]).mean())
    elif task == "multi_label":  # micro F1 of the saved probabilities at the thresholds the run chose
        from textlora.multilabel import multilabel_metrics

        names, chosen = metrics["data"]["label_names"], metrics["selection"]["thresholds"]["finetuned"]
        assert metrics["final"]["f1_micro"] == multilabel_metrics(saved["labels"], saved["finetuned"], names,
                                                                  [chosen[n] for n in names])["f1_micro"]
    else:
        assert metrics["final"]["mae"] == pytest.approx(float(abs(saved["finetuned"] - saved["labels"]).mean()))
    assert metrics["final"]["n"] == len(saved["labels"]) == metrics["data"]["splits"]["test"]["rows"]
    assert 0 < metrics["params"]["trainable"] < metrics["params"]["total"] or raw.get("method") == "full"
    # --quick changed the sizes only: every other setting is the recipe's own.
    ran = yaml.safe_load((run_dir / "config.yaml").read_text())
    recipe = load_config(path).to_dict()
    changed = {f"{section}.{key}" for section, values in recipe.items() if isinstance(values, dict)
               for key, value in values.items() if ran[section][key] != value}
    changed |= {key for key, value in recipe.items() if not isinstance(value, dict) and ran[key] != value}
    allowed = set(QUICK) | {"model.name", "output_dir"} | ({"data.source"} if data else set()) \
        | ({"data.oversample"} if isinstance(raw["data"].get("oversample"), int) else set())
    assert changed <= allowed, changed - allowed
