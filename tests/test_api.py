"""The Python API (textlora.train / load_run / compare / sweep, Run) on the tiny BERT: the objects
it returns hold exactly the run record's numbers, and user errors raise TextloraError."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import pytest
import yaml

import textlora
from conftest import tiny_overrides
from textlora import TextloraError

FAST = {"train.epochs": 1, "baselines": ["tfidf"], "data.n_train": 96}


def settings(tiny_bert_dir: str, reviews_csv: str, out: Path, **extra) -> dict:
    """conftest's tiny settings as a dict of dotted keys (what a notebook passes as overrides)."""
    pairs = (text.split("=", 1) for text in tiny_overrides(tiny_bert_dir, reviews_csv, out))
    return {**{key: yaml.safe_load(value) for key, value in pairs}, **FAST, **extra}


def nested(flat: dict) -> dict:
    """{"lora.r": 2} -> {"lora": {"r": 2}}: a dict recipe as a YAML file would hold it."""
    out: dict = {}
    for key, value in flat.items():
        *sections, last = key.split(".")
        node = out
        for section in sections:
            node = node.setdefault(section, {})
        node[last] = value
    return out


@pytest.fixture(scope="module")
def api_run(tmp_path_factory, tiny_bert_dir, reviews_csv):
    """A run trained through textlora.train from a dict recipe, with overrides on top."""
    out = tmp_path_factory.mktemp("api-runs")
    recipe = nested(settings(tiny_bert_dir, reviews_csv, out, name="from-dict"))
    return textlora.train(recipe, overrides={"lora.r": 4, "seed": 7}, quiet=True)


def test_train_from_a_dict_recipe(api_run):
    assert isinstance(api_run, textlora.Run) and api_run.path.name == "from-dict" and api_run.path.is_dir()
    record = api_run.record
    assert record is api_run.metrics and record.method == "lora" and record.seed == 7
    assert api_run.info["finished"] and api_run.label_names == ["negative", "positive"]
    config = yaml.safe_load((api_run.path / "config.yaml").read_text())
    assert config["lora"]["r"] == 4 and config["train"]["epochs"] == 1 and config["baselines"] == ["tfidf"]
    assert api_run.verdicts == record.verdicts() and api_run.verdicts
    assert "from-dict" in repr(api_run) and f"{record.shipped_row['accuracy']:.4f}" in repr(api_run)


def test_comparison_frame_holds_the_record_numbers(api_run):
    record, frame = api_run.record, api_run.comparison
    assert list(frame.index) == [name for _, name, _ in record.rows()]
    assert list(frame["key"]) == ["tfidf", "finetuned", *(["ensemble"] if record.ensemble else [])]
    assert {"accuracy", "accuracy_low", "accuracy_high", "f1_macro", "f1_macro_low", "f1_macro_high", "roc_auc",
            "roc_auc_low", "roc_auc_high", "ece", "n", "shipped"} <= set(frame.columns)
    for key, name, row in record.rows():
        cells = frame.loc[name]
        for metric in ("accuracy", "f1_macro", "roc_auc"):
            assert cells[metric] == row[metric]
            assert [cells[f"{metric}_low"], cells[f"{metric}_high"]] == list(row["intervals"][metric])
        assert cells["ece"] == row["ece"] and cells["n"] == row["n"]
        assert bool(cells["shipped"]) == (key == record.shipped_kind)
    assert frame["shipped"].sum() == 1


def test_predict_and_load_run_round_trip(api_run):
    from textlora.predict import Predictor

    texts = ["great wonderful superb film", "awful boring terrible plot", "the movie"]
    predictions = api_run.predict(texts)
    assert [p.label for p in predictions] == [p.label for p in Predictor.from_run(api_run.path).predict(texts)]
    for p in predictions:
        assert p.label in api_run.label_names and math.isclose(sum(p.probabilities.values()), 1, abs_tol=1e-6)
        assert p.confidence == max(p.probabilities.values())
    assert api_run.predictor() is api_run.predictor()  # loaded once
    (single,) = api_run.predict("great wonderful superb film")  # one string is one text
    assert single.label == predictions[0].label  # alone in its batch: no padding, same numbers to float rounding
    assert single.probabilities == pytest.approx(predictions[0].probabilities, abs=1e-6)

    again = textlora.load_run(str(api_run.path))
    assert again.record == api_run.record and again.verdicts == api_run.verdicts
    assert again.comparison.equals(api_run.comparison)
    assert [p.probabilities for p in again.predict(texts)] == [p.probabilities for p in predictions]


