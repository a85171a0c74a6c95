"""task: regression: numeric targets, metrics against scipy / scikit-learn, bins beside the value, the
TF-IDF + ridge row, the target's scale folded into the head, and a tiny model trained end to end."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn import metrics as skm

from textlora.config import load_config
from textlora.errors import TextloraError

BINS = {"negative": [None, 4], "neutral": [5, 6], "positive": [7, None]}
SCORE_WORDS = {1: "awful", 3: "poor", 5: "okay", 7: "good", 9: "great", 10: "perfect"}
FILLER = ["the", "movie", "film", "plot", "actor", "was", "really", "quite", "a", "story", "scene", "and"]


def rated_texts(n: int, seed: int = 0) -> pd.DataFrame:
    """Texts whose rating (1-10) is told by the score word they contain, plus a little noise."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        rating = rng.choice(list(SCORE_WORDS))
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 7))]
        words.insert(rng.randrange(len(words) + 1), SCORE_WORDS[rating])
        rows.append({"text": " ".join(words), "rating": rating})
    return pd.DataFrame(rows)


def splits_of(overrides: list[str]):
    from textlora.data import load_splits

    cfg = load_config(None, overrides)
    return load_splits(cfg.data, cfg.seed, cfg.task)


# --------------------------------------------------------------------------- reading targets


def test_numbers_are_read_as_targets(tmp_path):
    path = tmp_path / "rated.csv"
    rated_texts(200).to_csv(path, index=False)
    splits = splits_of([f"data.source={path}", "data.label_column=rating", "task=regression"])
    assert splits.task == "regression" and splits.label_names == ["rating"]
    assert splits.train["label"].dtype == np.float64 and set(splits.train["label"]) <= set(map(float, SCORE_WORDS))
    summary = splits.summary()["splits"]["test"]
    assert summary["target"]["mean"] == pytest.approx(splits.test["label"].mean()) and "class_counts" not in summary


def test_a_value_that_is_not_a_number_names_its_row(tmp_path):
    frame = rated_texts(60)
    frame["rating"] = frame["rating"].astype(object)
    frame.loc[17, "rating"] = "ten"
    frame.to_csv(tmp_path / "rated.csv", index=False)
    with pytest.raises(TextloraError, match=r"target 'ten' \(row 17 of the train split\) is not a number"):
        splits_of([f"data.source={tmp_path / 'rated.csv'}", "data.label_column=rating", "task=regression"])


def test_missing_targets_are_dropped_only_when_asked(tmp_path):
    frame = rated_texts(60)
    frame.loc[[3, 8], "rating"] = None
    frame.to_csv(tmp_path / "rated.csv", index=False)
    base = [f"data.source={tmp_path / 'rated.csv'}", "data.label_column=rating", "task=regression"]
    with pytest.raises(TextloraError, match="empty text or a missing label"):
        splits_of(base)
    splits = splits_of([*base, "data.drop_invalid=true"])
    assert sum(len(f) for _, f in splits.items()) == 58


def test_a_constant_target_has_nothing_to_learn(tmp_path):
    pd.DataFrame({"text": [f"text {i}" for i in range(40)], "rating": 5}).to_csv(tmp_path / "same.csv", index=False)
    with pytest.raises(TextloraError, match="same target value"):
        splits_of([f"data.source={tmp_path / 'same.csv'}", "data.label_column=rating", "task=regression"])


@pytest.mark.parametrize("overrides, message", [
    (["data.label_bins={low: [null, 5], high: [5, null]}"], "'low' .* and 'high' .* overlap"),
    (["data.label_bins={a: [1, 6], b: [3, 4]}"], "overlap"),
    (["data.label_names=[a, b]"], "data.label_names does not apply to task: regression"),
    (["train.class_weights=balanced"], "train.class_weights acts per class"),
    (["data.undersample=minority"], "data.undersample acts per class"),
    (["train.select_metric=f1_macro"], "does not apply to task: regression"),
    (["train.regression_loss=l1"], "unknown train.regression_loss"),
])
def test_regression_recipe_mistakes_are_refused(overrides, message):
    with pytest.raises(TextloraError, match=message):
        load_config(None, ["task=regression", *overrides])


def test_disjoint_bins_are_accepted_and_values_between_them_go_to_the_nearest():
    from textlora.regression import value_bins

    assert load_config(None, ["task=regression", f"data.label_bins={json.dumps(BINS)}"]).data.label_bins == BINS
    assert value_bins([1, 4, 4.4, 4.6, 5.5, 6.5, 7, 12], BINS) == \
        ["negative", "negative", "negative", "neutral", "neutral", "neutral", "positive", "positive"]


