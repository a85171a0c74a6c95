"""Bad input through the real `textlora` command: one line, exit code 2, nothing left behind."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import synthetic_reviews, tiny_overrides


def textlora(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "textlora.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def assert_user_error(result, pattern):
    import re

    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(pattern, lines[-1]), lines[-1]


@pytest.fixture
def out_dir(tmp_path):
    return tmp_path / "runs"


def sets(overrides):
    return [arg for o in overrides for arg in ("--set", o)]


@pytest.mark.parametrize(
    "extra, pattern",
    [
        ({"data.source": "/nonexistent/reviews.csv"}, "data path .* does not exist"),
        ({"data.text_column": "review"}, "text column 'review' not in .*columns that exist: text, label"),
        ({"data.label_column": "stars"}, "label column 'stars'.*columns that exist"),
        ({"lora.r": 0}, "lora.r must be a positive integer"),
        ({"lora.dropout": 1.5}, r"lora.dropout must be in \[0, 1\)"),
        ({"lora.rank": 8}, "unknown config key 'lora.rank'.*did you mean 'lora.r'"),
        ({"train.epochs": "many"}, "train.epochs must be float"),
        ({"model.name": "./no/such/model"}, "model path .* does not exist"),
        ({"lora.target_modules": "[nothing_here]"}, "match nothing in this model; modules that exist: .*query"),
    ],
)
def test_bad_train_input(extra, pattern, tiny_bert_dir, reviews_csv, out_dir):
    result = textlora("train", *sets(tiny_overrides(tiny_bert_dir, reviews_csv, out_dir, name="bad", **extra)))
    assert_user_error(result, pattern)
    assert not (out_dir / "bad").exists()
    assert not list(out_dir.glob(".*")) if out_dir.exists() else True


def test_one_class_data(tiny_bert_dir, tmp_path, out_dir):
    frame = synthetic_reviews(60)
    frame["label"] = "positive"
    path = tmp_path / "one.csv"
    frame.to_csv(path, index=False)
    result = textlora("train", *sets(tiny_overrides(tiny_bert_dir, str(path), out_dir, name="bad")))
    assert_user_error(result, "one class only")
    assert not (out_dir / "bad").exists()


def test_empty_test_split(tiny_bert_dir, tmp_path, out_dir):
    synthetic_reviews(60).to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "test.csv").write_text("text,label\n")
    result = textlora("train", *sets(tiny_overrides(tiny_bert_dir, str(tmp_path), out_dir, name="bad")))
    assert_user_error(result, "test split has no usable rows")


def test_existing_run_is_not_overwritten(tiny_run, tiny_bert_dir, reviews_csv):
    before = (tiny_run / "metrics.json").read_bytes()
    result = textlora("train", *sets(tiny_overrides(tiny_bert_dir, reviews_csv, tiny_run.parent, name=tiny_run.name)))
    assert_user_error(result, "already exists; pass --overwrite")
    assert (tiny_run / "metrics.json").read_bytes() == before


def test_predict_on_a_folder_that_is_not_a_run(tmp_path):
    assert_user_error(textlora("predict", tmp_path, "hello"), "not a textlora run folder")
    assert_user_error(textlora("predict", tmp_path / "missing", "hello"), "does not exist")


def test_predict_with_missing_labels_file(tiny_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    (copy / "labels.json").unlink()
    assert_user_error(textlora("predict", copy, "hello"), "missing labels.json")


def test_predict_with_truncated_adapter(tiny_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    weights = copy / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert_user_error(textlora("predict", copy, "hello"), "corrupt or truncated")


def test_predict_prints_label_confidence_and_probabilities(tiny_run):
    result = textlora("predict", tiny_run, "great wonderful superb loved film", "terrible awful worst dull")
    assert result.returncode == 0, result.stderr
    assert "Prediction: positive" in result.stdout and "Prediction: negative" in result.stdout
    assert "Probabilities - negative: " in result.stdout


def test_predict_file_to_csv(tiny_run, tmp_path):
    import pandas as pd

    source = tmp_path / "in.csv"
    pd.DataFrame({"review": ["great superb wonderful loved", "awful dull worst boring"]}).to_csv(source, index=False)
    out = tmp_path / "out.csv"
    result = textlora("predict", tiny_run, "--input", source, "--text-column", "review", "--output", out)
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["text", "label", "confidence", "prob_negative", "prob_positive"]
    assert list(frame.label) == ["positive", "negative"]
    assert (frame.prob_negative + frame.prob_positive).round(6).eq(1).all()
    assert_user_error(textlora("predict", tiny_run, "--input", source, "--text-column", "nope"), "text column 'nope' not in")
    assert_user_error(textlora("predict", tiny_run, "--input", source, "--text-column", "review", "--output", out),
                      "already exists; pass --overwrite")


def test_help_explains_commands():
    result = textlora("--help")
    assert result.returncode == 0 and "train" in result.stdout and "predict" in result.stdout
    result = textlora("train", "--help")
    assert "--set" in result.stdout and "example:" in result.stdout
