"""`textlora export --onnx` and `--backend onnx`: the exported model gives the run's labels, the parity
gate refuses a model that does not, and onnxruntime alone (no textlora) runs the folder."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from conftest import synthetic_reviews  # noqa: E402
from textlora.cli import main  # noqa: E402
from textlora.errors import TextloraError  # noqa: E402

TEXTS = ["a great and wonderful film", "the worst and most boring plot", "the movie was a story",
         "loved it , brilliant actor", "awful scene , dull and poor", "quite a superb story really " * 6]


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, pattern: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "fp32"
    assert main(["export", str(tiny_run), "--onnx", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def exported_int8(tiny_run, tmp_path_factory) -> Path:
    # --force: how many of the tiny model's unsure labels int8 flips depends on the CPU's int8
    # kernels (one flip in its 100 test rows is a 1 pt drop); the gate's decision is tested below
    # from the numbers it recorded, and its refusal of a broken model in
    # test_parity_gate_refuses_a_broken_model_and_force_writes_it.
    out = tmp_path_factory.mktemp("onnx") / "int8"
    assert main(["export", str(tiny_run), "--onnx", str(out), "--quantize", "int8", "--quiet", "--force"]) == 0
    return out


def probs_of(run: Path, texts, **backend) -> np.ndarray:
    from textlora.predict import Predictor

    return Predictor.from_run(run, **backend).predict_probs(texts)


def test_export_writes_a_self_contained_folder_with_dynamic_axes(exported, tiny_run):
    files = {p.name for p in exported.iterdir()}
    assert {"model.onnx", "onnx.json", "parity.json", "labels.json", "config.json", "calibration.json",
            "tokenizer_config.json"} <= files
    assert not [p for p in exported.parent.iterdir() if p.name.startswith(".")]  # no partial folder left
    graph = onnx.load(str(exported / "model.onnx"))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.graph.input}
    assert list(dims) == ["input_ids", "attention_mask", "token_type_ids"]  # BERT's tokenizer makes token types
    assert all(isinstance(d, str) and d for shape in dims.values() for d in shape)  # batch and sequence dynamic
    assert [o.name for o in graph.graph.output] == ["logits"]
    info = json.loads((exported / "onnx.json").read_text())
    assert info["precision"] == "fp32" and info["label_names"] == ["negative", "positive"]
    config = json.loads((exported / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    parity = json.loads((exported / "parity.json").read_text())
    assert parity["checked"] and parity["passed"] and parity["agreement"] == 1.0
    assert parity["rows"] == 100 and parity["max_prob_diff"] < 1e-4
    assert parity["accuracy_onnx"] == parity["accuracy_torch"]
    assert parity["task"] == info["task"] == "classification" and parity["measure"] == "accuracy"
    assert not (exported / "task.json").exists()  # classification has none


def test_onnx_backend_equals_torch_fp32(exported, tiny_run):
    texts = TEXTS + list(synthetic_reviews(40, seed=7)["text"])
    torch_probs = probs_of(tiny_run, texts)
    onnx_probs = probs_of(tiny_run, texts, backend="onnx", onnx=exported)
    assert (torch_probs.argmax(1) == onnx_probs.argmax(1)).all()
    assert np.abs(torch_probs - onnx_probs).max() < 1e-4
    np.testing.assert_allclose(onnx_probs.sum(1), 1.0, atol=1e-9)


def test_int8_export_is_smaller_and_still_classifies(exported, exported_int8, tiny_run):
    assert (exported_int8 / "model.onnx").stat().st_size < (exported / "model.onnx").stat().st_size
    ops = {node.op_type for node in onnx.load(str(exported_int8 / "model.onnx")).graph.node}
    assert "MatMulInteger" in ops  # the weights really are int8
    parity = json.loads((exported_int8 / "parity.json").read_text())
    assert parity["precision"] == "int8" and parity["checked"] and parity["rows"] == 100
    assert parity["agreement"] >= 0.9  # int8 of a working model, not noise
    assert parity["passed"] == (parity["agreement"] >= 0.99 and
                                100 * (parity["accuracy_torch"] - parity["accuracy_onnx"]) <= 0.5 + 1e-9)
    info = json.loads((exported_int8 / "onnx.json").read_text())
    assert info["precision"] == "int8"
    assert info["int8_setting"] == {"name": "per_channel_7bit", "per_channel": True, "reduce_range": True}
    assert json.loads((exported / "onnx.json").read_text())["int8_setting"] is None
    probs = probs_of(tiny_run, TEXTS, onnx=exported_int8)
    assert probs.shape == (len(TEXTS), 2)
    torch_probs = probs_of(tiny_run, TEXTS)
    assert (probs.argmax(1) == torch_probs.argmax(1)).mean() >= 0.8


# Loading side: a fresh interpreter with onnxruntime, transformers' tokenizer and numpy, never textlora;
# the lines between the markers are the README's.
PLAIN = textwrap.dedent("""
    import json, sys
    folder, texts = sys.argv[1], json.loads(sys.argv[2])
    # README begin
    import json, numpy as np, onnxruntime as ort
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(folder)
    session = ort.InferenceSession(f"{folder}/model.onnx")
    inputs = tokenizer(texts, padding=True, truncation=True, return_tensors="np")
    logits = session.run(["logits"], {i.name: inputs[i.name] for i in session.get_inputs()})[0]
    scaled = logits / json.load(open(f"{folder}/calibration.json"))["temperature"]
    probs = np.exp(scaled - scaled.max(-1, keepdims=True)); probs /= probs.sum(-1, keepdims=True)
    # README end
    labels = json.load(open(f"{folder}/labels.json"))
    print(json.dumps({"probs": probs.tolist(), "labels": [labels[i] for i in probs.argmax(-1)],
                      "textlora": sorted(m for m in sys.modules if m.split(".")[0] == "textlora")}))
