"""`textlora compare`: every cell of the side-by-side table is the runs' record (metrics.json), baselines
deduplicated, accuracy with its interval, the verdicts under it; `textlora ui`'s metrics read the same record."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import train_tiny
from textlora.cli import main
from textlora.compare import ComparedRun, comparison_table
from textlora.runs import RunRecord
from textlora.tables import fmt

ACCURACY = "test accuracy [95 % CI]"


@pytest.fixture(scope="module")
def runs(request, tiny_bert_dir, reviews_csv, tmp_path_factory) -> dict[str, Path]:
    """The shared LoRA run, a head-only run on the very same rows, and a head run on fewer rows."""
    out = tmp_path_factory.mktemp("compare")
    built = {"tiny": request.getfixturevalue("tiny_run")}
    for name, extra in (("head", {}), ("other", {"data.n_train": 60})):
        built[name] = train_tiny(tiny_bert_dir, reviews_csv, out, name=name, method="head",
                                 **{"train.epochs": 1, **extra})
    return built


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def with_interval(row: dict) -> str:
    low, high = row["intervals"]["accuracy"]
    return f"{row['accuracy']:.3f} [{low:.3f}, {high:.3f}]"


def row_names(*runs: Path) -> list[str]:
    """Each run's own rows as compare lists them: the run, then its ensemble where it has one."""
    return [n for run in runs for n in [run.name] + ([f"Ensemble ({run.name})"] if metrics(run)["ensemble"] else [])]


