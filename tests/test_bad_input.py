"""The bad-input matrix: every case through `textlora.cli.main`, as a user meets it.

Each must end with exit code 2 and one line `error: ...` that names the fix,
no traceback, no run folder (not even a hidden partial one) and nothing that
existed before changed. The HTTP side (413 / 422 / 401 / 404) is in
test_serve.py; test_cli.py runs a few of these through a real subprocess.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import sets, synthetic_reviews, tiny_overrides
from textlora.cli import main


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, err


def assert_one_line_error(code: int, err: str, pattern: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(pattern, lines[0]), lines[0]




def write_csv(path: Path, frame: pd.DataFrame) -> str:
    frame.to_csv(path, index=False)
    return str(path)


# --------------------------------------------------------------------------- data and config: textlora train

def _non_utf8(tmp):
    path = tmp / "latin.csv"
    path.write_bytes("text,label\n".encode() + "".join(f"caf\xe9 {w},{i % 2}\n" for i, w in enumerate("abcdefghij" * 4))
                     .encode("latin-1"))
    return {"data.source": str(path)}


def _empty_texts(tmp):
    frame = synthetic_reviews(60)
    frame.loc[[4, 9], "text"] = "  "
    return {"data.source": write_csv(tmp / "d.csv", frame)}


def _blank_labels(tmp):
    frame = synthetic_reviews(60)
    frame.loc[3, "label"] = None
    frame.loc[7, "label"] = ""
    return {"data.source": write_csv(tmp / "d.csv", frame)}


def _unseen_eval_label(tmp):
    write_csv(tmp / "train.csv", synthetic_reviews(60))
    test = synthetic_reviews(20)
    test.loc[0, "label"] = "neutral"
    write_csv(tmp / "test.csv", test)
    return {"data.source": str(tmp)}


def _one_class(tmp):
    frame = synthetic_reviews(60)
    frame["label"] = "positive"
    return {"data.source": write_csv(tmp / "d.csv", frame)}


def _two_rows(tmp):
    return {"data.source": write_csv(tmp / "d.csv", synthetic_reviews(2))}


def _n_train_over_a_tiny_file(tmp):
    return {"data.source": write_csv(tmp / "d.csv", synthetic_reviews(3)), "data.n_train": 16}


def _one_class_tiny_file(tmp):
    frame = synthetic_reviews(2)
    frame["label"] = "positive"
    return {"data.source": write_csv(tmp / "d.csv", frame), "data.n_train": 16}


def _ragged_csv(tmp):
    path = tmp / "ragged.csv"
    rows = synthetic_reviews(40)
    text = "text,label\n" + "".join(f"{t},{lab}\n" for t, lab in zip(rows.text, rows.label))
    path.write_text(text + "a good film,positive,oops,another field\n")
    return {"data.source": str(path)}


def _parquet_without_column(tmp):
    path = tmp / "d.parquet"
    synthetic_reviews(60).rename(columns={"text": "review"}).to_parquet(path)
    return {"data.source": str(path)}


def _empty_test_split(tmp):
    write_csv(tmp / "train.csv", synthetic_reviews(60))
    (tmp / "test.csv").write_text("text,label\n")
    return {"data.source": str(tmp)}


def _no_data_files(tmp):
    (tmp / "notes.md").write_text("nothing here")
    return {"data.source": str(tmp)}


def _unsupported_file(tmp):
    path = tmp / "d.xlsx"
    path.write_bytes(b"PK\x03\x04")
    return {"data.source": str(path)}


TRAIN_CASES = {
    # data
    "non-utf8-bytes": (_non_utf8, r"not valid UTF-8 .*re-save the file as UTF-8"),
    "empty-texts": (_empty_texts, r"2 row\(s\) of the train split have an empty text.*data.drop_invalid=true"),
    "nan-and-blank-labels": (_blank_labels, r"2 row\(s\) .*missing label.*data.drop_invalid=true"),
    "label-only-in-eval": (_unseen_eval_label, r"'neutral' appears in the test split but not among the classes"),
    "one-class-training-split": (_one_class, r"one class only \('positive'\).*at least two"),
    # Too few rows: the message says how many there are and which setting asked for what.
    "two-row-file": (_two_rows, r"data.test_size 0.25 \(test rows carved from train\) is 0 rows of the 2 usable "
                                r"row\(s\).*give more rows, a test file"),
    "n-train-over-a-tiny-file": (_n_train_over_a_tiny_file,
                                 r"training rows have one class only .*1 row\(s\) left to train on of the 3 usable "
                                 r"ones \(test: 1, validation: 1\).*give more rows"),
    "one-class-tiny-file": (_one_class_tiny_file, r"same label: one class only \('positive'\) in 2 row\(s\)"),
    "ragged-csv-row": (_ragged_csv, r"could not be parsed .*fix that row or quote its fields"),
    "parquet-without-the-column": (_parquet_without_column, r"text column 'text' not in .*columns that exist: review"),
    "empty-test-split": (_empty_test_split, r"the test split has no usable rows"),
    "folder-without-data": (_no_data_files, r"holds no data file"),
    "unsupported-file-type": (_unsupported_file, r"unsupported file type '.xlsx'; use one of"),
    "missing-data-path": (lambda tmp: {"data.source": str(tmp / "nope.csv")}, r"data path .* does not exist"),
    "missing-text-column": (lambda tmp: {"data.text_column": "review"}, r"text column 'review' not in .*label"),
    "missing-label-column": (lambda tmp: {"data.label_column": "stars"}, r"label column 'stars'.*columns that exist"),
    # config
    "unknown-key": (lambda tmp: {"lora.rank": 8}, r"unknown config key 'lora.rank'; did you mean 'lora.r'"),
    "unknown-section": (lambda tmp: {"optim.lr": 1}, r"unknown config key 'optim'"),
    "wrong-type": (lambda tmp: {"train.epochs": "many"}, r"train.epochs must be float, got 'many'"),
    "rank-zero": (lambda tmp: {"lora.r": 0}, r"lora.r must be a positive integer"),
    "alpha-negative": (lambda tmp: {"lora.alpha": -4}, r"lora.alpha must be > 0"),
    "dropout-out-of-range": (lambda tmp: {"lora.dropout": 1.5}, r"lora.dropout must be in \[0, 1\)"),
    "learning-rate-out-of-range": (lambda tmp: {"train.learning_rate": 3}, r"train.learning_rate must be in \(0, 1\)"),
    "epochs-zero": (lambda tmp: {"train.epochs": 0}, r"train.epochs must be > 0"),
    "unknown-method": (lambda tmp: {"method": "qlora"}, r"unknown method 'qlora'.*choose one of: lora, rslora"),
    "target-matches-nothing": (lambda tmp: {"lora.target_modules": "[q_proj]"},
                               r"match nothing in this model; modules that exist: .*query, key, value"),
    "missing-model-path": (lambda tmp: {"model.name": "./no/such/model"}, r"model path .* does not exist"),
    "label-words-on-an-encoder": (lambda tmp: {"model.objective": "label_words"},
                                  r"label_words needs an encoder-decoder model"),
    "prompt-without-text": (lambda tmp: {"prompt.template": "Classify"}, r"must contain \{text\} exactly once"),
    "chunk-overlap-too-big": (lambda tmp: {"model.truncation": "chunks", "model.chunk_overlap": 20},
                              r"model.chunk_overlap must be between 0 and max_length / 2 - 1, got 20"),
    "unknown-truncation": (lambda tmp: {"model.truncation": "middle"}, r"model.truncation must be one of "),
    # The tiny BERT has 128 position embeddings (MiniLM: 512): more tokens fail deep in the forward pass.
    "max-length-over-positions": (lambda tmp: {"model.max_length": 100000},
                                  r"model.max_length 100000 is more than .* can read \(128 positions\); set "
                                  r"model.max_length to 128 or less.*truncation: head_tail.*chunks"),
}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_bad_training_input(case, capsys, tmp_path, tiny_bert_dir, reviews_csv):
    make, pattern = TRAIN_CASES[case]
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    out = tmp_path / "runs"
    overrides = tiny_overrides(tiny_bert_dir, reviews_csv, out, name="bad", **{"train.epochs": 1, **make(data_dir)})
    code, err = run_cli(capsys, "train", *sets(overrides), "--quiet")
    assert_one_line_error(code, err, pattern)
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())  # no run, no hidden partial


def test_recipe_and_override_syntax(capsys, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nlora: [r: 8\n")
    assert_one_line_error(*run_cli(capsys, "train", broken), r"is not valid YAML .*fix the syntax")
    assert_one_line_error(*run_cli(capsys, "train", tmp_path / "missing.yaml"), r"recipe .* not found")
    assert_one_line_error(*run_cli(capsys, "train", "--set", "lora.r"), r"--set 'lora.r' must look like key=value")
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    assert_one_line_error(*run_cli(capsys, "train", listed), r"must be a YAML mapping")


def test_a_one_megabyte_text_is_truncated_not_refused(capsys, tmp_path, tiny_bert_dir):
    frame = synthetic_reviews(80)
    frame.loc[0, "text"] = "great " * 175_000  # ~1 MB
    data = write_csv(tmp_path / "big.csv", frame)
    out = tmp_path / "runs"
    overrides = tiny_overrides(tiny_bert_dir, data, out, name="big", baselines="[]", **{"train.epochs": 1})
    code, err = run_cli(capsys, "train", *sets(overrides), "--quiet")
    assert code == 0, err
    import json

    lengths = json.loads((out / "big" / "metrics.json").read_text())["data"]["token_lengths"]
    assert lengths["max"] > 100_000 and lengths["truncated_share"] > 0


# --------------------------------------------------------------------------- run folders: predict


def _copy(run: Path, tmp: Path) -> Path:
    copy = tmp / "copy"
    shutil.copytree(run, copy)
    return copy


def _truncated_adapter(run, tmp):
    copy = _copy(run, tmp)
    weights = copy / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    return [copy]


def _garbage_adapter(run, tmp):
    copy = _copy(run, tmp)
    (copy / "adapter" / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    return [copy]


def _pickled_adapter(run, tmp):
    copy = _copy(run, tmp)
    (copy / "adapter" / "adapter_model.safetensors").rename(copy / "adapter" / "adapter_model.bin")
    return [copy]


def _labels_missing(run, tmp):
    copy = _copy(run, tmp)
    (copy / "labels.json").unlink()
    return [copy]


def _unfinished(run, tmp):
    import json

    copy = _copy(run, tmp)
    info = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**info, "finished": False}))
    return [copy]


def _corrupt_marker(run, tmp):
    copy = _copy(run, tmp)
    (copy / "run.json").write_text("{not json")
    return [copy]


def _other_base(run, tmp):
    import torch
    from transformers import BertConfig, BertModel

    other = tmp / "other-bert"
    torch.manual_seed(1)
    BertModel(BertConfig(vocab_size=30522, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(other)
    return [run, "--model", other]


def _trust_needed(run, tmp):
    import yaml

    copy = _copy(run, tmp)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["model"]["trust_remote_code"] = True
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    return [copy]


PREDICT_CASES = {
    "run-folder-missing": (lambda run, tmp: [tmp / "nowhere"], r"run folder .* does not exist"),
    "not-a-run-folder": (lambda run, tmp: [tmp], r"is not a textlora run folder \(no run.json\)"),
    "unfinished-run": (_unfinished, r"did not finish; resume or re-run its training first"),
    "corrupt-run-marker": (_corrupt_marker, r"run.json is corrupt; re-run training"),
    "adapter-truncated": (_truncated_adapter, r"corrupt or truncated, re-train or restore the run"),
    "adapter-garbage": (_garbage_adapter, r"corrupt or truncated, re-train or restore the run"),
    "adapter-pickled": (_pickled_adapter, r"has no adapter_model.safetensors; textlora reads safetensors only"),
    "adapter-on-another-base": (_other_base, r"differs from the one this adapter was trained on"),
    "labels-file-missing": (_labels_missing, r"is missing labels.json; the folder is incomplete"),
    "remote-code-not-trusted": (_trust_needed, r"trust_remote_code .*pass --trust-remote-code"),
}


@pytest.mark.parametrize("case", list(PREDICT_CASES))
def test_bad_run_folder(case, capsys, tmp_path, tiny_run):
    make, pattern = PREDICT_CASES[case]
    before = {p: p.stat().st_mtime_ns for p in tiny_run.rglob("*")}
    code, err = run_cli(capsys, "predict", *make(tiny_run, tmp_path), "a great film")
    assert_one_line_error(code, err, pattern)
    assert {p: p.stat().st_mtime_ns for p in tiny_run.rglob("*")} == before  # the real run is untouched


def test_nothing_is_overwritten_without_overwrite(capsys, tmp_path, tiny_run, tiny_bert_dir, reviews_csv):
    snapshot = {p: p.read_bytes() for p in tiny_run.rglob("*") if p.is_file()}
    overrides = tiny_overrides(tiny_bert_dir, reviews_csv, tiny_run.parent, name=tiny_run.name)
    assert_one_line_error(*run_cli(capsys, "train", *sets(overrides)), r"already exists; pass --overwrite")
    assert {p: p.read_bytes() for p in tiny_run.rglob("*") if p.is_file()} == snapshot

    existing = tmp_path / "out.csv"
    existing.write_text("keep me\n")
    assert_one_line_error(*run_cli(capsys, "predict", tiny_run, "good", "--output", existing),
                          r"output .* already exists; pass --overwrite")
    assert existing.read_text() == "keep me\n"


def test_bad_predict_input_file(capsys, tmp_path, tiny_run):
    source = tmp_path / "in.csv"
    pd.DataFrame({"review": ["good"]}).to_csv(source, index=False)
    assert_one_line_error(*run_cli(capsys, "predict", tiny_run, "--input", source), r"text column 'text' not in")
    assert_one_line_error(*run_cli(capsys, "predict", tiny_run, "--input", tmp_path / "none.csv"), r"does not exist")
    assert_one_line_error(*run_cli(capsys, "predict", tiny_run), r"no text to classify")


def test_empty_texts_are_refused_not_classified(capsys, tmp_path, tiny_run):
    """An empty or blank text would still get a confident label: refused, naming which one."""
    assert_one_line_error(*run_cli(capsys, "predict", tiny_run, "a great film", "   "),
                          r"^error: text argument 2 is empty; give only texts with words in them$")
    assert_one_line_error(*run_cli(capsys, "predict", tiny_run, "", "\t\n", "fine"),
                          r"text argument 1 is empty \(and 1 more\)")
    source = tmp_path / "in.csv"
    pd.DataFrame({"id": [1, 2, 3, 4], "text": ["good", None, "bad", " "]}).to_csv(source, index=False)
    out = tmp_path / "out.csv"
    assert_one_line_error(*run_cli(capsys, "predict", tiny_run, "fine", "--input", source, "--output", out),
                          rf"row 2 of {re.escape(str(source))} is empty \(and 1 more\)")
    assert not out.exists() and not list(tmp_path.glob(".out.csv*"))  # nothing half-written


def test_position_limits_per_family(tmp_path):
    """Learned absolute positions bound max_length (RoBERTa-like: two rows are never positions);
    relative (T5), rotary (Llama) and ALiBi (Bloom) positions do not."""
    from transformers import BertConfig, BloomConfig, GPT2Config, LlamaConfig, RobertaConfig, T5Config

    from textlora.config import load_config
    from textlora.errors import TextloraError
    from textlora.models import check_max_length, position_limit

    assert position_limit(BertConfig(max_position_embeddings=512)) == 512
    assert position_limit(RobertaConfig(max_position_embeddings=514)) == 512
    assert position_limit(GPT2Config(n_positions=1024)) == 1024
    assert position_limit(T5Config()) is None
    assert position_limit(LlamaConfig(max_position_embeddings=2048)) is None
    assert position_limit(BloomConfig()) is None
    roberta = tmp_path / "roberta"
    RobertaConfig(max_position_embeddings=514).save_pretrained(roberta)
    check_max_length(load_config(None, [f"model.name={roberta}", "model.max_length=512"]), str(roberta))
    with pytest.raises(TextloraError, match=r"max_length 513 .*\(512 positions\)"):
        check_max_length(load_config(None, [f"model.name={roberta}", "model.max_length=513"]), str(roberta))
    t5 = tmp_path / "t5"
    T5Config().save_pretrained(t5)
    check_max_length(load_config(None, [f"model.name={t5}", "model.max_length=100000"]), str(t5))


@pytest.mark.parametrize("args, pattern", [
    (("predict", "RUN", "--precision", "fp8", "a great film"), r"--precision: invalid choice: 'fp8'.*textlora predict --help"),
    (("serve", "RUN", "--precision", "fp8"), r"--precision: invalid choice: 'fp8'.*textlora serve --help"),
    (("predict", "RUN", "--batch-size", "many", "a great film"), r"--batch-size: invalid int value: 'many'"),
    (("train", "--no-such-flag"), r"unrecognized arguments: --no-such-flag"),
])
def test_bad_flags_get_one_line_and_exit_2(capsys, tiny_run, args, pattern):
    """argparse's own errors (bad choice, bad type, unknown flag) end like every other user error."""
    with pytest.raises(SystemExit) as stopped:
        main([str(tiny_run) if a == "RUN" else a for a in args])
    assert_one_line_error(stopped.value.code, capsys.readouterr().err, pattern)
