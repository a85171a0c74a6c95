"""textlora.audit: duplicates, leakage, conflicts, label issues, dedupe, and the `audit` command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_reviews

from textlora.audit import NEAR_THRESHOLD, apply_dedupe, audit_splits, near_duplicate_pairs, normalise
from textlora.cli import main
from textlora.config import DataConfig, load_config
from textlora.data import Splits, load_splits
from textlora.errors import TextloraError

NAMES = ["negative", "positive"]
# 30 distinct words; the near duplicate changes the last one, so 27 of its 28 word
# 3-shingles are shared: Jaccard 27 / 29 = 0.93, comfortably over 0.8.
LONG = ("the director keeps every scene moving with quiet confidence while the cast trades sharp lines "
        "about money family and a stolen painting that nobody in town seems to want back tonight")
NEAR = LONG.rsplit(" ", 1)[0] + " anymore"


def rows(texts, labels) -> pd.DataFrame:
    return pd.DataFrame({"text": list(texts), "label": np.asarray(labels, dtype=np.int64)})


def as_ids(frame: pd.DataFrame) -> pd.DataFrame:
    return rows(frame["text"], (frame["label"] == "positive").astype(int))


@pytest.fixture(scope="module")
def crafted() -> Splits:
    """Synthetic reviews (no duplicates, no near duplicates among them) plus one of each problem."""
    train = as_ids(synthetic_reviews(120))
    validation = as_ids(synthetic_reviews(20, seed=1))
    test = as_ids(synthetic_reviews(40, seed=2))
    train = pd.concat([train, rows([LONG, "Same words, two labels", "same words,  TWO labels", NEAR],
                                   [1, 0, 1, 1])], ignore_index=True)  # rows 120..123
    # test 40: train row 7 in other case and spacing (leak); 41: the near duplicate of LONG;
    # 42: train row 8's text with the other label (a leak and a conflict)
    t7, t8 = train.text[7], train.text[8]
    test = pd.concat([test, rows(["  " + t7.upper().replace(" ", "   "), NEAR.replace("anymore", "again"), t8],
                                 [train.label[7], 1, 1 - train.label[8]])], ignore_index=True)
    validation = pd.concat([validation, rows(["   ", "too short"], [0, 1])], ignore_index=True)  # rows 20, 21
    return Splits(train=train, validation=validation, test=test, label_names=NAMES)


def by_key(matches):
    return {m.key: m for m in matches}


def test_normalise_lowercases_and_collapses_whitespace():
    assert normalise("  A\tB \n c  ") == "a b c"
    assert normalise(None) == ""


def test_exact_duplicates_and_leakage(crafted):
    report = audit_splits(crafted, oof_max_rows=0)
    exact = by_key(report.exact)
    assert (exact["train"].rows, exact["train"].examples) == (1, [(122, 121)])  # "same words, two labels"
    assert report.leakage() == {"validation": 0, "test": 2}
    assert exact["test_in_train"].examples == [(40, 7), (42, 8)]
    assert exact["test_in_validation"].rows == 0
    assert report.as_dict()["leakage"] == {"validation": 0, "test": 2}


def test_near_duplicates_exclude_exact_ones(crafted):
    report = audit_splits(crafted, oof_max_rows=0)
    near = by_key(report.near)
    # LONG / NEAR in train (rows 120, 123), NEAR / the test variant, LONG / the test variant: 3 pairs of texts
    assert report.near_pairs == 3
    assert (near["train"].rows, near["train"].examples) == (1, [(123, 120)])
    assert (near["test_in_train"].rows, near["test_in_train"].examples) == (1, [(41, 120)])
    assert near["test"].rows == near["validation"].rows == near["validation_in_train"].rows == 0
    # the exact leaks (test rows 40 and 42) are not near duplicates too
    assert all(row not in (40, 42) for row, _ in near["test_in_train"].examples)


def test_near_duplicate_pairs_threshold():
    words = LONG.split()
    far = " ".join(words[:10] + ["x", "y", "z"] + words[13:])  # 5 shingles lost: Jaccard 23 / 33 = 0.70
    assert NEAR_THRESHOLD == 0.8
    assert near_duplicate_pairs([LONG, NEAR, far, "", ""]) == [(0, 1)]
    assert near_duplicate_pairs(["one", "one two"]) == []  # under 3 words, words are the shingles: 1 / 2


def test_label_conflicts_empty_short(crafted):
    report = audit_splits(crafted, oof_max_rows=0)
    conflicts = by_key(report.conflicts)
    assert (conflicts["train"].rows, conflicts["train"].examples) == (2, [(121, 122), (122, 121)])
    assert (conflicts["test_in_train"].rows, conflicts["test_in_train"].examples) == (1, [(42, 8)])
    assert report.empty == {"train": 0, "validation": 1, "test": 0}
    assert report.short == {"train": 0, "validation": 1, "test": 0}
    text = "\n".join(report.lines())
    assert "test: 2 row(s) also in train (rows 40~7, 42~8)" in text
    assert "train: 2 row(s) share their text with a row of another label" in text
    assert "Label check: skipped" in text


def test_small_classes_and_token_lengths():
    train = rows(["a b c", "d e f", "g h i"], [0, 0, 1])
    test = rows(["j k l", "m n o"], [0, 0])
    splits = Splits(train, rows([], []), test, ["a", "b"])
    report = audit_splits(splits, max_length=4, token_lengths={"train": [3, 5, 9], "test": [4, 4]}, oof_max_rows=0)
    assert report.small_classes == ["'b' has 1 training row(s) (need 2+)", "'b' has no test rows"]
    assert report.too_long == {"train": {"rows": 2, "share": 2 / 3}, "test": {"rows": 0, "share": 0.0}}
    assert report.class_counts["test"] == {"a": 2, "b": 0}
    with pytest.raises(TextloraError, match="one count per row"):
        audit_splits(splits, max_length=4, token_lengths={"train": [3]}, oof_max_rows=0)
    with pytest.raises(TextloraError, match="need max_length"):
        audit_splits(splits, token_lengths={"train": [3, 5, 9]}, oof_max_rows=0)
    assert audit_splits(splits).label_check == "fewer than two classes with 2+ rows"


def test_out_of_fold_check_finds_the_flipped_label():
    train = as_ids(synthetic_reviews(200))
    flipped = train.copy()
    flipped.loc[10, "label"] = 1 - flipped.label[10]
    test = as_ids(synthetic_reviews(60, seed=3))
    report = audit_splits(Splits(flipped, rows([], []), test, NAMES), n_candidates=3)
    issues = report.label_issues
    assert (issues.checked, issues.total, issues.folds) == (260, 260, 5)
    top = issues.candidates[0]
    assert (top.split, top.row, top.text) == ("train", 10, train.text[10])
    assert (top.given, top.predicted) == (NAMES[flipped.label[10]], NAMES[train.label[10]])
    assert top.given_probability < 0.2 < 0.5 < issues.candidates[1].given_probability  # far below the rest
    assert len(issues.candidates) == 3
    probs = [c.given_probability for c in issues.candidates]
    assert probs == sorted(probs)
    # the same data with the right label: row 10 is not the top candidate
    clean = audit_splits(Splits(train, rows([], []), test, NAMES), n_candidates=3).label_issues
    assert all((c.split, c.row) != ("train", 10) for c in clean.candidates)
    assert clean.candidates[0].given_probability > 0.4
    # candidates come from the rows under their class's threshold, counted per split
    assert set(issues.below_threshold) == {"train", "test"} and sum(issues.below_threshold.values()) >= 3
    # sampled: a stratified, seeded sample of the pooled rows
    sampled = audit_splits(Splits(flipped, rows([], []), test, NAMES), oof_max_rows=100).label_issues
    assert (sampled.checked, sampled.total) == (100, 260)
    json.dumps(report.as_dict())  # metrics.json can hold it


# --------------------------------------------------------------------------- dedupe


@pytest.fixture()
def dupes() -> Splits:
    train = rows(["a b c", "A  b c", "d e f", "g h i"], [0, 0, 1, 1])
    validation = rows(["d e f", "x y z", "x y z"], [1, 0, 0])
    test = rows(["g h i", "G H I", "p q r", "p q r", "s t u"], [1, 1, 0, 0, 1])
    return Splits(train, validation, test, ["neg", "pos"], notes=["earlier note"])


def test_dedupe_modes_drop_exactly_their_rows(dupes):
    same, notes = apply_dedupe(dupes, "none")
    assert same is dupes and notes == []

    across, notes = apply_dedupe(dupes, "across")
    assert across.train.equals(dupes.train)  # training rows are never dropped by across
    assert across.validation.text.tolist() == ["x y z", "x y z"]
    assert across.test.text.tolist() == ["p q r", "p q r", "s t u"]
    assert notes == ["dedupe (across): dropped 1 validation row(s) that repeat a training text",
                     "dedupe (across): dropped 2 test row(s) that repeat a training text"]
    assert across.notes == ["earlier note"]

    within, notes = apply_dedupe(dupes, "within")
    assert within.train.text.tolist() == ["a b c", "d e f", "g h i"]
    assert within.validation.text.tolist() == ["d e f", "x y z"]
    assert within.test.text.tolist() == ["g h i", "p q r", "s t u"]
    assert [n.split(": ")[1] for n in notes] == ["dropped 1 train row(s) that repeat an earlier train row",
                                                "dropped 1 validation row(s) that repeat an earlier validation row",
                                                "dropped 2 test row(s) that repeat an earlier test row"]

    both, notes = apply_dedupe(dupes, "both")
    assert both.train.text.tolist() == ["a b c", "d e f", "g h i"]
    assert both.validation.text.tolist() == ["x y z"]
    assert both.test.text.tolist() == ["p q r", "s t u"]
    assert both.test.label.tolist() == [0, 1] and both.test.index.tolist() == [0, 1]
    assert len(notes) == 5

    with pytest.raises(TextloraError, match="data.dedupe must be one of none, within, across, both"):
        apply_dedupe(dupes, "all")
    leaky = Splits(dupes.train, dupes.validation, dupes.train.copy(), dupes.label_names)
    with pytest.raises(TextloraError, match="every test row repeat a training text.*data.dedupe=none"):
        apply_dedupe(leaky, "across")


def test_load_splits_dedupes_by_default(tmp_path):
    train = synthetic_reviews(80)
    test = pd.concat([synthetic_reviews(30, seed=5), train.iloc[[3, 4, 5]]], ignore_index=True)
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    default = load_splits(DataConfig(source=str(tmp_path)), 0)
    assert DataConfig().dedupe == "across"
    assert len(default.test) == 30 and not set(default.test.text) & set(default.train.text)
    assert "dedupe (across): dropped 3 test row(s) that repeat a training text" in default.notes
    kept = load_splits(DataConfig(source=str(tmp_path), dedupe="none"), 0)
    assert len(kept.test) == 33 and not any("dedupe" in n for n in kept.notes)
    # dedupe runs before oversampling, so `both` keeps oversampling's repeats
    grown = load_splits(DataConfig(source=str(tmp_path), dedupe="both", oversample=60), 0)
    assert np.bincount(grown.train.label).tolist() == [60, 60]
    with pytest.raises(TextloraError, match="unknown data.dedupe 'acros' \\(did you mean 'across'\\?\\)"):
        load_config(None, ["data.dedupe=acros"])


# --------------------------------------------------------------------------- CLI


@pytest.fixture()
def audit_data(tmp_path):
    train = synthetic_reviews(150)
    train = pd.concat([train, train.iloc[[0]]], ignore_index=True)  # one repeat inside train
    test = pd.concat([synthetic_reviews(40, seed=4), train.iloc[[1, 2]]], ignore_index=True)  # two leaks
    folder = tmp_path / "data"
    folder.mkdir()
    train.to_csv(folder / "train.csv", index=False)
    synthetic_reviews(20, seed=6).to_csv(folder / "validation.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: audit-me\ndata:\n  source: nowhere\n  validation_split: validation\n  n_train: 50\n",
                      encoding="utf-8")
    return recipe, folder


def test_audit_command_prints_the_findings(audit_data, capsys):
    recipe, folder = audit_data
    code = main(["audit", str(recipe), "--data", str(folder), "--set", "data.n_train=null", "--candidates", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Data audit: train 151, validation 20, test 42 rows; classes: negative, positive" in out
    assert "  train: 1 row(s) repeat an earlier row (rows 150~0)" in out
    assert "  test: 2 row(s) also in train (rows 40~1, 41~2)" in out
    assert "At training, data.dedupe=across dropped 2 test row(s) that repeat a training text" in out
    assert out.count("  train row ") + out.count("  test row ") + out.count("  validation row ") == 2
    assert "Audit took" in out

    code = main(["audit", str(recipe), "--data", str(folder), "--set", "data.n_train=null", "--json",
                 "--candidates", "0"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["rows"] == {"train": 151, "validation": 20, "test": 42}
    assert report["leakage"] == {"validation": 0, "test": 2}
    assert report["exact_duplicates"]["train"] == {"rows": 1, "examples": [[150, 0]]}
    assert report["label_issues"] is None and report["dedupe"] == "across"


def test_audit_command_counts_tokens(audit_data, capsys, minilm_dir):
    from transformers import AutoTokenizer

    recipe, folder = audit_data
    code = main(["audit", str(recipe), "--data", str(folder), "--set", "model.max_length=8", "--tokens", "--json",
                 "--candidates", "0"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    splits = load_splits(load_config(recipe, [f"data.source={folder}", "data.dedupe=none"]).data, 42)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    over = sum(len(ids) > 8 for ids in tokenizer(splits.test.text.tolist())["input_ids"])
    assert report["too_long"]["test"]["rows"] == over > 0
    assert report["too_long"]["max_length"] == 8


def test_audit_command_bad_input_is_one_line(tmp_path, capsys):
    assert main(["audit", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: recipe") and "not found" in err[0]
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data:\n  source: nowhere.csv\n", encoding="utf-8")
    assert main(["audit", str(recipe), "--candidates", "-1"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: --candidates must be >= 0, got -1"]
    assert main(["audit", str(recipe)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
