"""task: multi_label: label sets from lists and delimited strings, metrics against scikit-learn, thresholds
tuned on validation rows, the one-vs-rest TF-IDF row, the BCE loss, and a tiny model trained end to end."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from textlora.config import load_config
from textlora.errors import TextloraError

TOPICS = ["sports", "politics", "science"]
KEYWORDS = {"sports": ["football", "goal", "match"], "politics": ["election", "senate", "vote"],
            "science": ["atom", "physics", "laboratory"]}
FILLER = ["the", "news", "today", "report", "about", "and", "a", "story", "people", "said"]


def keyword_sets(n: int, seed: int = 0) -> pd.DataFrame:
    """Texts whose labels are exactly the topics whose keywords they contain (some rows none)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        labels = [t for t in TOPICS if rng.random() < 0.4]
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 7))]
        for topic in labels:
            for _ in range(rng.randint(2, 3)):
                words.insert(rng.randrange(len(words) + 1), rng.choice(KEYWORDS[topic]))
        rows.append({"text": " ".join(words), "labels": labels, "tags": "|".join(labels)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def sets_jsonl(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("multilabel") / "topics.jsonl"
    keyword_sets(360).to_json(path, orient="records", lines=True)
    return str(path)


def splits_of(overrides: list[str]):
    from textlora.data import load_splits

    cfg = load_config(None, overrides)
    return load_splits(cfg.data, cfg.seed, cfg.task)


# --------------------------------------------------------------------------- reading label sets


def test_a_list_column_is_read_as_label_sets_and_detected_without_task(sets_jsonl):
    detected = splits_of([f"data.source={sets_jsonl}", "data.label_column=labels"])
    assert detected.task == "multi_label" and detected.label_names == ["politics", "science", "sports"]
    assert any("holds lists" in note for note in detected.notes)
    explicit = splits_of([f"data.source={sets_jsonl}", "data.label_column=labels", "task=multi_label"])
    assert explicit.train["label"].tolist() == detected.train["label"].tolist()
    frame = keyword_sets(360)
    # Every row keeps its set (as sorted label ids), including the empty ones.
    by_text = dict(zip(frame["text"], frame["labels"]))
    for text, ids in zip(explicit.train["text"], explicit.train["label"]):
        assert sorted(explicit.label_names[i] for i in ids) == sorted(by_text[text])
    assert any(ids == () for ids in explicit.train["label"])
    summary = explicit.summary()["splits"]["train"]
    assert summary["class_counts"]["sports"] == sum(2 in ids for ids in explicit.train["label"])


def test_a_delimited_column_and_label_names_order(tmp_path):
    path = tmp_path / "topics.csv"
    keyword_sets(200).drop(columns=["labels"]).to_csv(path, index=False)
    splits = splits_of([f"data.source={path}", "data.label_column=tags", "task=multi_label",
                        "data.label_separator=|", "data.label_names=[sports, politics, science]"])
    assert splits.label_names == ["sports", "politics", "science"]
    frame = keyword_sets(200)
    by_text = dict(zip(frame["text"], frame["labels"]))
    for text, ids in zip(splits.test["text"], splits.test["label"]):
        assert [splits.label_names[i] for i in ids] == [t for t in splits.label_names if t in by_text[text]]


@pytest.mark.parametrize("rows, overrides, message", [
    ({"train": [["a"], ["b"]] * 20, "test": [["a"], ["c"]] * 5}, [], "'c' (row 1 of the test split) is never in train"),
    ({"train": [[]] * 40, "test": [["a"]] * 10}, [], "every row of the train split has an empty label set"),
    ({"train": ["a|b", "b"] * 20, "test": ["a"] * 10}, [], "set data.label_separator"),
    ({"train": [["a"], ["b"]] * 20, "test": [["a"]] * 10}, ["data.label_names=[a]"], "not among data.label_names"),
])
def test_bad_label_sets_stop_with_one_line(tmp_path, rows, overrides, message):
    for split, labels in rows.items():
        pd.DataFrame({"text": [f"text number {i}" for i in range(len(labels))], "labels": labels}) \
            .to_json(tmp_path / f"{split}.jsonl", orient="records", lines=True)
    with pytest.raises(TextloraError, match=message.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        splits_of([f"data.source={tmp_path}", "data.label_column=labels", "task=multi_label", *overrides])


@pytest.mark.parametrize("overrides, message", [
    (["task=multi_label", "data.oversample=majority"], "data.oversample acts per class"),
    (["task=multi_label", "train.class_weights=balanced"], "use train.pos_weight"),
    (["task=multi_label", "data.label_bins={a: [1, 2], b: [3, 4]}"], "remove data.label_bins"),
    (["data.label_separator=|"], "add task: multi_label"),
    (["train.pos_weight=balanced"], "use train.class_weights"),
    (["task=multi_label", "train.select_metric=accuracy"], "does not apply to task: multi_label"),
    (["task=multi_label", "model.objective=label_words"], "needs a head on the model"),
])
def test_recipe_keys_of_another_task_are_refused(overrides, message):
    with pytest.raises(TextloraError, match=message):
        load_config(None, overrides)


# --------------------------------------------------------------------------- metrics and thresholds


def random_case(n: int = 300, k: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, k)) < 0.3).astype(np.int64)
    probs = np.clip(labels * 0.35 + rng.random((n, k)) * 0.65, 0, 1)
    return labels, probs


def test_metrics_match_scikit_learn():
    from textlora.multilabel import multilabel_metrics

    labels, probs = random_case()
    labels[:, 3] = 0  # a label with no positive row: macro F1 counts it as 0, its ROC-AUC is undefined
    thresholds = np.array([0.4, 0.5, 0.6, 0.5])
    predicted = (probs >= thresholds).astype(np.int64)
    row = multilabel_metrics(labels, probs, list("abcd"), thresholds)
    assert row["f1_micro"] == pytest.approx(skm.f1_score(labels, predicted, average="micro", zero_division=0))
    assert row["f1_macro"] == pytest.approx(skm.f1_score(labels, predicted, average="macro", zero_division=0))
    assert row["f1_samples"] == pytest.approx(skm.f1_score(labels, predicted, average="samples", zero_division=1))
    assert row["subset_accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
    assert row["hamming_loss"] == pytest.approx(skm.hamming_loss(labels, predicted))
    assert row["precision_micro"] == pytest.approx(skm.precision_score(labels, predicted, average="micro"))
    assert row["loss"] == pytest.approx(np.mean([skm.log_loss(labels[:, j], probs[:, j], labels=[0, 1])
                                                 for j in range(4)]), rel=1e-6)
    for j, name in enumerate("abc"):
        assert row["per_label"][name]["roc_auc"] == pytest.approx(skm.roc_auc_score(labels[:, j], probs[:, j]))
        assert row["per_label"][name]["support"] == labels[:, j].sum()
        assert row["per_label"][name]["threshold"] == thresholds[j]
    assert row["per_label"]["d"]["roc_auc"] is None and row["per_label"]["d"]["f1"] == 0
    assert row["roc_auc"] == pytest.approx(np.mean([row["per_label"][n]["roc_auc"] for n in "abc"]))


def test_thresholds_are_the_best_f1_on_the_grid_nearest_half_on_ties():
    from textlora.multilabel import THRESHOLD_GRID, tune_thresholds

    labels = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 1], [0, 0, 0]])
    probs = np.array([[0.3, 0.9, 0.8], [0.25, 0.9, 0.1], [0.1, 0.9, 0.7], [0.05, 0.9, 0.2]])
    tuned = tune_thresholds(labels, probs)
    # Label 0: positives at 0.3 and 0.25, negatives at 0.1 and 0.05: any threshold in (0.1, 0.25] is perfect;
    # the nearest to 0.5 is 0.25. Label 1 has no positive row: 0.5. Label 2: (0.2, 0.7] is perfect -> 0.5.
    assert tuned.tolist() == [0.25, 0.5, 0.5]
    labels, probs = random_case(seed=3)
    tuned = tune_thresholds(labels, probs)
    for j in range(labels.shape[1]):
        best = max(skm.f1_score(labels[:, j], probs[:, j] >= t) for t in THRESHOLD_GRID)
        assert skm.f1_score(labels[:, j], probs[:, j] >= tuned[j]) == pytest.approx(best)


