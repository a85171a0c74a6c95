"""The surfaces that read runs (serve, ui, compare, report, api, export, card, sweep) on a task: multi_label
run and a task: regression run of the tiny BERT: each shows the task's answers and metrics (label sets with
every probability and threshold; the number and its bin; micro F1 / MAE with intervals and verdicts)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import train_tiny
from test_bad_input import assert_one_line_error
from test_multilabel import TOPICS, keyword_sets
from test_regression import BINS, rated_texts
from textlora.cli import main

LABEL_TEXTS = ["the football match and the senate election", "an atom in the physics laboratory", "the news today"]
RATED_TEXTS = ["an awful film", "a perfect film", "the plot was okay"]


@pytest.fixture(scope="module")
def topics_jsonl(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("surfaces-ml") / "topics.jsonl"
    keyword_sets(360).to_json(path, orient="records", lines=True)
    return str(path)


@pytest.fixture(scope="module")
def topics_run(tmp_path_factory, tiny_bert_dir, topics_jsonl) -> Path:
    return train_tiny(tiny_bert_dir, topics_jsonl, tmp_path_factory.mktemp("surfaces-ml-runs"), name="topics",
                      task="multi_label", baselines="[tfidf, pre_adaptation]",
                      **{"data.label_column": "labels", "train.epochs": 4})


@pytest.fixture(scope="module")
def rating_run(tmp_path_factory, tiny_bert_dir) -> Path:
    folder = tmp_path_factory.mktemp("surfaces-rg")
    rated_texts(400).to_csv(folder / "rated.csv", index=False)
    return train_tiny(tiny_bert_dir, str(folder / "rated.csv"), folder / "runs", name="rating", task="regression",
                      baselines="[tfidf, pre_adaptation]",
                      **{"data.label_column": "rating", "train.epochs": 4, "data.label_bins": json.dumps(BINS)})


def with_interval(row: dict, metric: str) -> str:
    low, high = row["intervals"][metric]
    return f"{row[metric]:.3f} [{low:.3f}, {high:.3f}]"


# --------------------------------------------------------------------------- serve


def test_serve_answers_label_sets_and_values_on_one_base(topics_run, rating_run):
    """Both runs are adapters on one tiny base: each answer is what predict gives for its task, and the
    micro-batcher hands every request its own texts' answers (one number per text for the regression)."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from textlora.predict import Predictor
    from textlora.serve import MicroBatcher, create_app, load_engine

    engine = load_engine([("topics", topics_run), ("rating", rating_run)])
    want_sets = Predictor.from_run(topics_run).predict(LABEL_TEXTS)
    want_values = Predictor.from_run(rating_run).predict(RATED_TEXTS)
    with TestClient(create_app(engine)) as client:
        sets = client.post("/v1/predict", json={"texts": LABEL_TEXTS, "adapter": "topics"}).json()["predictions"]
        values = client.post("/v1/predict", json={"texts": RATED_TEXTS, "adapter": "rating"}).json()["predictions"]
        models = {a["name"]: a for a in client.get("/v1/models").json()["adapters"]}
    for got, want in zip(sets, want_sets):
        assert set(got) == {"labels", "probabilities", "thresholds"} and got["labels"] == want.labels
        assert set(got["probabilities"]) == set(TOPICS) and got["thresholds"] == want.thresholds
        for name in TOPICS:
            assert got["probabilities"][name] == pytest.approx(want.probabilities[name], abs=1e-5)
    for got, want in zip(values, want_values):
        assert set(got) == {"value", "bin"} and got["bin"] == want.bin in BINS
        assert got["value"] == pytest.approx(want.value, abs=1e-4)
    record = json.loads((topics_run / "metrics.json").read_text())
    assert models["topics"]["task"] == "multi_label" and models["topics"]["thresholds"] == want_sets[0].thresholds
    test = models["topics"]["metrics"]["test"]
    assert test["f1_micro"] == record["final"]["f1_micro"] and test["intervals"] == record["final"]["intervals"]
    assert "accuracy" not in test and "mae" in models["rating"]["metrics"]["test"]
    assert models["rating"]["task"] == "regression" and models["rating"]["bins"] == BINS

    async def three_requests():  # concurrent requests of the regression adapter: one forward pass
        batcher = MicroBatcher(engine.predict, max_batch=64, max_wait_ms=200)
        batcher.start()
        try:
            answers = await asyncio.gather(*(batcher.submit("rating", [text]) for text in RATED_TEXTS))
        finally:
            await batcher.stop()
        return answers, batcher.stats

    answers, stats = asyncio.run(three_requests())
    assert stats.batches == 1 and stats.texts == 3
    assert [a.value for (a,) in answers] == pytest.approx([w.value for w in want_values], abs=1e-4)