# --------------------------------------------------------------------------- metrics


def test_metrics_match_scipy_and_scikit_learn():
    from textlora.regression import regression_metrics

    rng = np.random.default_rng(0)
    y = rng.integers(1, 11, 200).astype(float)
    pred = y + rng.normal(0, 1.5, 200)
    row = regression_metrics(y, pred, BINS)
    assert row["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert row["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert row["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert row["spearman"] == pytest.approx(sps.spearmanr(y, pred).statistic)
    assert row["pearson"] == pytest.approx(sps.pearsonr(y, pred).statistic)
    binned = lambda v: np.where(v < 4.5, 0, np.where(v < 6.5, 1, 2))  # noqa: E731  (the nearest-bin rule)
    assert row["bin_accuracy"] == pytest.approx(skm.accuracy_score(binned(y), binned(pred)))
    assert row["bin_f1_macro"] == pytest.approx(skm.f1_score(binned(y), binned(pred), average="macro"))
    constant = regression_metrics(y, np.full(200, y.mean()))
    assert constant["spearman"] is None and constant["pearson"] is None and constant["r2"] == pytest.approx(0)


@pytest.mark.parametrize("metric", ["mae", "rmse", "r2", "spearman", "pearson"])
def test_resampled_metrics_equal_the_metrics_of_each_resample(metric):
    from textlora.regression import regression_metrics, resampled

    rng = np.random.default_rng(2)
    y = rng.integers(1, 11, 50).astype(float)
    pred = y + rng.normal(0, 2, 50)
    rows = rng.integers(0, 50, size=(20, 50))
    np.testing.assert_allclose(resampled(metric, y, pred, rows),
                               [regression_metrics(y[r], pred[r])[metric] for r in rows], rtol=1e-10)


def test_paired_comparison_on_mae():
    from textlora.taskstats import compare, wilcoxon_p

    rng = np.random.default_rng(0)
    y = rng.integers(1, 11, 300).astype(float)
    close, far = y + rng.normal(0, 0.5, 300), y + rng.normal(0, 2.5, 300)
    result = compare("regression", y, close, far, "fine-tuned", "TF-IDF + ridge", seed=0)
    assert result.metric == "mae" and result.diff < 0 and result.better and result.significant
    assert result.interval[1] < 0 and "MAE -" in result.verdict and "(lower is better)" in result.verdict
    assert result.second_p == pytest.approx(sps.wilcoxon(np.abs(close - y) - np.abs(far - y)).pvalue)
    assert wilcoxon_p(np.ones(5), np.ones(5)) == 1.0
    assert set(result.others) == {"rmse", "r2", "spearman"}


# --------------------------------------------------------------------------- the classical row, the loss, the head


def test_ridge_row_saves_and_reloads_bit_identically(tmp_path):
    from textlora.classical import fit_classical, load_classical

    frame = rated_texts(300)
    model = fit_classical("tfidf", frame["text"], frame["rating"].astype(float), 1, seed=0, task="regression")
    values = model.predict_outputs(frame["text"])
    assert values.shape == (300,) and skm.mean_absolute_error(frame["rating"], values) < 1.0
    model.save(tmp_path / "ridge")
    assert np.array_equal(load_classical(tmp_path / "ridge").predict_outputs(frame["text"]), values)


def test_mse_and_huber_losses():
    import torch

    from textlora.losses import RegressionLoss

    outputs, targets = {"logits": torch.tensor([[0.5], [3.0], [-1.0]])}, torch.tensor([0.0, 0.0, 0.0])
    assert RegressionLoss("mse")(outputs, targets).item() == pytest.approx((0.25 + 9 + 1) / 3)
    assert RegressionLoss("huber")(outputs, targets).item() == pytest.approx((0.125 + 2.5 + 0.5) / 3)


def test_the_target_scale_is_folded_into_the_head(tiny_bert_dir):
    import torch
    from transformers import AutoTokenizer

    from textlora.models import load_classifier
    from textlora.regression import TargetScale, bake_target_scale

    model, _ = load_classifier(tiny_bert_dir, ["rating"], problem_type="regression")
    model.eval()
    batch = AutoTokenizer.from_pretrained(tiny_bert_dir)(["a good film", "an awful one"], return_tensors="pt",
                                                         padding=True)
    with torch.no_grad():
        before = model(**batch).logits.double().numpy()
        scale = TargetScale(mean=6.5, std=2.75)
        bake_target_scale(model, scale)
        after = model(**batch).logits.double().numpy()
    np.testing.assert_allclose(after, scale.restore(before), rtol=1e-5)
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory, tiny_bert_dir) -> Path:
    """The tiny random BERT with LoRA on the rated texts; ship: best chooses on the validation rows."""
    from conftest import train_tiny

    folder = tmp_path_factory.mktemp("rated")
    rated_texts(400).to_csv(folder / "rated.csv", index=False)
    return train_tiny(tiny_bert_dir, str(folder / "rated.csv"), folder / "runs", name="rating", task="regression",
                      ship="best", **{"data.label_column": "rating", "train.epochs": 10,
                                      "data.label_bins": json.dumps(BINS)})


def test_a_regression_run_learns_the_number_and_beats_the_mean(regression_run):
    from textlora.runs import open_run

    run = open_run(regression_run)
    record = run.record()
    assert run.task == record.task == "regression" and run.label_names == ["rating"]
    losses = [e["train_loss"] for e in record.epochs]
    assert losses[-1] < 0.6 * losses[0], losses  # the loss falls
    final, mean = record.final, record.baselines["pre_adaptation"]
    assert final["mae"] < 0.6 * mean["mae"] and final["r2"] > 0.5, (final, mean)
    assert final["bin_accuracy"] is not None and set(final["intervals"]) == {"mae", "rmse", "r2", "spearman"}
    saved = run.test_probs()
    assert final["mae"] == pytest.approx(np.abs(saved["finetuned"] - saved["labels"]).mean())
    assert np.all(saved["pre_adaptation"] == run.task_file["scale"]["mean"])  # the training mean for every text
    verdict = next(c for c in record.comparisons if c["a"] == "finetuned" and c["b"] == "pre_adaptation")
    assert verdict["metric"] == "mae" and verdict["diff"] < 0 and "significantly better" in verdict["verdict"]
    assert verdict["second_test"].startswith("Wilcoxon") and verdict["second_p"] < 0.05
    assert record.shipped_kind in ("finetuned", "ensemble", "tfidf")
    assert set(record.selection["validation_scores"]) >= {"finetuned", "tfidf"}


def test_predict_gives_the_value_and_its_bin(regression_run, capsys):
    from textlora.cli import main
    from textlora.config import config_from_dict
    from textlora.data import load_splits
    from textlora.predict import Predictor, ValuePrediction
    from textlora.runs import open_run

    run = open_run(regression_run)
    cfg = config_from_dict(run.config())
    test = load_splits(cfg.data, cfg.seed, cfg.task).test
    # The saved model outputs the number itself: the target's scale is in its head.
    finetuned = Predictor.from_run(regression_run, component="finetuned")
    np.testing.assert_allclose(finetuned.predict_probs(test["text"]), run.test_probs()["finetuned"], atol=1e-5)
    shipped = Predictor.from_run(regression_run)
    values = shipped.predict_probs(test["text"])
    np.testing.assert_allclose(values, run.test_probs()[run.record().shipped_kind], atol=1e-5)
    (prediction,) = shipped.predict(["a perfect film"])
    assert isinstance(prediction, ValuePrediction) and prediction.bin in BINS
    assert main(["predict", str(regression_run), "--json", "an awful film", "a perfect film"]) == 0
    awful, perfect = json.loads(capsys.readouterr().out)
    assert awful["value"] < perfect["value"] and (awful["bin"], perfect["bin"]) == ("negative", "positive")


@pytest.mark.parametrize("setting, message", [
    ("not a number", r"target 'ten' \(row 5 of the train split\) is not a number"),
    ("overlapping bins", "overlap"),
])
def test_bad_regression_input_stops_the_command_with_one_line_and_no_folder(tmp_path, capsys, tiny_bert_dir,
                                                                            setting, message):
    from conftest import sets, tiny_overrides
    from test_bad_input import assert_one_line_error

    from textlora.cli import main

    frame = rated_texts(80)
    extra = {"data.label_bins": json.dumps({"low": [None, 5], "high": [5, None]})} if setting == "overlapping bins" else {}
    if setting == "not a number":
        frame["rating"] = frame["rating"].astype(object)
        frame.loc[5, "rating"] = "ten"
    frame.to_csv(tmp_path / "rated.csv", index=False)
    out = tmp_path / "runs"
    code = main(["train", *sets(tiny_overrides(tiny_bert_dir, str(tmp_path / "rated.csv"), out, name="bad",
                                                task="regression", **{"data.label_column": "rating"}, **extra))])
    assert_one_line_error(code, capsys.readouterr().err, message)
    assert not out.exists() or not any(out.iterdir())