@pytest.mark.parametrize("metric", ["f1_micro", "f1_macro", "f1_samples", "subset_accuracy", "hamming_loss"])
def test_resampled_metrics_equal_the_metrics_of_each_resample(metric):
    from textlora.multilabel import multilabel_metrics, resampled

    labels, probs = random_case(n=60)
    rows = np.random.default_rng(1).integers(0, 60, size=(25, 60))
    values = resampled(metric, labels, probs >= 0.5, rows)
    expected = [multilabel_metrics(labels[r], probs[r], list("abcd"))[metric] for r in rows]
    np.testing.assert_allclose(values, expected, rtol=1e-12)


def test_paired_comparison_and_its_verdict():
    from textlora.taskstats import compare

    labels, probs = random_case(n=400)
    good = labels.astype(bool) | (probs > 0.97)  # nearly right
    noisy = probs >= 0.5
    result = compare("multi_label", labels, good, noisy, "fine-tuned", "TF-IDF + OvR LR", seed=0)
    assert result.metric == "f1_micro" and result.diff > 0 and result.significant and result.better
    assert result.interval[0] > 0 and "significantly better" in result.verdict and "on 400 test texts" in result.verdict
    same = compare("multi_label", labels, noisy, noisy, "a", "b")
    assert same.p == 1.0 and same.second_p == 1.0 and "no significant difference" in same.verdict
    json.dumps(result.as_dict())