# --------------------------------------------------------------------------- ui


def test_ui_shows_every_label_with_its_threshold_and_the_value_with_its_bin(topics_run, rating_run):
    from textlora.predict import Predictor
    from textlora.runs import open_run
    from textlora.ui import metrics_markdown, predict_view

    predictor = Predictor.from_run(topics_run)
    want = predictor.predict([LABEL_TEXTS[0]])[0]
    choices, checked = predict_view(predictor, LABEL_TEXTS[0])
    assert [value for _, value in choices] == predictor.label_names and checked == want.labels
    for shown, name in choices:
        assert shown == f"{name}: {want.probabilities[name]:.3f} (threshold {want.thresholds[name]:.2f})"
    text = metrics_markdown(open_run(topics_run))
    final = open_run(topics_run).record().final
    assert "| model | micro F1 | macro F1 | samples F1 | subset accuracy | Hamming loss |" in text
    assert with_interval(final, "f1_micro") in text and "accuracy |" not in text.split("\n")[0]
    for line in open_run(topics_run).record().verdicts():
        assert f"- {line}" in text

    predictor = Predictor.from_run(rating_run)
    value, name = predict_view(predictor, RATED_TEXTS[1])
    want = predictor.predict([RATED_TEXTS[1]])[0]
    assert (value, name) == (want.value, want.bin) and name in BINS
    text = metrics_markdown(open_run(rating_run))
    assert "predicts: rating" in text and "| model | MAE | RMSE | R² | Spearman |" in text


# --------------------------------------------------------------------------- compare, api