""")


def test_plain_onnxruntime_loads_the_folder_without_textlora(exported, tiny_run, tmp_path):
    long_text = " ".join(["wonderful"] * 200)  # longer than the run's 32 tokens: truncated the same way
    texts = TEXTS + [long_text]
    result = subprocess.run([sys.executable, "-c", PLAIN, str(exported), json.dumps(texts)], capture_output=True,
                            text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["textlora"] == []
    expected = probs_of(tiny_run, texts)
    assert np.abs(np.array(loaded["probs"]) - expected).max() < 1e-4
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    snippet = PLAIN.split("# README begin\n")[1].split("# README end")[0]
    for line in snippet.strip().splitlines():  # the README shows these lines, with its own text
        assert line.replace("(texts,", '(["Pain gone in two days."],') in readme, line


def test_predict_cli_backend_onnx_gives_the_torch_labels(exported, tiny_run, capsys):
    code, out, _ = run_cli(capsys, "predict", tiny_run, "--json", *TEXTS)
    assert code == 0
    torch_rows = json.loads(out)
    code, out, _ = run_cli(capsys, "predict", tiny_run, "--json", "--backend", "onnx", "--onnx", exported, *TEXTS)
    assert code == 0
    onnx_rows = json.loads(out)
    assert [r["label"] for r in onnx_rows] == [r["label"] for r in torch_rows]
    for a, b in zip(onnx_rows, torch_rows):
        assert abs(a["confidence"] - b["confidence"]) < 1e-4


def test_serve_backend_onnx_gives_the_torch_labels(exported, tiny_run):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from textlora.serve import ServeSettings, create_app, load_engine

    engine = load_engine([("tiny", tiny_run)], backend="onnx", onnx=exported)
    with TestClient(create_app(engine, ServeSettings())) as client:
        response = client.post("/v1/predict", json={"texts": TEXTS})
    assert response.status_code == 200, response.text
    served = response.json()["predictions"]
    expected = probs_of(tiny_run, TEXTS)
    assert [p["label"] for p in served] == [["negative", "positive"][i] for i in expected.argmax(1)]
    assert np.abs(np.array([[p["probabilities"][n] for n in ("negative", "positive")] for p in served])
                  - expected).max() < 1e-4
    with pytest.raises(TextloraError, match="one run"):
        load_engine([("a", tiny_run), ("b", tiny_run)], backend="onnx", onnx=exported)


def test_an_ensemble_run_exports_its_classical_partner(tiny_bert_dir, reviews_csv, tmp_path):
    from conftest import tiny_overrides
    from textlora.config import load_config
    from textlora.pipeline import run_experiment

    cfg = load_config(None, tiny_overrides(tiny_bert_dir, reviews_csv, tmp_path, name="ens", ship="ensemble",
                                           **{"train.epochs": 1}))
    run = run_experiment(cfg, quiet=True, say=lambda *_: None)
    ship = json.loads((run / "ship.json").read_text())
    out = tmp_path / "ens-onnx"
    assert main(["export", str(run), "--onnx", str(out), "--quiet"]) == 0
    assert json.loads((out / "ship.json").read_text()) == ship
    assert (out / "classical" / ship["partner"] / "classical.json").is_file()
    assert sorted(p.name for p in (out / "classical").iterdir()) == [ship["partner"]]  # only what ships
    np.testing.assert_allclose(probs_of(run, TEXTS, onnx=out), probs_of(run, TEXTS), atol=1e-4)


# --------------------------------------------------------------------------- the parity gate


def test_parity_gate_refuses_a_broken_model_and_force_writes_it(tiny_run, tmp_path, monkeypatch, capsys):
    from textlora.onnxexport import OnnxClassifier

    real = OnnxClassifier.forward

    def flipped(self, *args, **kwargs):  # a conversion gone wrong: every label swapped
        output = real(self, *args, **kwargs)
        output.logits = -output.logits
        return output

    monkeypatch.setattr(OnnxClassifier, "forward", flipped)
    out = tmp_path / "broken"
    code, _, err = run_cli(capsys, "export", tiny_run, "--onnx", out, "--quiet")
    line = assert_one_line_error(code, err, r"parity gate.*agree on 0\.00%.*\d+\.\d+% \(torch fp32\) -> \d+\.\d+%.*--force")
    assert "pt" in line
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing half-written
    code, out_text, _ = run_cli(capsys, "export", tiny_run, "--onnx", out, "--quiet", "--force")
    assert code == 0 and "past the parity gate" in out_text
    parity = json.loads((out / "parity.json").read_text())
    assert parity["passed"] is False and parity["agreement"] == 0.0 and parity["accuracy_change_points"] < -0.5


def test_max_drop_is_the_threshold(tiny_run, tmp_path, monkeypatch, capsys):
    """One flipped row of 100 loses at most 1 point: refused at --max-drop 0.5 only if it was right."""
    from textlora.onnxexport import check_parity

    def one_row_worse(*args, **kwargs):
        parity = check_parity(*args, **kwargs)
        from dataclasses import replace

        return replace(parity, metric_onnx=parity.metric_torch - 0.01, agreement=0.99)

    monkeypatch.setattr("textlora.onnxexport.check_parity", one_row_worse)
    code, _, err = run_cli(capsys, "export", tiny_run, "--onnx", tmp_path / "a", "--quiet")
    assert_one_line_error(code, err, r"limit 0\.5 pt.*-1\.00 pt")
    code, _, _ = run_cli(capsys, "export", tiny_run, "--onnx", tmp_path / "b", "--quiet", "--max-drop", "1.5")
    assert code == 0
    assert json.loads((tmp_path / "b" / "parity.json").read_text())["passed"] is True


def test_labels_that_flip_both_ways_fail_the_agreement_gate(tiny_run, tmp_path, monkeypatch, capsys):
    """Accuracy unchanged, 5 of 100 labels different (flips that cancel out): refused at the default
    99 % agreement with the numbers, written with --force and recorded as failed; a lower
    min_agreement lets it through; exactly the limit passes."""
    from dataclasses import replace

    from textlora.onnxexport import DEFAULT_MIN_AGREEMENT, check_parity, export_onnx

    def flips_both_ways(agreement):
        def fake(*args, **kwargs):
            return replace(check_parity(*args, **kwargs), agreement=agreement)  # accuracy as torch's
        return fake

    monkeypatch.setattr("textlora.onnxexport.check_parity", flips_both_ways(0.95))
    out = tmp_path / "flipped"
    code, _, err = run_cli(capsys, "export", tiny_run, "--onnx", out, "--quiet")
    line = assert_one_line_error(code, err, r"parity gate: label agreement 95\.00% under the limit 99 %.*"
                                            r"agree on 95\.00%.*\+0\.00 pt.*--force")
    assert "accuracy drop" not in line  # the accuracy limit is not what failed
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing half-written
    code, _, _ = run_cli(capsys, "export", tiny_run, "--onnx", out, "--quiet", "--force")
    assert code == 0
    parity = json.loads((out / "parity.json").read_text())
    assert parity["passed"] is False and parity["agreement"] == 0.95
    assert parity["accuracy_change_points"] == 0.0 and parity["min_agreement_percent"] == DEFAULT_MIN_AGREEMENT == 99.0

    quiet = {"say": lambda *_: None}
    written, parity = export_onnx(tiny_run, tmp_path / "lenient", min_agreement=90, **quiet)
    assert json.loads((written / "parity.json").read_text())["passed"] is True
    monkeypatch.setattr("textlora.onnxexport.check_parity", flips_both_ways(0.99))
    written, _ = export_onnx(tiny_run, tmp_path / "at-limit", **quiet)  # 99 of 100 rows at 99 %: passes
    assert json.loads((written / "parity.json").read_text())["passed"] is True
    for bad in (-1, 100.5):
        with pytest.raises(TextloraError, match=r"--min-agreement must be between 0 and 100"):
            export_onnx(tiny_run, tmp_path / "bad", min_agreement=bad, **quiet)
    assert not (tmp_path / "bad").exists()


def copy_run(run: Path, copy: Path, **data) -> Path:
    """A copy of the run whose config.yaml reads other data."""
    shutil.copytree(run, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["data"].update(data)
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    return copy


def test_unreachable_or_changed_data_refuses_without_force(tiny_run, tmp_path, capsys):
    gone = copy_run(tiny_run, tmp_path / "gone", source=str(tmp_path / "moved.csv"))
    code, _, err = run_cli(capsys, "export", gone, "--onnx", tmp_path / "x", "--quiet")
    assert_one_line_error(code, err, r"cannot run the parity gate.*moved\.csv.*--force")
    assert not (tmp_path / "x").exists()
    code, out, _ = run_cli(capsys, "export", gone, "--onnx", tmp_path / "x", "--quiet", "--force")
    assert code == 0 and "without the parity check" in out
    parity = json.loads((tmp_path / "x" / "parity.json").read_text())
    assert parity["checked"] is False and "moved.csv" in parity["reason"]

    import pandas as pd

    frame = pd.read_csv(yaml.safe_load((tiny_run / "config.yaml").read_text())["data"]["source"])
    frame.loc[0, "text"] = "an edited review"
    frame.to_csv(tmp_path / "edited.csv", index=False)
    edited = copy_run(tiny_run, tmp_path / "edited", source=str(tmp_path / "edited.csv"))
    code, _, err = run_cli(capsys, "export", edited, "--onnx", tmp_path / "y", "--quiet")
    assert_one_line_error(code, err, r"changed since training \(fingerprint \w+, the run recorded \w+\)")


# --------------------------------------------------------------------------- bad input


def test_bad_input_one_line_each(tiny_run, exported, tmp_path, capsys):
    code, _, err = run_cli(capsys, "predict", tiny_run, "--backend", "onnx", "great film")
    assert_one_line_error(code, err, r"--backend onnx needs --onnx DIR.*textlora export RUN --onnx DIR")
    code, _, err = run_cli(capsys, "predict", tiny_run, "--onnx", tmp_path, "great film")  # a folder without an export
    assert_one_line_error(code, err, r"no model\.onnx in .*textlora export RUN --onnx")
    code, _, err = run_cli(capsys, "predict", tiny_run, "--backend", "torch", "--onnx", exported, "great film")
    assert_one_line_error(code, err, r"--onnx is read by the onnx backend only")
    code, _, err = run_cli(capsys, "predict", tiny_run, "--onnx", exported, "--precision", "bf16", "great film")
    assert_one_line_error(code, err, r"--precision bf16 applies to the torch backend")
    with pytest.raises(SystemExit) as stopped:  # argparse's own error, ended like every other one
        main(["export", str(tiny_run), "--onnx", str(tmp_path / "q"), "--quantize", "fp4"])
    assert_one_line_error(stopped.value.code, capsys.readouterr().err, r"--quantize: invalid choice: 'fp4'")
    code, _, err = run_cli(capsys, "export", tiny_run, "--merged", tmp_path / "m", "--quantize", "int8")
    assert_one_line_error(code, err, r"--quantize apply to --onnx only")
    code, _, err = run_cli(capsys, "export", tiny_run, "--onnx", tmp_path / "d", "--max-drop", "-1")
    assert_one_line_error(code, err, r"--max-drop must be 0 or more")
    code, _, err = run_cli(capsys, "ui", tiny_run, "--backend", "onnx")
    assert_one_line_error(code, err, r"--backend onnx needs --onnx DIR")
    assert not list(tmp_path.iterdir())

    corrupt = tmp_path / "corrupt"
    shutil.copytree(exported, corrupt)
    data = (corrupt / "model.onnx").read_bytes()
    (corrupt / "model.onnx").write_bytes(data[: len(data) // 3])
    code, _, err = run_cli(capsys, "predict", tiny_run, "--onnx", corrupt, "great film")
    assert_one_line_error(code, err, r"could not load .*model\.onnx.*corrupt or truncated, export the run again")

    other = tmp_path / "other"
    shutil.copytree(exported, other)
    info = json.loads((other / "onnx.json").read_text())
    (other / "onnx.json").write_text(json.dumps({**info, "artifact_sha256": "0" * 64}))
    code, _, err = run_cli(capsys, "predict", tiny_run, "--onnx", other, "great film")
    assert_one_line_error(code, err, r"was exported from run 'tiny' with other weights")


@pytest.mark.parametrize("objective", ["seq2seq", "causal"])
def test_label_word_run_is_refused(objective, tiny_run, tmp_path, capsys):
    """The check comes before anything loads, so a run marked seq2seq (text-to-text) or causal (a decoder
    scoring label words) stands in for a trained one."""
    fake = tmp_path / "labelwords"
    shutil.copytree(tiny_run, fake)
    info = json.loads((fake / "run.json").read_text())
    (fake / "run.json").write_text(json.dumps({**info, "objective": objective}))
    code, _, err = run_cli(capsys, "export", fake, "--onnx", tmp_path / "out")
    assert_one_line_error(code, err, r"ONNX export covers classification heads.*scores label words.*--merged")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- task: multi_label and regression

ML_TEXTS = ["the football match and the senate election", "an atom in the physics laboratory", "the news today",
            "a goal , a vote and the laboratory report"]
RATED = ["an awful film", "a perfect film", "the plot was okay", "quite a good story and a great actor"]


@pytest.fixture(scope="module")
def topics_run(tmp_path_factory, tiny_bert_dir) -> Path:
    """A tiny BERT LoRA run on keyword label sets; `task` unset: the list column makes it multi_label, and the
    gate must read the rows back the same way."""
    from conftest import train_tiny
    from test_multilabel import keyword_sets

    folder = tmp_path_factory.mktemp("onnx-ml")
    keyword_sets(240).to_json(folder / "topics.jsonl", orient="records", lines=True)
    return train_tiny(tiny_bert_dir, str(folder / "topics.jsonl"), folder / "runs", name="topics", baselines="[]",
                      **{"data.label_column": "labels", "train.epochs": 8, "train.learning_rate": 5e-2})


@pytest.fixture(scope="module")
def rating_run(tmp_path_factory, tiny_bert_dir) -> Path:
    from conftest import train_tiny
    from test_regression import BINS, rated_texts

    folder = tmp_path_factory.mktemp("onnx-rg")
    rated_texts(240).to_csv(folder / "rated.csv", index=False)
    return train_tiny(tiny_bert_dir, str(folder / "rated.csv"), folder / "runs", name="rating", task="regression",
                      baselines="[]", **{"data.label_column": "rating", "train.epochs": 10,
                                         "data.label_bins": json.dumps(BINS)})


def test_multilabel_export_gives_torchs_label_sets(topics_run, tmp_path, capsys):
    from textlora.onnxexport import parity_rows
    from textlora.predict import Predictor
    from textlora.runs import open_run

    run = open_run(topics_run)
    assert run.task == "multi_label"
    out = tmp_path / "topics-onnx"
    code, printed, _ = run_cli(capsys, "export", topics_run, "--onnx", out, "--quiet")
    assert code == 0 and re.search(r"parity: on the run's \d+ test rows, label sets agree on 100\.00%; micro F1 "
                                   r"0\.\d{4} \(torch fp32\) -> 0\.\d{4} \(onnx fp32\), \+0\.00 pt", printed), printed
    assert json.loads((out / "task.json").read_text()) == run.task_file
    assert json.loads((out / "onnx.json").read_text())["task"] == "multi_label"
    parity = json.loads((out / "parity.json").read_text())
    assert parity["checked"] and parity["passed"] and parity["failures"] == []
    assert (parity["task"], parity["measure"], parity["agreement_of"]) == ("multi_label", "f1_micro", "label sets")
    assert parity["agreement"] == 1.0 and parity["max_prob_diff"] < 1e-4 and parity["min_agreement_percent"] == 99.0
    assert parity["f1_micro_onnx"] == parity["f1_micro_torch"] and parity["f1_micro_change_points"] == 0.0
    assert parity["f1_micro_torch"] == pytest.approx(run.record().final["f1_micro"], abs=1e-9)  # the run's own number

    texts, _ = parity_rows(run)
    assert parity["rows"] == len(texts)
    sets = {backend: [p.labels for p in Predictor.from_run(topics_run, component="finetuned", **kwargs).predict(texts)]
            for backend, kwargs in (("torch", {}), ("onnx", {"backend": "onnx", "onnx": out}))}
    assert sets["onnx"] == sets["torch"] and any(sets["torch"]) and not all(sets["torch"])

    rows = {}
    for backend in ([], ["--backend", "onnx", "--onnx", out]):
        code, printed, _ = run_cli(capsys, "predict", topics_run, "--json", *backend, *ML_TEXTS)
        assert code == 0
        rows[bool(backend)] = json.loads(printed)
    assert [r["labels"] for r in rows[True]] == [r["labels"] for r in rows[False]]
    for a, b in zip(rows[True], rows[False]):
        assert a["thresholds"] == b["thresholds"]
        assert max(abs(a["probabilities"][n] - b["probabilities"][n]) for n in b["probabilities"]) < 1e-4


def test_regression_export_gives_torchs_values(rating_run, tmp_path, capsys):
    from textlora.onnxexport import parity_rows
    from textlora.runs import open_run

    run = open_run(rating_run)
    out = tmp_path / "rating-onnx"
    code, printed, _ = run_cli(capsys, "export", rating_run, "--onnx", out, "--quiet")
    assert code == 0 and re.search(r"parity: on the run's \d+ test rows, MAE [\d.]+ \(torch fp32\) -> [\d.]+ "
                                   r"\(onnx fp32\), .* in the target's units .*largest value difference .*label "
                                   r"agreement does not apply", printed), printed
    assert "agree on" not in printed
    assert json.loads((out / "task.json").read_text()) == run.task_file
    assert json.loads((out / "onnx.json").read_text())["task"] == "regression"
    parity = json.loads((out / "parity.json").read_text())
    assert parity["checked"] and parity["passed"] and (parity["task"], parity["measure"]) == ("regression", "mae")
    assert parity["agreement"] is None and parity["min_agreement_percent"] is None and "max_prob_diff" not in parity
    assert parity["max_value_diff"] < 1e-4 and abs(parity["mae_increase"]) < 1e-4
    assert parity["target_std"] == run.task_file["scale"]["std"] > 0
    assert parity["max_mae_increase"] == pytest.approx(0.005 * parity["target_std"])  # default --max-drop 0.5
    assert parity["mae_torch"] == pytest.approx(run.record().final["mae"], abs=1e-6)

    texts, _ = parity_rows(run)
    torch_values = probs_of(rating_run, texts, component="finetuned")
    onnx_values = probs_of(rating_run, texts, component="finetuned", backend="onnx", onnx=out)
    assert torch_values.shape == (len(texts),) and np.ptp(torch_values) > 1  # a model that predicts numbers
    np.testing.assert_allclose(onnx_values, torch_values, atol=1e-4, rtol=0)

    rows = {}
    for backend in ([], ["--backend", "onnx", "--onnx", out]):
        code, printed, _ = run_cli(capsys, "predict", rating_run, "--json", *backend, *RATED)
        assert code == 0
        rows[bool(backend)] = json.loads(printed)
    assert [r["bin"] for r in rows[True]] == [r["bin"] for r in rows[False]]
    np.testing.assert_allclose([r["value"] for r in rows[True]], [r["value"] for r in rows[False]], atol=1e-4, rtol=0)


def test_gate_measures_per_task():
    """What fails, in words and numbers: micro F1 points and label sets for multi_label; for regression the
    MAE increase against --max-drop percent of the training target's standard deviation, never agreement."""
    from textlora.onnxexport import Parity

    ml = Parity(rows=50, agreement=0.96, metric_torch=0.80, metric_onnx=0.79, max_diff=0.2, precision="int8",
                task="multi_label")
    assert ml.failures(0.5) == ["micro F1 drop 1.00 pt over the limit 0.5 pt",
                                "label-set agreement 96.00% under the limit 99 %"]
    assert ml.failures(1.5, 95) == []
    rg = Parity(rows=50, agreement=None, metric_torch=1.00, metric_onnx=1.03, max_diff=0.4, precision="int8",
                task="regression", target_std=2.0)
    assert rg.failures(0.5, 100) == ["MAE increase 0.03 over the limit 0.01 (0.5 % of the training target's "
                                     "standard deviation 2)"]
    assert rg.failures(1.5, 100) == [] and rg.change_points == pytest.approx(1.5)
    record = rg.as_dict(1.0)
    assert record["passed"] is False and record["max_mae_increase"] == pytest.approx(0.02)
    assert record["agreement"] is None and record["min_agreement_percent"] is None
    better = Parity(rows=50, agreement=None, metric_torch=1.0, metric_onnx=0.9, max_diff=0.4, precision="int8",
                    task="regression", target_std=2.0)
    assert better.failures(0.0) == []  # a lower MAE never fails