# --------------------------------------------------------------------------- the classical row and the loss


def test_one_vs_rest_tfidf_row_saves_and_reloads_bit_identically(tmp_path):
    from textlora.classical import fit_classical, load_classical
    from textlora.multilabel import multi_hot

    frame = keyword_sets(200)
    names = sorted(TOPICS)
    matrix = multi_hot([[names.index(t) for t in labels] for labels in frame["labels"]], 3)
    matrix[:, 1] = 1  # a label on every row: a constant probability, no regression fitted
    model = fit_classical("tfidf", frame["text"], matrix, 3, seed=0, task="multi_label")
    outputs = model.predict_outputs(frame["text"])
    assert outputs.shape == (200, 3) and np.all(outputs[:, 1] > 0.999)
    features = model.vectorizer.transform(frame["text"])
    np.testing.assert_allclose(outputs[:, 0], model.regressions[0].predict_proba(features)[:, 1])
    assert skm.f1_score(matrix[:, [0, 2]], outputs[:, [0, 2]] >= 0.5, average="micro") > 0.9
    model.save(tmp_path / "ovr")
    assert np.array_equal(load_classical(tmp_path / "ovr").predict_outputs(frame["text"]), outputs)
    with pytest.raises(TextloraError, match="task: multi_label has the tfidf row"):
        fit_classical("nbsvm", frame["text"], matrix, 3, task="multi_label")


def test_bce_loss_with_pos_weight_and_accumulation_scaling():
    import torch

    from textlora.losses import MultiLabelLoss, pos_weight_vector

    matrix = np.array([[1, 0], [0, 0], [0, 1], [0, 0]])
    weights = pos_weight_vector("balanced", matrix)
    assert weights.tolist() == [3.0, 3.0]
    logits, labels = torch.randn(4, 2), torch.tensor(matrix, dtype=torch.float32)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, pos_weight=weights)
    assert torch.allclose(MultiLabelLoss(weights)({"logits": logits}, labels), expected)
    # In training the Trainer passes the label entries of the whole accumulation window.
    assert torch.allclose(MultiLabelLoss(weights)({"logits": logits}, labels, num_items_in_batch=16), expected / 2)
    with pytest.raises(TextloraError, match="one per label"):
        pos_weight_vector([1.0], matrix)


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory, minilm_dir, sets_jsonl) -> Path:
    """The packaged MiniLM with LoRA on the keyword sets; `task` is not set: the list column says it."""
    from conftest import train_tiny

    out = tmp_path_factory.mktemp("ml-runs")
    return train_tiny(minilm_dir, sets_jsonl, out, name="topics", **{
        "data.label_column": "labels", "train.epochs": 4, "train.learning_rate": 2e-3, "model.max_length": 32,
        "data.validation_size": 0.15, "baselines": "[tfidf, nbsvm, pre_adaptation]"})