def test_train_from_a_config_logs_instead_of_printing(tiny_bert_dir, reviews_csv, tmp_path, caplog, capsys):
    """A textlora.config.Config runs as it is (overrides still apply); quiet=False sends the
    pipeline's lines to the "textlora" logger, nothing to stdout."""
    from textlora.config import Config, config_from_dict

    cfg = config_from_dict(nested(settings(tiny_bert_dir, reviews_csv, tmp_path, name="from-config")))
    assert isinstance(cfg, Config)
    with caplog.at_level(logging.INFO, logger="textlora"):
        run = textlora.train(cfg, overrides={"name": "renamed"})
    assert run.path == tmp_path / "renamed" and run.record.name == "renamed"
    messages = [r.getMessage() for r in caplog.records if r.name == "textlora"]
    assert any("run saved to" in m for m in messages) and any("TF-IDF" in m for m in messages)
    assert "run saved to" not in capsys.readouterr().out
    assert textlora.api.make_config(cfg) == cfg  # a Config round-trips unchanged


def test_user_errors_raise_textlora_error(api_run, tiny_bert_dir, reviews_csv, tmp_path):
    base = settings(tiny_bert_dir, reviews_csv, tmp_path)
    with pytest.raises(TextloraError, match="unknown config key 'train.epoch'; did you mean 'train.epochs'"):
        textlora.train(None, overrides={**base, "train.epoch": 4})
    with pytest.raises(TextloraError, match="train.epochs must be"):
        textlora.train(None, overrides={**base, "train.epochs": "many"})
    with pytest.raises(TextloraError, match="recipe 'no/such.yaml' not found"):
        textlora.train("no/such.yaml")
    with pytest.raises(TextloraError, match="already exists"):
        textlora.train(None, overrides={**base, "output_dir": str(api_run.path.parent), "name": "from-dict"})
    with pytest.raises(TextloraError, match="is not a textlora run folder"):
        textlora.load_run(tmp_path)
    with pytest.raises(TextloraError, match="grid"):
        textlora.sweep(None, {"lora.r": 4})
    assert not list(tmp_path.glob("*/run.json"))  # nothing was trained


@pytest.mark.parametrize("values", [[4, 8], [1e-4, 5e-4], [["query", "value"], ["query"]], ["head", "head_tail"],
                                    [True, False], [None, "majority"]])
def test_grid_values_reach_the_sweep_unchanged(values):
    from textlora.sweep import parse_grid

    assert parse_grid([textlora.api._grid_spec("some.key", values)]) == {"some.key": values}


def test_sweep_from_a_recipe_file(tiny_bert_dir, reviews_csv, tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(nested(settings(tiny_bert_dir, reviews_csv, tmp_path / "unused",
                                                     **{"data.n_train": 64}))))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder = textlora.sweep(recipe, {"lora.r": [2, 4]}, overrides={"seed": 3}, out=tmp_path / "sweep", quiet=True)
    assert not [w for w in caught if "failed" in str(w.message)]  # a failed point would be a warning
    assert folder == tmp_path / "sweep" and (folder / "summary.csv").is_file()
    points = [textlora.load_run(path) for path in sorted((folder / "runs").iterdir())]
    assert {run.record.seed for run in points} == {3}

    frame = textlora.compare(points)  # one row per run, every cell from its record
    assert list(frame.index) == ["r=2", "r=4"] and frame["trainable"].iloc[0] < frame["trainable"].iloc[1]
    for run in points:
        record, row = run.record, frame.loc[run.path.name]
        assert row["method"] == record.method and row["shipped"] == record.shipped_kind
        assert row["accuracy"] == record.final["accuracy"] and row["f1_macro"] == record.final["f1_macro"]
        assert [row["accuracy_low"], row["accuracy_high"]] == list(record.final["intervals"]["accuracy"])
        assert row["trainable"] == record.params["trainable"]
        assert row["train_seconds"] == record.timing["train_seconds"] and row["n"] == record.final["n"]
        assert row["shipped_accuracy"] == record.shipped_row["accuracy"]
    assert textlora.compare(folder / "runs" / "r=2").index.tolist() == ["r=2"]  # a single path


def test_import_is_light_and_the_api_names_keep_their_modules():
    """`import textlora` loads no torch/pandas; textlora.train / compare / sweep are the API's
    functions when called and still the modules of those names (train.py, compare.py, sweep.py)."""
    import subprocess
    import sys

    code = ("import sys, textlora; heavy = [m for m in ('torch', 'transformers', 'pandas') if m in sys.modules]; "
            "assert not heavy, heavy; assert textlora.load_run.__module__ == 'textlora.api'")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
    import textlora.sweep as sweep_module

    assert sweep_module is sys.modules["textlora.sweep"] is textlora.sweep and callable(textlora.sweep)
    assert textlora.compare.load_runs and textlora.train.train_model and callable(textlora.train)