def compare_json(capsys, *paths) -> list[dict]:
    assert main(["compare", *map(str, paths), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_run_rows_are_metrics_json(runs, capsys):
    records = compare_json(capsys, runs["tiny"], runs["head"])
    by_name = {r["run"]: r for r in records if r["kind"] == "run"}
    assert list(by_name) == ["tiny", "head"]
    for name in ("tiny", "head"):
        m, row = metrics(runs[name]), by_name[name]
        assert row["method"] == m["method"] == ("lora" if name == "tiny" else "head")
        assert (row["trainable"], row["trainable_ratio"]) == (m["params"]["trainable"], m["params"]["trainable_ratio"])
        assert (row["accuracy"], row["roc_auc"]) == (m["final"]["accuracy"], m["final"]["roc_auc"])
        assert row["intervals"] == m["final"]["intervals"] and row["n"] == m["final"]["n"] == 100
        assert row["f1"] == m["final"]["f1"]  # two classes: the positive class's F1
        assert row["shipped"] == m["shipped"]["kind"]
        assert row["verdicts"] == [c["verdict"] for c in m["comparisons"]] and len(row["verdicts"]) >= 3
        epoch_seconds = m["timing"]["epoch_seconds"]
        assert row["epoch_seconds"] == pytest.approx(sum(epoch_seconds) / len(epoch_seconds))
        assert row["samples_per_second"] == m["timing"]["train_samples_per_second"]
        assert row["peak_memory_mb"] == m["timing"]["peak_memory_mb"]
        assert row["artifact_mb"] == m["artifact_bytes"] / 2**20


def test_shared_baselines_are_one_row(runs, capsys):
    lora, head = metrics(runs["tiny"]), metrics(runs["head"])
    assert lora["data"]["fingerprint"] == head["data"]["fingerprint"]
    # An adapter changes nothing at initialisation: the LoRA run's model before training scores
    # exactly as the head run's, so their pre-adaptation rows are one row too.
    assert lora["baselines"]["pre_adaptation"]["loss"] == head["baselines"]["pre_adaptation"]["loss"]
    records = compare_json(capsys, runs["tiny"], runs["head"])
    baselines = [r for r in records if r["kind"] == "baseline"]
    assert [r["run"] for r in baselines] == ["TF-IDF + LR", "NBSVM", "Pre-adaptation"]
    assert records[:3] == baselines  # reference rows first, as in seed 000's table
    tfidf, nbsvm, pre = baselines
    assert tfidf["accuracy"] == lora["baselines"]["tfidf"]["accuracy"] == head["baselines"]["tfidf"]["accuracy"]
    assert nbsvm["accuracy"] == lora["baselines"]["nbsvm"]["accuracy"] == head["baselines"]["nbsvm"]["accuracy"]
    assert nbsvm["intervals"] == lora["baselines"]["nbsvm"]["intervals"]
    assert pre["accuracy"] == lora["baselines"]["pre_adaptation"]["accuracy"]
    for row in baselines:
        assert row["trainable"] is None and row["artifact_mb"] is None and row["runs"] == ["tiny", "head"]


def test_baselines_of_other_data_are_labelled_per_run(runs, capsys):
    assert metrics(runs["other"])["data"]["fingerprint"] != metrics(runs["tiny"])["data"]["fingerprint"]
    records = compare_json(capsys, runs["tiny"], runs["head"], runs["other"])
    names = [r["run"] for r in records]
    assert names == ["TF-IDF + LR (tiny, head)", "NBSVM (tiny, head)", "Pre-adaptation (tiny, head)",
                     "TF-IDF + LR (other)", "NBSVM (other)", "Pre-adaptation (other)",
                     *row_names(runs["tiny"], runs["head"], runs["other"])]
    other_tfidf = records[3]
    assert other_tfidf["accuracy"] == metrics(runs["other"])["baselines"]["tfidf"]["accuracy"]


def test_ensemble_row_follows_its_run(runs, capsys):
    m = metrics(runs["tiny"])
    records = compare_json(capsys, runs["tiny"])
    names = [r["run"] for r in records]
    ensemble = records[names.index("tiny") + 1]
    assert ensemble["run"] == "Ensemble (tiny)" and ensemble["kind"] == "ensemble"
    assert (ensemble["partner"], ensemble["weight"]) == (m["ensemble"]["partner"], m["ensemble"]["weight"])
    assert (ensemble["accuracy"], ensemble["intervals"]) == (m["ensemble"]["accuracy"], m["ensemble"]["intervals"])
    assert ensemble["method"] == f"lora + {dict(tfidf='TF-IDF + LR', nbsvm='NBSVM')[m['ensemble']['partner']]}"
    assert ensemble["trainable"] is None  # averaging trains nothing of its own


def test_markdown_table_shows_dashes_for_missing_cells(runs, capsys, tmp_path):
    out = tmp_path / "tables" / "comparison.md"
    assert main(["compare", str(runs["tiny"]), str(runs["head"]), "--format", "markdown", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    lines = [line for line in out.read_text().splitlines() if line.startswith("|")]
    headers = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {cells[0]: dict(zip(headers, cells)) for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])}
    assert list(rows) == ["TF-IDF + LR", "NBSVM", "Pre-adaptation", *row_names(runs["tiny"], runs["head"])]
    assert rows["TF-IDF + LR"]["trainable"] == "-" and rows["TF-IDF + LR"]["samples/s"] == "-"
    m = metrics(runs["tiny"])
    assert rows["tiny"]["trainable"] == f"{m['params']['trainable']:,}"
    assert rows["tiny"][ACCURACY] == with_interval(m["final"])
    assert rows["tiny"]["test rows"] == "100"
    assert rows["NBSVM"][ACCURACY] == with_interval(m["baselines"]["nbsvm"])
    assert rows["Ensemble (tiny)"][ACCURACY] == with_interval(m["ensemble"])
    assert rows["tiny"]["test F1"] == fmt(m["final"]["f1"])
    assert rows["tiny"]["trainable %"] == f"{100 * m['params']['trainable_ratio']:.3f}"
    assert rows["head"]["artifact MiB"] == f"{metrics(runs['head'])['artifact_bytes'] / 2**20:.2f}"
    assert not list(out.parent.glob(".*partial"))
    # Under the table: per run, what it ships, then its verdicts as a list.
    text = out.read_text()
    for name in ("tiny", "head"):
        m = metrics(runs[name])
        heading = f"\n{name}: Ships "
        assert heading in text
        section = text[text.index(heading):]
        assert all(f"\n- {c['verdict']}\n" in section for c in m["comparisons"])


def test_text_output_has_intervals_verdicts_and_shipped_kind(runs, capsys):
    assert main(["compare", str(runs["tiny"])]) == 0
    text = capsys.readouterr().out
    m = metrics(runs["tiny"])
    assert with_interval(m["final"]) in text and with_interval(m["baselines"]["nbsvm"]) in text
    assert "NBSVM" in text and "Ensemble (tiny)" in text
    assert "tiny: Ships " in text and m["shipped"]["reason"] in text
    for comparison in m["comparisons"]:
        assert f"  {comparison['verdict']}\n" in text


def test_f1_is_macro_for_multiclass_and_positive_class_for_binary():
    def run(label: str, n: int) -> ComparedRun:
        final = {"accuracy": 0.5, "f1": 0.11, "f1_macro": 0.22, "confusion_matrix": [[1] * n] * n}
        record = RunRecord(name=label, method="lora", objective="classifier", base_model="tiny", seed=0,
                           data={"label_names": list("abcd"[:n])}, final=final)
        return ComparedRun(label, "lora", record)

    headers, rows = comparison_table([run("binary", 2), run("four", 4)], baselines=False)
    column = headers.index("test F1")
    assert [row[column] for row in rows] == [0.11, 0.22]
    assert rows[0][headers.index("trainable")] is None  # metrics without params: shown as "-"
    assert rows[0][headers.index(ACCURACY)] == "0.500"  # no intervals recorded: the value alone


def test_unfinished_or_missing_runs_are_user_errors(runs, tmp_path, capsys):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(runs["head"], unfinished)
    info = json.loads((unfinished / "run.json").read_text())
    (unfinished / "run.json").write_text(json.dumps({**info, "finished": False}))
    assert main(["compare", str(runs["tiny"]), str(unfinished)]) == 2
    assert "did not finish" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_ui_metrics_show_every_row_with_intervals_and_the_verdicts(runs):
    from textlora.runs import open_run
    from textlora.config import load_config
    from textlora.data import load_splits
    from textlora.ui import examples_for, metrics_markdown

    m = metrics(runs["tiny"])
    text = metrics_markdown(open_run(runs["tiny"]))
    table = {cells[0]: cells[1:] for cells in
             ([c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| "))}
    assert list(table) == ["model", "TF-IDF + LR", "NBSVM", "Pre-adaptation", "Fine-tuned (lora)", "Ensemble"]
    assert table["Fine-tuned (lora)"][0] == with_interval(m["final"])
    low, high = m["final"]["intervals"]["f1_macro"]
    assert table["Fine-tuned (lora)"][1] == f"{m['final']['f1_macro']:.3f} [{low:.3f}, {high:.3f}]"
    assert table["NBSVM"][0] == with_interval(m["baselines"]["nbsvm"])
    for comparison in m["comparisons"]:
        assert f"- {comparison['verdict']}" in text
    assert "Test set (100 texts)" in text and "Ships " in text
    # The page offers the run's own short test texts, one per class (examples.json), whatever the task.
    examples = json.loads((runs["tiny"] / "examples.json").read_text())
    assert [e["label"] for e in examples] == ["negative", "positive"]
    cfg = load_config(runs["tiny"] / "config.yaml")
    test = load_splits(cfg.data, cfg.seed).test
    for example in examples:
        texts = test["text"][test["label"] == ["negative", "positive"].index(example["label"])]
        assert example["text"] == min((t for t in texts if len(t.split()) >= 6), key=len)
    assert examples_for(open_run(runs["tiny"])) == [e["text"] for e in examples]