def test_a_multilabel_run_learns_the_keywords_and_says_how_it_compares(multilabel_run):
    import yaml

    from textlora.runs import open_run

    run = open_run(multilabel_run)
    assert run.task == "multi_label" and yaml.safe_load((multilabel_run / "config.yaml").read_text())["task"] == \
        "multi_label"
    assert {p.name for p in multilabel_run.iterdir()} >= {"task.json", "ship.json", "metrics.json", "adapter"}
    record = run.record()
    assert record.task == "multi_label"
    final = record.final
    assert final["f1_micro"] > 0.95 and final["subset_accuracy"] > 0.85, final
    assert set(record.baselines) == {"tfidf", "pre_adaptation"}  # NBSVM is single-label: skipped
    assert record.baselines["pre_adaptation"]["f1_micro"] < 0.7
    for row in (final, *record.baselines.values()):
        assert set(row["intervals"]) == {"f1_micro", "f1_macro", "f1_samples", "subset_accuracy", "hamming_loss"}
        low, high = row["intervals"]["f1_micro"]
        assert low <= row["f1_micro"] <= high
        assert set(row["per_label"]) == set(TOPICS)
    pairs = {(c["a"], c["b"]) for c in record.comparisons}
    assert pairs >= {("finetuned", "tfidf"), ("finetuned", "pre_adaptation")}
    verdict = next(c["verdict"] for c in record.comparisons if c["b"] == "pre_adaptation")
    assert "micro F1" in verdict and "significantly better" in verdict and "test texts" in verdict
    first, last = record.epochs[0], record.epochs[-1]
    assert last["train_loss"] < first["train_loss"] and "f1_micro" in last and "per_label" in last


def test_thresholds_are_tuned_on_validation_and_reloaded(multilabel_run):
    """task.json holds the thresholds tuned on the validation rows; predict applies exactly those, and
    gives back metrics.json's final row from the saved probabilities."""
    from textlora.config import config_from_dict
    from textlora.data import load_splits
    from textlora.multilabel import multi_hot, multilabel_metrics, tune_thresholds
    from textlora.predict import Predictor
    from textlora.runs import open_run

    run = open_run(multilabel_run)
    record, stored = run.record(), run.task_file["thresholds"]
    assert record.selection["thresholds"] == stored
    predictor = Predictor.from_run(multilabel_run, component="finetuned")
    assert predictor.thresholds.tolist() == [stored["finetuned"][n] for n in run.label_names]
    cfg = config_from_dict(run.config())
    splits = load_splits(cfg.data, cfg.seed, cfg.task)
    validation = multi_hot(splits.validation["label"].tolist(), 3)
    assert tune_thresholds(validation, predictor.predict_probs(splits.validation["text"])).tolist() == \
        predictor.thresholds.tolist()
    saved = run.test_probs()
    np.testing.assert_allclose(predictor.predict_probs(splits.test["text"]), saved["finetuned"], atol=1e-6)
    again = multilabel_metrics(saved["labels"], saved["finetuned"], run.label_names, predictor.thresholds)
    assert again["f1_micro"] == record.final["f1_micro"]
    shipped = Predictor.from_run(multilabel_run)
    (prediction,) = shipped.predict(["the football match and the senate election"])
    assert set(prediction.labels) == {"sports", "politics"} and set(prediction.probabilities) == set(TOPICS)


def test_predict_prints_the_label_set_and_every_probability(multilabel_run, capsys, tmp_path):
    from textlora.cli import main

    assert main(["predict", str(multilabel_run), "--json", "an atom in the physics laboratory"]) == 0
    (out,) = json.loads(capsys.readouterr().out)
    assert out["labels"] == ["science"] and set(out["probabilities"]) == set(TOPICS) and out["thresholds"]
    assert main(["predict", str(multilabel_run), "the news today", "--output", str(tmp_path / "p.csv")]) == 0
    written = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert list(written.columns) == ["text", "labels", "prob_politics", "prob_science", "prob_sports"]


@pytest.mark.parametrize("rows, message", [
    ({"train": [[]] * 60, "test": [[]] * 20}, "every row of the train split has an empty label set"),
    ({"train": [["a"], ["b"], ["a", "b"]] * 20, "test": [["a"], ["z"]] * 10}, "'z' .* is never in train"),
])
def test_bad_multilabel_data_stops_the_command_with_one_line_and_no_folder(tmp_path, capsys, tiny_bert_dir, rows,
                                                                           message):
    from conftest import sets, tiny_overrides
    from test_bad_input import assert_one_line_error

    from textlora.cli import main

    data = tmp_path / "data"
    data.mkdir()
    for split, labels in rows.items():
        pd.DataFrame({"text": [f"some text number {i}" for i in range(len(labels))], "labels": labels}) \
            .to_json(data / f"{split}.jsonl", orient="records", lines=True)
    out = tmp_path / "runs"
    code = main(["train", *sets(tiny_overrides(tiny_bert_dir, str(data), out, name="bad", task="multi_label",
                                                **{"data.label_column": "labels"}))])
    assert_one_line_error(code, capsys.readouterr().err, message)
    assert not out.exists() or not any(out.iterdir())