def test_compare_shows_each_task_with_intervals_and_verdicts(topics_run, rating_run, capsys):
    import textlora

    assert main(["compare", str(topics_run), str(rating_run)]) == 0
    out = capsys.readouterr().out
    ml, rg = (json.loads((run / "metrics.json").read_text()) for run in (topics_run, rating_run))
    head, rest = out.split("task: regression (1 run)")
    assert head.startswith("task: multi_label (1 run)") and "test accuracy" not in out
    table = {line.split("  ")[0]: line for line in head.splitlines()}
    assert "test micro F1 [95 % CI]" in head and "test Hamming loss [95 % CI]" in head
    for metric in ("f1_micro", "f1_macro", "subset_accuracy", "hamming_loss"):
        assert with_interval(ml["final"], metric) in table["topics"]
        assert with_interval(ml["baselines"]["tfidf"], metric) in table["TF-IDF + OvR LR"]
    assert "test MAE [95 % CI]" in rest and "Training mean" in rest and "TF-IDF + ridge" in rest
    table = {line.split("  ")[0]: line for line in rest.splitlines()}
    for metric in ("mae", "rmse", "r2", "spearman"):
        assert with_interval(rg["final"], metric) in table["rating"]
    for record in (ml, rg):
        assert record["comparisons"] and all(f"  {c['verdict']}" in out for c in record["comparisons"])
    assert "micro F1" in ml["comparisons"][0]["verdict"] and "MAE" in rg["comparisons"][0]["verdict"]

    assert main(["compare", str(rating_run), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["task"] for r in rows} == {"regression"} and all("mae" in r and "accuracy" not in r for r in rows)

    run = textlora.load_run(topics_run)
    assert "test micro F1" in repr(run) and "task multi_label" in repr(run)
    frame = run.comparison
    assert frame.loc["Fine-tuned (lora)", "f1_micro_low"] == ml["final"]["intervals"]["f1_micro"][0]
    assert "accuracy" not in frame and "ece" not in frame
    both = textlora.compare([topics_run, rating_run])
    assert both.loc["rating", "mae"] == rg["final"]["mae"] and both.loc["topics", "task"] == "multi_label"
    assert both.loc["rating", "shipped_mae"] == rg["final"]["mae"]  # ship: finetuned


# --------------------------------------------------------------------------- report


def test_report_shows_task_metrics_per_label_and_bins(topics_run, rating_run, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(topics_run), str(rating_run), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    ml, rg = (json.loads((run / "metrics.json").read_text()) for run in (topics_run, rating_run))
    assert "### Dataset" in text and ", task: multi_label" in text and ", task: regression" in text
    assert with_interval(ml["final"], "f1_micro") in text and with_interval(rg["final"], "mae") in text
    for record in (ml, rg):
        assert all(f"- {c['verdict']}" in text for c in record["comparisons"])
    assert "Calibration" not in text and "confusion" not in text
    per_label = ml["final"]["per_label"]
    assert "### Per label (test rows, fine-tuned" in text
    for name in TOPICS:
        assert f"| {name} | {per_label[name]['support']} | {per_label[name]['threshold']:.4f} |" in text
    matrix = rg["final"]["bins"]["confusion_matrix"]
    assert "### Bins (test rows, fine-tuned)" in text and f"| negative | {' | '.join(map(str, matrix[0]))} |" in text
    assert "| micro F1 95 % CI |" in text and "| MAE 95 % CI |" in text
    assert (out / "images" / "rating-bins.png").is_file()
    assert "test f1_micro per run" in text and "test mae per run" in text  # each task's default metric

    code = main(["report", str(rating_run), "--metric", "accuracy", "--out", str(tmp_path / "again")])
    assert_one_line_error(code, capsys.readouterr().err, r"not a metric of these runs' task \(regression\)")


# --------------------------------------------------------------------------- export, card


def test_merged_multilabel_export_carries_the_thresholds_and_reproduces_predict(topics_run, rating_run, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from textlora.predict import Predictor

    out = tmp_path / "merged"
    assert main(["export", str(topics_run), "--merged", str(out)]) == 0
    assert json.loads((out / "task.json").read_text()) == json.loads((topics_run / "task.json").read_text())
    readme = (out / "README.md").read_text()
    assert "sigmoid" in readme and '["thresholds"]["finetuned"]' in readme and "library_name: transformers" in readme
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    thresholds = json.loads((out / "task.json").read_text())["thresholds"]["finetuned"]
    with torch.no_grad():
        probs = torch.sigmoid(model(**tokenizer(LABEL_TEXTS, return_tensors="pt", padding=True)).logits)
    names = model.config.id2label
    sets = [[names[j] for j, p in enumerate(row) if p >= thresholds[names[j]]] for row in probs.tolist()]
    want = Predictor.from_run(topics_run, component="finetuned").predict(LABEL_TEXTS)
    assert sets == [p.labels for p in want] and any(sets)

    out = tmp_path / "merged-rating"
    assert main(["export", str(rating_run), "--merged", str(out)]) == 0
    assert json.loads((out / "task.json").read_text())["bins"] == BINS
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        values = model(**tokenizer(RATED_TEXTS, return_tensors="pt", padding=True)).logits[:, 0].numpy()
    want = Predictor.from_run(rating_run, component="finetuned").predict_probs(RATED_TEXTS)
    np.testing.assert_allclose(values, want, atol=1e-4)


def test_model_cards_name_the_task_metrics(topics_run, rating_run, tmp_path):
    from huggingface_hub import ModelCard

    expected = {topics_run: ({"f1", "accuracy", "hamming_loss", "roc_auc"}, "multi-label-classification",
                             "micro F1", "torch.sigmoid"),
                rating_run: ({"mae", "rmse", "r_squared", "spearmanr", "pearsonr"}, "text-regression", "MAE",
                             "logits[:, 0]")}
    for run, (metrics, tag, words, usage) in expected.items():
        text = (run / "adapter" / "README.md").read_text()  # written by the pipeline, for the hub
        card = ModelCard(text, ignore_metadata_errors=False)
        assert set(card.data.metrics) == metrics and tag in card.data.tags
        assert {r.metric_type for r in card.data.eval_results} == metrics
        assert any(r.metric_name.startswith(f"test {words} ") for r in card.data.eval_results)
        assert "| accuracy [95 % CI]" not in text and f"{words} [95 % CI]" in text and usage in text
    front = yaml.safe_load((topics_run / "README.md").read_text().split("---")[1])
    f1 = [m for m in front["model-index"][0]["results"][0]["metrics"] if m["type"] == "f1"]
    assert [m["config"] for m in f1] == ["micro", "macro", "samples"]
    out = tmp_path / "adapter"
    assert main(["export", str(topics_run), "--adapter", str(out)]) == 0
    assert (out / "task.json").is_file() and "torch.sigmoid" in (out / "README.md").read_text()


# --------------------------------------------------------------------------- sweep


def test_sweep_sorts_by_each_tasks_metric():
    from textlora.sweep_summary import sort_rows

    rows = [{"name": n, "score": s} for n, s in (("a", 0.5), ("b", None), ("c", 0.9), ("d", 0.2))]
    assert [r["name"] for r in sort_rows(rows, "f1_micro")] == ["c", "a", "d", "b"]
    assert [r["name"] for r in sort_rows(rows, "mae")] == ["d", "a", "c", "b"]
    assert [r["name"] for r in sort_rows(rows, "hamming_loss")] == ["d", "a", "c", "b"]


def test_multilabel_sweep_by_micro_f1(tiny_bert_dir, topics_jsonl, tmp_path, capsys):
    """`textlora sweep --metric f1_micro` on two tiny points: sorted by validation micro F1, the task's columns."""
    from conftest import one_thread, sets, tiny_overrides

    out = tmp_path / "sweep"
    overrides = tiny_overrides(tiny_bert_dir, topics_jsonl, tmp_path / "unused", task="multi_label", baselines="[]",
                               **{"data.label_column": "labels", "train.epochs": 1, "data.n_train": 120})
    with one_thread():
        assert main(["sweep", *sets(overrides), "--grid", "lora.r=2,4", "--metric", "f1_micro", "--out", str(out),
                     "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "f1_micro: validation" in printed and "validation f1_micro  test micro F1" in printed
    scores = {}
    for name in ("r=2", "r=4"):
        record = json.loads((out / "runs" / name / "metrics.json").read_text())
        scores[name] = next(e["f1_micro"] for e in record["epochs"] if e.get("selected"))
    table = (out / "summary.md").read_text()
    first = table.index("| r=2 |") < table.index("| r=4 |")
    assert first == (scores["r=2"] >= scores["r=4"])  # best validation micro F1 first (ties keep grid order)
    assert json.loads((out / "sweep.json").read_text())["metric"] == "f1_micro"


def test_sweep_summary_of_regression_runs_chooses_the_lowest_mae(rating_run, tmp_path):
    """A sweep folder of two regression points (the same run, its validation MAE set apart): the summary
    sorts by validation MAE, lowest first, and shows the task's test columns."""
    from textlora.sweep_summary import write_sweep_summary

    sweep = tmp_path / "sweep"
    for name, shift in (("r=2", 1.0), ("r=4", -1.0)):
        shutil.copytree(rating_run, sweep / "runs" / name)
        path = sweep / "runs" / name / "metrics.json"
        record = json.loads(path.read_text())
        for epoch in record["epochs"]:
            epoch["mae"] += shift
        path.write_text(json.dumps(record))
    (sweep / "sweep.json").write_text(json.dumps({
        "recipe": None, "keys": ["lora.r"], "metric": "mae",
        "points": [{"name": "r=2", "values": {"lora.r": 2}}, {"name": "r=4", "values": {"lora.r": 4}}]}))
    summary = write_sweep_summary(sweep)
    assert [row["name"] for row in summary.rows] == ["r=4", "r=2"]
    assert summary.headers[:7] == ["run", "r", "validation mae", "test MAE", "test RMSE", "test R²", "test Spearman"]
    assert (sweep / "plots" / "mae_vs_r.png").is_file()


@pytest.mark.parametrize("extra, pattern", [
    ([], r"--metric 'mae' is a metric of task: regression, and this recipe is task: classification; choose one of: "
         r"loss, accuracy"),
    (["--set", "task=multi_label"], r"--metric 'mae' is a metric of task: regression, and this recipe is task: "
                                    r"multi_label; choose one of: f1_micro"),
])
def test_sweep_metric_of_another_task_is_one_line(extra, pattern, tmp_path, capsys):
    code = main(["sweep", *extra, "--metric", "mae", "--grid", "lora.r=2,4", "--out", str(tmp_path / "sweep")])
    assert_one_line_error(code, capsys.readouterr().err, pattern)
    assert not (tmp_path / "sweep").exists()
