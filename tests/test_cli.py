"""Bad input through the real `textlora` command: one line, exit code 2, nothing left behind."""

import subprocess
import sys

import pytest

from conftest import sets, tiny_overrides


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




# The whole bad-input matrix runs in-process in test_bad_input.py; these few go
# through a real subprocess: the installed entry point exits 2 with one line.
@pytest.mark.parametrize(
    "extra, pattern",
    [
        ({"data.text_column": "review"}, "text column 'review' not in .*columns that exist: text, label"),
        ({"lora.rank": 8}, "unknown config key 'lora.rank'.*did you mean 'lora.r'"),
    ],
)
def test_bad_train_input(extra, pattern, tiny_bert_dir, reviews_csv, out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)  # exists before: "nothing written" is then checked, not assumed
    result = textlora("train", *sets(tiny_overrides(tiny_bert_dir, reviews_csv, out_dir, name="bad", **extra)))
    assert_user_error(result, pattern)
    assert list(out_dir.iterdir()) == []  # no run folder, not even a hidden partial one


def test_predict_on_a_folder_that_is_not_a_run(tmp_path):
    assert_user_error(textlora("predict", tmp_path, "hello"), "not a textlora run folder")
    assert_user_error(textlora("predict", tmp_path / "missing", "hello"), "does not exist")


def test_predict_prints_label_confidence_and_probabilities(tiny_run):
    # texts on both sides of an option
    result = textlora("predict", tiny_run, "great wonderful superb loved film", "--batch-size", "1",
                      "terrible awful worst dull")
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