# --------------------------------------------------------------------------- the packaged MiniLM


@pytest.mark.slow
def test_minilm_run_exports_with_full_agreement(tmp_path, capsys):
    """A --quick MiniLM run (64 training rows, 32 test rows): the fp32 export agrees on every test row."""
    code = main(["train", "--quick", "--quiet", "--model", "packaged:minilm", "--data", "packaged:rotten_tomatoes",
                 "--output-dir", str(tmp_path), "--name", "minilm", "--set", "baselines=[tfidf]"])
    assert code == 0
    run = tmp_path / "minilm"
    out = tmp_path / "minilm-onnx"
    assert main(["export", str(run), "--onnx", str(out), "--quiet"]) == 0
    parity = json.loads((out / "parity.json").read_text())
    assert parity["rows"] == 32 and parity["agreement"] == 1.0 and parity["max_prob_diff"] < 1e-4
    print(json.dumps({"fp32_bytes": (out / "model.onnx").stat().st_size, "parity": parity}))


def test_cli_backend_choices_are_the_predictors():
    """cli.py spells the choices out (so `--help` imports no torch); they must stay predict.BACKENDS."""
    import argparse

    from textlora.cli import add_backend_arguments
    from textlora.predict import BACKENDS

    parser = argparse.ArgumentParser()
    add_backend_arguments(parser)
    assert tuple(next(a for a in parser._actions if a.dest == "backend").choices) == BACKENDS
